//! Reads without copies (`get_ref`, `next_ref`, `item_ref`) are reads like any other: they see
//! the transaction's own changes, and a writer that read through them conflicts when another
//! commit changed what it read.

use sop_core::{Error, StoreOptions};
use sop_txn::{Engine, TxMode, TxOptions};

async fn filled(engine: &std::sync::Arc<Engine>) {
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    let mut t = tx
        .new_btree::<u32, String>(&StoreOptions::new("t").slot_length(4))
        .unwrap();
    for k in 0..40 {
        t.add(k, format!("v{k}")).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn guards_see_the_transactions_own_changes() {
    let engine = Engine::in_memory().unwrap();
    filled(&engine).await;
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    let mut t = tx.open_btree::<u32, String>("t").unwrap();
    t.upsert(7, "changed".into()).await.unwrap();
    t.remove(&8).await.unwrap();
    assert_eq!(t.get_ref(&7).await.unwrap().unwrap().value(), "changed");
    assert!(t.get_ref(&8).await.unwrap().is_none());
    let mut r = t.range(5..10);
    let mut seen = Vec::new();
    while let Some(it) = r.next_ref().await.unwrap() {
        seen.push((*it.key(), it.value().clone()));
    }
    drop(r);
    let want: Vec<(u32, String)> = [5, 6, 7, 9]
        .into_iter()
        .map(|k| {
            (
                k,
                if k == 7 {
                    "changed".into()
                } else {
                    format!("v{k}")
                },
            )
        })
        .collect();
    assert_eq!(seen, want);
    let mut c = t.cursor();
    assert!(c.find(&9).await.unwrap());
    assert_eq!(c.item_ref().await.unwrap().unwrap().value(), "v9");
    drop(c);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_range_read_through_guards_conflicts_with_a_commit_inside_it() {
    let engine = Engine::in_memory().unwrap();
    filled(&engine).await;
    let reader = engine.begin(TxOptions::new(TxMode::ForWriting));
    let mut t = reader.open_btree::<u32, String>("t").unwrap();
    let mut r = t.range(10..20);
    let mut n = 0;
    while r.next_back_ref().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 10);
    drop(r);
    // Another transaction changes an item in the range and commits first.
    let other = engine.begin(TxOptions::new(TxMode::ForWriting));
    let mut o = other.open_btree::<u32, String>("t").unwrap();
    o.upsert(15, "theirs".into()).await.unwrap();
    other.commit().await.unwrap();
    // The reader writes elsewhere: its range read makes it conflict.
    t.upsert(30, "mine".into()).await.unwrap();
    let e = reader.commit().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transaction(sop_core::TransactionError::Conflict { .. })
        ),
        "{e}"
    );
}
