//! An engine over in-memory metadata and a simulated log folder, reopened as after a clean close
//! or a power cut.

use std::path::Path;
use std::sync::Arc;

use sop_blobstore_ec::LogOptions;
use sop_coord::{MemCache, MemLocker};
use sop_core::Result;
use sop_core::meta::{MemMetadata, Metadata};
use sop_core::vfs::SimFs;
use sop_txn::{Engine, EngineParts, Gate, RecoveryReport};

/// The metadata and the log's file system of one database.
pub struct Rig {
    pub meta: Arc<MemMetadata>,
    pub fs: SimFs,
}

impl Rig {
    pub fn new() -> Self {
        Rig {
            meta: Arc::new(MemMetadata::new()),
            fs: SimFs::new(Path::new("/sim")),
        }
    }

    /// What a power cut now leaves: the log as synced, the metadata as applied.
    pub fn crash_image(&self) -> Rig {
        Rig {
            meta: Arc::new(self.meta.snapshot()),
            fs: self.fs.crash_image(),
        }
    }

    /// Opens an engine over this rig's metadata; a checkpoint every `checkpoint_bytes` of log,
    /// small segments so compaction has whole segments to free.
    pub fn open(&self, checkpoint_bytes: u64) -> Result<(Arc<Engine>, RecoveryReport)> {
        self.open_over(self.meta.clone(), checkpoint_bytes)
    }

    /// Opens an engine read-only over this rig: its log through a file layer that refuses
    /// every change.
    pub fn open_read_only(&self) -> Result<(Arc<Engine>, RecoveryReport)> {
        let log_fs = Arc::new(sop_core::vfs::ReadOnlyFs::over(Arc::new(self.fs.clone())));
        Engine::open(EngineParts {
            meta: self.meta.clone(),
            log_fs,
            log_dir: Path::new("/sim/log").to_path_buf(),
            log_options: LogOptions {
                segment_bytes: 64 << 10,
                prealloc_bytes: 0,
                read_only: true,
                ..LogOptions::default()
            },
            locker: Arc::new(MemLocker::new()),
            cache: Arc::new(MemCache::new(1 << 20)),
            l1_bytes: 1 << 20,
            gate: Gate::Local,
            checkpoint_bytes: 1 << 40,
            background_maintenance: false,
            hold: Vec::new(),
        })
    }

    /// As [`Rig::open`], over any metadata (a fault-injecting wrapper of this rig's).
    pub fn open_over(
        &self,
        meta: Arc<dyn Metadata>,
        checkpoint_bytes: u64,
    ) -> Result<(Arc<Engine>, RecoveryReport)> {
        let opened = Engine::open(EngineParts {
            meta,
            log_fs: Arc::new(self.fs.clone()),
            log_dir: Path::new("/sim/log").to_path_buf(),
            log_options: LogOptions {
                segment_bytes: 64 << 10,
                prealloc_bytes: 0,
                ..LogOptions::default()
            },
            locker: Arc::new(MemLocker::new()),
            cache: Arc::new(MemCache::new(1 << 20)),
            l1_bytes: 1 << 20,
            gate: Gate::Local,
            checkpoint_bytes,
            background_maintenance: false,
            hold: Vec::new(),
        })?;
        // Transactions keep no leaf they do not change: every read beyond what a change needs
        // goes the handle-only way, so the model and fault tests cover it.
        opened.0.set_keep_leaf_bytes(0);
        Ok(opened)
    }
}
