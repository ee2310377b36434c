//! Several processes on one registry (clustered mode), with no cluster-wide lock:
//!
//! - every open registry claims a *slot* and writes its batches to its own journal,
//!   `journals/<slot>.journal`, so two batches never share a journal;
//! - a batch takes the locks of exactly the blocks and small files it touches (see `locks`), in
//!   ascending order, and keeps them while it checks versions, syncs its journal, writes the
//!   blocks and files in place, syncs them and empties its journal: batches over disjoint blocks
//!   run at the same time, in any processes;
//! - a reader takes the block it reads shared, so it never sees a block half written;
//! - `registry.gen` grows by a byte per applied batch (an atomic append), so a reader can
//!   tell from its size that something changed between two reads;
//! - a registry that died with a synced batch in its journal (not applied, or half applied)
//!   is recovered by the first writer whose blocks that batch touches (and by every open): it
//!   takes the dead slot (so exactly one does), takes the batch's locks, writes every image
//!   whose block is not newer (the write sequence in the block), syncs, and empties the
//!   journal. A writer checks, under its locks, that no journal it can read touches its
//!   blocks; since a dead registry's locks and slot go in one step, a writer that holds a
//!   block can always see whether a dead journal has it.

use std::path::{Path, PathBuf};

use sop_core::{Error, Result};

use super::batch::RegistryBatch;
use super::locks::{Locks, block_key, file_key};
use super::{Registry, shared_journal};
use crate::journal::JournalEntry;

/// Folder of the per-registry journals, relative to the registry folder.
pub(super) const JOURNALS_DIR: &str = "journals";
/// The shared generation counter's file, relative to the registry folder.
pub(super) const GEN_FILE: &str = "registry.gen";

/// What a registry opened in shared mode holds.
pub(super) struct Shared {
    pub(super) locks: Locks,
    /// Its journal slot (held while it is open).
    pub(super) slot: u32,
    /// Other registries' journals: the open file, and the steps of the last frame seen there
    /// (by offset, end and checksum), so a commit reads two small headers per journal, not a
    /// frame, while nothing changed.
    pub(super) seen: parking_lot::Mutex<std::collections::HashMap<u32, SeenJournal>>,
    /// The removal count when this registry last looked (see `forget_removed`).
    pub(super) removals_seen: std::sync::atomic::AtomicU64,
}

/// What [`Shared::seen`] keeps of one journal.
pub(super) struct SeenJournal {
    pub(super) file: Box<dyn sop_core::vfs::FileHandle>,
    pub(super) last: Option<(FrameId, std::sync::Arc<Vec<JournalEntry>>)>,
}

/// A frame's offset, end and payload checksum.
pub(super) type FrameId = (u64, u64, u32);

/// A slot's journal, relative to the registry folder.
pub(super) fn journal_rel(slot: u32) -> PathBuf {
    Path::new(JOURNALS_DIR).join(format!("{slot}.journal"))
}

pub(super) fn slot_of(name: &str) -> Option<u32> {
    name.strip_suffix(".journal")?.parse().ok()
}

/// The lock of what a journal step writes.
pub(super) fn entry_key(e: &JournalEntry) -> u64 {
    match e {
        JournalEntry::Block { table, block, .. } => block_key(table, *block),
        JournalEntry::PutFile { path, .. } | JournalEntry::RemoveFile { path } => file_key(path),
    }
}

impl Registry {
    /// A number that changes whenever committed handles change (a batch applied, a table
    /// removed). In shared mode it counts every process's batches: bumped after a batch's
    /// blocks and files are written, before its locks go.
    #[must_use]
    pub fn generation(&self) -> u64 {
        match &self.shared {
            None => self.generation.load(std::sync::atomic::Ordering::Acquire),
            Some(sh) => sh.locks.generation(),
        }
    }

    pub(super) fn bump_shared_gen(&self, sh: &Shared) -> Result<()> {
        sh.locks.bump_generation()
    }

