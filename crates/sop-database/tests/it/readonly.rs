//! A database opened read-only reads every durable commit and writes nothing: not a byte of
//! any file changes, no file appears or goes, and every change is a typed error.

use std::collections::BTreeMap;
use std::path::Path;

use sop_core::{Error, StoreOptions};
use sop_database::{Database, TxMode};

/// Every file under `dir` with its bytes.
fn image(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_read_only_open_reads_everything_and_changes_no_byte() {
    crate::support::rt_multi().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::standalone(dir.path()).unwrap();
            for round in 0..5u32 {
                let tx = db.begin(TxMode::ForWriting);
                let mut t = if round == 0 {
                    db.new_btree::<u32, String>(&tx, &StoreOptions::new("t").slot_length(8))
                        .unwrap()
                } else {
                    db.open_btree::<u32, String>(&tx, "t").unwrap()
                };
                for k in 0..100 {
                    t.upsert(k, format!("{round}-{k}")).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
        }
        let before = image(dir.path());
        {
            let db = Database::open_read_only(dir.path()).unwrap();
            // A writer is excluded while it is open.
            let e = Database::standalone(dir.path()).unwrap_err();
            assert!(
                matches!(e, Error::Usage(sop_core::UsageError::InUse { .. })),
                "{e}"
            );
            let tx = db.begin(TxMode::ForReading);
            let t = db.open_btree::<u32, String>(&tx, "t").unwrap();
            let items = t.range(..).collect().await.unwrap();
            assert_eq!(items.len(), 100);
            assert!(items.iter().all(|it| it.value == format!("4-{}", it.key)));
            tx.commit().await.unwrap();
            drop(t);
            // Every change is refused, and the refusals break nothing.
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u32, String>(&tx, "t").unwrap();
            let refused = |e: Error| assert!(e.to_string().contains("read-only"), "{e}");
            refused(t.add(500, "x".into()).await.unwrap_err());
            refused(t.update(&1, "x".into()).await.unwrap_err());
            refused(
                db.new_btree::<u32, u32>(&tx, &StoreOptions::new("u"))
                    .unwrap_err(),
            );
            assert_eq!(t.get(&1).await.unwrap().as_deref(), Some("4-1"));
            tx.commit().await.unwrap();
            refused(db.compact().unwrap_err());
            refused(db.remove_btree("t").unwrap_err());
            let report = db.verify(false).await.unwrap();
            assert!(report.is_clean(), "{report:?}");
            drop(t);
        }
        assert_eq!(image(dir.path()), before, "a read-only open changed files");
        // The database is as it was for a writer.
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, String>(&tx, "t").unwrap();
        t.add(1000, "after".into()).await.unwrap();
        tx.commit().await.unwrap();
        // ... and a writer excludes a read-only open.
        let e = Database::open_read_only(dir.path()).unwrap_err();
        assert!(
            matches!(e, Error::Usage(sop_core::UsageError::InUse { .. })),
            "{e}"
        );
    });
}

#[test]
fn a_read_only_open_of_a_folder_that_is_no_database_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Database::open_read_only(dir.path()).unwrap_err();
    assert!(
        matches!(e, Error::Usage(sop_core::UsageError::InvalidConfig { .. })),
        "{e}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "it wrote"
    );
}
