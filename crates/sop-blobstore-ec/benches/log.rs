//! The log's costs: a durable record (one group sync), pieces appended and read back, and the
//! same through the erasure-coding file layer; Reed-Solomon coding of a stripe.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sop_blobstore_ec::{EcFs, ErasureConfig, LogOptions, SegmentLog, reconstruct, split_encode};
use sop_core::vfs::{FileSystem, StdFs};

fn logs(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let plain: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let ec = EcFs::new(
        Arc::new(StdFs::new()),
        &ErasureConfig {
            data_shards: 4,
            parity_shards: 2,
            drives: (0..6).map(|i| dir.path().join(format!("d{i}"))).collect(),
            repair: false,
        },
    )
    .unwrap();
    let ec_opts = LogOptions {
        align: ec.stripe(),
        prealloc_bytes: 0,
        ..LogOptions::default()
    };
    let (plain_log, _) =
        SegmentLog::open(plain, dir.path().join("plain"), LogOptions::default(), None).unwrap();
    let (ec_log, _) = SegmentLog::open(Arc::new(ec), "ec", ec_opts, None).unwrap();
    let mut g = c.benchmark_group("log");
    g.sample_size(30);
    for (name, log) in [("plain", &plain_log), ("ec4+2", &ec_log)] {
        g.bench_function(BenchmarkId::new("durable record 300 B", name), |b| {
            let rec = vec![7u8; 300];
            b.iter(|| {
                let lsn = log.append_record(&rec).unwrap();
                log.wait_durable_blocking(lsn).unwrap();
            });
        });
        for size in [4usize << 10, 64 << 10] {
            let piece = vec![3u8; size];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(BenchmarkId::new(format!("append {size} B"), name), |b| {
                b.iter(|| log.append_pieces(&[&piece]).unwrap());
            });
            let (locs, lsn) = log.append_pieces(&[&piece]).unwrap();
            log.wait_durable_blocking(lsn).unwrap();
            g.bench_function(BenchmarkId::new(format!("read {size} B"), name), |b| {
                b.iter(|| log.read(locs[0]).unwrap());
            });
        }
    }
    g.finish();
}

fn coding(c: &mut Criterion) {
    let mut g = c.benchmark_group("reed-solomon 4+2");
    let stripe = vec![9u8; 4 * 4092];
    g.throughput(Throughput::Bytes(stripe.len() as u64));
    g.bench_function("encode a stripe", |b| {
        b.iter(|| split_encode(4, 2, &stripe).unwrap());
    });
    let shards = split_encode(4, 2, &stripe).unwrap();
    g.bench_function("rebuild two lost units", |b| {
        b.iter(|| {
            let mut s: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            s[0] = None;
            s[2] = None;
            reconstruct(4, 2, &mut s).unwrap();
        });
    });
    g.finish();
}

criterion_group!(benches, logs, coding);
criterion_main!(benches);
