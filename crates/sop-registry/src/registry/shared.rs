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

use sop_core::vfs::read_file;
use sop_core::{Error, Result};

use super::batch::RegistryBatch;
use super::locks::{KeysGuard, Locks, block_key, file_key};
use super::{Registry, shared_journal};
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
    /// Other registries' journals: the open file, and the steps of the last frame seen there
    /// (by offset, end and checksum), so a commit reads two small headers per journal, not a
    /// frame, while nothing changed.
    pub(super) seen: parking_lot::Mutex<std::collections::HashMap<u32, SeenJournal>>,
}

/// What [`Shared::seen`] keeps of one journal.
pub(super) struct SeenJournal {
    file: Box<dyn sop_core::vfs::FileHandle>,
    last: Option<(FrameId, std::sync::Arc<Vec<JournalEntry>>)>,
}

/// A frame's offset, end and payload checksum.
type FrameId = (u64, u64, u32);

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
        let keys = self.mixed_keys_of(pre, files);
        let guard = loop {
            let guard = sh.locks.lock_mixed(&keys)?;
            let Some(slot) = self.dead_journal_touching(sh, &guard, None)? else {
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
        let guard = loop {
            let guard = sh.locks.lock_keys(&keys)?;
            let Some(slot) = self.dead_journal_touching(sh, &guard, Some(table))? else {
                break guard;
            };
            drop(guard);
            if !self.recover_slot(sh, slot)? {
                std::thread::sleep(std::time::Duration::from_millis(1));
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
            .inspect_err(|e| *self.failed.lock() = Some(e.to_string()))
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

    /// The slot of a journal (not this registry's) whose last batch is synced, touches a lock
    /// of `guard`, and is not applied there: only a dead registry's can be (a live one applies
    /// each batch before it lets its locks go). A batch's block is applied when the block's
    /// write sequence has reached the image's; a file in a journal means its registry died
    /// before its checkpoint (a live one empties a journal with files before its locks go).
    fn dead_journal_touching(
        &self,
        sh: &Shared,
        guard: &KeysGuard<'_>,
        table: Option<&str>,
    ) -> Result<Option<u32>> {
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
            let Some(entries) = self.last_batch(sh, slot, &path)? else {
                continue;
            };
            for e in entries.iter() {
                let in_table =
                    matches!((e, table), (JournalEntry::Block { table: t, .. }, Some(r)) if t == r);
                // Shared keys count too: a check must not pass against a block that a dead
                // process's committed batch is about to change.
                if !guard.holds_any(entry_key(e)) && !in_table {
                    continue;
                }
                let unapplied = match e {
                    JournalEntry::Block {
                        table,
                        segment,
                        block,
                        image,
                    } => self.is_newer(table, *segment, *block, image)?,
                    JournalEntry::PutFile { .. } | JournalEntry::RemoveFile { .. } => true,
                };
                if unapplied {
                    return Ok(Some(slot));
                }
            }
        }
        Ok(None)
    }

    /// The steps of the last batch in slot `slot`'s journal (`None`: empty, or its last frame
    /// is being written), read again only when its position or checksum changed.
    fn last_batch(
        &self,
        sh: &Shared,
        slot: u32,
        path: &Path,
    ) -> Result<Option<std::sync::Arc<Vec<JournalEntry>>>> {
        let mut seen = sh.seen.lock();
        let j = match seen.entry(slot) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let file = match self.fs.open(path, false) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(Error::io("open", path)(e)),
                };
                v.insert(SeenJournal { file, last: None })
            }
        };
        let Some(id) = shared_journal::last_frame_id(j.file.as_ref(), path)? else {
            return Ok(None);
        };
        if let Some((had, entries)) = &j.last
            && *had == id
        {
            return Ok(Some(std::sync::Arc::clone(entries)));
        }
        let bytes = shared_journal::frame_at(j.file.as_ref(), path, id.0, id.1)?;
        let Some(entries) = journal_batches(&bytes, path)?.into_iter().next() else {
            // Torn or being written: its registry holds its locks (or never committed it).
            return Ok(None);
        };
        let entries = std::sync::Arc::new(entries);
        j.last = Some((id, std::sync::Arc::clone(&entries)));
        Ok(Some(entries))
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
        let Some(bytes) = shared_journal::all_frames(self.fs.as_ref(), &path)? else {
            return Ok(());
        };
        let file = self
            .fs
            .open(&path, false)
            .map_err(Error::io("open", &path))?;
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
        shared_journal::mark_empty(file.as_ref(), true).map_err(Error::io("write", &path))
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
            if shared_journal::all_frames(self.fs.as_ref(), &path)?.is_some() {
                self.recover_slot(sh, slot)?;
            }
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
