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

#[test]
fn verify_reports_damage_and_repairs_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("db");
    let d = d.to_str().unwrap();
    for i in 0..50 {
        assert!(sop(&["put", d, "kv", &format!("k{i:02}"), "v"]).0);
    }
    let (ok, out, err) = sop(&["verify", d]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("kv: 50 items (50 recorded)"), "{out}");
    assert!(out.contains("keys in order"), "{out}");

    // A temporary file an interrupted write left: reported, then removed by --repair.
    let tmp = std::path::Path::new(d).join("meta/stores/kv.store.tmp");
    std::fs::write(&tmp, b"half").unwrap();
    let (ok, out, err) = sop(&["verify", d]);
    assert!(!ok && out.contains("temporary file"), "{out}{err}");
    assert!(err.contains("1 problem"), "{err}");
    let (ok, out, err) = sop(&["verify", "--repair", d]);
    assert!(ok && out.contains("repaired:"), "{out}{err}");
    assert!(!tmp.exists());
    assert!(sop(&["verify", d]).0);

    // A byte of a value flipped in the log: a problem --repair cannot fix (one copy).
    let seg = std::path::Path::new(d).join("log").join("0000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let value = sop_core::codec::encode(&"v".to_string()).unwrap();
    let key = sop_core::codec::encode(&"k07".to_string()).unwrap();
    let at = bytes
        .windows(key.len())
        .rposition(|w| w == key.as_slice())
        .unwrap();
    // The key's length-prefixed bytes are followed by the value's length and bytes.
    bytes[at + key.len() + 4 + value.len() - 1] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let (ok, out, _) = sop(&["verify", "--repair", d]);
    assert!(
        !ok && out.contains("PROBLEM") && out.contains("checksum"),
        "{out}"
    );
}

#[test]
fn export_restore_import() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("db");
    let d = d.to_str().unwrap();
    for (k, v) in [("b", "2"), ("a", "1")] {
        assert!(sop(&["put", d, "kv", k, v]).0);
    }
    let (ok, kit, err) = sop(&["export", d]);
    assert!(ok, "{err}");
    let kit_path = dir.path().join("kit.json");
    std::fs::write(&kit_path, &kit).unwrap();
    let k = kit_path.to_str().unwrap();

    // Deleted: rebuilt from the kit, and `get` reads it as before.
    std::fs::remove_dir_all(d).unwrap();
    let (ok, out, err) = sop(&["restore", d, k]);
    assert!(ok && out.contains("created from the kit"), "{out}{err}");
    assert_eq!(sop(&["get", d, "kv", "a"]).1, "1\n");
    let (ok, out, _) = sop(&["restore", d, k]);
    assert!(ok && out.contains("nothing to restore"), "{out}");

    // Import adds and replaces.
    let more = kit.replace("\"1\"", "\"one\"");
    std::fs::write(&kit_path, more).unwrap();
    let (ok, out, err) = sop(&["import", d, k]);
    assert!(ok, "{out}{err}");
    assert_eq!(sop(&["get", d, "kv", "a"]).1, "one\n");

    // A kit with an error: refused, naming the line and field.
    std::fs::write(
        &kit_path,
        "{\n  \"format\": \"sop-restore-kit\",\n  \"version\": \"x\"\n}",
    )
    .unwrap();
    let (ok, _, err) = sop(&["restore", d, k]);
    assert!(
        !ok && err.contains("line 3") && err.contains("version"),
        "{err}"
    );
}
