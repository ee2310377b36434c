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
    // The peers' workload shape: 1,000-item nodes of 24-byte keys and 150-byte values.
    rt.block_on(async {
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<Vec<u8>, Vec<u8>>(&tx, &StoreOptions::new("big"))
            .unwrap();
        for k in 0..20_000u32 {
            t.add(key(k), vec![7; 150]).await.unwrap();
        }
        tx.commit().await.unwrap();
    });
    g.bench_function("1_key_in_1000_item_nodes", |b| {
        b.iter(|| {
            round += 1;
            rt.block_on(async {
                let tx = db.begin(TxMode::ForWriting);
                let mut t = db.open_btree::<Vec<u8>, Vec<u8>>(&tx, "big").unwrap();
                let k = u32::try_from(round.wrapping_mul(7919) % 20_000).unwrap_or(0);
                t.upsert(key(k), vec![round as u8; 150]).await.unwrap();
                tx.commit().await.unwrap();
            })
        })
    });
    g.bench_function("read_only_1_key", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tx = db.begin(TxMode::ForReading);
                let t = db.open_btree::<u32, u64>(&tx, "t").unwrap();
                let v = t.get(&500).await.unwrap();
                tx.commit().await.unwrap();
                v
            })
        })
    });
    g.finish();
}

/// A 24-byte key spread over the key space.
fn key(k: u32) -> Vec<u8> {
    let mut v = u64::from(k)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .to_be_bytes()
        .to_vec();
    v.resize(24, 7);
    v
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::commits);
}
use group::benches;
criterion_main!(benches);
