//! Several processes on one registry (clustered mode), with no cluster-wide lock:
//!
//! - every open registry claims a *slot* and writes its batches to its own journal,
//!   `journals/<slot>.journal`, so two batches never share a journal;
//! - a batch takes the locks of exactly the blocks and small files it touches (see `locks`), in
//!   ascending order, and keeps them while it checks versions, syncs its journal, writes the
//!   blocks and files in place, syncs them and empties its journal: batches over disjoint blocks
//!   run at the same time, in any processes;
//! - a reader takes the block it reads shared, so it never sees a block half written;
//! - `registry.gen` counts applied batches (bumped under its own lock), so a reader can tell
//!   that something changed between two reads;
//! - a registry that died with a synced batch in its journal (not applied, or half applied)
//!   is recovered by the first writer whose blocks that batch touches (and by every open): it
//!   takes the dead slot (so exactly one does), takes the batch's locks, writes every image
//!   whose block is not newer (the write sequence in the block), syncs, and empties the
//!   journal. A writer checks, under its locks, that no journal it can read touches its
//!   blocks; since a dead registry's locks and slot go in one step, a writer that holds a
//!   block can always see whether a dead journal has it.

use std::path::{Path, PathBuf};

use sop_core::vfs::{FileHandle, read_file};
use sop_core::{Error, Result};

use super::Registry;
use super::batch::RegistryBatch;
use super::locks::{KeysGuard, Locks, block_key, file_key};
use crate::journal::{JournalEntry, Unsynced};

/// Folder of the per-registry journals, relative to the registry folder.
pub(super) const JOURNALS_DIR: &str = "journals";
/// The shared generation counter's file, relative to the registry folder.
pub(super) const GEN_FILE: &str = "registry.gen";

/// What a registry opened in shared mode holds.
pub(super) struct Shared {
    pub(super) locks: Locks,
    /// Its journal slot (held while it is open).
    pub(super) slot: u32,
    /// `registry.gen`: applied batches, 8 bytes LE.
    pub(super) gen_file: Box<dyn FileHandle>,
    pub(super) gen_path: PathBuf,
}

/// A slot's journal, relative to the registry folder.
pub(super) fn journal_rel(slot: u32) -> PathBuf {
    Path::new(JOURNALS_DIR).join(format!("{slot}.journal"))
}

fn slot_of(name: &str) -> Option<u32> {
    name.strip_suffix(".journal")?.parse().ok()
}

/// The lock of what a journal step writes.
fn entry_key(e: &JournalEntry) -> u64 {
    match e {
        JournalEntry::Block { table, block, .. } => block_key(table, *block),
        JournalEntry::PutFile { path, .. } | JournalEntry::RemoveFile { path } => file_key(path),
    }
}

