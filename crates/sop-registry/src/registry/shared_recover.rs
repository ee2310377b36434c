//! Clustered mode: finding and recovering the journal of a registry that is gone (see
//! `shared` for the protocol). A dead registry's batch is finished by the first writer whose
//! locks its last batch touches (`dead_journal_touching`), and by every open (`recover_dead`).

use std::path::{Path, PathBuf};

use sop_core::vfs::read_file;
use sop_core::{Error, Result};

use super::locks::KeysGuard;
use super::shared::{JOURNALS_DIR, SeenJournal, Shared, entry_key, journal_rel, slot_of};
use super::{Registry, shared_journal};
use crate::journal::{JournalEntry, Unsynced};

impl Registry {
    /// The journals of every other slot: (slot, path).
    fn other_journals(&self, sh: &Shared) -> Result<Vec<(u32, PathBuf)>> {
        let dir = self.base.join(JOURNALS_DIR);
        let names = self.fs.list_dir(&dir).map_err(Error::io("list", &dir))?;
        Ok(names
            .into_iter()
            .filter_map(|name| slot_of(&name).map(|slot| (slot, dir.join(&name))))
            .filter(|(slot, _)| *slot != sh.slot)
            .collect())
    }

    /// The slot of a journal (not this registry's) whose last batch is synced, touches a lock
    /// of `guard`, and is not applied there: only a dead registry's can be (a live one applies
    /// each batch before it lets its locks go). A batch's block is applied when the block's
    /// write sequence has reached the image's; a file in a journal means its registry died
    /// before its checkpoint (a live one empties a journal with files before its locks go).
    pub(super) fn dead_journal_touching(
        &self,
        sh: &Shared,
        guard: &KeysGuard<'_>,
        table: Option<&str>,
    ) -> Result<Option<u32>> {
        for (slot, path) in self.other_journals(sh)? {
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
    pub(super) fn recover_slot(&self, sh: &Shared, slot: u32) -> Result<bool> {
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
        self.replay_shared(sh, &bytes, &path)?;
        tracing::info!(slot, journal = %path.display(), "recovered the journal of a registry that is gone");
        shared_journal::mark_empty(file.as_ref(), true).map_err(Error::io("write", &path))
    }

    /// Applies the synced batches of a journal's bytes, each under its locks, only where the
    /// block is not newer, and syncs what they wrote.
    fn replay_shared(&self, sh: &Shared, bytes: &[u8], path: &Path) -> Result<()> {
        let mut unsynced = Unsynced::default();
        for entries in journal_batches(bytes, path)? {
            let mut keys: Vec<u64> = entries.iter().map(entry_key).collect();
            keys.sort_unstable();
            keys.dedup();
            let _locked = sh.locks.lock_keys(&keys)?;
            self.apply(&entries, &mut unsynced, true)?;
            self.sync_unsynced(&mut unsynced)?;
        }
        Ok(())
    }

    /// Recovers every journal whose registry is gone (on open, and by
    /// [`Registry::recover_journal`]).
    pub(super) fn recover_dead(&self, sh: &Shared, opening: bool) -> Result<()> {
        self.check_failed()?;
        // Alone in the folder (every batch holds the recovery byte shared), and alone in this
        // registry (its locks are one description: a batch of another thread must not run).
        let _journal = self.journal.lock();
        let _alone = sh.locks.lock_keys(&[super::locks::RECOVERY_KEY])?;
        if opening {
            // Its slot was free, so a journal left in it belongs to a registry that is gone.
            self.recover_held_slot(sh, sh.slot)?;
            self.recover_legacy_journal(sh)?;
        }
        for (slot, path) in self.other_journals(sh)? {
            // Its first frame header only: `recover_slot` reads the journal itself.
            if shared_journal::holds_frames(self.fs.as_ref(), &path)? {
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
        self.replay_shared(sh, &bytes, &path)?;
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
