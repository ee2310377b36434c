//! The registry: logical id -> handle, in segment files of 4 KiB blocks.
//!
//! - `batch`: [`RegistryBatch`], the builder of an atomic batch of handle and file changes.
//! - `conf`: `registry.conf`, the hash mod chosen when the registry is created.
//! - `blocks`: handles read from and placed in the 4 KiB blocks of a table's segment files.
//! - `apply`: batches written atomically through the redo journal; checkpoints and replay.
//! - `files`: the small files kept beside the registry (store infos, transaction logs).
//! - `shared`: several processes on one registry (journals per registry, block locks, the
//!   shared generation, recovery of a dead registry's journal).
//! - `shared_journal`: the per-registry journal's format (header, frames, emptying).
//! - `shared_recover`: finding and finishing a dead registry's journal.
//! - `locks`: the byte-range locks `shared` takes.
//! - `tables`: listing, scanning and removing whole tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use sop_core::vfs::{FileHandle, FileSystem};
use sop_core::{Error, Result};

use crate::journal::{Journal, Unsynced};

mod apply;
mod batch;
mod blocks;
mod conf;
mod files;
mod locks;
mod shared;
mod shared_journal;
mod shared_recover;
mod tables;

pub use batch::RegistryBatch;
pub(crate) use files::check_rel_path;
pub use tables::TableScan;

/// The fewest blocks per segment file (1 MiB segments).
pub const MIN_HASH_MOD: u32 = 250;
/// The most blocks per segment file (about 3 GiB segments).
pub const MAX_HASH_MOD: u32 = 750_000;
/// The most segment files of one table.
pub const MAX_SEGMENTS: u32 = 1000;
const CONF_FILE: &str = "registry.conf";
const JOURNAL_FILE: &str = "registry.journal";
/// Registry tables live in `<base>/tables/<table>/`, so their names never clash with the other
/// files and folders of the registry folder.
const TABLES_DIR: &str = "tables";

/// How to open a registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Blocks per segment file, `250..=750_000`. Chosen when the registry is created (default
    /// 250) and stored; opening with a different value is refused, since it would move every
    /// handle. `None` takes the stored value.
    pub hash_mod: Option<u32>,
    /// Several processes open this registry at once (clustered mode). Each open registry
    /// writes its own journal (`journals/<slot>.journal`) and a batch locks only the blocks
    /// and files it touches, so batches over different blocks commit in parallel across
    /// processes; a dead registry's journal is recovered by whoever needs its blocks next (or
    /// by the next open), and the generation lives in a shared file (`registry.gen`). Locks
    /// are OS byte-range locks on `registry.lock` for a real (absolute) folder, in-process
    /// locks otherwise.
    pub shared: bool,
    /// Lazy checkpoints (ignored when `shared`): a batch costs one journal sync, and is applied
    /// in place without syncing; the journal keeps growing until it reaches this many bytes
    /// (or [`Registry::checkpoint`], a table removal, or drop), when everything applied is
    /// synced and the journal emptied. `0`: checkpoint after every batch (a journal sync plus a
    /// sync per file touched, per batch).
    pub checkpoint_bytes: u64,
}

/// The journal size at which a standalone database checkpoints (`RegistryOptions::checkpoint_bytes`).
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 4 << 20;

