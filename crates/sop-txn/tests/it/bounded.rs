//! A transaction keeps a bounded number of leaves (the engine's keep budget; 0 here, so every
//! leaf it does not change goes the handle-only way): writers too. What they read beyond the
//! budget is still validated, and what they change is still written over the version read.

use std::collections::BTreeMap;
use std::sync::Arc;

use sop_core::{Error, StoreOptions, TransactionError};
use sop_txn::{Engine, TxMode, TxOptions};

async fn engine_with(keys: u32) -> Arc<Engine> {
    let engine = Engine::in_memory().unwrap();
    engine.set_keep_leaf_bytes(0);
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    let mut t = tx
        .new_btree::<u32, u64>(&StoreOptions::new("t").slot_length(4))
        .unwrap();
    for k in 0..keys {
        t.add(k, u64::from(k)).await.unwrap();
    }
    tx.commit().await.unwrap();
    engine
}

#[tokio::test]
async fn a_writer_that_scans_beyond_the_budget_changes_and_removes_what_it_read() {
    let engine = engine_with(200).await;
    let mut model: BTreeMap<u32, u64> = (0..200).map(|k| (k, u64::from(k))).collect();
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    let mut t = tx.open_btree::<u32, u64>("t").unwrap();
    // A full scan first: every leaf is read, none kept.
    let all = t.range(..).collect().await.unwrap();
    assert_eq!(all.len(), 200);
    // Then changes over leaves read that way: updates, removals (which merge leaves) and adds.
    for k in (0..200).step_by(3) {
        t.upsert(k, 1_000 + u64::from(k)).await.unwrap();
        model.insert(k, 1_000 + u64::from(k));
    }
    for k in (1..200).step_by(4) {
        assert!(t.remove(&k).await.unwrap());
        model.remove(&k);
    }
    for k in 300..340 {
        t.add(k, 7).await.unwrap();
        model.insert(k, 7);
    }
    tx.commit().await.unwrap();
    let tx = engine.begin(TxOptions::new(TxMode::ForReading));
    let t = tx.open_btree::<u32, u64>("t").unwrap();
    let got: BTreeMap<u32, u64> = t
        .range(..)
        .collect()
        .await
        .unwrap()
        .into_iter()
        .map(|it| (it.key, it.value))
        .collect();
    assert_eq!(got, model);
    assert_eq!(t.count().unwrap(), model.len() as u64);
    assert!(t.check().await.unwrap().items == model.len() as u64);
}

#[tokio::test]
async fn a_leaf_read_beyond_the_budget_is_still_validated() {
    // Keys 40..60, one at a time: most sit in leaves (held by handle only), some in inner nodes
    // (always kept); a change to any of them must make the scan's commit fail.
    for changed in 40..60u32 {
        let engine = engine_with(200).await;
        let scanner = engine.begin(TxOptions::new(TxMode::ForWriting));
        let mut s = scanner.open_btree::<u32, u64>("t").unwrap();
        let sum: u64 = s
            .range(0..100)
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|it| it.value)
            .sum();
        assert_eq!(sum, (0..100).sum::<u64>());
        let other = engine.begin(TxOptions::new(TxMode::ForWriting));
        other
            .open_btree::<u32, u64>("t")
            .unwrap()
            .upsert(changed, 0)
            .await
            .unwrap();
        other.commit().await.unwrap();
        // The scanner writes the sum elsewhere: what it read changed, so it must not commit.
        s.upsert(1_000, sum).await.unwrap();
        let e = scanner.commit().await.unwrap_err();
        assert!(
            matches!(e, Error::Transaction(TransactionError::Conflict { .. })),
            "key {changed}: {e}"
        );
    }
}