/// The shared generation (0 when the file is short or unreadable).
fn read_gen(f: &dyn FileHandle) -> u64 {
    let mut b = [0u8; 8];
    match f.read_at(&mut b, 0) {
        Ok(8) => u64::from_le_bytes(b),
        _ => 0,
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
            Some(sh) => read_gen(sh.gen_file.as_ref()),
        }
    }

    pub(super) fn bump_shared_gen(&self, sh: &Shared) -> Result<()> {
        sh.locks
            .with_gen(|| {
                let g = read_gen(sh.gen_file.as_ref());
                sh.gen_file.write_at(&g.wrapping_add(1).to_le_bytes(), 0)
            })?
            .map_err(Error::io("write", &sh.gen_path))
    }

    /// The locks a batch needs, sorted: its blocks, its files and `files`.
    fn keys_of(&self, batch: &RegistryBatch, files: &[String]) -> Vec<u64> {
        let mut keys: Vec<u64> = batch
            .changes
            .iter()
            .map(|(table, c)| block_key(table, self.block_of(c.id())))
            .chain(batch.files.iter().map(|f| file_key(f.path())))
            .chain(files.iter().map(|f| file_key(f)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
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
            Some(sh) => sh.locks.shared(block_key(table, self.block_of(id)), f),
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
        let keys = self.keys_of(pre, files);
        let guard = loop {
            let guard = sh.locks.lock_keys(&keys)?;
            let Some(slot) = self.dead_journal_touching(sh, &guard)? else {
                break guard;
            };
            drop(guard);
            if !self.recover_slot(sh, slot)? {
                // Another registry is recovering it: wait for it to finish.
                std::thread::sleep(std::time::Duration::from_millis(1));
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
        // Committed. A store file (no write sequence) must not be put back over a newer one by
        // a replay after a power loss: the journal's emptying is synced before its lock goes.
        let files_in = entries
            .iter()
            .any(|e| !matches!(e, JournalEntry::Block { .. }));
        let path = self.journal_path.clone();
        let journal = &mut *journal;
        let done = self
            .apply(&entries, &mut journal.unsynced, false)
            .and_then(|()| self.sync_unsynced(&mut journal.unsynced))
            .and_then(|()| {
                journal
                    .file
                    .set_len(0)
                    .map_err(Error::io("truncate", &path))?;
                if files_in {
                    journal.file.sync().map_err(Error::io("sync", &path))?;
                }
                journal.end = 0;
                Ok(())
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

    /// The slot of a journal (not this registry's) holding a synced batch that touches a lock
    /// of `guard`. Only a dead registry's journal can: a live one holds the locks of its batch
    /// until it has emptied its journal.
    fn dead_journal_touching(&self, sh: &Shared, guard: &KeysGuard<'_>) -> Result<Option<u32>> {
        let dir = self.base.join(JOURNALS_DIR);
        let names = self.fs.list_dir(&dir).map_err(Error::io("list", &dir))?;
        for name in names {
            let Some(slot) = slot_of(&name) else {
                continue;
            };
            if slot == sh.slot {
                continue;
            }
            let path = dir.join(&name);
            let batches = match read_file(self.fs.as_ref(), &path) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => journal_batches(&bytes, &path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &path)(e)),
            };
            if batches.iter().flatten().any(|e| guard.holds(entry_key(e))) {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// Recovers slot `slot`'s journal if its registry is gone; `false` when the slot is held
    /// (by its live registry, or by another that is recovering it).
    fn recover_slot(&self, sh: &Shared, slot: u32) -> Result<bool> {
        if !sh.locks.try_slot(slot)? {
            return Ok(false);
        }
        let r = self.recover_held_slot(sh, slot);
        sh.locks.release_slot(slot);
        r.map(|()| true)
    }

    /// Applies every synced batch of a slot this registry holds, under each batch's locks,
    /// only where the block is not newer; then empties the journal.
    pub(super) fn recover_held_slot(&self, sh: &Shared, slot: u32) -> Result<()> {
        let path = self.base.join(journal_rel(slot));
        let file = match self.fs.open(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("open", &path)(e)),
        };
        let bytes = read_file(self.fs.as_ref(), &path).map_err(Error::io("read", &path))?;
        if bytes.is_empty() {
            return Ok(());
        }
        let mut unsynced = Unsynced::default();
        for entries in journal_batches(&bytes, &path)? {
            let mut keys: Vec<u64> = entries.iter().map(entry_key).collect();
            keys.sort_unstable();
            keys.dedup();
            let _locked = sh.locks.lock_keys(&keys)?;
            self.apply(&entries, &mut unsynced, true)?;
            self.sync_unsynced(&mut unsynced)?;
        }
        tracing::info!(slot, journal = %path.display(), "recovered the journal of a registry that is gone");
        file.set_len(0).map_err(Error::io("truncate", &path))?;
        file.sync().map_err(Error::io("sync", &path))
    }

    /// Recovers every journal whose registry is gone (on open, and by
    /// [`Registry::recover_journal`]).
    pub(super) fn recover_dead(&self, sh: &Shared) -> Result<()> {
        self.check_failed()?;
        let dir = self.base.join(JOURNALS_DIR);
        let names = self.fs.list_dir(&dir).map_err(Error::io("list", &dir))?;
        for name in names {
            let Some(slot) = slot_of(&name) else {
                continue;
            };
            if slot == sh.slot {
                continue;
            }
            let path = dir.join(&name);
            match self.fs.open(&path, false).and_then(|f| f.size()) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path)(e)),
            }
            self.recover_slot(sh, slot)?;
        }
        Ok(())
    }

    /// The single journal (`registry.journal`) of an earlier version's clustered mode, left
    /// with a batch in it: applied where its blocks are not newer, under its locks.
    pub(super) fn recover_legacy_journal(&self, sh: &Shared) -> Result<()> {
        let path = self.base.join(super::JOURNAL_FILE);
        let bytes = match read_file(self.fs.as_ref(), &path) {
            Ok(b) if b.is_empty() => return Ok(()),
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let mut unsynced = Unsynced::default();
        for entries in journal_batches(&bytes, &path)? {
            let mut keys: Vec<u64> = entries.iter().map(entry_key).collect();
            keys.sort_unstable();
            keys.dedup();
            let _locked = sh.locks.lock_keys(&keys)?;
            self.apply(&entries, &mut unsynced, true)?;
            self.sync_unsynced(&mut unsynced)?;
        }
        let file = self
            .fs
            .open(&path, false)
            .map_err(Error::io("open", &path))?;
        file.set_len(0).map_err(Error::io("truncate", &path))?;
        file.sync().map_err(Error::io("sync", &path))
    }

    /// Whether a journal image is newer than its block on disk (a block that fails its
    /// checksum, torn by a crash, is older than any image).
    pub(super) fn is_newer(
        &self,
        table: &str,
        segment: u32,
        block: u64,
        image: &[u8],
    ) -> Result<bool> {
        let Ok(arr) = <&[u8; crate::record::BLOCK_SIZE]>::try_from(image) else {
            return Ok(true);
        };
        let Ok(new) = crate::record::Block::decode(arr) else {
            return Ok(true);
        };
        Ok(match self.read_block_raw(table, segment, block)? {
            Some(Ok(old)) => old.seq < new.seq,
            Some(Err(_)) | None => true,
        })
    }
}

/// The synced batches of a journal, in order, up to a torn frame.
fn journal_batches(bytes: &[u8], path: &Path) -> Result<Vec<Vec<JournalEntry>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(end) = sop_core::codec::sealed_frame_end(bytes, at) {
        let location = format!("{} offset {at}", path.display());
        let Some(entries) = crate::formats::journal_entries(&bytes[at..end], &location)? else {
            break;
        };
        out.push(entries);
        at = end;
    }
    Ok(out)
}
