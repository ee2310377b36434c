//! What a commit costs, counted (never timed): one sync of one file for a standalone commit
//! and no file-system-wide sync; a one-key commit into a tree of 1,000-item nodes appends a few
//! hundred bytes, not a node; concurrent committers share syncs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sop_core::StoreOptions;
use sop_core::vfs::{FileHandle, FileSystem, StdFs};
use sop_database::{Database, DatabaseOptions, TxMode};

use crate::support::rt;

/// The real file system, recording every sync with its kind and path.
#[derive(Debug, Default)]
struct SyncLog {
    inner: StdFs,
    syncs: Arc<Mutex<Vec<(&'static str, PathBuf)>>>,
}

struct Counted {
    inner: Box<dyn FileHandle>,
    path: PathBuf,
    syncs: Arc<Mutex<Vec<(&'static str, PathBuf)>>>,
}

impl FileHandle for Counted {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(data, offset)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.lock().push(("fsync", self.path.clone()));
        self.inner.sync()
    }
    fn sync_data(&self) -> io::Result<()> {
        self.syncs.lock().push(("fdatasync", self.path.clone()));
        self.inner.sync_data()
    }
}

impl FileSystem for SyncLog {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(Counted {
            inner: self.inner.open(path, create)?,
            path: path.to_path_buf(),
            syncs: Arc::clone(&self.syncs),
        }))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(Counted {
            inner: self.inner.create_new(path)?,
            path: path.to_path_buf(),
            syncs: Arc::clone(&self.syncs),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.syncs.lock().push(("dirsync", path.to_path_buf()));
        self.inner.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        self.syncs.lock().push(("syncfs", path.to_path_buf()));
        self.inner.sync_fs(path)
    }
}

#[test]
fn a_one_key_commit_is_one_fdatasync_of_one_file_and_a_few_hundred_bytes() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(SyncLog::default());
        let db = Database::open(
            dir.path(),
            DatabaseOptions {
                fs: Some(fs.clone() as Arc<dyn FileSystem>),
                ..DatabaseOptions::default()
            },
        )
        .unwrap();
        // A tree of 1,000-item nodes, 150-byte values (a leaf is ~175 KB).
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u64, Vec<u8>>(&tx, &StoreOptions::new("big-nodes"))
            .unwrap();
        for k in 0..5_000u64 {
            t.add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), vec![7; 150])
                .await
                .unwrap();
        }
        drop(t);
        tx.commit().await.unwrap();
        let mut most = 0;
        for i in 0..200u64 {
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u64, Vec<u8>>(&tx, "big-nodes").unwrap();
            // Half new keys (some split a leaf), half updates.
            let k = if i % 2 == 0 {
                i.wrapping_mul(0x2545_F491_4F6C_DD1D)
            } else {
                (i * 13).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            };
            t.upsert(k, vec![i as u8; 150]).await.unwrap();
            drop(t);
            fs.syncs.lock().clear();
            tx.commit().await.unwrap();
            let syncs = fs.syncs.lock().clone();
            let log_syncs: Vec<_> = syncs
                .iter()
                .filter(|(_, p)| p.starts_with(dir.path().join("log")))
                .collect();
            // Background maintenance (checkpoints, consolidation) may sync at any time; the
            // commit itself made exactly one fdatasync of the log's segment.
            assert!(
                log_syncs.iter().any(|(k, _)| *k == "fdatasync"),
                "commit {i}: {syncs:?}"
            );
            assert!(
                !syncs.iter().any(|(k, _)| *k == "syncfs"),
                "commit {i}: {syncs:?}"
            );
            most = most.max(tx.bytes_written());
            assert!(
                tx.bytes_written() <= 16 << 10,
                "commit {i} appended {} bytes",
                tx.bytes_written()
            );
        }
        eprintln!("one-key commits into 1,000-item nodes: at most {most} bytes appended");
    });
}

