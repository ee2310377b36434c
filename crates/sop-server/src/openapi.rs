//! The OpenAPI 3.1 description served at `/openapi.json`.

use serde_json::{Value, json};

/// `(method, path, summary, needs a read-write token)` of every route.
pub const ROUTES: &[(&str, &str, &str, bool)] = &[
    (
        "get",
        "/health",
        "Liveness: {status: ok} (no token needed)",
        false,
    ),
    (
        "get",
        "/openapi.json",
        "This description (no token needed)",
        false,
    ),
    ("get", "/v1/stores", "Names of the stores", false),
    (
        "post",
        "/v1/stores",
        "Create a JSON store {name, index_spec?, unique?, description?}",
        true,
    ),
    (
        "get",
        "/v1/stores/{name}/items",
        "A page of items: ?limit=&after=<JSON key>&reverse=",
        false,
    ),
    (
        "put",
        "/v1/stores/{name}/items",
        "Upsert {items: [{key, value}]}",
        true,
    ),
    (
        "patch",
        "/v1/stores/{name}/items",
        "Update existing keys {items: [{key, value}]}",
        true,
    ),
    (
        "post",
        "/v1/stores/{name}/add",
        "Add {items: [{key, value}]} (ok false when a key existed)",
        true,
    ),
    (
        "post",
        "/v1/stores/{name}/get",
        "Values of {keys: [...]}",
        false,
    ),
    (
        "post",
        "/v1/stores/{name}/remove",
        "Remove {keys: [...]}",
        true,
    ),
    (
        "post",
        "/v1/tx",
        "Begin a multi-call transaction {mode: read|write}: {id, timeout_ms}; pass X-Sop-Tx: id on store calls",
        false,
    ),
    (
        "post",
        "/v1/tx/{id}/commit",
        "Commit (409 with retryable on a conflict)",
        false,
    ),
    ("post", "/v1/tx/{id}/rollback", "Roll back", false),
    (
        "put",
        "/v1/blobs/{store}/{key}",
        "Upload a value (streamed; one transaction)",
        true,
    ),
    (
        "get",
        "/v1/blobs/{store}/{key}",
        "Download a value; Range: bytes=a-b gives 206",
        false,
    ),
    (
        "post",
        "/v1/search/{index}/docs",
        "Index {docs: [{id, text}]}",
        true,
    ),
    (
        "get",
        "/v1/search/{index}",
        "BM25 search ?q=&k=: {hits: [{id, score}]}",
        false,
    ),
    (
        "post",
        "/v1/vectors/{store}/items",
        "Upsert {items: [{id, vector, payload}], metric?}",
        true,
    ),
    (
        "post",
        "/v1/vectors/{store}/query",
        "Nearest {vector, k?, nprobe?, filter?}: {hits}",
        false,
    ),
];

/// The document.
#[must_use]
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, write) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let security = if path.starts_with("/v1") {
            json!([{"bearer": []}])
        } else {
            json!([])
        };
        entry[*method] = json!({
            "summary": summary,
            "parameters": params,
            "security": security,
            "x-needs-read-write-token": write,
            "responses": {
                "200": {"description": "OK"},
                "4XX": {"description": "The request was refused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "sop-rs REST server", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "kind": {"type": "string"}, "message": {"type": "string"}, "retryable": {"type": "boolean"}}}}}}
        }
    })
}
