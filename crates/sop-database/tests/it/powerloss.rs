//! Power loss at every sync point: for each workload, cut the power at its 1st, 2nd, ... sync
//! (that sync and everything after it never happen, and whatever was not synced is lost), reboot
//! on what was durable, and check: the database opens, recovery runs, every tree is valid, the
//! state is exactly before or exactly after the workload (after, if the commit returned), the
//! database verifies clean, and a new transaction commits.

use std::path::Path;
use std::sync::Arc;

use crate::support::{TwoStores, read_two};
use sop_core::Result;
use sop_core::vfs::{FileSystem, SimFs};
use sop_database::{Database, DatabaseOptions, TxMode};

/// Besides the strict image (only synced data), this many images per crash point where a random
/// part of the unsynced writes reached the disk, some as torn 4 KiB pages.
const MIXED_VARIANTS: u64 = 3;

fn open(root: &Path, fs: &SimFs) -> Result<Database> {
    Database::open(
        root,
        DatabaseOptions {
            fs: Some(Arc::new(fs.clone()) as Arc<dyn FileSystem>),
            registry_checkpoint_bytes: CHECKPOINT.with(std::cell::Cell::get),
            // The same work at the same sync points every run.
            background_maintenance: false,
            ..DatabaseOptions::default()
        },
    )
}

thread_local! {
    /// The registry checkpoint size of this run: the default (checkpoints at close), or small
    /// so that checkpoints (their syncs and journal truncation) fall inside the workloads.
    static CHECKPOINT: std::cell::Cell<u64> =
        const { std::cell::Cell::new(sop_registry::DEFAULT_CHECKPOINT_BYTES) };
}

#[derive(Clone, Copy, Debug)]
enum Workload {
    SingleInsert,
    Batch1000,
    SplitsAndMerges,
    TwoTrees,
    RolledBack,
    /// Only under `cargo xtask stress` (`SOP_POWERLOSS_LARGE`): three commits in a row (2,000
    /// adds to "a" and 100 written-ahead values to "b"; removal of 4 in 5 of them; updates);
    /// every sync point of all three is cut.
    Large,
}

async fn run(db: &Database, w: Workload, oks: &mut usize) -> Result<()> {
    let tx = db.begin(TxMode::ForWriting);
    let mut a = db.open_btree::<u32, String>(&tx, "a")?;
    let mut b = db.open_btree::<u32, String>(&tx, "b")?;
    match w {
        Workload::SingleInsert => {
            a.add(1000, "one".into()).await?;
        }
        Workload::Batch1000 => {
            for k in 1000..2000 {
                a.add(k, format!("v{k}")).await?;
            }
        }
        Workload::SplitsAndMerges => {
            for t in [&mut a, &mut b] {
                for k in 40..70 {
                    t.add(k, format!("new{k}")).await?;
                }
                for k in (0..40).step_by(3) {
                    t.remove(&k).await?;
                }
                t.update(&1, "updated".into()).await?;
            }
        }
        Workload::TwoTrees => {
            a.add(500, "a".into()).await?;
            b.add(500, "b".repeat(3000)).await?;
        }
        Workload::RolledBack => {
            b.add(600, "big".repeat(2000)).await?;
            a.add(601, "x".into()).await?;
            return tx.rollback().await;
        }
        Workload::Large => {
            for k in LARGE_A {
                a.add(k, format!("v{k}")).await?;
            }
            for k in LARGE_B {
                b.add(k, format!("w{k}").repeat(20)).await?;
            }
            tx.commit().await?;
            *oks += 1;
            let tx = db.begin(TxMode::ForWriting);
            let mut a = db.open_btree::<u32, String>(&tx, "a")?;
            let mut b = db.open_btree::<u32, String>(&tx, "b")?;
            for k in LARGE_A.filter(|k| k % 5 != 0) {
                a.remove(&k).await?;
            }
            for k in LARGE_B.filter(|k| k % 5 != 0) {
                b.remove(&k).await?;
            }
            tx.commit().await?;
            *oks += 1;
            let tx = db.begin(TxMode::ForWriting);
            let mut a = db.open_btree::<u32, String>(&tx, "a")?;
            for k in LARGE_A.step_by(5) {
                a.update(&k, "updated".into()).await?;
            }
            tx.commit().await?;
            *oks += 1;
            return Ok(());
        }
    }
    tx.commit().await?;
    *oks += 1;
    Ok(())
}

