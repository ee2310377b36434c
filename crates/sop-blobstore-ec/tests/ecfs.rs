//! The erasure-coding file layer: what is written reads back with any `m` drives lost or
//! corrupted, scrub finds and rebuilds the damage, and the log runs on it unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use sop_blobstore_ec::{EC_RECORD, EcFs, ErasureConfig, LogOptions, SegmentLog};
use sop_core::vfs::{Fault, FaultyFs, FileSystem, StdFs};

fn config(root: &Path, k: u8, m: u8) -> ErasureConfig {
    ErasureConfig {
        data_shards: k,
        parity_shards: m,
        drives: (0..k + m).map(|i| root.join(format!("d{i}"))).collect(),
        repair: false,
    }
}

fn ec(root: &Path, k: u8, m: u8) -> EcFs {
    let fs = EcFs::new(Arc::new(StdFs::new()), &config(root, k, m)).unwrap();
    fs.create_dir_all(Path::new("f")).unwrap();
    fs
}

fn read_all(fs: &EcFs, rel: &Path, len: usize) -> Vec<u8> {
    let f = fs.open(rel, false).unwrap();
    let mut buf = vec![0u8; len];
    let got = f.read_at(&mut buf, 0).unwrap();
    assert_eq!(got, len);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn writes_read_back_with_any_m_drives_lost_or_corrupt(
        shape in prop::sample::select(vec![(2u8, 1u8), (4, 2), (3, 3)]),
        writes in prop::collection::vec((0usize..40_000, prop::collection::vec(any::<u8>(), 1..9_000)), 1..8),
        corrupt in any::<bool>(),
    ) {
        let (k, m) = shape;
        let dir = tempfile::tempdir().unwrap();
        let fs = ec(dir.path(), k, m);
        let rel = Path::new("f/x");
        let mut model = Vec::new();
        {
            let f = fs.open(rel, true).unwrap();
            for (at, data) in &writes {
                f.write_at(data, *at as u64).unwrap();
                if model.len() < at + data.len() {
                    model.resize(at + data.len(), 0);
                }
                model[*at..at + data.len()].copy_from_slice(data);
            }
            f.sync().unwrap();
        }
        prop_assert_eq!(&read_all(&fs, rel, model.len()), &model);
        // Take any m drives away (file removed, or a record flipped in each): still readable.
        let n = usize::from(k + m);
        for first in 0..n {
            let dir2 = tempfile::tempdir().unwrap();
            for d in 0..n {
                let from = dir.path().join(format!("d{d}"));
                let to = dir2.path().join(format!("d{d}"));
                std::fs::create_dir_all(to.join("f")).unwrap();
                std::fs::copy(from.join("f/x"), to.join("f/x")).unwrap();
            }
            for j in 0..usize::from(m) {
                let d = (first + j) % n;
                let p = dir2.path().join(format!("d{d}/f/x"));
                if corrupt {
                    let mut b = std::fs::read(&p).unwrap();
                    let at = (j * 7919) % b.len();
                    b[at] ^= 0x5a;
                    std::fs::write(&p, b).unwrap();
                } else {
                    std::fs::remove_file(&p).unwrap();
                }
            }
            let fs2 = EcFs::new(Arc::new(StdFs::new()), &config(dir2.path(), k, m)).unwrap();
            prop_assert_eq!(&read_all(&fs2, rel, model.len()), &model);
            let scrub = fs2.scrub_file(rel, true).unwrap();
            prop_assert!(!scrub.damaged.is_empty());
            prop_assert!(scrub.unrecoverable.is_empty());
            // Repaired: every drive's copy is whole again.
            let again = fs2.scrub_file(rel, false).unwrap();
            prop_assert!(again.damaged.is_empty(), "{:?}", again);
        }
    }
}

#[test]
fn more_than_m_lost_is_an_error_not_wrong_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ec(dir.path(), 2, 1);
    let rel = Path::new("f/x");
    let f = fs.open(rel, true).unwrap();
    f.write_at(&[7u8; 20_000], 0).unwrap();
    drop(f);
    for d in [0, 2] {
        let p = dir.path().join(format!("d{d}/f/x"));
        let mut b = std::fs::read(&p).unwrap();
        b[10] ^= 1;
        std::fs::write(&p, b).unwrap();
    }
    let f = fs.open(rel, false).unwrap();
    let mut buf = vec![0u8; 100];
    assert!(f.read_at(&mut buf, 0).is_err());
    let scrub = fs.scrub_file(rel, true).unwrap();
    assert_eq!(scrub.unrecoverable, vec![0]);
}

fn log_options(fs: &EcFs) -> LogOptions {
    LogOptions {
        align: fs.stripe(),
        prealloc_bytes: 0,
        segment_bytes: 256 << 10,
        ..LogOptions::default()
    }
}

#[test]
fn the_log_runs_on_it_and_survives_a_dead_drive() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyFs::new(Arc::new(StdFs::new())));
    let cfg = config(dir.path(), 2, 1);
    let records: Vec<Vec<u8>> = (0..60u32)
        .map(|i| format!("commit {i}").repeat(40).into_bytes())
        .collect();
    let mut locs = Vec::new();
    {
        let fs = EcFs::new(faulty.clone(), &cfg).unwrap();
        let opts = log_options(&fs);
        let (log, _) = SegmentLog::open(Arc::new(fs), "log", opts, None).unwrap();
        for (i, r) in records.iter().enumerate() {
            if i == 30 {
                // A drive dies mid-run: parity carries on.
                faulty.inject(Fault::dead_drive(dir.path().join("d1")));
            }
            let (l, _) = log.append_pieces(&[r]).unwrap();
            locs.push(l[0]);
            let lsn = log.append_record(r).unwrap();
            log.wait_durable_blocking(lsn).unwrap();
        }
        for (l, r) in locs.iter().zip(&records) {
            assert_eq!(&log.read(*l).unwrap(), r);
        }
    }
    // Reopened with the drive still dead, then with it back (its copy is behind: parity and
    // checksums tell which records to trust).
    for _ in 0..2 {
        let fs = EcFs::new(faulty.clone(), &cfg).unwrap();
        let opts = log_options(&fs);
        let (log, replay) = SegmentLog::open(Arc::new(fs), "log", opts, None).unwrap();
        assert!(replay.damage.is_none(), "{:?}", replay.damage);
        let got: Vec<Vec<u8>> = replay.records.into_iter().map(|(_, r)| r).collect();
        assert_eq!(got, records);
        for (l, r) in locs.iter().zip(&records) {
            assert_eq!(&log.read(*l).unwrap(), r);
        }
        faulty.clear();
    }
    let shards: Vec<PathBuf> = std::fs::read_dir(dir.path().join("d0/log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        shards
            .iter()
            .all(|p| std::fs::metadata(p).unwrap().len() % EC_RECORD as u64 == 0)
    );
}
