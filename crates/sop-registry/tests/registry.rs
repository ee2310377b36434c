//! Registry behaviour: model-based round trips across segments, torn writes, corruption.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use sop_core::vfs::{Fault, FaultyFs, FileSystem, Op, StdFs};
use sop_core::{Error, Handle, Uuid};
use sop_registry::{BLOCK_SIZE, Registry, RegistryBatch, RegistryOptions};

/// An id whose registry block is `block` (of 250): ids that collide fill one block's chain
/// across many segments.
fn colliding_id(block: u64, n: u64) -> Uuid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(block + 250 * n).to_be_bytes());
    b[8..].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).to_be_bytes());
    Uuid::from_bytes(b)
}

fn handle(id: Uuid, version: u64) -> Handle {
    let mut h = Handle::new(id);
    h.version = version;
    h.physical_b = Uuid::from_bytes([version as u8; 16]);
    h.active_is_b = version.is_multiple_of(2);
    h
}

fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Registry {
    Registry::open(fs, dir, RegistryOptions::default()).unwrap()
}

fn open_lazy(fs: Arc<dyn FileSystem>, dir: &Path, checkpoint_bytes: u64) -> Registry {
    Registry::open(
        fs,
        dir,
        RegistryOptions {
            checkpoint_bytes,
            ..RegistryOptions::default()
        },
    )
    .unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    Add(usize),
    Update(usize, u64),
    Remove(usize),
    Batch(Vec<(u8, usize)>),
    Reopen,
    /// Reopen without closing: no checkpoint, the next open replays the whole journal.
    Crash,
}

