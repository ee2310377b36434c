//! Store repository, and active/passive replication with failover and reinstate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sop_core::vfs::{Fault, FaultyFs, FileSystem, StdFs};
use sop_core::{Error, Handle, StoreInfo, StoreOptions, Uuid};
use sop_registry::{
    Registry, RegistryBatch, RegistryOptions, Reinstated, ReplicatedFs, StoreRepository,
};

/// Every file under `root` with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn assert_identical(a: &Path, b: &Path) {
    let (x, y) = (snapshot(a), snapshot(b));
    assert_eq!(
        x.keys().collect::<Vec<_>>(),
        y.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (path, bytes) in &x {
        assert!(bytes == &y[path], "{} differs", path.display());
    }
}

struct Env {
    _dir: tempfile::TempDir,
    roots: [PathBuf; 2],
    faulty: Arc<FaultyFs>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let roots = [dir.path().join("drive0"), dir.path().join("drive1")];
    Env {
        _dir: dir,
        roots,
        faulty: Arc::new(FaultyFs::new(Arc::new(StdFs::new()))),
    }
}

fn open(env: &Env) -> (ReplicatedFs, Registry, StoreRepository) {
    let fs = ReplicatedFs::open(env.faulty.clone(), env.roots.clone()).unwrap();
    let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let reg = Registry::open(shared.clone(), "", RegistryOptions::default()).unwrap();
    let stores = StoreRepository::open(shared, "").unwrap();
    (fs, reg, stores)
}

fn commit(
    reg: &Registry,
    stores: &StoreRepository,
    info: &StoreInfo,
    n: usize,
    version: u64,
) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let batch = ids.iter().fold(RegistryBatch::new(), |b, id| {
        let mut h = Handle::new(*id);
        h.version = version;
        b.add("people", h)
    });
    reg.write(&batch).unwrap();
    stores.update(info, i64::try_from(n).unwrap()).unwrap();
    ids
}

#[test]
fn store_repository_creates_updates_with_deltas_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let repo = StoreRepository::open(fs.clone(), dir.path()).unwrap();
    let info = StoreInfo::new(&StoreOptions::new("a").slot_length(8), 1).unwrap();
    repo.add(&info).unwrap();
    assert!(matches!(
        repo.add(&info),
        Err(Error::Usage(sop_core::UsageError::StoreExists { .. }))
    ));
    repo.add(&StoreInfo::new(&StoreOptions::new("b"), 1).unwrap())
        .unwrap();
    assert_eq!(repo.list().unwrap(), ["a", "b"]);
    assert_eq!(repo.update(&info, 5).unwrap().count, 5);
    assert_eq!(repo.update(&info, -2).unwrap().count, 3, "deltas add up");
    assert!(
        matches!(
            repo.update(&info, -4),
            Err(Error::Usage(sop_core::UsageError::InvalidOptions { .. }))
        ),
        "no negative count"
    );
    assert_eq!(repo.get("a").unwrap().unwrap().count, 3);
    repo.remove("a").unwrap();
    assert!(matches!(
        repo.remove("a"),
        Err(Error::Usage(sop_core::UsageError::StoreNotFound { .. }))
    ));
    assert_eq!(repo.get("a").unwrap(), None);
    // A damaged store file is a corruption error, not a panic or a wrong count.
    let path = dir.path().join("stores").join("b.store");
    let mut raw = std::fs::read(&path).unwrap();
    raw[20] ^= 4;
    std::fs::write(&path, raw).unwrap();
    assert!(matches!(
        repo.get("b"),
        Err(Error::Corruption(sop_core::CorruptionError::Damaged { .. }))
    ));
}

