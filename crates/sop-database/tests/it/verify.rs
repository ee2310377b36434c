//! `Database::verify`: a clean database verifies clean; each kind of damage or leftover is
//! found and named; `repair` fixes leftovers and nothing else, and never what a handle, a log
//! record or the checkpoint refers to.

use std::path::{Path, PathBuf};

use sop_core::{StoreOptions, ValueDataSize};
use sop_database::{Database, TxMode};

use crate::support::rt;

async fn fill(db: &Database) {
    let tx = db.begin(TxMode::ForWriting);
    let mut a = db
        .new_btree::<u32, String>(&tx, &StoreOptions::new("a").slot_length(4))
        .unwrap();
    let mut b = db
        .new_btree::<u32, Vec<u8>>(
            &tx,
            &StoreOptions::with_value_size("b", ValueDataSize::Big).slot_length(4),
        )
        .unwrap();
    for k in 0..40 {
        a.add(k, format!("v{k}")).await.unwrap();
        b.add(k, vec![k as u8; 100]).await.unwrap();
    }
    tx.commit().await.unwrap();
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn a_clean_database_verifies_clean_and_leftovers_are_found_and_repaired() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let db = Database::standalone(root).unwrap();
        fill(&db).await;
        let r = db.verify(false).await.unwrap();
        assert!(r.is_clean(), "{:?}", r.problems);
        assert_eq!(r.stores.len(), 2);
        for s in &r.stores {
            assert_eq!((s.items, s.count), (40, 40), "{s:?}");
            assert!(s.depth >= 2 && s.nodes > 10, "{s:?}");
            assert!(s.node_pieces >= s.nodes, "{s:?}");
            assert_eq!(s.keys_ordered, None, "u32 keys are not known to verify");
        }
        assert_eq!(r.stores[1].values, 40);
        assert!(r.segments.iter().map(|g| g.live).sum::<u64>() > 40 * 100);

        // Leftovers: a temporary store file, and a store removal cut short after its store
        // file went (its marker says so).
        let tmp = root.join("meta/stores/x.tmp");
        std::fs::write(&tmp, b"half").unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut c = db
            .new_btree::<u32, u32>(&tx, &StoreOptions::new("c"))
            .unwrap();
        c.add(1, 1).await.unwrap();
        tx.commit().await.unwrap();
        drop((c, tx));
        drop(db);
        std::fs::remove_file(root.join("meta/stores/c.store")).unwrap();
        std::fs::create_dir_all(root.join("meta/removed")).unwrap();
        std::fs::write(root.join("meta/removed/c"), b"").unwrap();
        let db = Database::standalone(root).unwrap();

        let r = db.verify(false).await.unwrap();
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(r.problems.iter().any(|p| p.contains("x.tmp")));
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("table c") && p.contains("removal was interrupted"))
        );
        assert!(tmp.exists(), "verify alone changes nothing");

        let r = db.verify(true).await.unwrap();
        assert!(r.is_clean(), "{:?}", r.problems);
        assert_eq!(r.repaired.len(), 2, "{:?}", r.repaired);
        assert!(!tmp.exists());
        assert!(!root.join("meta/tables/c").exists());
        assert!(!root.join("meta/removed/c").exists());
        assert!(db.verify(false).await.unwrap().is_clean());
    });
}

#[test]
fn lost_store_metadata_is_reported_and_never_repaired_away() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        {
            let db = Database::standalone(root).unwrap();
            fill(&db).await;
        }
        // Someone deletes a store file: the table is not a leftover, its metadata is lost.
        let store_file = root.join("meta/stores/a.store");
        let kept = std::fs::read(&store_file).unwrap();
        std::fs::remove_file(&store_file).unwrap();
        let log_before = files(&root.join("log"));
        let db = Database::standalone(root).unwrap();
        let r = db.verify(true).await.unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("table a")
                && p.contains("metadata")
                && p.contains("not repaired")),
            "{:?}",
            r.problems
        );
        assert!(r.repaired.is_empty(), "{:?}", r.repaired);
        drop(db);
        assert!(root.join("meta/tables/a").exists(), "the table must stay");
        assert_eq!(files(&root.join("log")), log_before, "the log must stay");
        // Restoring the file brings everything back.
        std::fs::write(&store_file, kept).unwrap();
        let db = Database::standalone(root).unwrap();
        assert!(db.verify(false).await.unwrap().is_clean());
        let tx = db.begin(TxMode::ForReading);
        let a = db.open_btree::<u32, String>(&tx, "a").unwrap();
        assert_eq!(a.range(..).collect().await.unwrap().len(), 40);
    });
}

#[test]
fn damage_is_named_and_not_repaired_away() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        {
            let db = Database::standalone(root).unwrap();
            fill(&db).await;
        }
        // A registry block of "a" flipped.
        let seg = files(&root.join("meta/tables/a"))[0].clone();
        let mut bytes = std::fs::read(&seg).unwrap();
        let used = bytes
            .chunks(4096)
            .position(|c| c.iter().any(|b| *b != 0))
            .unwrap();
        bytes[used * 4096 + 100] ^= 1;
        std::fs::write(&seg, bytes).unwrap();
        // A byte of one of "b"'s values flipped in the log.
        let log = files(&root.join("log"))[0].clone();
        let mut bytes = std::fs::read(&log).unwrap();
        let value = vec![33u8; 100];
        let at = bytes
            .windows(value.len())
            .position(|w| w == value.as_slice())
            .unwrap();
        bytes[at + 50] ^= 1;
        std::fs::write(&log, bytes).unwrap();

        let db = Database::standalone(root).unwrap();
        let r = db.verify(true).await.unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("store a") && p.contains("registry block")),
            "{:?}",
            r.problems
        );
        let log_name = log.display().to_string();
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("store b") && p.contains(&log_name) && p.contains("checksum")),
            "{:?}",
            r.problems
        );
        assert!(r.repaired.is_empty(), "{:?}", r.repaired);
    });
}

#[test]
fn erasure_coded_log_records_are_checked_and_rebuilt() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let drives: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("d{i}"))).collect();
        let options = || sop_database::DatabaseOptions {
            erasure: Some(sop_blobstore_ec::ErasureConfig {
                data_shards: 2,
                parity_shards: 1,
                drives: drives.clone(),
                // Reads would mend what they meet: this test wants verify to find it.
                repair: false,
            }),
            ..sop_database::DatabaseOptions::default()
        };
        let root = dir.path().join("db");
        let db = Database::open(&root, options()).unwrap();
        fill(&db).await;
        assert!(db.verify(false).await.unwrap().is_clean());
        // A drive loses its copy of the log: everything still reads (parity).
        let shard = files(&drives[1].join("log"))[0].clone();
        std::fs::remove_file(&shard).unwrap();
        let tx = db.begin(TxMode::ForReading);
        let b = db.open_btree::<u32, Vec<u8>>(&tx, "b").unwrap();
        assert_eq!(b.get(&7).await.unwrap(), Some(vec![7u8; 100]));
        drop((b, tx));
        let r = db.verify(false).await.unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("erasure-coded records")),
            "{:?}",
            r.problems
        );
        assert!(!shard.exists());
        let r = db.verify(true).await.unwrap();
        assert!(r.is_clean(), "{:?}", r.problems);
        assert!(
            r.repaired.iter().any(|p| p.contains("rewritten")),
            "{:?}",
            r.repaired
        );
        assert!(shard.exists());
        assert!(db.verify(false).await.unwrap().is_clean());
    });
}