#[test]
fn with_nothing_else_running_a_commit_is_exactly_one_sync() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(SyncLog::default());
        let db = Database::open(
            dir.path(),
            DatabaseOptions {
                fs: Some(fs.clone() as Arc<dyn FileSystem>),
                background_maintenance: false,
                ..DatabaseOptions::default()
            },
        )
        .unwrap();
        // Many leaves, each commit on another one: no delta chain grows long enough to ask for
        // maintenance, so the commit is all there is.
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u32, String>(&tx, &StoreOptions::new("s").slot_length(16))
            .unwrap();
        for k in 0..2_000u32 {
            t.add(k * 10, format!("v{k}")).await.unwrap();
        }
        drop(t);
        tx.commit().await.unwrap();
        for k in 1..50u32 {
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u32, String>(&tx, "s").unwrap();
            t.update(&(k * 397 % 2_000 * 10), format!("changed {k}"))
                .await
                .unwrap();
            drop(t);
            fs.syncs.lock().clear();
            tx.commit().await.unwrap();
            let syncs = fs.syncs.lock().clone();
            assert_eq!(syncs.len(), 1, "commit {k}: {syncs:?}");
            assert_eq!(syncs[0].0, "fdatasync", "commit {k}: {syncs:?}");
            assert!(
                syncs[0].1.starts_with(dir.path().join("log")),
                "commit {k}: {syncs:?}"
            );
        }
    });
}

#[test]
fn eight_tasks_committing_share_syncs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::standalone(dir.path()).unwrap());
        let tx = db.begin(TxMode::ForWriting);
        for t in 0..8 {
            db.new_btree::<u32, u32>(&tx, &StoreOptions::new(format!("t{t}")))
                .unwrap();
        }
        tx.commit().await.unwrap();
        let before = db.engine().log().group_syncs();
        let rounds = 20u32;
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let db = Arc::clone(&db);
                tokio::spawn(async move {
                    for k in 0..rounds {
                        // Each task its own store: no conflicts, only the log to share.
                        let tx = db.begin(TxMode::ForWriting);
                        let mut s = db.open_btree::<u32, u32>(&tx, &format!("t{t}")).unwrap();
                        s.add(k, k).await.unwrap();
                        drop(s);
                        tx.commit().await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let syncs = db.engine().log().group_syncs() - before;
        let commits = u64::from(8 * rounds);
        eprintln!("{commits} commits from 8 tasks: {syncs} syncs");
        assert!(syncs < commits, "{commits} commits took {syncs} syncs");
    });
}

#[test]
fn a_commit_that_splits_a_full_leaf_appends_two_small_deltas_not_half_a_node() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::standalone(dir.path()).unwrap();
        // One full leaf of 1,000 items, 150-byte values (~175 KB).
        let tx = db.begin(TxMode::ForWriting);
        let mut t = db
            .new_btree::<u64, Vec<u8>>(&tx, &StoreOptions::new("full"))
            .unwrap();
        for k in 0..1_000u64 {
            t.add(k * 2, vec![7; 150]).await.unwrap();
        }
        drop(t);
        tx.commit().await.unwrap();
        // The next key splits it: the new node takes half the items from the old one, and is
        // written as a delta over it (a "donor"), not as 500 items.
        for (i, k) in [1u64, 1_001, 1_999].into_iter().enumerate() {
            let tx = db.begin(TxMode::ForWriting);
            let mut t = db.open_btree::<u64, Vec<u8>>(&tx, "full").unwrap();
            t.add(k, vec![9; 150]).await.unwrap();
            let stats = t.check().await.unwrap();
            drop(t);
            tx.commit().await.unwrap();
            if i == 0 {
                assert!(stats.nodes >= 3, "the first add did not split: {stats:?}");
            }
            assert!(
                tx.bytes_written() <= 16 << 10,
                "commit {i} appended {} bytes",
                tx.bytes_written()
            );
        }
    });
}