#[test]
fn eio_on_the_active_drive_fails_over_without_losing_a_committed_handle_then_reinstate_fast_forwards()
 {
    let env = env();
    let (fs, reg, stores) = open(&env);
    let info = StoreInfo::new(&StoreOptions::new("people"), 1).unwrap();
    stores.add(&info).unwrap();
    let before = commit(&reg, &stores, &info, 200, 1);
    assert_identical(&env.roots[0], &env.roots[1]);

    // Drive 0 dies: the next commit fails over to drive 1 and goes on.
    env.faulty.inject(Fault::dead_drive(&env.roots[0]));
    let during = commit(&reg, &stores, &info, 150, 2);
    let st = fs.status();
    assert_eq!((st.active, st.passive_in_sync), (1, false));
    let all: Vec<Uuid> = before.iter().chain(&during).copied().collect();
    assert_eq!(
        reg.get("people", &all).unwrap().len(),
        350,
        "nothing committed is lost"
    );
    assert_eq!(stores.get("people").unwrap().unwrap().count, 350);

    // Drive 0 is repaired: fast-forward it from the delta log, then both are identical.
    env.faulty.clear();
    let how = fs.reinstate().unwrap();
    assert!(
        matches!(how, Reinstated::FastForwarded(n) if n > 0),
        "{how:?}"
    );
    assert!(fs.status().passive_in_sync);
    assert_identical(&env.roots[0], &env.roots[1]);

    // Back in rotation: new commits reach both sides.
    commit(&reg, &stores, &info, 10, 3);
    assert_identical(&env.roots[0], &env.roots[1]);
}

#[test]
fn a_failed_passive_drive_is_logged_for_and_caught_up() {
    let env = env();
    let (fs, reg, stores) = open(&env);
    let info = StoreInfo::new(&StoreOptions::new("people"), 1).unwrap();
    stores.add(&info).unwrap();
    commit(&reg, &stores, &info, 20, 1);
    env.faulty.inject(Fault::dead_drive(&env.roots[1]));
    commit(&reg, &stores, &info, 20, 2);
    assert_eq!(
        (fs.status().active, fs.status().passive_in_sync),
        (0, false)
    );
    stores.remove("people").unwrap();
    env.faulty.clear();
    assert!(matches!(
        fs.reinstate().unwrap(),
        Reinstated::FastForwarded(_)
    ));
    assert_identical(&env.roots[0], &env.roots[1]);
}

#[test]
fn a_replaced_empty_drive_is_copied_whole_and_the_state_survives_a_restart() {
    let env = env();
    let info = StoreInfo::new(&StoreOptions::new("people"), 1).unwrap();
    let ids = {
        let (fs, reg, stores) = open(&env);
        stores.add(&info).unwrap();
        let ids = commit(&reg, &stores, &info, 100, 1);
        env.faulty.inject(Fault::dead_drive(&env.roots[0]));
        commit(&reg, &stores, &info, 5, 2);
        assert_eq!(fs.status().active, 1);
        ids
    };
    // The process restarts while drive 0 is still out: drive 1 stays active.
    env.faulty.clear();
    std::fs::remove_dir_all(&env.roots[0]).unwrap();
    let (fs, reg, stores) = open(&env);
    let st = fs.status();
    assert_eq!((st.active, st.passive_in_sync), (1, false), "{st:?}");
    assert_eq!(reg.get("people", &ids).unwrap().len(), 100);

    // The new drive 0 is empty: it is copied whole, not fast-forwarded.
    assert!(matches!(fs.reinstate().unwrap(), Reinstated::Copied(n) if n > 0));
    assert_identical(&env.roots[0], &env.roots[1]);
    commit(&reg, &stores, &info, 5, 3);
    assert_identical(&env.roots[0], &env.roots[1]);
    assert_eq!(stores.get("people").unwrap().unwrap().count, 110);
}

#[test]
fn losing_both_drives_is_an_error_not_a_silent_loss() {
    let env = env();
    let (_fs, reg, _stores) = open(&env);
    env.faulty.inject(Fault::dead_drive(&env.roots[0]));
    env.faulty.inject(Fault::dead_drive(&env.roots[1]));
    let err = reg
        .write(&RegistryBatch::new().add("t", Handle::new(Uuid::new_v4())))
        .unwrap_err();
    assert!(
        matches!(err, Error::Storage(sop_core::StorageError::Io { .. })),
        "{err}"
    );
}