/// The on-disk registry: for each table, handles keyed by logical id, hashed to a block
/// (`high 64 bits % hash_mod`) and probed through segment files `<table>/<table>-<n>.reg`.
///
/// Writes are batched and atomic ([`Registry::write`]); reads verify every block's CRC32C and
/// fail with [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) naming the file and offset. One process owns a registry
/// folder at a time (the transaction layer enforces it); within the process it is safe to share.
pub struct Registry {
    fs: Arc<dyn FileSystem>,
    base: PathBuf,
    hash_mod: u32,
    files: RwLock<HashMap<(String, u32), Arc<dyn FileHandle>>>,
    journal: parking_lot::Mutex<Journal>,
    /// The journal's path (`registry.journal`, or this registry's slot journal when shared).
    journal_path: PathBuf,
    /// `RegistryOptions::checkpoint_bytes` (0 in shared mode).
    checkpoint_bytes: u64,
    /// Block reads share it; writing blocks in place takes it alone, so a reader never sees a
    /// block half overwritten (a 4 KiB `pwrite` is not atomic against a concurrent `pread`).
    blocks: RwLock<()>,
    /// Bumped each time a batch's blocks become visible (and when a table is removed).
    generation: std::sync::atomic::AtomicU64,
    /// Clustered mode: locks, journal slot and shared generation (see `shared`).
    shared: Option<shared::Shared>,
    /// Held while a segment file is being filled with zeros (shared mode).
    extending: parking_lot::Mutex<()>,
    /// Set when a batch failed after its journal was synced: the journal must stay as it is
    /// until the next open replays it, so every later call is refused.
    failed: parking_lot::Mutex<Option<String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .field("hash_mod", &self.hash_mod)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens (or creates) the registry under `base`, finishing any batch a crash interrupted.
    ///
    /// # Errors
    /// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) for a hash mod out of range or different from the stored one;
    /// corruption and I/O errors.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        base: impl Into<PathBuf>,
        options: RegistryOptions,
    ) -> Result<Self> {
        let base = base.into();
        if !fs.exists(&base).map_err(Error::io("stat", &base))? {
            fs.create_dir_all(&base)
                .map_err(Error::io("create folder", &base))?;
            // The new folder's own entry: without it a power cut could lose the whole registry
            // whatever is synced inside it.
            if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs.sync_dir(parent)
                    .map_err(Error::io("sync folder", parent))?;
            }
        }
        let hash_mod = Self::settle_hash_mod(fs.as_ref(), &base, options.hash_mod)?;
        let (shared, journal_path) = if options.shared {
            let locks = locks::Locks::open(fs.as_ref(), &base)?;
            let slot = locks.claim_slot()?;
            let dir = base.join(shared::JOURNALS_DIR);
            if !fs.exists(&dir).map_err(Error::io("stat", &dir))? {
                fs.create_dir_all(&dir)
                    .map_err(Error::io("create folder", &dir))?;
                fs.sync_dir(&base)
                    .map_err(Error::io("sync folder", &base))?;
            }
            (
                Some(shared::Shared {
                    locks,
                    slot,
                    seen: parking_lot::Mutex::new(std::collections::HashMap::new()),
                    removals_seen: std::sync::atomic::AtomicU64::new(0),
                }),
                base.join(shared::journal_rel(slot)),
            )
        } else {
            (None, base.join(JOURNAL_FILE))
        };
        let existed = fs
            .exists(&journal_path)
            .map_err(Error::io("stat", &journal_path))?;
        let journal = fs
            .open(&journal_path, true)
            .map_err(Error::io("open", &journal_path))?;
        if !existed {
            journal.sync().map_err(Error::io("sync", &journal_path))?;
            let dir = journal_path.parent().unwrap_or(&base);
            fs.sync_dir(dir).map_err(Error::io("sync folder", dir))?;
        }
        let registry = Registry {
            fs,
            base,
            hash_mod,
            files: RwLock::new(HashMap::new()),
            journal: parking_lot::Mutex::new(Journal {
                file: journal,
                end: 0,
                unsynced: Unsynced::default(),
            }),
            journal_path,
            checkpoint_bytes: if options.shared {
                0
            } else {
                options.checkpoint_bytes
            },
            blocks: RwLock::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
            shared,
            extending: parking_lot::Mutex::new(()),
            failed: parking_lot::Mutex::new(None),
        };
        match &registry.shared {
            None => registry.recover_journal()?,
            Some(sh) => {
                registry.recover_dead(sh, true)?;
            }
        }
        Ok(registry)
    }

    /// Makes sure every committed batch is applied (finishing one an I/O error interrupted,
    /// from the journal) before the caller reads files the registry writes in batches, such as
    /// store info.
    ///
    /// # Errors
    /// [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned) when the journal still cannot be applied.
    pub fn ensure_current(&self) -> Result<()> {
        self.check_failed()
    }

    /// Refuses calls while a batch is synced in the journal but not applied; first tries to
    /// finish it (replaying the journal), so a passing I/O fault heals without a reopen.
    fn check_failed(&self) -> Result<()> {
        let cause = match self.failed.lock().as_ref() {
            None => return Ok(()),
            Some(cause) => cause.clone(),
        };
        // Shared: the slot went to whoever recovers the journal; only a reopen helps.
        if self.shared.is_none() && self.recover_journal().is_ok() {
            *self.failed.lock() = None;
            return Ok(());
        }
        Err(Error::Transaction(sop_core::TransactionError::Poisoned {
            store: format!("registry at {}", self.base.display()),
            cause,
        }))
    }

    /// Whether it was opened shared (clustered mode).
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Blocks per segment file.
    #[must_use]
    pub fn hash_mod(&self) -> u32 {
        self.hash_mod
    }

    /// The registry folder.
    #[must_use]
    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl Drop for Registry {
    /// A clean close leaves an empty journal (best effort: a journal left behind is replayed
    /// on the next open). Never while a batch is not applied: that needs a replay first.
    fn drop(&mut self) {
        if self.failed.lock().is_none() {
            let mut journal = self.journal.lock();
            let _ = if self.shared.is_some() {
                self.checkpoint_shared(&mut journal, true)
            } else {
                self.checkpoint_locked(&mut journal)
            };
        }
    }
}
