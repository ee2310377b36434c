//! Blob store throughput: durable writes and reads of 4 KiB, 64 KiB and 1 MiB blobs, plain and
//! erasure-coded 4+2 (six folders on one disk here), and the 4+2 coder alone in MB/s.
//!
//! Run with `cargo bench -p sop-blobstore-ec`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use sop_blobstore_ec::{
    BlobStore, EcBlobStore, ErasureConfig, PlainBlobStore, reconstruct, split_encode,
};
use sop_core::Uuid;
use sop_core::vfs::StdFs;

const SIZES: [usize; 3] = [4 << 10, 64 << 10, 1 << 20];

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

#[allow(clippy::unwrap_used, reason = "benchmark setup")]
fn stores(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let plain = PlainBlobStore::new(Arc::new(StdFs::new()), dir.path().join("plain"));
    let ec = EcBlobStore::new(
        Arc::new(StdFs::new()),
        ErasureConfig {
            data_shards: 4,
            parity_shards: 2,
            drives: (0..6).map(|i| dir.path().join(format!("d{i}"))).collect(),
            repair: false,
        },
    )
    .unwrap();
    let mut g = c.benchmark_group("blob");
    g.sample_size(20);
    for size in SIZES {
        let data = payload(size);
        g.throughput(Throughput::Bytes(size as u64));
        for (name, store) in [
            ("plain", &plain as &dyn BlobStore),
            ("ec4+2", &ec as &dyn BlobStore),
        ] {
            g.bench_with_input(
                BenchmarkId::new(format!("{name}/put_durable"), size),
                &size,
                |b, _| {
                    b.iter(|| store.put("t", &[(Uuid::new_v4(), &data)]).unwrap());
                },
            );
            let id = Uuid::new_v4();
            store.put("t", &[(id, &data)]).unwrap();
            g.bench_with_input(
                BenchmarkId::new(format!("{name}/get"), size),
                &size,
                |b, _| {
                    b.iter(|| store.get("t", id).unwrap());
                },
            );
        }
    }
    g.finish();
}

#[allow(clippy::unwrap_used, reason = "benchmark setup")]
fn coder(c: &mut Criterion) {
    let mut g = c.benchmark_group("ec4+2");
    for size in SIZES {
        let data = payload(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encode", size), &size, |b, _| {
            b.iter(|| split_encode(4, 2, &data).unwrap());
        });
        let shards = split_encode(4, 2, &data).unwrap();
        g.bench_with_input(
            BenchmarkId::new("decode_two_data_shards_lost", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let mut s: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
                    s[0] = None;
                    s[2] = None;
                    reconstruct(4, 2, &mut s).unwrap();
                    s
                });
            },
        );
    }
    g.finish();
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::coder, super::stores);
}
use group::benches;
criterion_main!(benches);
