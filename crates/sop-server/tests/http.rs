//! The server over real HTTP on a loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use sop_server::{Role, Server, ServerConfig, Tokens};

const RW: &str = "rw-token-0123456789abcdef";
const RO: &str = "ro-token-0123456789abcdef";

struct Harness {
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    base: String,
    agent: ureq::Agent,
}

fn start(tune: impl FnOnce(&mut ServerConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = ServerConfig::new(
        Tokens::new()
            .with(RW, Role::ReadWrite)
            .with(RO, Role::ReadOnly),
    );
    config.addr = "127.0.0.1:0".parse().unwrap();
    tune(&mut config);
    let db = sop::Database::standalone(dir.path().join("db")).unwrap();
    let server = rt.block_on(Server::start(db, config)).unwrap();
    let base = format!("http://{}", server.addr());
    rt.spawn(async move {
        let mut server = server;
        server.wait().await;
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    Harness {
        _rt: rt,
        _dir: dir,
        base,
        agent,
    }
}

impl Harness {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, bytes) = self.raw(
            method,
            path,
            token,
            body.map(|b| b.as_bytes().to_vec()),
            &[],
        );
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, v)
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<u8>) {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req.body(body.unwrap_or_default()).unwrap();
        let mut resp = self.agent.run(req).unwrap();
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        (status, bytes)
    }
}

fn error_kind(v: &Value) -> &str {
    v["error"]["kind"].as_str().unwrap_or("<no JSON error>")
}

#[test]
fn default_config_is_loopback_and_needs_a_token() {
    let c = ServerConfig::new(Tokens::new());
    assert!(c.addr.ip().is_loopback());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = sop::Database::standalone(dir.path()).unwrap();
    let mut c = c;
    c.addr = "127.0.0.1:0".parse().unwrap();
    let err = rt.block_on(Server::start(db, c)).err().unwrap();
    assert!(err.contains("no token"), "{err}");
}

