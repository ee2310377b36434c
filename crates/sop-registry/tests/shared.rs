//! Shared mode (clustered): several registries on one folder, each with its own journal and
//! only the locks of what its batches touch. Each registry here has its own lock description,
//! so registries of one process exclude each other exactly as processes do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sop_core::vfs::{Fault, FaultyFs, FileSystem, Op, StdFs};
use sop_core::{Error, Handle, Uuid};
use sop_registry::{Registry, RegistryBatch, RegistryOptions};

fn shared(fs: Arc<dyn FileSystem>, dir: &Path) -> Registry {
    Registry::open(
        fs,
        dir,
        RegistryOptions {
            shared: true,
            ..RegistryOptions::default()
        },
    )
    .unwrap()
}

/// An id in registry block `block` (of 250).
fn id_in(block: u64, n: u64) -> Uuid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(block + 250 * n).to_be_bytes());
    b[8..].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).to_be_bytes());
    Uuid::from_bytes(b)
}

fn handle(id: Uuid, version: u64) -> Handle {
    let mut h = Handle::new(id);
    h.version = version;
    h.physical_a = Uuid::from_bytes([version as u8; 16]);
    h
}

fn version(r: &Registry, id: Uuid) -> u64 {
    r.get_one("t", id).unwrap().map_or(0, |h| h.version)
}

/// Adds `ids` at version 1.
fn seed(r: &Registry, ids: &[Uuid]) {
    let mut b = RegistryBatch::new();
    for id in ids {
        b = b.add("t", handle(*id, 1));
    }
    r.write(&b).unwrap();
}

/// Moves every id of `ids` on by one version in one batch, retrying on a lost race; false
/// when another registry kept winning.
fn bump_together(r: &Registry, ids: &[Uuid]) -> bool {
    for _ in 0..10_000 {
        let hs = r.get("t", ids).unwrap();
        let mut b = RegistryBatch::new();
        for id in ids {
            let v = hs[id].version;
            b = b.update_if("t", handle(*id, v + 1), v);
        }
        match r.write(&b) {
            Ok(()) => return true,
            Err(Error::Transaction(sop_core::TransactionError::VersionMismatch { .. })) => {}
            Err(e) => panic!("{e}"),
        }
    }
    false
}

