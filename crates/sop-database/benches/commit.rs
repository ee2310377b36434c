//! A durable commit end to end on the real file system: a transaction that changes one node, and
//! one that changes ten (one key in each of ten leaves), each committed; plus a one-key
//! read-only transaction. The tree: 1,000 items in leaves of 16 (about 100 leaves).
//!
//! Run with `cargo bench -p sop-database --bench commit` (or `cargo xtask bench --micro`).
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark on a fresh temporary folder"
)]

use criterion::{Criterion, criterion_main};
use sop_core::StoreOptions;
use sop_database::{Database, TxMode};

fn commits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::standalone(dir.path()).unwrap();
    rt.block_on(async {
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, u64>(&tx, &StoreOptions::new("t").slot_length(16))
            .unwrap();
        for k in 0..1000 {
            t.add(k, 0).await.unwrap();
        }
        tx.commit().await.unwrap();
    });
    let mut round = 0u64;
    let mut g = c.benchmark_group("commit");
    for touched in [1u32, 10] {
        g.bench_function(format!("{touched}_nodes"), |b| {
            b.iter(|| {
                round += 1;
                rt.block_on(async {
                    let tx = db.begin(TxMode::ForWriting);
                    let mut t = db.open_btree::<u32, u64>(&tx, "t").unwrap();
                    for i in 0..touched {
                        // Keys 100 apart sit in different leaves.
                        t.update(&(i * 100 + (round % 7) as u32), round)
                            .await
                            .unwrap();
                    }
                    tx.commit().await.unwrap();
                })
            })
        });
    }
    g.bench_function("read_only_1_key", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tx = db.begin(TxMode::ForReading);
                let mut t = db.open_btree::<u32, u64>(&tx, "t").unwrap();
                let v = t.get(&500).await.unwrap();
                tx.commit().await.unwrap();
                v
            })
        })
    });
    g.finish();
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::commits);
}
use group::benches;
criterion_main!(benches);