#[test]
fn auth_and_roles() {
    let h = start(|_| {});
    assert_eq!(
        h.call("GET", "/health", None, None),
        (200, json!({"status": "ok"}))
    );
    let (s, v) = h.call("GET", "/v1/stores", None, None);
    assert_eq!((s, error_kind(&v)), (401, "unauthorized"));
    let (s, _) = h.call("GET", "/v1/stores", Some("wrong-token-0123456789"), None);
    assert_eq!(s, 401);
    assert_eq!(h.call("GET", "/v1/stores", Some(RO), None).0, 200);
    // A read-only token cannot write, but can read and query.
    let (s, v) = h.call("POST", "/v1/stores", Some(RO), Some(r#"{"name":"t"}"#));
    assert_eq!((s, error_kind(&v)), (403, "forbidden"));
    assert_eq!(
        h.call("POST", "/v1/stores", Some(RW), Some(r#"{"name":"t"}"#))
            .0,
        201
    );
    let (s, _) = h.call(
        "PUT",
        "/v1/stores/t/items",
        Some(RO),
        Some(r#"{"items":[{"key":1,"value":2}]}"#),
    );
    assert_eq!(s, 403);
    let (s, _) = h.call("PUT", "/v1/blobs/b/k", Some(RO), Some("x"));
    assert_eq!(s, 403);
    let (s, _) = h.call("POST", "/v1/tx", Some(RO), Some(r#"{"mode":"write"}"#));
    assert_eq!(s, 403);
    assert_eq!(
        h.call(
            "POST",
            "/v1/stores/t/get",
            Some(RO),
            Some(r#"{"keys":[1]}"#)
        )
        .0,
        200
    );
    // Every writing route refuses the read-only token.
    for (m, p, b) in [
        (
            "POST",
            "/v1/stores/t/add",
            r#"{"items":[{"key":1,"value":2}]}"#,
        ),
        (
            "PATCH",
            "/v1/stores/t/items",
            r#"{"items":[{"key":1,"value":2}]}"#,
        ),
        ("POST", "/v1/stores/t/remove", r#"{"keys":[1]}"#),
        (
            "POST",
            "/v1/search/s/docs",
            r#"{"docs":[{"id":"a","text":"b"}]}"#,
        ),
        (
            "POST",
            "/v1/vectors/v/items",
            r#"{"items":[{"id":"a","vector":[1]}]}"#,
        ),
    ] {
        let (s, v) = h.call(m, p, Some(RO), Some(b));
        assert_eq!((s, error_kind(&v)), (403, "forbidden"), "{m} {p}");
    }
    // Another caller's transaction can be neither committed nor rolled back.
    let (_, v) = h.call("POST", "/v1/tx", Some(RW), None);
    let id = v["id"].as_str().unwrap().to_string();
    for end in ["commit", "rollback"] {
        assert_eq!(
            h.call("POST", &format!("/v1/tx/{id}/{end}"), Some(RO), None)
                .0,
            404
        );
    }
    assert_eq!(
        h.call("POST", &format!("/v1/tx/{id}/rollback"), Some(RW), None)
            .0,
        200
    );
    // Every route is described.
    let (s, doc) = h.call("GET", "/openapi.json", None, None);
    assert_eq!(s, 200);
    for (method, path, _, _) in sop_server::openapi::ROUTES {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
}

#[test]
fn json_stores_and_bad_requests() {
    let h = start(|c| c.max_body = 64 * 1024);
    let spec = r#"{"name":"people","index_spec":{"index_fields":[{"field_name":"last"},{"field_name":"age","ascending_sort_order":false}]}}"#;
    assert_eq!(h.call("POST", "/v1/stores", Some(RW), Some(spec)).0, 201);
    let (s, v) = h.call("POST", "/v1/stores", Some(RW), Some(spec));
    assert_eq!((s, error_kind(&v)), (409, "exists"));
    let items: Vec<Value> = (0..25)
        .map(|i| json!({"key": {"last": format!("n{:02}", i / 2), "age": i}, "value": {"i": i}}))
        .collect();
    let (s, v) = h.call(
        "POST",
        "/v1/stores/people/add",
        Some(RW),
        Some(&json!({"items": items}).to_string()),
    );
    assert_eq!((s, &v["ok"]), (200, &json!(true)));
    // Pages follow the spec's order (last ascending, age descending), 10 at a time.
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let q = match &after {
            None => "/v1/stores/people/items?limit=10".to_string(),
            Some(c) => format!(
                "/v1/stores/people/items?limit=10&after={}&after_id={}",
                urlencode(&c["key"].to_string()),
                c["id"].as_str().unwrap()
            ),
        };
        let (s, page) = h.call("GET", &q, Some(RO), None);
        assert_eq!(s, 200, "{page}");
        for it in page["items"].as_array().unwrap() {
            seen.push(it["value"]["i"].as_i64().unwrap());
        }
        match page["next"].clone() {
            Value::Null => break,
            k => after = Some(k),
        }
    }
    let mut want: Vec<i64> = (0..25).collect();
    want.sort_by_key(|i| (i / 2, -i));
    assert_eq!(seen, want);
    let (_, page) = h.call(
        "GET",
        "/v1/stores/people/items?limit=3&reverse=true",
        Some(RO),
        None,
    );
    let firsts: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(firsts, vec![24, 22, 23]);
    // Get, update, remove.
    let (_, v) = h.call(
        "POST",
        "/v1/stores/people/get",
        Some(RO),
        Some(r#"{"keys":[{"last":"n03","age":7},{"last":"zz","age":1}]}"#),
    );
    assert_eq!(v["items"][0]["value"], json!({"i": 7}));
    assert_eq!(v["items"][1]["value"], Value::Null);
    let (_, v) = h.call(
        "PATCH",
        "/v1/stores/people/items",
        Some(RW),
        Some(r#"{"items":[{"key":{"last":"n03","age":7},"value":"new"}]}"#),
    );
    assert_eq!(v["ok"], json!(true));
    let (_, v) = h.call(
        "POST",
        "/v1/stores/people/remove",
        Some(RW),
        Some(r#"{"keys":[{"last":"n03","age":7}]}"#),
    );
    assert_eq!(v["ok"], json!(true));
    // Bad input: 4xx with a JSON error, never a 500.
    let bad: &[(&str, &str, Option<&str>, u16, &str)] = &[
        (
            "POST",
            "/v1/stores/people/add",
            Some("{not json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/stores/people/add",
            Some(r#"{"itemz":[]}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/stores/people/add",
            Some(r#"{"items":[{"key":"not an object","value":1}]}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/stores/nope/add",
            Some(r#"{"items":[]}"#),
            404,
            "not_found",
        ),
        ("GET", "/v1/stores/nope/items", None, 404, "not_found"),
        (
            "GET",
            "/v1/stores/people/items?limit=0",
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/v1/stores/people/items?after=%7Bbad",
            None,
            400,
            "bad_request",
        ),
        ("GET", "/v1/nothing/here", None, 404, "not_found"),
        ("DELETE", "/v1/stores", None, 405, "method_not_allowed"),
        (
            "POST",
            "/v1/stores",
            Some(r#"{"name":"bad/name"}"#),
            400,
            "bad_request",
        ),
        ("POST", "/v1/tx/not-a-uuid/commit", None, 400, "bad_request"),
        (
            "POST",
            "/v1/tx/00000000-0000-0000-0000-000000000001/commit",
            None,
            404,
            "not_found",
        ),
        ("GET", "/v1/search/nope?q=x", None, 404, "not_found"),
        ("GET", "/v1/blobs/nope/k", None, 404, "not_found"),
    ];
    for (m, p, body, status, kind) in bad {
        let (s, v) = h.call(m, p, Some(RW), *body);
        assert_eq!((s, error_kind(&v)), (*status, *kind), "{m} {p}: {v}");
    }
    // An oversize body: 413, JSON.
    let big = json!({"items": [{"key": {"last": "x", "age": 1}, "value": "v".repeat(100 * 1024)}]})
        .to_string();
    let (s, v) = h.call("POST", "/v1/stores/people/add", Some(RW), Some(&big));
    assert_eq!((s, error_kind(&v)), (413, "too_large"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn hundred_megabyte_upload_and_range_downloads() {
    let h = start(|c| c.max_upload = 150 << 20);
    let data: Vec<u8> = (0..100u64 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (s, b) = h.raw(
        "PUT",
        "/v1/blobs/files/big.bin",
        Some(RW),
        Some(data.clone()),
        &[],
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let (s, got) = h.raw("GET", "/v1/blobs/files/big.bin", Some(RO), None, &[]);
    assert_eq!(s, 200);
    assert!(got == data, "the download differs");
    let a = 50_000_000;
    let (s, got) = h.raw(
        "GET",
        "/v1/blobs/files/big.bin",
        Some(RO),
        None,
        &[("Range", "bytes=50000000-50999999")],
    );
    assert_eq!(s, 206);
    assert!(got == data[a..a + 1_000_000]);
    let (s, got) = h.raw(
        "GET",
        "/v1/blobs/files/big.bin",
        Some(RO),
        None,
        &[("Range", "bytes=-10")],
    );
    assert_eq!((s, got.as_slice()), (206, &data[data.len() - 10..]));
    let (s, _) = h.raw(
        "GET",
        "/v1/blobs/files/big.bin",
        Some(RO),
        None,
        &[("Range", "bytes=200000000-")],
    );
    assert_eq!(s, 416);
    // Over the upload limit: refused from its Content-Length, before the body is read (a raw
    // request: a client sending the body would see the connection close under it).
    {
        use std::io::{Read, Write};
        let addr = h.base.trim_start_matches("http://");
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(
            c,
            "PUT /v1/blobs/files/huge.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {RW}\r\nContent-Length: {}\r\n\r\n",
            151u64 << 20
        )
        .unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413");
    }
    assert_eq!(
        h.raw("GET", "/v1/blobs/files/huge.bin", Some(RO), None, &[])
            .0,
        404
    );
}

#[test]
fn multi_call_transactions() {
    let h = start(|c| c.tx_timeout = Duration::from_millis(300));
    h.call("POST", "/v1/stores", Some(RW), Some(r#"{"name":"t"}"#));
    let (_, v) = h.call("POST", "/v1/tx", Some(RW), Some("{}"));
    let id = v["id"].as_str().unwrap().to_string();
    let hdr = [("X-Sop-Tx", id.as_str())];
    let put = |k: &str, tx: &[(&str, &str)]| {
        h.raw(
            "PUT",
            "/v1/stores/t/items",
            Some(RW),
            Some(format!(r#"{{"items":[{{"key":"{k}","value":1}}]}}"#).into_bytes()),
            tx,
        )
        .0
    };
    assert_eq!(put("a", &hdr), 200);
    assert_eq!(put("b", &hdr), 200);
    // Not visible outside before the commit.
    let (_, v) = h.call(
        "POST",
        "/v1/stores/t/get",
        Some(RO),
        Some(r#"{"keys":["a"]}"#),
    );
    assert_eq!(v["items"][0]["value"], Value::Null);
    // Another caller cannot use it.
    let (s, _) = h.raw(
        "POST",
        "/v1/stores/t/get",
        Some(RO),
        Some(br#"{"keys":["a"]}"#.to_vec()),
        &hdr,
    );
    assert_eq!(s, 404);
    assert_eq!(
        h.call("POST", &format!("/v1/tx/{id}/commit"), Some(RW), None)
            .0,
        200
    );
    let (_, v) = h.call(
        "POST",
        "/v1/stores/t/get",
        Some(RO),
        Some(r#"{"keys":["a","b"]}"#),
    );
    assert_eq!(
        (
            v["items"][0]["value"].clone(),
            v["items"][1]["value"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(
        h.call("POST", &format!("/v1/tx/{id}/commit"), Some(RW), None)
            .0,
        404
    );
    // Rolled back: nothing.
    let (_, v) = h.call("POST", "/v1/tx", Some(RW), Some("{}"));
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(put("c", &[("X-Sop-Tx", id.as_str())]), 200);
    assert_eq!(
        h.call("POST", &format!("/v1/tx/{id}/rollback"), Some(RW), None)
            .0,
        200
    );
    // Left open past the timeout: rolled back by the server.
    let (_, v) = h.call("POST", "/v1/tx", Some(RW), Some("{}"));
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(put("d", &[("X-Sop-Tx", id.as_str())]), 200);
    std::thread::sleep(Duration::from_millis(1200));
    let (s, v) = h.call("POST", &format!("/v1/tx/{id}/commit"), Some(RW), None);
    assert_eq!((s, error_kind(&v)), (404, "not_found"));
    let (_, v) = h.call(
        "POST",
        "/v1/stores/t/get",
        Some(RO),
        Some(r#"{"keys":["c","d"]}"#),
    );
    assert_eq!(
        (
            v["items"][0]["value"].clone(),
            v["items"][1]["value"].clone()
        ),
        (Value::Null, Value::Null)
    );
}

#[test]
fn concurrent_clients() {
    let h = start(|_| {});
    h.call("POST", "/v1/stores", Some(RW), Some(r#"{"name":"c"}"#));
    std::thread::scope(|s| {
        for t in 0..8 {
            let h = &h;
            s.spawn(move || {
                for i in 0..20 {
                    let body = format!(r#"{{"items":[{{"key":"{t}-{i}","value":{i}}}]}}"#);
                    // A conflict is a 409 that says it is retryable: retry it (a bounded
                    // number of times).
                    let mut done = false;
                    for _ in 0..50 {
                        let (st, v) = h.call("PUT", "/v1/stores/c/items", Some(RW), Some(&body));
                        if st == 200 {
                            done = true;
                            break;
                        }
                        assert_eq!(
                            (st, v["error"]["retryable"].clone()),
                            (409, json!(true)),
                            "{v}"
                        );
                    }
                    assert!(done, "{t}-{i}: 50 conflicts in a row");
                }
            });
        }
    });
    let (_, page) = h.call("GET", "/v1/stores/c/items?limit=1000", Some(RO), None);
    assert_eq!(page["items"].as_array().unwrap().len(), 160);
}

#[test]
fn search_and_vectors() {
    let h = start(|_| {});
    let docs = r#"{"docs":[{"id":"d1","text":"hello world"},{"id":"d2","text":"hello python"}]}"#;
    assert_eq!(
        h.call("POST", "/v1/search/docs/docs", Some(RW), Some(docs))
            .0,
        200
    );
    let (_, v) = h.call("GET", "/v1/search/docs?q=python", Some(RO), None);
    assert_eq!(v["hits"][0]["id"], "d2");
    assert_eq!(v["hits"].as_array().unwrap().len(), 1);
    let items = r#"{"metric":"l2","items":[{"id":"a","vector":[0,0],"payload":{"c":"x"}},{"id":"b","vector":[1,1],"payload":{"c":"y"}},{"id":"c","vector":[5,5],"payload":{"c":"x"}}]}"#;
    assert_eq!(
        h.call("POST", "/v1/vectors/v/items", Some(RW), Some(items))
            .0,
        200
    );
    let (_, v) = h.call(
        "POST",
        "/v1/vectors/v/query",
        Some(RO),
        Some(r#"{"vector":[0.9,0.9],"k":2}"#),
    );
    assert_eq!(
        (v["hits"][0]["id"].clone(), v["hits"][1]["id"].clone()),
        (json!("b"), json!("a"))
    );
    let (_, v) = h.call(
        "POST",
        "/v1/vectors/v/query",
        Some(RO),
        Some(r#"{"vector":[0.9,0.9],"k":2,"filter":{"c":"x"}}"#),
    );
    assert_eq!(
        (v["hits"][0]["id"].clone(), v["hits"][1]["id"].clone()),
        (json!("a"), json!("c"))
    );
    let (s, v) = h.call(
        "POST",
        "/v1/vectors/v/query",
        Some(RO),
        Some(r#"{"vector":[1,2,3]}"#),
    );
    assert_eq!((s, error_kind(&v)), (400, "bad_request"));
}

#[test]
fn pages_over_duplicate_keys_both_ways() {
    let h = start(|_| {});
    assert_eq!(
        h.call(
            "POST",
            "/v1/stores",
            Some(RW),
            Some(r#"{"name":"d","unique":false}"#)
        )
        .0,
        201
    );
    // a x3, b x2, c x1: values say which.
    let items: Vec<Value> = [("a", 3), ("b", 2), ("c", 1)]
        .iter()
        .flat_map(|(k, n)| (0..*n).map(move |i| json!({"key": k, "value": format!("{k}{i}")})))
        .collect();
    assert_eq!(
        h.call(
            "POST",
            "/v1/stores/d/add",
            Some(RW),
            Some(&json!({"items": items}).to_string())
        )
        .0,
        200
    );
    for (limit, reverse) in [
        (1, false),
        (2, false),
        (4, false),
        (1, true),
        (2, true),
        (5, true),
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..20 {
            let mut q = format!("/v1/stores/d/items?limit={limit}&reverse={reverse}");
            if let Some(c) = &cursor {
                q += &format!(
                    "&after={}&after_id={}",
                    urlencode(&c["key"].to_string()),
                    c["id"].as_str().unwrap()
                );
            }
            let (s, page) = h.call("GET", &q, Some(RO), None);
            assert_eq!(s, 200, "{page}");
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["value"].as_str().unwrap().to_string()),
            );
            match page["next"].clone() {
                Value::Null => break,
                n => cursor = Some(n),
            }
        }
        let mut keys: Vec<String> = seen.iter().map(|v| v[..1].to_string()).collect();
        if reverse {
            keys.reverse();
        }
        assert_eq!(
            keys,
            ["a", "a", "a", "b", "b", "c"],
            "limit {limit} reverse {reverse}: {seen:?}"
        );
        let mut all = seen.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 6, "limit {limit} reverse {reverse}: {seen:?}");
    }
    // `after` alone skips every item of that key.
    let (_, page) = h.call(
        "GET",
        &format!("/v1/stores/d/items?after={}", urlencode("\"a\"")),
        Some(RO),
        None,
    );
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["value"].as_str().unwrap()[..1])
        .collect();
    assert_eq!(got, ["b", "b", "c"]);
    let (_, page) = h.call(
        "GET",
        &format!(
            "/v1/stores/d/items?reverse=true&after={}",
            urlencode("\"b\"")
        ),
        Some(RO),
        None,
    );
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["value"].as_str().unwrap()[..1])
        .collect();
    assert_eq!(got, ["a", "a", "a"]);
    // Past the last key: nothing, and no endless loop.
    let (_, page) = h.call(
        "GET",
        &format!("/v1/stores/d/items?after={}", urlencode("\"c\"")),
        Some(RO),
        None,
    );
    assert_eq!(page["items"], json!([]));
}

#[test]
fn limits_and_transaction_only_routes() {
    let h = start(|_| {});
    h.call("POST", "/v1/stores", Some(RW), Some(r#"{"name":"t"}"#));
    let keys: Vec<u32> = (0..1001).collect();
    let (s, v) = h.call(
        "POST",
        "/v1/stores/t/get",
        Some(RO),
        Some(&json!({"keys": keys}).to_string()),
    );
    assert_eq!((s, error_kind(&v)), (400, "bad_request"));
    for p in [
        "/v1/stores/t/items?limit=1001",
        "/v1/stores/t/items?limit=abc",
        "/v1/stores/t/items?bogus=1",
        "/v1/search/s?q=x&k=100000",
    ] {
        let (s, v) = h.call("GET", p, Some(RO), None);
        assert_eq!((s, error_kind(&v)), (400, "bad_request"), "{p}");
    }
    let (s, v) = h.call(
        "POST",
        "/v1/vectors/v/query",
        Some(RO),
        Some(r#"{"vector":[1],"k":1000000}"#),
    );
    assert_eq!((s, error_kind(&v)), (400, "bad_request"));
    // Routes that run in their own transaction refuse X-Sop-Tx rather than ignore it.
    let (_, v) = h.call("POST", "/v1/tx", Some(RW), Some(""));
    let id = v["id"].as_str().unwrap().to_string();
    let hdr = [("X-Sop-Tx", id.as_str())];
    for (m, p, b) in [
        ("PUT", "/v1/blobs/b/k", "x"),
        ("POST", "/v1/search/s/docs", r#"{"docs":[]}"#),
        ("POST", "/v1/vectors/v/items", r#"{"items":[]}"#),
        ("POST", "/v1/stores", r#"{"name":"u"}"#),
    ] {
        let (s, _) = h.raw(m, p, Some(RW), Some(b.as_bytes().to_vec()), &hdr);
        assert_eq!(s, 400, "{m} {p}");
    }
    // One caller's open transactions are capped.
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push(
            h.call("POST", "/v1/tx", Some(RO), Some(r#"{"mode":"read"}"#))
                .0,
        );
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 16);
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 4);
}

#[test]
fn writes_racing_a_commit_are_all_in_or_refused() {
    let h = start(|_| {});
    h.call("POST", "/v1/stores", Some(RW), Some(r#"{"name":"r"}"#));
    let (_, v) = h.call("POST", "/v1/tx", Some(RW), None);
    let id = v["id"].as_str().unwrap().to_string();
    let accepted = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (h, id, accepted) = (&h, id.clone(), &accepted);
            s.spawn(move || {
                for i in 0..400 {
                    let key = format!("{t}-{i}");
                    // 200 items a request: long enough that requests are under way when the
                    // commit comes.
                    let items: Vec<Value> = (0..200)
                        .map(|j| json!({"key": format!("{key}-{j}"), "value": 1}))
                        .collect();
                    let body = json!({ "items": items }).to_string();
                    let (st, _) = h.raw(
                        "PUT",
                        "/v1/stores/r/items",
                        Some(RW),
                        Some(body.into_bytes()),
                        &[("X-Sop-Tx", id.as_str())],
                    );
                    match st {
                        200 => accepted
                            .lock()
                            .unwrap()
                            .extend((0..200).map(|j| format!("{key}-{j}"))),
                        404 => break, // the transaction ended: later writes are refused
                        other => panic!("{other}"),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(150));
        let (st, v) = h.call("POST", &format!("/v1/tx/{id}/commit"), Some(RW), None);
        assert_eq!(st, 200, "{v}");
    });
    // Every write the server accepted is committed.
    let accepted = accepted.into_inner().unwrap();
    assert!(!accepted.is_empty());
    // Every write the server accepted is committed, and nothing else.
    let mut stored = 0;
    let mut after: Option<Value> = None;
    loop {
        let q = match &after {
            None => "/v1/stores/r/items?limit=1000".to_string(),
            Some(c) => format!(
                "/v1/stores/r/items?limit=1000&after={}&after_id={}",
                urlencode(&c["key"].to_string()),
                c["id"].as_str().unwrap()
            ),
        };
        let (_, page) = h.call("GET", &q, Some(RO), None);
        stored += page["items"].as_array().unwrap().len();
        match page["next"].clone() {
            Value::Null => break,
            n => after = Some(n),
        }
    }
    assert_eq!(
        stored,
        accepted.len(),
        "accepted writes and stored items differ"
    );
}
