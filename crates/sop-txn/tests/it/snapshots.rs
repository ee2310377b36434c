//! Snapshot reads through the catalog on the in-memory seam: a reader keeps its view across
//! commits and checkpoints that rewrite the metadata under it, and is never a conflict.

use sop_core::StoreOptions;
use sop_txn::{TxMode, TxOptions};

use crate::rig::Rig;

#[tokio::test]
async fn a_reader_keeps_its_snapshot_while_checkpoints_rewrite_the_metadata_under_it() {
    let rig = Rig::new();
    // Every commit checkpoints: each one rewrites handles the reader's snapshot still needs.
    let (engine, _) = rig.open(1).unwrap();
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    let mut t = tx
        .new_btree::<u32, u64>(&StoreOptions::new("t").slot_length(8))
        .unwrap();
    for k in 0..200 {
        t.add(k, 0).await.unwrap();
    }
    tx.commit().await.unwrap();

    let mut model: std::collections::BTreeMap<u32, u64> = (0..200).map(|k| (k, 0)).collect();
    let reader = engine.begin(TxOptions::new(TxMode::ForReading));
    let seen = reader.open_btree::<u32, u64>("t").unwrap();
    for round in 1..=100u64 {
        let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
        let mut t = tx.open_btree::<u32, u64>("t").unwrap();
        for k in (0..200).step_by(7) {
            let key = (k + u32::try_from(round).unwrap()) % 200;
            t.upsert(key, round).await.unwrap();
            model.insert(key, round);
        }
        if round % 10 == 0 {
            let key = u32::try_from(round).unwrap();
            assert_eq!(t.remove(&key).await.unwrap(), model.remove(&key).is_some());
        }
        tx.commit().await.unwrap();
        if round % 25 == 0 {
            engine.compact_below(1.0).unwrap();
        }
    }
    assert!(engine.checkpointed_lsn() > 0, "checkpoints ran");
    let items = seen.range(..).collect().await.unwrap();
    assert_eq!(items.len(), 200);
    assert!(
        items.iter().all(|i| i.value == 0),
        "the reader saw a later commit"
    );
    reader.commit().await.unwrap();

    let now = engine.begin(TxOptions::new(TxMode::ForReading));
    let t = now.open_btree::<u32, u64>("t").unwrap();
    let items = t.range(..).collect().await.unwrap();
    let now_seen: std::collections::BTreeMap<u32, u64> =
        items.into_iter().map(|i| (i.key, i.value)).collect();
    assert_eq!(now_seen, model);
    now.commit().await.unwrap();
    // Once the reader is gone, the overlay keeps nothing the metadata already holds.
    engine.checkpoint().unwrap();
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    tx.open_btree::<u32, u64>("t")
        .unwrap()
        .upsert(1, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.checkpoint().unwrap();
    assert!(
        engine.overlay_versions() <= 8,
        "{}",
        engine.overlay_versions()
    );
}

#[tokio::test]
async fn a_store_created_and_removed_leaves_no_metadata_behind() {
    let rig = Rig::new();
    let (engine, _) = rig.open(1 << 20).unwrap();
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    let mut t = tx
        .new_btree::<u32, u32>(&StoreOptions::new("gone").slot_length(4))
        .unwrap();
    for k in 0..50 {
        t.add(k, k).await.unwrap();
    }
    tx.commit().await.unwrap();
    engine.remove_store("gone").unwrap();
    assert!(engine.store_info("gone").unwrap().is_none());
    use sop_core::meta::Metadata;
    assert!(rig.meta.store_names().unwrap().is_empty());
    assert!(rig.meta.tables().unwrap().is_empty());
    assert_eq!(rig.meta.handle_count(), 0);
    drop(engine);
    let (engine, _) = rig.open(1 << 20).unwrap();
    assert!(engine.store_names().unwrap().is_empty());
}

/// A background rewrite (compaction, consolidation) moves nodes to new pieces with the same
/// content. A reader that began before it still reads the old pieces' locations: the decoded
/// nodes must serve both, or every node that reader has not read yet comes from the disk again
/// (what made the bench's read phase, which runs beside the maintenance of the writes before
/// it, run at half speed).
#[tokio::test]
async fn a_rewrite_keeps_the_nodes_cached_for_readers_open_before_it_and_after_it() {
    let rig = Rig::new();
    let (engine, _) = rig.open(1 << 40).unwrap();
    for round in 0..20u32 {
        let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
        let mut t = if round == 0 {
            tx.new_btree::<u32, u32>(&StoreOptions::new("t").slot_length(8))
                .unwrap()
        } else {
            tx.open_btree::<u32, u32>("t").unwrap()
        };
        // The first round's pieces stay partly live (keys 250..300): compaction moves them.
        for k in 0..if round == 0 { 300 } else { 250 } {
            t.upsert(k, round).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    // Open before the rewrite, nothing read yet: its snapshot names the old pieces.
    engine.checkpoint().unwrap();
    let before = engine.begin(TxOptions::new(TxMode::ForReading));
    let report = engine.compact().unwrap();
    assert!(report.moved_nodes > 0, "nothing was rewritten: {report:?}");
    let reads = rig.fs.reads();
    let t = before.open_btree::<u32, u32>("t").unwrap();
    for k in 0..300 {
        assert_eq!(t.get(&k).await.unwrap(), Some(if k < 250 { 19 } else { 0 }));
    }
    assert_eq!(
        rig.fs.reads(),
        reads,
        "the open reader read moved nodes from disk"
    );
    drop(t);
    before.commit().await.unwrap();
    // Begun after it: its snapshot names the new pieces, cached as well.
    let after = engine.begin(TxOptions::new(TxMode::ForReading));
    let t = after.open_btree::<u32, u32>("t").unwrap();
    for k in 0..300 {
        assert_eq!(t.get(&k).await.unwrap(), Some(if k < 250 { 19 } else { 0 }));
    }
    assert_eq!(
        rig.fs.reads(),
        reads,
        "a new reader read moved nodes from disk"
    );
}
