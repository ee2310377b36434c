//! Registry throughput: point lookups among 100,000 handles, and durable batched updates of 1
//! and of 1,000 handles.
//!
//! Run with `cargo bench -p sop-registry`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use sop_core::vfs::StdFs;
use sop_core::{Handle, Uuid};
use sop_registry::{Registry, RegistryBatch, RegistryOptions};

const N: usize = 100_000;

#[allow(clippy::unwrap_used, reason = "benchmark setup")]
fn registry(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(
        Arc::new(StdFs::new()),
        dir.path(),
        RegistryOptions {
            hash_mod: Some(2000),
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    let ids: Vec<Uuid> = (0..N).map(|_| Uuid::new_v4()).collect();
    for chunk in ids.chunks(10_000) {
        reg.write(
            &chunk
                .iter()
                .fold(RegistryBatch::new(), |b, id| b.add("t", Handle::new(*id))),
        )
        .unwrap();
    }
    let mut g = c.benchmark_group("registry");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("get_one", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            reg.get_one("t", ids[i]).unwrap()
        });
    });
    g.sample_size(20);
    for batch in [1usize, 1000] {
        g.throughput(Throughput::Elements(batch as u64));
        let mut version = 1;
        g.bench_with_input(
            BenchmarkId::new("update_durable", batch),
            &batch,
            |b, &batch| {
                b.iter(|| {
                    version += 1;
                    let start = (version * batch) % (N - batch);
                    let w =
                        ids[start..start + batch]
                            .iter()
                            .fold(RegistryBatch::new(), |acc, id| {
                                let mut h = Handle::new(*id);
                                h.version = version as u64;
                                acc.update("t", h)
                            });
                    reg.write(&w).unwrap();
                });
            },
        );
    }
    g.finish();
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::registry);
}
use group::benches;
criterion_main!(benches);
