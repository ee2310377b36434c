//! Damage containment: a damaged or cut log loses at most the commits whose bytes were damaged
//! and those after them, never the ones before, and opening says where; a missing or cut file
//! is `Corruption` naming it, never a retryable conflict; lost metadata is never silently
//! re-created; thousands of stores do not need a file descriptor each.

use std::path::Path;
use std::sync::Arc;

use sop_blobstore_ec::frame::FrameKind;
use sop_core::vfs::{FileSystem, SimFs, read_file};
use sop_core::{Error, StoreOptions};
use sop_database::{Database, DatabaseOptions, TxMode};

use crate::support::rt;

fn open(root: &Path, fs: &SimFs) -> sop_core::Result<Database> {
    Database::open(
        root,
        DatabaseOptions {
            fs: Some(Arc::new(fs.clone()) as Arc<dyn FileSystem>),
            background_maintenance: false,
            ..DatabaseOptions::default()
        },
    )
}

async fn keys(db: &Database) -> Vec<u32> {
    let tx = db.begin(TxMode::ForReading);
    let t = db.open_btree::<u32, String>(&tx, "k").unwrap();
    let out = t
        .range(..)
        .collect()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    t.check().await.unwrap();
    tx.commit().await.unwrap();
    out
}

/// 30 commits of one key each on a simulated disk, all durable, none checkpointed (the power
/// went right after the last one).
async fn thirty_commits(root: &Path) -> SimFs {
    let sim = SimFs::new(root);
    let db = open(root, &sim).unwrap();
    let tx = db.begin(TxMode::ForWriting);
    db.new_btree::<u32, String>(&tx, &StoreOptions::new("k").slot_length(8))
        .unwrap();
    tx.commit().await.unwrap();
    for k in 0..30u32 {
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, String>(&tx, "k").unwrap();
        t.add(k, format!("value {k}")).await.unwrap();
        drop(t);
        tx.commit().await.unwrap();
    }
    let image = sim.crash_image();
    drop(db);
    image
}

#[test]
fn a_damaged_commit_record_loses_it_and_the_ones_after_never_the_ones_before() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("db");
        std::fs::create_dir_all(&root).unwrap();
        let disk = thirty_commits(&root).await;
        // The 21st record after the store's creation is the commit of key 20: flip a byte in it.
        let seg = root.join("log").join(sop_blobstore_ec::segment_name(1));
        let bytes = read_file(&disk, &seg).unwrap();
        let parsed = sop_blobstore_ec::parse_segment(&bytes).unwrap();
        let records: Vec<u64> = parsed
            .frames
            .iter()
            .filter(|(_, h, _)| h.kind == FrameKind::Record)
            .map(|(off, _, _)| *off)
            .collect();
        assert_eq!(records.len(), 31);
        let at = records[21];
        let f = disk.open(&seg, false).unwrap();
        let mut b = [0u8; 1];
        f.read_at(&mut b, at + 40).unwrap();
        f.write_at(&[b[0] ^ 0x10], at + 40).unwrap();
        f.sync().unwrap();
        drop(f);

        let db = open(&root, &disk).unwrap();
        let damage = db
            .recovery()
            .damage
            .clone()
            .expect("the damage is reported");
        assert_eq!(damage.file, seg);
        assert_eq!(damage.offset, at, "{damage:?}");
        assert!(damage.detail.contains("frames follow"), "{damage:?}");
        assert_eq!(
            keys(&db).await,
            (0..20).collect::<Vec<_>>(),
            "commits before it survive"
        );
        // Life goes on, after a fence: never on top of the damaged part.
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db.open_btree::<u32, String>(&tx, "k").unwrap();
        t.add(100, "after".into()).await.unwrap();
        drop(t);
        tx.commit().await.unwrap();
        drop(db);
        let db = open(&root, &disk).unwrap();
        assert!(db.recovery().damage.is_none(), "reported once");
        let mut want: Vec<u32> = (0..20).collect();
        want.push(100);
        assert_eq!(keys(&db).await, want);
        crate::support::assert_verified(&db, "after damage").await;
    });
}