const LARGE_A: std::ops::Range<u32> = 1000..3000;
const LARGE_B: std::ops::Range<u32> = 1000..1100;

/// The states a workload may leave, in order: before, after each of its commits.
fn states(before: &TwoStores, after: &TwoStores, w: Workload) -> Vec<TwoStores> {
    if !matches!(w, Workload::Large) {
        return vec![before.clone(), after.clone()];
    }
    let mut s1 = before.clone();
    for k in LARGE_A {
        s1[0].insert(k, format!("v{k}"));
    }
    for k in LARGE_B {
        s1[1].insert(k, format!("w{k}").repeat(20));
    }
    let mut s2 = s1.clone();
    s2[0].retain(|k, _| !LARGE_A.contains(k) || k % 5 == 0);
    s2[1].retain(|k, _| !LARGE_B.contains(k) || k % 5 == 0);
    let mut s3 = s2.clone();
    for k in LARGE_A.step_by(5) {
        s3[0].insert(k, "updated".into());
    }
    vec![before.clone(), s1, s2, s3]
}

#[test]
fn every_sync_point_of_every_workload_recovers_to_before_or_after() {
    every_sync_point(sop_registry::DEFAULT_CHECKPOINT_BYTES);
}

#[test]
fn the_same_with_a_registry_checkpoint_inside_every_workload() {
    // A 4 KiB block image per handle changed: a few commits' journal frames.
    every_sync_point(16 << 10);
}

fn every_sync_point(checkpoint: u64) {
    CHECKPOINT.with(|c| c.set(checkpoint));
    let rt = crate::support::rt();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        std::fs::create_dir_all(&root).unwrap();
        let base = SimFs::new(&root);
        {
            let db = open(&root, &base).unwrap();
            crate::support::fill_two(&db).await;
        }
        // What a reboot right after the setup finds: the committed setup, all of it.
        let start = base.crash_image();
        let before = read_two(&open(&root, &start.crash_image()).unwrap()).await;
        assert_eq!(before[0].len(), 40);

        let mut report = Vec::new();
        let mut workloads = vec![
            Workload::SingleInsert,
            Workload::Batch1000,
            Workload::SplitsAndMerges,
            Workload::TwoTrees,
            Workload::RolledBack,
        ];
        if std::env::var_os("SOP_POWERLOSS_LARGE").is_some() {
            workloads = vec![Workload::Large];
        }
        for w in workloads {
            // A clean run: the state after, and how many syncs the workload makes.
            let fs = start.crash_image();
            let db = open(&root, &fs).unwrap();
            let s0 = fs.syncs();
            run(&db, w, &mut 0).await.unwrap();
            let points = fs.syncs() - s0;
            let after = read_two(&db).await;
            drop(db);
            let states = states(&before, &after, w);
            assert_eq!(states.last(), Some(&after), "{w:?}: the model of its states is wrong");
            let (mut rolled_back, mut completed) = (0, 0);
            for k in 1..=points {
                let fs = start.crash_image();
                let db = open(&root, &fs).unwrap();
                fs.crash_at_sync(k);
                let mut oks = 0;
                let r = run(&db, w, &mut oks).await;
                assert!(fs.crashed(), "{w:?} point {k}: no crash");
                drop(db);

                for variant in 0..=MIXED_VARIANTS {
                    let disk = if variant == 0 {
                        fs.crash_image()
                    } else {
                        fs.crash_image_mixed(k * 1000 + variant)
                    };
                    let db = open(&root, &disk).unwrap_or_else(|e| {
                        panic!("{w:?} point {k} variant {variant}: reopen failed: {e}")
                    });
                    let got = read_two(&db).await;
                    // Exactly one of the states a prefix of its commits gives, and every
                    // commit that returned Ok is in it.
                    let j = states.iter().position(|s| *s == got);
                    let j = j.unwrap_or_else(|| panic!("{w:?} point {k}: a partial state is visible"));
                    assert!(j >= oks, "{w:?} point {k}: commit {oks} returned Ok but is missing");
                    if j == states.len() - 1 {
                        completed += 1;
                    } else {
                        assert!(r.is_err(), "{w:?} point {k}: Ok but the change is missing");
                        rolled_back += 1;
                    }
                    let at = format!("{w:?} point {k} variant {variant}");
                    crate::support::assert_recovered(&db, &got, &at).await;
                    // Life goes on.
                    let tx = db.begin(TxMode::ForWriting);
                    let mut t = db.open_btree::<u32, String>(&tx, "a").unwrap();
                    t.upsert(9999, "after".into()).await.unwrap();
                    tx.commit().await.unwrap();
                }
            }
            report.push(format!(
                "checkpoint at {checkpoint} bytes, {w:?}: {points} sync points x {} images: {rolled_back} before (or between its commits), {completed} after",
                MIXED_VARIANTS + 1
            ));
        }
        eprintln!("{}", report.join("\n"));
    });
}