fn step(pool: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..pool).prop_map(Step::Add),
        2 => (0..pool, 1..1000u64).prop_map(|(i, v)| Step::Update(i, v)),
        2 => (0..pool).prop_map(Step::Remove),
        2 => proptest::collection::vec((0..3u8, 0..pool), 1..60).prop_map(Step::Batch),
        1 => Just(Step::Reopen),
        1 => Just(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random adds, updates, removes and batches over ids crowded into two blocks (so chains run
    /// over up to 5 segments) plus scattered ids, checked against a map after every step and
    /// across reopens. Errors must match the model, and a failed batch must change nothing.
    #[test]
    fn registry_matches_a_map_across_segments_and_reopens(
        steps in proptest::collection::vec(step(400), 1..80),
        checkpoint in prop_oneof![Just(0u64), Just(20_000), Just(4 << 20)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
        let pool: Vec<Uuid> = (0..400u64)
            .map(|n| if n < 300 { colliding_id(n % 2 * 7, n) } else { Uuid::new_v4() })
            .collect();
        let mut reg = open_lazy(fs.clone(), dir.path(), checkpoint);
        let mut model: HashMap<Uuid, Handle> = HashMap::new();
        for s in &steps {
            let mut batch = RegistryBatch::new();
            let mut next = model.clone();
            let mut ok = true;
            let mut push = |kind: u8, i: usize, v: u64, batch: RegistryBatch| {
                let id = pool[i];
                match kind {
                    0 => { ok &= next.insert(id, handle(id, v)).is_none(); batch.add("t", handle(id, v)) }
                    1 => { ok &= next.insert(id, handle(id, v)).is_some(); batch.update("t", handle(id, v)) }
                    _ => { ok &= next.remove(&id).is_some(); batch.remove("t", id) }
                }
            };
            match s {
                Step::Reopen => { drop(reg); reg = open_lazy(fs.clone(), dir.path(), checkpoint); continue; }
                Step::Crash => {
                    std::mem::forget(reg);
                    reg = open_lazy(fs.clone(), dir.path(), checkpoint);
                    continue;
                }
                Step::Add(i) => batch = push(0, *i, 1, batch),
                Step::Update(i, v) => batch = push(1, *i, *v, batch),
                Step::Remove(i) => batch = push(2, *i, 0, batch),
                Step::Batch(items) => for (k, i) in items { batch = push(*k, *i, u64::from(*k) + 10, batch) },
            }
            let r = reg.write(&batch);
            prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
            if let Err(e) = r {
                prop_assert!(matches!(e, Error::Corruption(sop_core::CorruptionError::HandleExists { .. }) | Error::Corruption(sop_core::CorruptionError::HandleNotFound { .. })), "{}", e);
            } else {
                model = next;
            }
            let got = reg.get("t", &pool).unwrap();
            prop_assert_eq!(got.len(), model.len());
            for (id, h) in &model {
                prop_assert_eq!(got.get(id), Some(h));
            }
        }
    }
}

#[test]
fn chains_span_segments_and_sync_count_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(StdFs::new());
    let reg = open(fs.clone(), dir.path());
    let ids: Vec<Uuid> = (0..300).map(|n| colliding_id(3, n)).collect();
    let batch = ids
        .iter()
        .fold(RegistryBatch::new(), |b, id| b.add("t", handle(*id, 1)));
    let before = fs.sync_count();
    reg.write(&batch).unwrap();
    let syncs = fs.sync_count() - before;
    // 300 handles in one block chain = 5 segments: journal + 5 files + the new table's folder,
    // `tables/` and the registry folder.
    assert!(syncs <= 9, "{syncs} syncs for one batch");
    assert!(
        dir.path().join("tables").join("t").join("t-5.reg").exists(),
        "300 colliding handles need 5 segments"
    );
    let more = ids
        .iter()
        .fold(RegistryBatch::new(), |b, id| b.update("t", handle(*id, 2)));
    let before = fs.sync_count();
    reg.write(&more).unwrap();
    assert_eq!(
        fs.sync_count() - before,
        6,
        "journal + one sync per segment touched"
    );
    assert_eq!(reg.get("t", &ids).unwrap().len(), 300);
}

#[test]
fn a_torn_block_write_is_completed_from_the_journal_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyFs::new(Arc::new(StdFs::new())));
    let reg = open(faulty.clone(), dir.path());
    let ids: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    reg.write(
        &ids.iter()
            .fold(RegistryBatch::new(), |b, id| b.add("t", handle(*id, 1))),
    )
    .unwrap();

    // The journal lands, then the in-place write fails: the process "dies" here.
    let segment = dir.path().join("tables").join("t").join("t-1.reg");
    faulty.inject(Fault {
        prefix: Some(segment.clone()),
        op: Some(Op::Write),
        errno: 5,
        skip: 0,
        times: None,
    });
    let update = ids
        .iter()
        .fold(RegistryBatch::new(), |b, id| b.update("t", handle(*id, 7)));
    // The journal is durable, so the batch is committed: Ok, even though applying it failed.
    reg.write(&update).unwrap();
    assert!(
        matches!(
            reg.get("t", &ids),
            Err(Error::Transaction(
                sop_core::TransactionError::Poisoned { .. }
            ))
        ),
        "no reads while the batch is not applied and cannot be"
    );
    drop(reg);
    faulty.clear();

    // Tear one of the blocks the batch was writing: half new garbage, half old.
    let block = ids[0].high_low().0 % 250;
    let mut raw = std::fs::read(&segment).unwrap();
    let at = usize::try_from(block).unwrap() * BLOCK_SIZE;
    raw[at..at + BLOCK_SIZE / 2].fill(0xAB);
    std::fs::write(&segment, raw).unwrap();

    let reg = open(faulty.clone(), dir.path());
    let got = reg.get("t", &ids).unwrap();
    assert!(
        ids.iter().all(|id| got[id].version == 7),
        "the whole batch is there after recovery"
    );

    // Without a reopen: a passing write fault heals on the next call.
    faulty.inject(Fault {
        prefix: Some(segment.clone()),
        op: Some(Op::Write),
        errno: 5,
        skip: 0,
        times: Some(1),
    });
    let again = ids
        .iter()
        .fold(RegistryBatch::new(), |b, id| b.update("t", handle(*id, 9)));
    reg.write(&again).unwrap();
    let got = reg.get("t", &ids).unwrap();
    assert!(ids.iter().all(|id| got[id].version == 9), "healed in place");
}

#[test]
fn a_torn_journal_is_dropped_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let reg = open(fs.clone(), dir.path());
    let id = Uuid::new_v4();
    reg.write(&RegistryBatch::new().add("t", handle(id, 1)))
        .unwrap();
    drop(reg);
    std::fs::write(
        dir.path().join("registry.journal"),
        [1u8, 200, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5],
    )
    .unwrap();
    let reg = open(fs, dir.path());
    assert_eq!(reg.get_one("t", id).unwrap().unwrap().version, 1);
}

#[test]
fn a_bit_flip_in_a_block_is_a_corruption_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let reg = open(fs.clone(), dir.path());
    let id = Uuid::new_v4();
    reg.write(&RegistryBatch::new().add("t", handle(id, 1)))
        .unwrap();
    drop(reg);
    let segment = dir.path().join("tables").join("t").join("t-1.reg");
    let block = usize::try_from(id.high_low().0 % 250).unwrap();
    for bit in [0usize, 9, 4000, 32_700] {
        let mut raw = std::fs::read(&segment).unwrap();
        raw[block * BLOCK_SIZE + bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&segment, &raw).unwrap();
        let reg = open(fs.clone(), dir.path());
        let err = reg.get_one("t", id).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Corruption(sop_core::CorruptionError::Damaged { .. })
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("t-1.reg") && msg.contains(&format!("offset {}", block * BLOCK_SIZE)),
            "{msg}"
        );
        raw[block * BLOCK_SIZE + bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&segment, &raw).unwrap();
    }
}

