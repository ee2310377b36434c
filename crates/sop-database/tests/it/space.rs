//! Space: what removals and overwrites free comes back (compaction), the files hold little
//! more than what is live, and a compaction cut by a power loss at any sync point loses nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sop_core::vfs::{FileSystem, SimFs};
use sop_core::{StoreOptions, ValueDataSize};
use sop_database::{Database, DatabaseOptions, TxMode};

use crate::support::rt;

fn small(fs: Option<Arc<dyn FileSystem>>) -> DatabaseOptions {
    DatabaseOptions {
        segment_bytes: 64 << 10,
        registry_checkpoint_bytes: 64 << 10,
        background_maintenance: false,
        fs,
        ..DatabaseOptions::default()
    }
}

/// Two stores (values in nodes, values on their own), filled, overwritten twice, mostly
/// removed; returns what is left.
async fn churn(db: &Database) -> [BTreeMap<u32, String>; 2] {
    let stores = [
        StoreOptions::new("inline").slot_length(32),
        StoreOptions::with_value_size("apart", ValueDataSize::Medium).slot_length(32),
    ];
    let tx = db.begin(TxMode::ForWriting);
    for s in &stores {
        db.new_btree::<u32, String>(&tx, s).unwrap();
    }
    tx.commit().await.unwrap();
    let mut model: [BTreeMap<u32, String>; 2] = Default::default();
    for round in 0..3 {
        for batch in 0..10u32 {
            let tx = db.begin(TxMode::ForWriting);
            for (i, s) in stores.iter().enumerate() {
                let mut t = db.open_btree::<u32, String>(&tx, &s.name).unwrap();
                for k in batch * 100..batch * 100 + 100 {
                    let v = format!("round {round} item {k} {}", "v".repeat(100));
                    t.upsert(k, v.clone()).await.unwrap();
                    model[i].insert(k, v);
                }
            }
            tx.commit().await.unwrap();
        }
    }
    for (i, s) in stores.iter().enumerate() {
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, String>(&tx, &s.name).unwrap();
        for k in 0..1000 {
            if k % 10 != 0 {
                t.remove(&k).await.unwrap();
                model[i].remove(&k);
            }
        }
        drop(t);
        tx.commit().await.unwrap();
    }
    model
}

async fn contents(db: &Database) -> [BTreeMap<u32, String>; 2] {
    let tx = db.begin(TxMode::ForReading);
    let mut out: [BTreeMap<u32, String>; 2] = Default::default();
    for (i, name) in ["inline", "apart"].iter().enumerate() {
        let t = db.open_btree::<u32, String>(&tx, name).unwrap();
        for it in t.range(..).collect().await.unwrap() {
            out[i].insert(it.key, it.value);
        }
        t.check().await.unwrap();
    }
    tx.commit().await.unwrap();
    out
}

fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn removed_and_overwritten_data_gives_its_space_back() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), small(None)).unwrap();
        let model = churn(&db).await;
        let before = log_bytes(dir.path());
        let mut last = None;
        for _ in 0..6 {
            last = Some(db.compact().unwrap());
        }
        let r = last.unwrap();
        let after = log_bytes(dir.path());
        eprintln!(
            "log {before} -> {after} bytes; live {} ({} segments)",
            r.live_bytes, r.segments
        );
        assert_eq!(contents(&db).await, model);
        crate::support::assert_verified(&db, "after compaction").await;
        // What is left: the live bytes, the segments being written and replayed from, and
        // the part of sealed segments under the threshold.
        assert!(after * 3 < before, "{before} -> {after}");
        assert!(
            after <= r.live_bytes * 2 + 3 * (64 << 10) + (1 << 20),
            "{after} bytes for {} live",
            r.live_bytes
        );
        drop(db);
        let db = Database::open(dir.path(), small(None)).unwrap();
        assert_eq!(contents(&db).await, model);
        // No empty folders: the log folder holds segment files only.
        for e in std::fs::read_dir(dir.path().join("log")).unwrap() {
            assert!(e.unwrap().file_type().unwrap().is_file());
        }
    });
}

/// Waits (up to a minute; no timing is asserted) until the log holds at most `bytes`.
fn wait_for_log_at_most(dir: &Path, bytes: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = log_bytes(dir);
        if now <= bytes || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn space_comes_back_by_itself_once_commits_pause_and_the_last_old_reader_closes() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let options = DatabaseOptions {
            background_maintenance: true,
            // Checkpoints only when idle: commits alone never ask for compaction here.
            registry_checkpoint_bytes: u64::MAX,
            ..small(None)
        };
        let db = Database::open(dir.path(), options).unwrap();
        // A reader whose snapshot predates all of it: nothing it can see may go.
        let old_reader = db.begin(TxMode::ForReading);
        let model = churn(&db).await;
        let before = log_bytes(dir.path());
        // Commits have paused, but the reader still pins the superseded segments.
        std::thread::sleep(std::time::Duration::from_secs(3));
        assert_eq!(contents(&db).await, model);
        let pinned = log_bytes(dir.path());
        // Closing it is all it takes: no commit, no compaction call.
        old_reader.commit().await.unwrap();
        let after = wait_for_log_at_most(dir.path(), before / 3);
        eprintln!("log {before} -> {pinned} (reader open) -> {after} bytes");
        assert!(
            after * 3 <= before,
            "{before} -> {after}: space did not come back"
        );
        assert_eq!(contents(&db).await, model);
        crate::support::assert_verified(&db, "after background compaction").await;
        drop(db);
        let db = Database::open(dir.path(), small(None)).unwrap();
        assert_eq!(contents(&db).await, model);
    });
}

#[test]
fn a_compaction_cut_at_every_sync_point_loses_nothing() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("db");
        std::fs::create_dir_all(&root).unwrap();
        let sim = SimFs::new(&root);
        let open = |fs: &SimFs| {
            Database::open(
                &root,
                small(Some(Arc::new(fs.clone()) as Arc<dyn FileSystem>)),
            )
            .unwrap()
        };
        let model = {
            let db = open(&sim);
            churn(&db).await
        };
        let start = sim.crash_image();
        // A clean run: how many syncs a compaction makes.
        let points = {
            let fs = start.crash_image();
            let db = open(&fs);
            let s0 = fs.syncs();
            for _ in 0..3 {
                db.compact().unwrap();
            }
            fs.syncs() - s0
        };
        assert!(points > 3, "{points} syncs");
        for k in 1..=points {
            let fs = start.crash_image();
            let db = open(&fs);
            fs.crash_at_sync(k);
            for _ in 0..3 {
                if db.compact().is_err() {
                    break;
                }
            }
            assert!(fs.crashed(), "point {k}: no crash");
            drop(db);
            for variant in 0..2 {
                let disk = if variant == 0 {
                    fs.crash_image()
                } else {
                    fs.crash_image_mixed(k * 100 + variant)
                };
                let db = open(&disk);
                assert_eq!(contents(&db).await, model, "point {k} variant {variant}");
                crate::support::assert_verified(&db, &format!("point {k} variant {variant}")).await;
            }
        }
        eprintln!("compaction: {points} sync points x 2 images, all intact");
    });
}