/// Twenty one-key commits on one leaf of 64-item nodes: delta chains grow until the background
/// consolidation writes them whole (here right after the commit that asked). Power is cut at
/// every sync point of all of it, commits and consolidations alike.
#[test]
fn consolidation_cut_at_every_sync_point_keeps_every_acknowledged_commit() {
    CHECKPOINT.with(|c| c.set(16 << 10));
    let rt = crate::support::rt();
    // Enough one-key commits on one node for its delta chain to be consolidated.
    const COMMITS: u32 = sop_txn::SOFT_CHAIN as u32 + 6;
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        std::fs::create_dir_all(&root).unwrap();
        let base = SimFs::new(&root);
        {
            let db = open(&root, &base).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            let mut c = db
                .new_btree::<u32, String>(&tx, &sop_core::StoreOptions::new("c").slot_length(64))
                .unwrap();
            for k in 0..40 {
                c.add(k, format!("start {k}")).await.unwrap();
            }
            drop(c);
            tx.commit().await.unwrap();
        }
        let start = base.crash_image();
        let mut states = vec![
            (0..40)
                .map(|k| (k, format!("start {k}")))
                .collect::<std::collections::BTreeMap<u32, String>>(),
        ];
        for i in 0..COMMITS {
            let mut s = states.last().unwrap().clone();
            s.insert(i % 5, format!("small {i}"));
            states.push(s);
        }
        async fn work(db: &Database, oks: &mut usize) -> Result<()> {
            for i in 0..COMMITS {
                let tx = db.begin(TxMode::ForWriting);
                let mut c = db.open_btree::<u32, String>(&tx, "c")?;
                c.upsert(i % 5, format!("small {i}")).await?;
                drop(c);
                tx.commit().await?;
                *oks += 1;
            }
            Ok(())
        }
        async fn read(db: &Database) -> std::collections::BTreeMap<u32, String> {
            let tx = db.begin(TxMode::ForReading);
            let c = db.open_btree::<u32, String>(&tx, "c").unwrap();
            let out = c
                .range(..)
                .collect()
                .await
                .unwrap()
                .into_iter()
                .map(|i| (i.key, i.value))
                .collect();
            c.check().await.unwrap();
            tx.commit().await.unwrap();
            out
        }
        let points = {
            let fs = start.crash_image();
            let db = open(&root, &fs).unwrap();
            let s0 = fs.syncs();
            work(&db, &mut 0).await.unwrap();
            fs.syncs() - s0
        };
        assert!(
            points > u64::from(COMMITS),
            "{points} syncs: no consolidation happened"
        );
        for k in 1..=points {
            let fs = start.crash_image();
            let db = open(&root, &fs).unwrap();
            fs.crash_at_sync(k);
            let mut oks = 0;
            let _ = work(&db, &mut oks).await;
            assert!(fs.crashed(), "point {k}: no crash");
            drop(db);
            for variant in 0..=MIXED_VARIANTS {
                let disk = if variant == 0 {
                    fs.crash_image()
                } else {
                    fs.crash_image_mixed(k * 1000 + variant)
                };
                let db = open(&root, &disk).unwrap();
                let got = read(&db).await;
                let j = states
                    .iter()
                    .position(|s| *s == got)
                    .unwrap_or_else(|| panic!("point {k} variant {variant}: a partial state"));
                assert!(
                    j >= oks,
                    "point {k}: commit {oks} returned Ok but is missing"
                );
                crate::support::assert_verified(&db, &format!("point {k} variant {variant}")).await;
            }
        }
        eprintln!(
            "consolidation: {points} sync points x {} images",
            MIXED_VARIANTS + 1
        );
    });
}