fn parallel_batches_lose_nothing_and_readers_see_whole_batches(
    fs: Arc<dyn FileSystem>,
    dir: &Path,
) {
    // Four registries; each moves on a pair of hot ids (in two different blocks) together,
    // and a private id of its own; two readers check that a read of the pair between two
    // equal generations saw one batch, never half of one.
    let hot = [id_in(3, 0), id_in(200, 0)];
    let private: Vec<Uuid> = (0..4).map(|i| id_in(50 + i, 0)).collect();
    let regs: Vec<Arc<Registry>> = (0..4).map(|_| Arc::new(shared(fs.clone(), dir))).collect();
    seed(&regs[0], &hot);
    seed(&regs[1], &private);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let consistent_reads = Arc::new(AtomicU64::new(0));
    const ROUNDS: u64 = 150;
    std::thread::scope(|s| {
        for (i, r) in regs.iter().enumerate() {
            let (done, private) = (done.clone(), private[i]);
            s.spawn(move || {
                for _ in 0..ROUNDS {
                    assert!(bump_together(r, &hot));
                    assert!(bump_together(r, &[private]));
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        for r in regs.iter().take(2) {
            let (stop, consistent_reads) = (stop.clone(), consistent_reads.clone());
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let before = r.generation();
                    let hs = r.get("t", &hot).unwrap();
                    if r.generation() == before {
                        assert_eq!(
                            hs[&hot[0]].version, hs[&hot[1]].version,
                            "a read between two equal generations saw half a batch"
                        );
                        consistent_reads.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        while done.load(Ordering::SeqCst) < 4 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let r = &regs[0];
    assert_eq!(version(r, hot[0]), 1 + 4 * ROUNDS, "an update was lost");
    assert_eq!(version(r, hot[1]), 1 + 4 * ROUNDS, "an update was lost");
    for id in &private {
        assert_eq!(version(r, *id), 1 + ROUNDS);
    }
    assert!(consistent_reads.load(Ordering::SeqCst) > 0);
    // Every registry's journal is emptied when it closes; a fresh one sees the same.
    drop(regs);
    let again = shared(fs, dir);
    assert_eq!(version(&again, hot[0]), 1 + 4 * ROUNDS);
}

#[test]
fn parallel_batches_across_registries_with_os_locks() {
    let dir = tempfile::tempdir().unwrap();
    parallel_batches_lose_nothing_and_readers_see_whole_batches(Arc::new(StdFs::new()), dir.path());
}

#[test]
fn parallel_batches_across_registries_with_in_process_locks() {
    let root = Path::new("/sim-shared");
    let fs: Arc<dyn FileSystem> = Arc::new(sop_core::vfs::SimFs::new(root));
    parallel_batches_lose_nothing_and_readers_see_whole_batches(fs, &root.join("reg"));
}

#[test]
fn a_dead_registrys_synced_batch_is_finished_before_anyone_writes_its_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let std: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let a_fs = Arc::new(FaultyFs::new(std.clone()));
    let (x, y) = (id_in(7, 0), id_in(90, 0));
    let b = shared(std.clone(), dir.path());
    seed(&b, &[x, y]);
    let a = shared(a_fs.clone(), dir.path());
    // A's batch is synced in its journal, then writing the second block fails: A stops there
    // (as if it died), with x changed in place and y not.
    a_fs.inject(Fault {
        prefix: Some(dir.path().join("tables")),
        op: Some(Op::Write),
        errno: 5,
        skip: 1,
        times: None,
    });
    a.write(
        &RegistryBatch::new()
            .update_if("t", handle(x, 2), 1)
            .update_if("t", handle(y, 2), 1),
    )
    .unwrap();
    a_fs.clear();
    assert!(
        a.get_one("t", x).is_err(),
        "A refuses calls once a batch is half applied"
    );
    // B changes y from the version it can read: the dead batch touching y is finished first,
    // so B's expectation fails instead of overwriting it, and both of A's changes are there.
    assert_eq!(version(&b, y), 1);
    let r = b.write(&RegistryBatch::new().update_if("t", handle(y, 2), 1));
    assert!(
        matches!(
            r,
            Err(Error::Transaction(
                sop_core::TransactionError::VersionMismatch { .. }
            ))
        ),
        "{r:?}"
    );
    assert_eq!((version(&b, x), version(&b, y)), (2, 2));
    assert!(bump_together(&b, &[x, y]));
    assert_eq!((version(&b, x), version(&b, y)), (3, 3));
}

#[test]
fn a_journal_brought_back_by_a_power_loss_never_overwrites_newer_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let x = id_in(11, 0);
    let a = shared(fs.clone(), dir.path());
    seed(&a, &[x]);
    assert!(bump_together(&a, &[x]));
    // A's journal holds its batches (their blocks are not synced yet).
    let journals = dir.path().join("journals");
    let a_journal = std::fs::read_dir(&journals)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 16)
        .expect("a journal with A's batches");
    let kept = std::fs::read(&a_journal).unwrap();
    let b = shared(fs.clone(), dir.path());
    assert!(bump_together(&b, &[x]));
    assert!(bump_together(&b, &[x]));
    drop(b);
    drop(a);
    // A power loss undid the emptying of A's journal (not synced when nothing but blocks was
    // in it): the next open replays it, image by image, only where the block is older.
    std::fs::write(&a_journal, &kept).unwrap();
    let c = shared(fs, dir.path());
    assert_eq!(
        version(&c, x),
        4,
        "an old journal image overwrote a newer block"
    );
}

#[test]
fn a_store_removal_waits_for_a_commit_in_flight_and_no_table_comes_back() {
    use sop_core::meta::Metadata;
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let a = Arc::new(shared(fs.clone(), dir.path()));
    let b = Arc::new(shared(fs.clone(), dir.path()));
    let store = sop_registry::StoreRepository::relative_path("t");
    let x = id_in(5, 0);
    seed(&a, &[x]);
    a.write(&RegistryBatch::new().put_file(&store, b"info".to_vec()))
        .unwrap();
    let meta_b = sop_registry::RegistryMetadata::new(
        b.clone(),
        Arc::new(sop_registry::StoreRepository::open(fs.clone(), dir.path()).unwrap()),
    );
    std::thread::scope(|s| {
        // A commit adding to the store, slow between taking its locks and writing, from a
        // registry that has no file of the table open (it creates what is missing).
        let c = shared(fs.clone(), dir.path());
        let y = id_in(77, 0);
        let pre = RegistryBatch::new().add("t", handle(y, 1));
        let commit = s.spawn(move || {
            c.write_with(&pre, &[], || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                Ok(RegistryBatch::new().add("t", handle(y, 1)))
            })
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        // The removal waits for it (the commit holds the store's lock shared).
        meta_b.remove_store("t").unwrap();
        commit.join().unwrap().unwrap();
    });
    assert!(
        !dir.path().join("tables").join("t").exists(),
        "a commit applied after the removal brought the table back"
    );
    assert!(!dir.path().join(&store).exists());
}

/// One step of the power-loss workload: which registry (0 = A, 1 = B) moves which ids on by
/// one version together, and whether the store file is rewritten in the same batch.
const STEPS: [(usize, &[u64], bool); 10] = [
    (0, &[0, 1], false),
    (1, &[0], false),
    (1, &[2], true),
    (0, &[1, 2], true),
    (0, &[0, 2], false),
    (1, &[0, 1, 2], true),
    (0, &[1], false),
    (1, &[2], false),
    (0, &[0, 1, 2], false),
    (1, &[0], false),
];

fn pl_ids() -> [Uuid; 3] {
    [id_in(9, 0), id_in(120, 0), id_in(240, 0)]
}

/// Runs the workload on `fs` until a write fails; returns the versions and store file
/// acknowledged, and the batch in flight when it failed (if any).
fn pl_run(fs: &Arc<dyn FileSystem>, base: &Path) -> (Vec<u64>, u64, Option<usize>) {
    let ids = pl_ids();
    let store = sop_registry::StoreRepository::relative_path("t");
    let open = || {
        Registry::open(
            fs.clone(),
            base,
            RegistryOptions {
                shared: true,
                ..RegistryOptions::default()
            },
        )
    };
    let (Ok(a), Ok(b)) = (open(), open()) else {
        return (vec![0; 3], 0, Some(usize::MAX));
    };
    let regs = [a, b];
    let mut versions = vec![0u64; 3];
    let mut file = 0u64;
    let mut b = RegistryBatch::new();
    for id in ids {
        b = b.add("t", handle(id, 1));
    }
    if regs[0]
        .write(&b.put_file(&store, 0u64.to_le_bytes().to_vec()))
        .is_err()
    {
        return (versions, file, Some(usize::MAX));
    }
    versions = vec![1; 3];
    for (n, (who, which, with_file)) in STEPS.iter().enumerate() {
        let mut b = RegistryBatch::new();
        for &i in *which {
            let v = versions[i as usize];
            b = b.update_if("t", handle(ids[i as usize], v + 1), v);
        }
        if *with_file {
            b = b.put_file(&store, (file + 1).to_le_bytes().to_vec());
        }
        if regs[*who].write(&b).is_err() {
            return (versions, file, Some(n));
        }
        for &i in *which {
            versions[i as usize] += 1;
        }
        if *with_file {
            file += 1;
        }
    }
    (versions, file, None)
}

/// Power loss at every sync of two registries' interleaved batches (A's journal keeps batches
/// unsynced in the registry files while B writes over the same blocks), strict and torn
/// images: after recovery every acknowledged batch is there, the one in flight is all there
/// or not at all, and no older image wins.
#[test]
fn power_loss_at_every_sync_of_interleaved_shared_batches() {
    let root = Path::new("/pl");
    let base = root.join("reg");
    let total = {
        let sim = sop_core::vfs::SimFs::new(root);
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let (_, _, failed) = pl_run(&fs, &base);
        assert_eq!(failed, None);
        sim.syncs()
    };
    assert!(total > 20, "{total}");
    let ids = pl_ids();
    let store = base.join(sop_registry::StoreRepository::relative_path("t"));
    for n in 1..=total {
        let sim = sop_core::vfs::SimFs::new(root);
        sim.crash_at_sync(n);
        let fs: Arc<dyn FileSystem> = Arc::new(sim.clone());
        let (acked, file, failed) = pl_run(&fs, &base);
        assert!(sim.crashed(), "sync {n} of {total} was not reached");
        for image in 0..5u64 {
            let disk = if image == 0 {
                sim.crash_image()
            } else {
                sim.crash_image_mixed(n * 31 + image)
            };
            let fs: Arc<dyn FileSystem> = Arc::new(disk.clone());
            let r = shared(fs.clone(), &base);
            let got: Vec<u64> = ids.iter().map(|id| version(&r, *id)).collect();
            let at = format!("sync {n} of {total}, image {image}, in flight {failed:?}");
            let in_flight = failed.and_then(|s| STEPS.get(s));
            match in_flight {
                Some((_, which, _)) => {
                    let moved: Vec<bool> = (0..3).map(|i| got[i] == acked[i] + 1).collect();
                    for i in 0..3 {
                        assert!(
                            got[i] == acked[i] || (moved[i] && which.contains(&(i as u64))),
                            "{at}: id {i} at {} (acknowledged {})",
                            got[i],
                            acked[i]
                        );
                    }
                    let all = which.iter().all(|i| moved[*i as usize]);
                    let none = which.iter().all(|i| !moved[*i as usize]);
                    assert!(all || none, "{at}: half a batch: {got:?} from {acked:?}");
                }
                None if failed == Some(usize::MAX) => {}
                None => assert_eq!(got, acked, "{at}"),
            }
            if failed != Some(usize::MAX) {
                let bytes = sop_core::vfs::read_file(disk_fs(&fs), &store).unwrap();
                let f = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                let flight_file = in_flight.is_some_and(|s| s.2);
                assert!(
                    f == file || (flight_file && f == file + 1),
                    "{at}: store file {f}, acknowledged {file}"
                );
            }
            drop(r);
        }
    }
}

fn disk_fs(fs: &Arc<dyn FileSystem>) -> &dyn FileSystem {
    fs.as_ref()
}

#[test]
fn checks_of_one_block_by_many_registries_do_not_wait_for_each_other() {
    // Every commit checks the root it read: checks hold the block shared, so two commits
    // that only check it run at once (with exclusive checks, B would wait for A's finish,
    // which waits for B: the receive below would time out).
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let a = shared(fs.clone(), dir.path());
    let b = shared(fs.clone(), dir.path());
    let (root, xa, xb) = (id_in(1, 0), id_in(60, 0), id_in(180, 0));
    seed(&a, &[root, xa, xb]);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(|| {
            let pre =
                RegistryBatch::new()
                    .check("t", root, Some(1))
                    .update_if("t", handle(xb, 2), 1);
            b.write(&pre).unwrap();
            tx.send(()).unwrap();
        });
        let pre = RegistryBatch::new()
            .check("t", root, Some(1))
            .update_if("t", handle(xa, 2), 1);
        a.write_with(&pre, &[], || {
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("a commit that only checks the root waited for another one");
            Ok(pre.clone())
        })
        .unwrap();
    });
    assert_eq!((version(&a, xa), version(&a, xb)), (2, 2));
}

#[test]
fn a_store_removed_and_made_again_is_read_from_its_new_files_everywhere() {
    use sop_core::meta::Metadata;
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let p = Arc::new(shared(fs.clone(), dir.path()));
    let q = shared(fs.clone(), dir.path());
    let store = sop_registry::StoreRepository::relative_path("t");
    let x = id_in(33, 0);
    p.write(
        &RegistryBatch::new()
            .add("t", handle(x, 1))
            .put_file(&store, b"1".to_vec()),
    )
    .unwrap();
    // Q has the table's file open (it read from it).
    assert_eq!(version(&q, x), 1);
    let meta_p = sop_registry::RegistryMetadata::new(
        p.clone(),
        Arc::new(sop_registry::StoreRepository::open(fs.clone(), dir.path()).unwrap()),
    );
    meta_p.remove_store("t").unwrap();
    // Made again, with the same id at another version.
    p.write(
        &RegistryBatch::new()
            .add("t", handle(x, 7))
            .put_file(&store, b"2".to_vec()),
    )
    .unwrap();
    assert_eq!(version(&q, x), 7, "Q read the removed table's file");
    // And Q's changes land in the new files, where P sees them.
    q.write(&RegistryBatch::new().update_if("t", handle(x, 8), 7))
        .unwrap();
    assert_eq!(version(&p, x), 8, "Q wrote into the removed table's file");
}
