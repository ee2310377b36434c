//! The `sop` command end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn sop(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sop"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn put_get_scan_del_stats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("db");
    let d = d.to_str().unwrap();
    for (k, v) in [("b", "2"), ("a", "1"), ("c", "3")] {
        let (ok, _, err) = sop(&["put", d, "kv", k, v]);
        assert!(ok, "{err}");
    }
    let (ok, _, err) = sop(&["put", "--json", d, "kv", "j", "{ \"x\": [1, 2] }"]);
    assert!(ok, "{err}");
    let (ok, _, err) = sop(&["put", "--json", d, "kv", "bad", "{nope"]);
    assert!(!ok && err.contains("not valid JSON"), "{err}");

    assert_eq!(sop(&["get", d, "kv", "a"]).1, "1\n");
    assert_eq!(sop(&["get", d, "kv", "j"]).1, "{\"x\":[1,2]}\n");
    assert_eq!(
        sop(&["scan", d, "kv"]).1,
        "a\t1\nb\t2\nc\t3\nj\t{\"x\":[1,2]}\n"
    );
    assert_eq!(sop(&["scan", d, "kv", "b", "c"]).1, "b\t2\nc\t3\n");
    assert_eq!(sop(&["scan", d, "kv", "--limit", "1"]).1, "a\t1\n");
    assert!(sop(&["del", d, "kv", "b"]).0);
    let (ok, _, err) = sop(&["get", d, "kv", "b"]);
    assert!(!ok && err.contains("not in store"), "{err}");
    assert_eq!(sop(&["stores", d]).1, "kv\n");
    let (ok, out, err) = sop(&["stats", d]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("kv") && l.contains(" 3 ")),
        "{out}"
    );

    let (ok, _, err) = sop(&["stores", dir.path().to_str().unwrap()]);
    assert!(!ok && err.contains("not a sop database"), "{err}");
    let (ok, _, err) = sop(&["frobnicate"]);
    assert!(!ok && err.contains("usage"), "{err}");
}
