//! Model-based test on the in-memory seam: random transactions (committed or rolled back),
//! checkpoints every few commits, compactions, clean reopens and power cuts, always match a
//! `BTreeMap` that applies only the committed transactions.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sop_core::StoreOptions;
use sop_txn::{Engine, TxMode, TxOptions};

use crate::rig::Rig;

#[derive(Clone, Debug)]
enum Op {
    Upsert(u8, u32),
    Remove(u8),
}

#[derive(Clone, Copy, Debug)]
enum End {
    Commit,
    Rollback,
    Compact,
    Reopen,
    PowerCut,
}

fn txn() -> impl Strategy<Value = (Vec<Op>, End)> {
    let op = prop_oneof![
        3 => (0u8..64, any::<u32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        1 => (0u8..64).prop_map(Op::Remove),
    ];
    (
        prop::collection::vec(op, 1..24),
        prop_oneof![
            6 => Just(End::Commit),
            1 => Just(End::Rollback),
            1 => Just(End::Compact),
            1 => Just(End::Reopen),
            1 => Just(End::PowerCut),
        ],
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn contents(engine: &std::sync::Arc<Engine>) -> BTreeMap<u8, u32> {
    let tx = engine.begin(TxOptions::new(TxMode::ForReading));
    let t = tx.open_btree::<u8, u32>("t").unwrap();
    let items = t.range(..).collect().await.unwrap();
    tx.commit().await.unwrap();
    items.into_iter().map(|i| (i.key, i.value)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 16 } else { 128 }))]

    #[test]
    fn committed_transactions_and_nothing_else_survive_checkpoints_reopens_and_power_cuts(
        txns in prop::collection::vec(txn(), 1..40),
    ) {
        rt().block_on(async {
            let mut rig = Rig::new();
            // Small: a checkpoint every few commits, so replay and checkpointed state mix.
            let (mut engine, _) = rig.open(2048).unwrap();
            let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
            tx.new_btree::<u8, u32>(&StoreOptions::new("t").slot_length(4)).unwrap();
            tx.commit().await.unwrap();
            let mut model: BTreeMap<u8, u32> = BTreeMap::new();
            for (ops, end) in txns {
                let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
                let mut t = tx.open_btree::<u8, u32>("t").unwrap();
                let mut next = model.clone();
                for op in &ops {
                    match op {
                        Op::Upsert(k, v) => {
                            t.upsert(*k, *v).await.unwrap();
                            next.insert(*k, *v);
                        }
                        Op::Remove(k) => {
                            let removed = t.remove(k).await.unwrap();
                            assert_eq!(removed, next.remove(k).is_some());
                        }
                    }
                }
                assert_eq!(t.count().unwrap(), next.len() as u64);
                if matches!(end, End::Rollback) {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    model = next;
                }
                match end {
                    End::Commit | End::Rollback => {}
                    End::Compact => {
                        engine.checkpoint().unwrap();
                        engine.compact_below(1.0).unwrap();
                    }
                    End::Reopen => {
                        drop(engine);
                        engine = rig.open(2048).unwrap().0;
                    }
                    End::PowerCut => {
                        // The image first: the old engine's close must not reach it.
                        let image = rig.crash_image();
                        drop(engine);
                        rig = image;
                        engine = rig.open(2048).unwrap().0;
                    }
                }
                assert_eq!(contents(&engine).await, model, "after {end:?}");
            }
            // Once checkpointed, the metadata holds a handle for each live node and no other.
            engine.checkpoint().unwrap();
            let tx = engine.begin(TxOptions::new(TxMode::ForReading));
            let stats = tx.open_btree::<u8, u32>("t").unwrap().check().await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(stats.items, model.len() as u64);
            assert_eq!(rig.meta.handle_count(), stats.nodes, "handles leaked or lost");
        });
    }
}
