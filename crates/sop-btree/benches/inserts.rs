//! In-memory B-tree throughput: 1,000,000 sequential and 1,000,000 random inserts, then point
//! reads and a full scan, at SOP's default slot length (1000) and at a small one (64).
//!
//! Run with `cargo bench -p sop-btree`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use sop_btree::MemBTree;
use sop_core::StoreOptions;

const N: u64 = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    #[allow(
        clippy::expect_used,
        reason = "a benchmark cannot run without its runtime"
    )]
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

/// A fixed-seed xorshift permutation-ish sequence: the same random keys on every run.
fn random_keys(n: u64) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

async fn load(slot: usize, keys: &[u64]) -> MemBTree<u64, u64> {
    #[allow(clippy::unwrap_used, reason = "fixed valid options")]
    let mut t = MemBTree::in_memory(&StoreOptions::new("bench").slot_length(slot)).unwrap();
    for &k in keys {
        #[allow(clippy::unwrap_used, reason = "the in-memory repository cannot fail")]
        t.add(k, k).await.unwrap();
    }
    t
}

fn inserts(c: &mut Criterion) {
    let rt = runtime();
    let sequential: Vec<u64> = (0..N).collect();
    let random = random_keys(N);
    let mut g = c.benchmark_group("insert_1m");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    for slot in [1000, 64] {
        g.bench_with_input(BenchmarkId::new("sequential", slot), &slot, |b, &slot| {
            b.iter(|| rt.block_on(load(slot, &sequential)));
        });
        g.bench_with_input(BenchmarkId::new("random", slot), &slot, |b, &slot| {
            b.iter(|| rt.block_on(load(slot, &random)));
        });
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let rt = runtime();
    let random = random_keys(N);
    let mut g = c.benchmark_group("read_1m");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    for slot in [1000, 64] {
        let tree = rt.block_on(load(slot, &random));
        g.bench_with_input(BenchmarkId::new("get_random", slot), &slot, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    let mut hits = 0u64;
                    for k in &random {
                        #[allow(clippy::unwrap_used, reason = "in-memory reads cannot fail")]
                        if tree.get(k).await.unwrap().is_some() {
                            hits += 1;
                        }
                    }
                    assert_eq!(hits, N);
                });
            });
        });
        g.bench_with_input(BenchmarkId::new("scan", slot), &slot, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    let mut n = 0u64;
                    let mut r = tree.range(..);
                    #[allow(clippy::unwrap_used, reason = "in-memory reads cannot fail")]
                    while r.next().await.unwrap().is_some() {
                        n += 1;
                    }
                    assert_eq!(n, N);
                });
            });
        });
    }
    g.finish();
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::inserts, super::reads);
}
use group::benches;
criterion_main!(benches);