#[test]
fn the_hash_mod_is_chosen_once() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    for bad in [0, 249, 750_001] {
        let err = Registry::open(
            fs.clone(),
            dir.path(),
            RegistryOptions {
                hash_mod: Some(bad),
                ..RegistryOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Usage(sop_core::UsageError::InvalidConfig { .. })
            ),
            "{err}"
        );
    }
    let reg = Registry::open(
        fs.clone(),
        dir.path(),
        RegistryOptions {
            hash_mod: Some(1000),
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    assert_eq!(reg.hash_mod(), 1000);
    drop(reg);
    assert_eq!(
        open(fs.clone(), dir.path()).hash_mod(),
        1000,
        "the stored value wins when none is asked"
    );
    let err = Registry::open(
        fs,
        dir.path(),
        RegistryOptions {
            hash_mod: Some(500),
            ..RegistryOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot change"), "{err}");
}

#[test]
fn version_checks_fence_the_whole_batch_and_files_ride_along() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let reg = open(fs.clone(), dir.path());
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    reg.write(
        &RegistryBatch::new()
            .add("t", handle(a, 1))
            .add("t", handle(b, 1))
            .put_file("logs/x.log", b"pending".to_vec()),
    )
    .unwrap();
    assert_eq!(reg.read_file("logs/x.log").unwrap().unwrap(), b"pending");

    // A stale read check fails the batch: neither the update nor the file change lands.
    let stale = RegistryBatch::new()
        .update_if("t", handle(a, 2), 1)
        .check("t", b, Some(7))
        .put_file("logs/x.log", b"committed".to_vec());
    let err = reg.write(&stale).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transaction(sop_core::TransactionError::VersionMismatch {
                expected: 7,
                found: 1,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(reg.get_one("t", a).unwrap().unwrap().version, 1);
    assert_eq!(reg.read_file("logs/x.log").unwrap().unwrap(), b"pending");

    // An absent-check fails when the handle exists, passes when it does not.
    assert!(
        reg.write(&RegistryBatch::new().check("t", a, None))
            .is_err()
    );
    reg.write(&RegistryBatch::new().check("t", c, None))
        .unwrap();

    // Matching versions: everything lands, across a reopen.
    reg.write(
        &RegistryBatch::new()
            .update_if("t", handle(a, 2), 1)
            .remove_if("t", b, 1)
            .check("t", c, None)
            .remove_file("logs/x.log")
            .put_file("logs/y.log", b"done".to_vec()),
    )
    .unwrap();
    drop(reg);
    let reg = open(fs, dir.path());
    assert_eq!(reg.get_one("t", a).unwrap().unwrap().version, 2);
    assert!(reg.get_one("t", b).unwrap().is_none());
    assert!(reg.read_file("logs/x.log").unwrap().is_none());
    assert_eq!(reg.list_files("logs").unwrap(), ["y.log"]);
    assert!(
        reg.write(&RegistryBatch::new().put_file("../escape", vec![]))
            .is_err()
    );
}

#[test]
fn readers_never_see_a_file_or_block_half_replaced_by_a_batch() {
    use sop_registry::StoreRepository;
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs::new());
    let reg = Arc::new(open(fs.clone(), dir.path()));
    let stores = Arc::new(StoreRepository::open(fs.clone(), dir.path()).unwrap());
    let mut info = sop_core::StoreInfo::new(&sop_core::StoreOptions::new("s"), 1).unwrap();
    stores.add(&info).unwrap();
    let ids: Vec<Uuid> = (0..40).map(|n| colliding_id(1, n)).collect();
    reg.write(
        &ids.iter()
            .fold(RegistryBatch::new(), |b, id| b.add("t", handle(*id, 1))),
    )
    .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (reg, stores, stop, ids) = (reg.clone(), stores.clone(), stop.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert!(stores.get("s").unwrap().is_some(), "store file missing");
                    assert_eq!(reg.get("t", &ids).unwrap().len(), ids.len());
                    n += 1;
                }
                n
            })
        })
        .collect();
    for v in 2..300u64 {
        info.count = v;
        let batch = ids
            .iter()
            .fold(RegistryBatch::new(), |b, id| b.update("t", handle(*id, v)))
            .put_file(
                &StoreRepository::relative_path("s"),
                StoreRepository::encode_info(&info).unwrap(),
            );
        reg.write(&batch).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(stores.get("s").unwrap().unwrap().count, 299);
}