    /// The locks a batch needs, sorted: its blocks, its files and `files`.
    fn keys_of(&self, batch: &RegistryBatch, files: &[String]) -> Vec<u64> {
        let mut keys: Vec<u64> = batch
            .changes
            .iter()
            .filter(|(_, c)| !c.is_check())
            .map(|(table, c)| block_key(table, self.block_of(c.id())))
            .chain(batch.files.iter().map(|f| file_key(f.path())))
            .chain(files.iter().map(|f| file_key(f)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The locks a batch takes, sorted by key: exclusive (`true`) what it writes (blocks,
    /// files, `files`), shared what it only reads: blocks of handles it only checks (no commit
    /// can change them while the check holds, and checks of many processes run together: every
    /// commit checks the root it read) and the store file of every table it touches (so a
    /// store's removal, which holds that alone, never runs in the middle of a commit).
    fn mixed_keys_of(&self, batch: &RegistryBatch, files: &[String]) -> Vec<(u64, bool)> {
        let exclusive = self.keys_of(batch, files);
        let mut keys: Vec<(u64, bool)> = exclusive.iter().map(|k| (*k, true)).collect();
        keys.push((super::locks::RECOVERY_KEY, false));
        for (table, c) in &batch.changes {
            let store = file_key(&crate::StoreRepository::relative_path(table));
            let block = block_key(table, self.block_of(c.id()));
            for k in [store, block] {
                if exclusive.binary_search(&k).is_err() {
                    keys.push((k, false));
                }
            }
        }
        keys.sort_unstable();
        keys.dedup_by_key(|(k, _)| *k);
        keys
    }

    /// Runs `f` holding shared the lock of the block `id` lives in (shared mode), so the read
    /// never sees the block half written.
    pub(super) fn reading<T>(
        &self,
        table: &str,
        id: sop_core::Uuid,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        match &self.shared {
            None => f(),
            Some(sh) => {
                self.forget_removed(sh);
                sh.locks.shared(block_key(table, self.block_of(id)), f)
            }
        }
    }

    /// Forgets the open segment files when a table was removed anywhere since the last look
    /// (they may be of the removed table; a new table of that name has new files).
    pub(super) fn forget_removed(&self, sh: &Shared) {
        let now = sh.locks.removals();
        if sh
            .removals_seen
            .swap(now, std::sync::atomic::Ordering::AcqRel)
            != now
        {
            self.files.write().clear();
        }
    }

    /// Shared mode's [`Registry::write_with`]: locks, recovers what a dead registry left on
    /// them, lets `finish` build the batch, then journal, apply, sync, empty.
    pub(super) fn write_shared(
        &self,
        sh: &Shared,
        pre: &RegistryBatch,
        files: &[String],
        finish: impl FnOnce() -> Result<RegistryBatch>,
    ) -> Result<()> {
        let mut journal = self.journal.lock();
        let keys = self.mixed_keys_of(pre, files);
        let since = std::time::Instant::now();
        let guard = loop {
            let guard = sh.locks.lock_mixed(&keys)?;
            // Under the store's lock: a removal of it is either seen here or waits for us.
            self.forget_removed(sh);
            let Some(slot) = self.dead_journal_touching(sh, &guard, None)? else {
                break guard;
            };
            drop(guard);
            if !self.recover_slot(sh, slot)? {
                // Another registry is recovering it: wait for it to finish.
                wait_for_recovery(since, slot)?;
            }
        };
        let batch = finish()?;
        if let Some(k) = self
            .keys_of(&batch, &[])
            .into_iter()
            .find(|k| !guard.holds(*k))
        {
            return Err(Error::Corruption(sop_core::CorruptionError::Invariant {
                store: format!("registry at {}", self.base.display()),
                detail: format!("a batch changes what it did not lock first (key {k:#x})"),
            }));
        }
        let entries = self.entries(&batch)?;
        if entries.is_empty() {
            // Only checks: validated under the locks, nothing to write.
            return Ok(());
        }
        self.append_journal(&mut journal, &entries)?;
        // Committed. The blocks are written in place and synced later (the journal keeps the
        // batch until then); but a store file (no write sequence) must never be put back over
        // a newer one by a replay after a power loss, so a batch with files is checkpointed
        // (synced, journal emptied and synced) before its locks go.
        let files_in = entries
            .iter()
            .any(|e| !matches!(e, JournalEntry::Block { .. }));
        let journal = &mut *journal;
        let done = self
            .apply(&entries, &mut journal.unsynced, false)
            .and_then(|()| {
                if files_in || journal.end > shared_journal::CHECKPOINT_BYTES {
                    self.checkpoint_shared(journal, files_in)
                } else {
                    Ok(())
                }
            });
        if let Err(e) = done {
            // The batch is committed but not (all) applied: the registry refuses every call
            // from now on, and lets its slot go so that another registry recovers the journal.
            *self.failed.lock() = Some(e.to_string());
            sh.locks.release_slot(sh.slot);
        }
        drop(guard);
        Ok(())
    }

    /// Shared mode: removes a store (its info file, then its table), holding the store file's
    /// lock alone throughout, so no commit that touches the store (each holds that lock at
    /// least shared) runs meanwhile; one that comes after finds the store gone. A marker file
    /// is there while the table goes, as in [`Metadata::remove_store`](sop_core::meta::Metadata::remove_store).
    pub(crate) fn remove_store_shared(
        &self,
        store_rel: &str,
        marker_rel: &str,
        table: &str,
    ) -> Result<()> {
        sop_core::validate_store_name(table)?;
        self.check_failed()?;
        let Some(sh) = &self.shared else {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "registry",
                reason: "remove_store_shared needs a shared registry".into(),
            }));
        };
        let mut journal = self.journal.lock();
        let mut keys = vec![file_key(store_rel), file_key(marker_rel)];
        keys.sort_unstable();
        keys.dedup();
        let since = std::time::Instant::now();
        let guard = loop {
            let guard = sh.locks.lock_keys(&keys)?;
            let Some(slot) = self.dead_journal_touching(sh, &guard, Some(table))? else {
                break guard;
            };
            drop(guard);
            if !self.recover_slot(sh, slot)? {
                wait_for_recovery(since, slot)?;
            }
        };
        let journal = &mut *journal;
        self.write_held(
            journal,
            &RegistryBatch::new()
                .put_file(marker_rel, Vec::new())
                .remove_file(store_rel),
        )?;
        {
            let _alone = self.blocks.write();
            self.files.write().retain(|(t, _), _| t != table);
            sh.locks.bump_removals()?;
            let dir = self.table_dir(table);
            sop_core::vfs::remove_dir_all_if_present(self.fs.as_ref(), &dir)
                .map_err(Error::io("remove", &dir))?;
            let tables = self.base.join(super::TABLES_DIR);
            self.fs
                .sync_dir(&tables)
                .map_err(Error::io("sync folder", &tables))?;
        }
        self.bump_shared_gen(sh)?;
        self.write_held(journal, &RegistryBatch::new().remove_file(marker_rel))?;
        drop(guard);
        Ok(())
    }

    /// A batch written holding its locks: journal, apply, checkpoint (synced).
    fn write_held(
        &self,
        journal: &mut crate::journal::Journal,
        batch: &RegistryBatch,
    ) -> Result<()> {
        let entries = self.entries(batch)?;
        if entries.is_empty() {
            return Ok(());
        }
        self.append_journal(journal, &entries)?;
        self.apply(&entries, &mut journal.unsynced, false)
            .and_then(|()| self.checkpoint_shared(journal, true))
            .inspect_err(|e| {
                *self.failed.lock() = Some(e.to_string());
                if let Some(sh) = &self.shared {
                    sh.locks.release_slot(sh.slot);
                }
            })
    }

    /// Syncs every block and file this registry applied since its last checkpoint, then
    /// empties its journal (the emptying synced when `sync`).
    pub(super) fn checkpoint_shared(
        &self,
        journal: &mut crate::journal::Journal,
        sync: bool,
    ) -> Result<()> {
        self.sync_unsynced(&mut journal.unsynced)?;
        shared_journal::mark_empty(journal.file.as_ref(), sync)
            .map_err(Error::io("write", &self.journal_path))?;
        journal.end = shared_journal::HEAD;
        Ok(())
    }
}

/// How long a writer waits for another registry to finish recovering a journal it needs.
const RECOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One pause while slot `slot` is recovered by another registry (or still held by one that
/// failed): `LockBusy` once `since` is older than `RECOVERY_WAIT`.
fn wait_for_recovery(since: std::time::Instant, slot: u32) -> Result<()> {
    if since.elapsed() > RECOVERY_WAIT {
        return Err(Error::Transaction(sop_core::TransactionError::LockBusy {
            key: format!("registry journal slot {slot}, being recovered"),
            waited_ms: u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
        }));
    }
    std::thread::sleep(std::time::Duration::from_millis(1));
    Ok(())
}
