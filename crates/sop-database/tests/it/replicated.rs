//! The database over a replicated registry and an erasure-coded log: a failing registry drive
//! fails over without losing a commit, a failing log drive is absorbed by parity, and reinstate
//! brings the registry drive back in step.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sop_blobstore_ec::ErasureConfig;
use sop_core::StoreOptions;
use sop_core::vfs::{Fault, FaultyFs, FileSystem, StdFs};
use sop_database::{Database, DatabaseOptions, TxMode};
use sop_registry::Reinstated;

fn options(root: &Path, fs: Arc<dyn FileSystem>) -> DatabaseOptions {
    DatabaseOptions {
        replication: Some([root.join("reg-a"), root.join("reg-b")]),
        erasure: Some(ErasureConfig {
            data_shards: 2,
            parity_shards: 1,
            drives: (0..3).map(|i| root.join(format!("disk{i}"))).collect(),
            repair: true,
        }),
        fs: Some(fs),
        ..DatabaseOptions::default()
    }
}

async fn add(db: &Database, keys: std::ops::Range<u32>) {
    let tx = db.begin(TxMode::ForWriting);
    let mut t = db
        .open_or_create_btree::<u32, String>(&tx, &StoreOptions::new("r").slot_length(8))
        .unwrap();
    for k in keys {
        t.add(k, format!("v{k}")).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn keys(db: &Database) -> Vec<u32> {
    let tx = db.begin(TxMode::ForReading);
    let t = db.open_btree::<u32, String>(&tx, "r").unwrap();
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

fn files(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(dir.join(rel)) else {
        return;
    };
    for e in rd.flatten() {
        let r = rel.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            files(dir, &r, out);
        } else if !r.starts_with("replication.status") && !r.ends_with("registry.journal") {
            out.push((r, std::fs::read(e.path()).unwrap()));
        }
    }
}

#[test]
fn failover_and_parity_keep_every_commit() {
    let rt = crate::support::rt();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let faulty = Arc::new(FaultyFs::new(Arc::new(StdFs::new())));
        let db = Database::open(root.join("db"), options(root, faulty.clone())).unwrap();
        add(&db, 0..200).await;
        assert_eq!(db.replication_status().unwrap().active, 0);

        // The active registry drive and one blob drive die.
        faulty.inject(Fault::dead_drive(root.join("reg-a")));
        faulty.inject(Fault::dead_drive(root.join("disk1")));
        add(&db, 200..300).await;
        // Commits go to the (erasure-coded) log; the registry is written at checkpoints.
        db.engine().checkpoint().unwrap();
        let st = db.replication_status().unwrap();
        assert_eq!(st.active, 1, "failed over to the passive registry drive");
        assert!(!st.passive_in_sync);
        assert_eq!(keys(&db).await, (0..300).collect::<Vec<_>>());
        drop(db);

        // Restart with the drives still dead: the status record says which side leads.
        let db = Database::open(root.join("db"), options(root, faulty.clone())).unwrap();
        assert_eq!(keys(&db).await, (0..300).collect::<Vec<_>>());
        add(&db, 300..320).await;

        db.engine().checkpoint().unwrap();

        // Drives repaired: reinstate replays what the failed side missed.
        faulty.clear();
        assert!(matches!(
            db.reinstate().unwrap(),
            Reinstated::FastForwarded(_)
        ));
        assert!(db.replication_status().unwrap().passive_in_sync);
        add(&db, 320..330).await;
        assert_eq!(keys(&db).await, (0..330).collect::<Vec<_>>());
        drop(db);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        files(&root.join("reg-a"), Path::new(""), &mut a);
        files(&root.join("reg-b"), Path::new(""), &mut b);
        assert!(!a.is_empty());
        assert_eq!(a, b, "both registry sides hold the same bytes");
    });
}