#[test]
fn a_log_cut_short_keeps_every_commit_before_the_cut() {
    rt().block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("db");
        std::fs::create_dir_all(&root).unwrap();
        let disk = thirty_commits(&root).await;
        let seg = root.join("log").join(sop_blobstore_ec::segment_name(1));
        let bytes = read_file(&disk, &seg).unwrap();
        let parsed = sop_blobstore_ec::parse_segment(&bytes).unwrap();
        let records: Vec<u64> = parsed
            .frames
            .iter()
            .filter(|(_, h, _)| h.kind == FrameKind::Record)
            .map(|(off, _, _)| *off)
            .collect();
        // Cut in the middle of the record of key 25.
        let f = disk.open(&seg, false).unwrap();
        f.set_len(records[26] + 20).unwrap();
        f.sync().unwrap();
        drop(f);
        let db = open(&root, &disk).unwrap();
        assert!(
            db.recovery().damage.is_none(),
            "a cut tail is a torn end, not damage"
        );
        assert_eq!(keys(&db).await, (0..25).collect::<Vec<_>>());
        crate::support::assert_verified(&db, "after the cut").await;
    });
}

#[test]
fn a_missing_or_cut_segment_is_corruption_naming_it_not_a_conflict() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let options = || DatabaseOptions {
            segment_bytes: 16 << 10,
            ..DatabaseOptions::default()
        };
        {
            let db = Database::open(root, options()).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db
                .new_btree::<u32, String>(&tx, &StoreOptions::new("k").slot_length(8))
                .unwrap();
            for k in 0..400u32 {
                t.add(k, format!("value {k} {}", "x".repeat(60))).await.unwrap();
            }
            drop(t);
            tx.commit().await.unwrap();
        }
        // The first segment holds nodes the checkpoint refers to: cut it.
        let first = root.join("log").join(sop_blobstore_ec::segment_name(1));
        let len = std::fs::metadata(&first).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&first).unwrap();
        f.set_len(len / 3).unwrap();
        drop(f);
        let db = Database::open(root, options()).unwrap();
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, String>(&tx, "k").unwrap();
        let mut errors = Vec::new();
        for k in 0..400u32 {
            if let Err(e) = t.get(&k).await {
                errors.push(e);
            }
        }
        assert!(!errors.is_empty(), "the cut lost nothing?");
        for e in &errors {
            assert!(
                matches!(e, Error::Corruption(sop_core::CorruptionError::Damaged { location, .. }) if location.contains(&first.display().to_string())),
                "{e:?}"
            );
        }
        drop((t, tx, db));
        // A segment gone entirely.
        std::fs::remove_file(&first).unwrap();
        let db = Database::open(root, options()).unwrap();
        let tx = db.begin(TxMode::ForReading);
        let t = db.open_btree::<u32, String>(&tx, "k").unwrap();
        let e = t.range(..).collect().await.unwrap_err();
        assert!(
            matches!(&e, Error::Corruption(sop_core::CorruptionError::Damaged { location, .. }) if location.contains(&first.display().to_string())),
            "{e:?}"
        );
    });
}

#[test]
fn a_missing_registry_configuration_beside_data_is_an_error() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::standalone(dir.path()).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db
                .new_btree::<u32, u32>(&tx, &StoreOptions::new("s"))
                .unwrap();
            t.add(1, 1).await.unwrap();
            drop(t);
            tx.commit().await.unwrap();
        }
        let conf = dir.path().join("meta/registry.conf");
        std::fs::remove_file(&conf).unwrap();
        let e = Database::standalone(dir.path()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Corruption(sop_core::CorruptionError::Damaged { .. })
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("registry.conf"), "{e}");
        assert!(!conf.exists(), "it must not be re-created with defaults");
    });
}

/// Thousands of stores in a process allowed few file descriptors (the child runs under
/// `ulimit -n 256`).
#[test]
fn thousands_of_stores_need_no_descriptor_each() {
    if let Ok(path) = std::env::var("SOP_MANY_STORES_DB") {
        rt().block_on(async move {
            let db = Database::standalone(&path).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            for i in 0..2_000u32 {
                let mut t = db
                    .new_btree::<u32, u32>(&tx, &StoreOptions::new(format!("s{i}")))
                    .unwrap();
                t.add(i, i).await.unwrap();
            }
            tx.commit().await.unwrap();
            drop(db);
            let db = Database::standalone(&path).unwrap();
            let tx = db.begin(TxMode::ForReading);
            for i in (0..2_000u32).step_by(7) {
                let t = db.open_btree::<u32, u32>(&tx, &format!("s{i}")).unwrap();
                assert_eq!(t.get(&i).await.unwrap(), Some(i));
            }
            tx.commit().await.unwrap();
            println!("MANY STORES OK");
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' --exact damage::thousands_of_stores_need_no_descriptor_each --nocapture",
            exe.display()
        ))
        .env("SOP_MANY_STORES_DB", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("MANY STORES OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
