//! The metadata fails at every call of a workload in turn (before its write takes effect,
//! after it, and on reads): every commit that returned `Ok` survives a reopen, every commit is
//! all or nothing, and the engine keeps working once the metadata does.

use std::sync::Arc;

use sop_core::StoreOptions;
use sop_core::meta::{FaultyMetadata, MetaFault};
use sop_txn::{TxMode, TxOptions};

use crate::rig::Rig;

const COMMITS: u32 = 6;
const KEYS: u32 = 5;

/// Runs the workload with `fault` armed; returns whether it fired.
async fn round(fault: MetaFault) -> bool {
    let rig = Rig::new();
    let faulty = Arc::new(FaultyMetadata::new(rig.meta.clone()));
    // A checkpoint at every commit: each commit's path writes the metadata.
    let (engine, _) = rig.open_over(faulty.clone(), 1).unwrap();
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    tx.new_btree::<u32, u32>(&StoreOptions::new("t").slot_length(4))
        .unwrap();
    tx.commit().await.unwrap();

    faulty.inject(fault);
    let mut acknowledged = Vec::new();
    for c in 0..COMMITS {
        let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
        let ok = async {
            let mut t = tx.open_btree::<u32, u32>("t")?;
            for k in c * KEYS..(c + 1) * KEYS {
                t.add(k, c).await?;
            }
            tx.commit().await
        }
        .await
        .is_ok();
        acknowledged.push(ok);
    }
    let fired = !faulty.armed();
    faulty.clear();
    // Still working once the metadata is: one more commit, a checkpoint.
    let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    tx.open_btree::<u32, u32>("t")
        .unwrap()
        .add(1_000, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.checkpoint().unwrap();
    drop(engine);

    for reopened in [rig.open(1).unwrap().0, rig.crash_image().open(1).unwrap().0] {
        let tx = reopened.begin(TxOptions::new(TxMode::ForReading));
        let t = tx.open_btree::<u32, u32>("t").unwrap();
        let items = t.range(..).collect().await.unwrap();
        assert_eq!(items.last().map(|i| i.key), Some(1_000), "{fault:?}");
        for (c, ok) in acknowledged.iter().enumerate() {
            let c = u32::try_from(c).unwrap();
            let mine = items
                .iter()
                .filter(|i| i.value == c && i.key < 1_000)
                .count();
            assert!(
                mine == 0 || mine == KEYS as usize,
                "{fault:?}: commit {c} is half there ({mine} of {KEYS} keys)"
            );
            if *ok {
                assert_eq!(
                    mine, KEYS as usize,
                    "{fault:?}: acknowledged commit {c} lost"
                );
            }
        }
        assert_eq!(
            t.count().unwrap(),
            items.len() as u64,
            "{fault:?}: count drifted"
        );
        tx.commit().await.unwrap();
    }
    fired
}

#[tokio::test]
async fn a_metadata_failure_at_any_call_loses_no_acknowledged_commit_and_never_half_of_one() {
    type Kind = fn(u64) -> MetaFault;
    let kinds: [(&str, Kind); 3] = [
        ("write, before it takes effect", MetaFault::WriteBefore),
        ("write, after it took effect", MetaFault::WriteAfter),
        ("read", MetaFault::Read),
    ];
    for (name, kind) in kinds {
        let mut n = 1;
        while round(kind(n)).await {
            n += 1;
            assert!(n < 10_000, "the workload never runs out of metadata calls");
        }
        println!("metadata faults ({name}): {} calls", n - 1);
        assert!(n > 1, "no metadata call of kind {name} in the workload");
    }
}
