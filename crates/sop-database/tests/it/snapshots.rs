//! Snapshot reads and safe reclamation: a read-only transaction sees one state however many
//! commits, checkpoints and compactions happen meanwhile, never fails with a conflict because
//! of them, and nothing it can read is reclaimed before it ends.

use std::collections::BTreeMap;

use sop_core::StoreOptions;
use sop_database::{Database, DatabaseOptions, TxMode};

use crate::support::rt;

/// Small segments and checkpoints, so a short test crosses many of each.
fn small() -> DatabaseOptions {
    DatabaseOptions {
        segment_bytes: 64 << 10,
        registry_checkpoint_bytes: 32 << 10,
        ..DatabaseOptions::default()
    }
}

async fn put(db: &Database, store: &str, items: impl IntoIterator<Item = (u32, String)>) {
    let tx = db.begin(TxMode::ForWriting);
    let mut t = db.open_btree::<u32, String>(&tx, store).unwrap();
    for (k, v) in items {
        t.upsert(k, v).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[test]
fn a_reader_keeps_its_snapshot_across_1000_commits_and_compactions() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), small()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, String>(&tx, &StoreOptions::new("s").slot_length(16))
            .unwrap();
        let mut model = BTreeMap::new();
        for k in 0..500u32 {
            t.add(k, format!("first {k}")).await.unwrap();
            model.insert(k, format!("first {k}"));
        }
        tx.commit().await.unwrap();
        drop(t);

        // The reader begins; it has read nothing yet.
        let reader = db.begin(TxMode::ForReading);
        let seen = model.clone();

        let mut removed_while_reading = 0;
        for i in 0..1000u32 {
            let k = (i * 7919) % 600;
            if i % 5 == 0 {
                let tx = db.begin(TxMode::ForWriting);
                let mut t = db.open_btree::<u32, String>(&tx, "s").unwrap();
                t.remove(&k).await.unwrap();
                tx.commit().await.unwrap();
                model.remove(&k);
            } else {
                put(&db, "s", [(k, format!("commit {i} {}", "x".repeat(40)))]).await;
                model.insert(k, format!("commit {i} {}", "x".repeat(40)));
            }
            if i % 100 == 99 {
                let r = db.compact().unwrap();
                removed_while_reading += r.removed.len();
            }
        }
        // Superseded segments exist, but the reader pins them.
        let r = db.compact().unwrap();
        assert!(
            !r.waiting.is_empty(),
            "no segment was waiting for the reader: {r:?}"
        );
        let pinned = r.waiting.clone();

        let t = db.open_btree::<u32, String>(&reader, "s").unwrap();
        let got: BTreeMap<u32, String> = t
            .range(..)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.value))
            .collect();
        assert_eq!(got, seen, "the reader saw another state than its snapshot");
        assert_eq!(t.count().unwrap(), seen.len() as u64);
        t.check().await.unwrap();
        drop(t);
        // No conflict for a reader, whatever committed meanwhile.
        reader.commit().await.unwrap();

        // Once it ends, the space comes back (the maintenance thread is told when the last
        // reader that pinned segments ends; a compaction removes what is left) and the newest
        // state is intact.
        let r = db.compact().unwrap();
        eprintln!(
            "removed while the reader was open: {removed_while_reading}; after: {:?}",
            r.removed
        );
        let left: Vec<u32> = db
            .engine()
            .log()
            .segments()
            .unwrap()
            .into_iter()
            .filter(|n| pinned.contains(n))
            .collect();
        assert!(
            left.is_empty(),
            "segments {left:?} outlived the reader that pinned them"
        );
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, String>(&tx, "s").unwrap();
        let now: BTreeMap<u32, String> = t
            .range(..)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.value))
            .collect();
        assert_eq!(now, model);
        drop(t);
        tx.commit().await.unwrap();
        crate::support::assert_verified(&db, "after compaction").await;
    });
}

#[test]
fn a_reader_overlapping_100_commits_commits_without_conflict() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, u64>(&tx, &StoreOptions::new("c").slot_length(8))
            .unwrap();
        for k in 0..50 {
            t.add(k, 0).await.unwrap();
        }
        tx.commit().await.unwrap();
        drop(t);

        let reader = db.begin(TxMode::ForReading);
        let r = db.open_btree::<u32, u64>(&reader, "c").unwrap();
        // Half of it read before the commits, half after: one state all the same.
        let mut sum = 0;
        for k in 0..25 {
            sum += r.get(&k).await.unwrap().unwrap();
        }
        for i in 1..=100u64 {
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u32, u64>(&tx, "c").unwrap();
            for k in 0..50 {
                t.update(&k, i).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        for k in 25..50 {
            sum += r.get(&k).await.unwrap().unwrap();
        }
        assert_eq!(sum, 0, "the reader saw commits made after it began");
        drop(r);
        reader.commit().await.unwrap();
    });
}
