//! Blob store behaviour: plain files and erasure coding under missing, corrupt and failing drives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sop_blobstore_ec::{BlobStore, EcBlobStore, ErasureConfig, PlainBlobStore};
use sop_core::vfs::{Fault, FaultyFs, FileSystem, StdFs};
use sop_core::{Error, Uuid};

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn config(root: &Path, data: u8, parity: u8, repair: bool) -> ErasureConfig {
    ErasureConfig {
        data_shards: data,
        parity_shards: parity,
        drives: (0..data + parity)
            .map(|i| root.join(format!("disk{i}")))
            .collect(),
        repair,
    }
}

/// All subsets of `0..n` with at most `max` members.
fn subsets(n: usize, max: usize) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for i in 0..n {
        let grown: Vec<Vec<usize>> = out
            .iter()
            .filter(|s| s.len() < max)
            .map(|s| {
                let mut t = s.clone();
                t.push(i);
                t
            })
            .collect();
        out.extend(grown);
    }
    out
}

fn damage(path: &Path, corrupt: bool) {
    if corrupt {
        let mut b = std::fs::read(path).unwrap();
        let last = b.len() - 1;
        b[last] ^= 0x5a;
        std::fs::write(path, b).unwrap();
    } else {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn every_combination_of_up_to_parity_lost_or_corrupt_shards_reads_back_and_repairs() {
    for (data, parity, sizes) in [
        (2u8, 1u8, &[0usize, 1, 7, 4096, 100_003][..]),
        (4, 2, &[0, 3, 4097, 65_536][..]),
        (8, 3, &[1, 9, 30_001][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = EcBlobStore::new(
            Arc::new(StdFs::new()),
            config(dir.path(), data, parity, true),
        )
        .unwrap();
        let n = usize::from(data + parity);
        let mut cases = 0;
        for (s, &size) in sizes.iter().enumerate() {
            let payload = bytes(size, s as u8);
            let id = Uuid::new_v4();
            store.put("t", &[(id, &payload)]).unwrap();
            let originals: Vec<Vec<u8>> = (0..n)
                .map(|i| std::fs::read(store.shard_path("t", id, i)).unwrap())
                .collect();
            for lost in subsets(n, usize::from(parity)) {
                // Each lost shard is either missing or corrupt: try every mix.
                for mix in 0..(1u32 << lost.len()) {
                    for (j, &i) in lost.iter().enumerate() {
                        damage(&store.shard_path("t", id, i), mix >> j & 1 == 1);
                    }
                    assert_eq!(
                        store.get("t", id).unwrap(),
                        payload,
                        "{data}+{parity} size {size} lost {lost:?}"
                    );
                    // Reads repair what they rebuilt; scrub checks and repairs everything.
                    let report = store.scrub("t", true).unwrap();
                    assert!(report.unrecoverable.is_empty(), "{report:?}");
                    for (i, original) in originals.iter().enumerate() {
                        let now = std::fs::read(store.shard_path("t", id, i)).unwrap();
                        assert_eq!(&now, original, "shard {i} not restored after {lost:?}");
                    }
                    cases += 1;
                }
            }
            store.remove("t", &[id]).unwrap();
        }
        assert!(cases > sizes.len(), "{data}+{parity}: only {cases} cases");
    }
}

#[test]
fn parity_plus_one_lost_shards_is_a_clear_error() {
    for (data, parity) in [(2u8, 1u8), (4, 2), (8, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let store = EcBlobStore::new(
            Arc::new(StdFs::new()),
            config(dir.path(), data, parity, true),
        )
        .unwrap();
        let id = Uuid::new_v4();
        store.put("t", &[(id, &bytes(5000, 1))]).unwrap();
        for i in 0..=usize::from(parity) {
            damage(&store.shard_path("t", id, i), i % 2 == 0);
        }
        let err = store.get("t", id).unwrap_err();
        assert!(
            matches!(err, Error::TooManyShardsLost { usable, needed, .. } if usable == usize::from(data) - 1 && needed == usize::from(data)),
            "{err}"
        );
        assert!(err.to_string().contains(&id.to_string()), "{err}");
        let report = store.scrub("t", true).unwrap();
        assert_eq!(report.unrecoverable.len(), 1, "{report:?}");
    }
}

#[test]
fn writes_survive_parity_dead_drives_and_leave_nothing_when_more_fail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 4, 2, true);
    let fs = Arc::new(FaultyFs::new(Arc::new(StdFs::new())));
    let store = EcBlobStore::new(fs.clone(), cfg.clone()).unwrap();

    // Two dead drives (= parity): the write succeeds, the read rebuilds, scrub repairs later.
    fs.inject(Fault::dead_drive(&cfg.drives[0]));
    fs.inject(Fault::dead_drive(&cfg.drives[5]));
    let ok = Uuid::new_v4();
    let payload = bytes(10_000, 9);
    store.put("t", &[(ok, &payload)]).unwrap();
    assert_eq!(store.get("t", ok).unwrap(), payload);

    // Three dead drives: refused, and no shard of the batch is left anywhere.
    fs.inject(Fault::dead_drive(&cfg.drives[2]));
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let err = store.put("t", &[(a, &payload), (b, b"small")]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyDrivesFailed {
                failed: 3,
                tolerated: 2,
                ..
            }
        ),
        "{err}"
    );
    fs.clear();
    for id in [a, b] {
        for i in 0..6 {
            assert!(
                !store.shard_path("t", id, i).exists(),
                "partial shard {i} of {id} left"
            );
        }
        assert!(matches!(
            store.get("t", id),
            Err(Error::BlobNotFound { .. })
        ));
    }

    // Drives back: scrub rewrites the shards the degraded write could not.
    let report = store.scrub("t", true).unwrap();
    assert_eq!(report.repaired, vec![ok], "{report:?}");
    assert!(store.shard_path("t", ok, 0).exists() && store.shard_path("t", ok, 5).exists());
}

#[test]
fn plain_blobs_round_trip_and_detect_bit_rot() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let store = PlainBlobStore::new(fs.clone(), dir.path());
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    let payloads: Vec<Vec<u8>> = (0..20).map(|i| bytes(i * 997, i as u8)).collect();
    let batch: Vec<(Uuid, &[u8])> = ids
        .iter()
        .copied()
        .zip(payloads.iter().map(Vec::as_slice))
        .collect();
    let syncs = fs.sync_count();
    store.put("values", &batch).unwrap();
    assert!(
        fs.sync_count() - syncs <= 40,
        "one file sync per blob plus one per folder"
    );
    for (id, p) in ids.iter().zip(&payloads) {
        assert_eq!(&store.get("values", *id).unwrap(), p);
    }
    let path: PathBuf = store.path_of("values", ids[5]);
    let mut raw = std::fs::read(&path).unwrap();
    raw[20] ^= 1;
    std::fs::write(&path, raw).unwrap();
    let err = store.get("values", ids[5]).unwrap_err();
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
    assert!(
        err.to_string().contains(&ids[5].to_string()),
        "names the file: {err}"
    );
    store.remove("values", &ids).unwrap();
    store.remove("values", &ids).unwrap();
    assert!(matches!(
        store.get("values", ids[0]),
        Err(Error::BlobNotFound { .. })
    ));
    assert!(
        store.put("../escape", &batch).is_err(),
        "table names are folder-safe"
    );
}

#[test]
fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let mut c = config(dir.path(), 2, 1, false);
    c.drives.pop();
    assert!(matches!(
        EcBlobStore::new(fs.clone(), c),
        Err(Error::InvalidConfig { .. })
    ));
    let mut c = config(dir.path(), 2, 1, false);
    c.parity_shards = 0;
    assert!(EcBlobStore::new(fs.clone(), c).is_err());
    let mut c = config(dir.path(), 2, 1, false);
    c.drives[1] = c.drives[0].clone();
    assert!(EcBlobStore::new(fs, c).is_err());
}
