//! `Database::verify`: a clean database verifies clean; each kind of damage or leftover is
//! found and named; `repair` fixes the leftovers and rebuildable shards and nothing else.

use std::path::{Path, PathBuf};

use sop_core::{StoreOptions, ValueDataSize};
use sop_database::{Database, DatabaseOptions, TxMode};

use crate::support::{files_under, rt};

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
            assert_eq!(s.blobs, s.nodes + s.values, "{s:?}");
            assert_eq!(s.keys_ordered, None, "u32 keys are not known to verify");
        }
        assert_eq!(r.stores[1].values, 40);

        // Leftovers: an orphaned blob, a temporary file, a table with no store.
        let blob = files(&root.join("blobs/b"))[0].clone();
        // Same first bytes as a real blob, so it sits where a blob of its id belongs.
        let name = blob.file_name().unwrap().to_str().unwrap();
        let orphan = blob.with_file_name(format!("{}0000000000aa", &name[..24]));
        std::fs::copy(&blob, &orphan).unwrap();
        let tmp = blob.with_file_name("x.tmp");
        std::fs::write(&tmp, b"half").unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut c = db
            .new_btree::<u32, u32>(&tx, &StoreOptions::new("c"))
            .unwrap();
        c.add(1, 1).await.unwrap();
        tx.commit().await.unwrap();
        std::fs::remove_file(root.join("meta/stores/c.store")).unwrap();

        let r = db.verify(false).await.unwrap();
        assert_eq!(r.problems.len(), 3, "{:?}", r.problems);
        assert!(r.problems.iter().any(|p| p.contains("nothing refers to")));
        assert!(r.problems.iter().any(|p| p.contains("x.tmp")));
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("table c belongs to no store"))
        );
        assert!(
            orphan.exists() && tmp.exists(),
            "verify alone changes nothing"
        );

        let r = db.verify(true).await.unwrap();
        assert!(r.is_clean(), "{:?}", r.problems);
        assert_eq!(r.repaired.len(), 3, "{:?}", r.repaired);
        assert!(!orphan.exists() && !tmp.exists());
        assert!(!root.join("meta/tables/c").exists());
        assert_eq!(files_under(&root.join("blobs/c")), 0);
        assert!(db.verify(false).await.unwrap().is_clean());
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
        // A blob of "b" removed, a registry block of "a" flipped.
        let b_files = files(&root.join("blobs/b"));
        // Remove the largest-numbered file: some node or value of "b".
        std::fs::remove_file(b_files.last().unwrap()).unwrap();
        let seg = files(&root.join("meta/tables/a"))[0].clone();
        let mut bytes = std::fs::read(&seg).unwrap();
        let used = bytes
            .chunks(4096)
            .position(|c| c.iter().any(|b| *b != 0))
            .unwrap();
        bytes[used * 4096 + 100] ^= 1;
        std::fs::write(&seg, bytes).unwrap();

        let db = Database::standalone(root).unwrap();
        let r = db.verify(true).await.unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("store a") && p.contains("registry block")),
            "{:?}",
            r.problems
        );
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("store b") && p.contains("is not in table")),
            "{:?}",
            r.problems
        );
    });
}

#[test]
fn erasure_coded_shards_are_checked_and_rebuilt() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let drives: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("d{i}"))).collect();
        let options = || DatabaseOptions {
            erasure: Some(sop_blobstore_ec::ErasureConfig {
                data_shards: 2,
                parity_shards: 1,
                drives: drives.clone(),
                // Reads would mend what they meet: this test wants scrub to find it.
                repair: false,
            }),
            ..DatabaseOptions::default()
        };
        let root = dir.path().join("db");
        let db = Database::open(&root, options()).unwrap();
        fill(&db).await;
        assert!(db.verify(false).await.unwrap().is_clean());
        let shard = files(&drives[1].join("b"))[0].clone();
        std::fs::remove_file(&shard).unwrap();
        let r = db.verify(false).await.unwrap();
        assert!(
            r.problems.iter().any(|p| p.contains("damaged shards")),
            "{:?}",
            r.problems
        );
        assert!(!shard.exists());
        let r = db.verify(true).await.unwrap();
        assert!(r.is_clean(), "{:?}", r.problems);
        assert!(r.repaired.iter().any(|p| p.contains("rewritten")));
        assert!(shard.exists());
    });
}
