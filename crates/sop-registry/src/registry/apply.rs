//! Atomic batches through the redo journal: [`Registry::write`] checks a batch, syncs it to the
//! journal (its commit point) and applies it in place; checkpoints sync what was applied and
//! empty the journal; replay finishes what a crash or an I/O error interrupted.

use std::collections::{BTreeMap, BTreeSet};

use sop_core::codec::{self, seal};
use sop_core::vfs::remove_file_if_present;
use sop_core::{Error, Result, validate_store_name};

use super::Registry;
use super::batch::{Change, FileChange, RegistryBatch};
use super::files::{check_rel_path, replace_file_unsynced};
use crate::journal::{JOURNAL_FORMAT_VERSION, Journal, JournalEntry, Unsynced};
use crate::record::BLOCK_SIZE;

impl Registry {
    /// Applies a batch atomically and durably: after a crash at any point, the next
    /// [`Registry::open`] sees all of it or none of it. Costs one journal sync plus one sync per
    /// segment file touched.
    ///
    /// `Ok` means the batch is durable (if applying it in place failed, the registry finishes it
    /// from the journal before serving the next call). An error other than
    /// [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned) means it was not written and never will be; `Poisoned` means its
    /// outcome is in doubt until the journal is replayed: do not undo anything it depends on.
    ///
    /// # Errors
    /// [`CorruptionError::HandleExists`](sop_core::CorruptionError::HandleExists) / [`CorruptionError::HandleNotFound`](sop_core::CorruptionError::HandleNotFound) (nothing is written then), corruption
    /// and I/O errors.
    pub fn write(&self, batch: &RegistryBatch) -> Result<()> {
        self.check_failed()?;
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(sh) = &self.shared {
            return self.write_shared(sh, batch, &[], || Ok(batch.clone()));
        }
        let mut journal = self.journal.lock();
        let journal = &mut *journal;
        let journal_path = self.journal_path.clone();
        if self.checkpoint_bytes == 0
            && journal
                .file
                .size()
                .map_err(Error::io("stat", &journal_path))?
                > 0
        {
            self.replay(journal)?;
        }
        let entries = self.entries(batch)?;
        if entries.is_empty() {
            // Only checks: validated under the journal lock, nothing to write.
            return Ok(());
        }
        self.append_journal(journal, &entries)?;
        // From here the batch is committed: the journal is durable and will be replayed.
        let lazy = self.checkpoint_bytes > 0;
        let applied = self
            .apply(&entries, &mut journal.unsynced, false)
            .and_then(|()| {
                if lazy && journal.end < self.checkpoint_bytes {
                    Ok(())
                } else if lazy {
                    self.checkpoint_locked(journal)
                } else {
                    // Synced in place: empty the journal without a sync; a journal that still
                    // holds this batch is replayed (idempotently) before the next batch or on
                    // the next open.
                    self.sync_unsynced(&mut journal.unsynced)?;
                    let _ = journal.file.set_len(0);
                    journal.end = 0;
                    Ok(())
                }
            });
        if let Err(e) = applied {
            // Readers are refused until the journal is replayed (next call, or the next open).
            *self.failed.lock() = Some(e.to_string());
        }
        Ok(())
    }

    /// As [`Registry::write`], for a batch built from what it replaces (a store's count): in
    /// shared mode, the locks of every block `pre` touches and of `files` (paths relative to
    /// the registry folder) are taken first, then `finish` builds the batch to write, which
    /// may touch only those; so nothing `finish` read can change before the batch is written.
    /// Not shared: `finish`, then [`Registry::write`] (the caller serialises).
    ///
    /// # Errors
    /// As [`Registry::write`]; [`CorruptionError::Invariant`](sop_core::CorruptionError::Invariant)
    /// when the finished batch touches something not locked.
    pub fn write_with(
        &self,
        pre: &RegistryBatch,
        files: &[String],
        finish: impl FnOnce() -> Result<RegistryBatch>,
    ) -> Result<()> {
        self.check_failed()?;
        match &self.shared {
            Some(sh) => self.write_shared(sh, pre, files, finish),
            None => self.write(&finish()?),
        }
    }

    /// Checks a batch against the blocks as they are and computes what it writes: the new
    /// image of every block it changes (its write sequence one more) and its file changes.
    pub(super) fn entries(&self, batch: &RegistryBatch) -> Result<Vec<JournalEntry>> {
        let mut working = BTreeMap::new();
        let mut dirty = BTreeSet::new();
        for (table, change) in &batch.changes {
            validate_store_name(table)?;
            let id = match change {
                Change::Add(h) | Change::Update(h, _) | Change::Put(h) => h.logical_id,
                Change::Remove(id, _) | Change::Check(id, _) | Change::Delete(id) => *id,
            };
            let block = self.block_of(id);
            let found = self.locate(&mut working, table, id)?;
            let expected = match change {
                Change::Update(_, e) | Change::Remove(_, e) => *e,
                Change::Check(_, e) => Some(e.unwrap_or(0)),
                Change::Add(_) | Change::Put(_) | Change::Delete(_) => None,
            };
            if let Some(expected) = expected {
                let stored = match found {
                    Some((segment, slot)) => self
                        .load(&mut working, table, segment, block)?
                        .and_then(|b| b.slots.get(slot).copied().flatten())
                        .map(|h| h.version),
                    None => None,
                };
                let ok = match change {
                    Change::Check(_, None) => stored.is_none(),
                    _ => stored == Some(expected),
                };
                if !ok {
                    return Err(Error::Transaction(
                        sop_core::TransactionError::VersionMismatch {
                            table: table.clone(),
                            id,
                            expected,
                            found: stored.unwrap_or(0),
                        },
                    ));
                }
            }
            match (change, found) {
                (Change::Check(..), _) | (Change::Delete(_), None) => {}
                (Change::Put(h), Some((segment, slot))) => {
                    self.set_slot(&mut working, table, segment, block, slot, Some(*h))?;
                    dirty.insert((table.clone(), segment, block));
                }
                (Change::Put(h), None) => self.place(&mut working, &mut dirty, table, block, *h)?,
                (Change::Delete(_), Some((segment, slot))) => {
                    self.set_slot(&mut working, table, segment, block, slot, None)?;
                    dirty.insert((table.clone(), segment, block));
                }
                (Change::Add(_), Some(_)) => {
                    return Err(Error::Corruption(sop_core::CorruptionError::HandleExists {
                        table: table.clone(),
                        id,
                    }));
                }
                (Change::Update(..) | Change::Remove(..), None) => {
                    return Err(Error::Corruption(
                        sop_core::CorruptionError::HandleNotFound {
                            table: table.clone(),
                            id,
                        },
                    ));
                }
                (Change::Update(h, _), Some((segment, slot))) => {
                    self.set_slot(&mut working, table, segment, block, slot, Some(*h))?;
                    dirty.insert((table.clone(), segment, block));
                }
                (Change::Remove(..), Some((segment, slot))) => {
                    self.set_slot(&mut working, table, segment, block, slot, None)?;
                    dirty.insert((table.clone(), segment, block));
                }
                (Change::Add(h), None) => self.place(&mut working, &mut dirty, table, block, *h)?,
            }
        }
        let mut entries: Vec<JournalEntry> = dirty
            .into_iter()
            .filter_map(|key| {
                working.get_mut(&key).map(|b| {
                    // One more than the image it replaces, and never below the clock: a table
                    // removed and made again starts above every image of the old one that a
                    // journal may still hold.
                    b.seq = (b.seq + 1).max(now_micros());
                    JournalEntry::Block {
                        table: key.0,
                        segment: key.1,
                        block: key.2,
                        image: b.encode().to_vec(),
                    }
                })
            })
            .collect();
        for f in &batch.files {
            entries.push(match f {
                FileChange::Put(path, bytes) => {
                    check_rel_path(path)?;
                    JournalEntry::PutFile {
                        path: path.clone(),
                        bytes: bytes.clone(),
                    }
                }
                FileChange::Remove(path) => {
                    check_rel_path(path)?;
                    JournalEntry::RemoveFile { path: path.clone() }
                }
            });
        }
        Ok(entries)
    }

    /// Appends a batch's frame to the journal and syncs it: the batch's commit point.
    pub(super) fn append_journal(
        &self,
        journal: &mut Journal,
        entries: &[JournalEntry],
    ) -> Result<()> {
        let journal_path = self.journal_path.clone();
        let frame = seal(JOURNAL_FORMAT_VERSION, &codec::encode(&entries)?);
        let at = journal.end;
        let shared = self.shared.is_some();
        let mut new_end = at + frame.len() as u64;
        let mut write_journal = || -> std::io::Result<()> {
            if shared {
                new_end = super::shared_journal::append(journal.file.as_ref(), at, &frame)?;
                return Ok(());
            }
            if at == 0 {
                journal.file.set_len(0)?;
            }
            journal.file.write_at(&frame, at)?;
            journal.file.sync()
        };
        if let Err(e) = write_journal() {
            // The frame may or may not have reached the disk. Only a journal cut back to where
            // it was, and synced, proves the batch will never be replayed; otherwise its
            // outcome is in doubt until the journal is replayed (refusing every call until then).
            let cut = if shared {
                super::shared_journal::cut(journal.file.as_ref(), at)
            } else {
                journal.file.set_len(at).and_then(|()| journal.file.sync())
            };
            let err = Error::Storage(sop_core::StorageError::Io {
                op: "write",
                path: journal_path,
                source: e,
            });
            if cut.is_err() {
                *self.failed.lock() = Some(err.to_string());
                return Err(Error::Transaction(sop_core::TransactionError::Poisoned {
                    store: format!("registry at {}", self.base.display()),
                    cause: format!("the outcome of a batch is in doubt: {err}"),
                }));
            }
            return Err(err);
        }
        journal.end = new_end;
        Ok(())
    }

    /// Syncs everything applied in place since the last checkpoint and empties the journal
    /// (one sync per file touched, plus the journal's). A standalone registry does it by itself
    /// when the journal reaches `RegistryOptions::checkpoint_bytes`, before removing a table, and
    /// when dropped; call it before changing, outside batches, a file that batches also write.
    ///
    /// # Errors
    /// [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned) when a batch is not applied yet and cannot be; I/O errors (then the
    /// journal still holds every batch, and nothing is lost).
    pub fn checkpoint(&self) -> Result<()> {
        self.check_failed()?;
        let mut journal = self.journal.lock();
        self.checkpoint_locked(&mut journal)
    }

    pub(super) fn checkpoint_locked(&self, journal: &mut Journal) -> Result<()> {
        if self.shared.is_some() {
            return self.checkpoint_shared(journal, true);
        }
        if journal.end == 0 && journal.unsynced.is_empty() {
            return Ok(());
        }
        self.sync_unsynced(&mut journal.unsynced)?;
        let path = self.journal_path.clone();
        journal
            .file
            .set_len(0)
            .map_err(Error::io("truncate", &path))?;
        journal.file.sync().map_err(Error::io("sync", &path))?;
        journal.end = 0;
        Ok(())
    }

    /// Syncs the segment files, small files and folders changed in place.
    pub(super) fn sync_unsynced(&self, unsynced: &mut Unsynced) -> Result<()> {
        for (table, segment) in &unsynced.segments {
            let path = self.segment_path(table, *segment);
            match self.file(table, *segment, false)? {
                // Data only: a segment file's size never changes after it is made (and its
                // blocks are written ahead in shared mode), so no metadata waits on this.
                Some(f) => f.sync_data().map_err(Error::io("sync", &path))?,
                // Removed since (its table went): nothing to sync.
                None => continue,
            }
        }
        for path in &unsynced.files {
            match self.fs.open(path, false) {
                Ok(f) => f.sync().map_err(Error::io("sync", path))?,
                // Removed since (a transaction log cleaned up): nothing to sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("open", path)(e)),
            }
        }
        for dir in &unsynced.dirs {
            match self.fs.sync_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("sync folder", dir)(e)),
            }
        }
        *unsynced = Unsynced::default();
        Ok(())
    }

    /// Writes journal images in place (not synced: `unsynced` says what to sync); replaces and
    /// removes the journal's files. `newer_only` (recovering a clustered journal): an image is
    /// skipped when the block on disk has its write sequence or a later one (a journal whose
    /// emptying a power loss undid must not overwrite what other processes wrote since).
    pub(super) fn apply(
        &self,
        entries: &[JournalEntry],
        unsynced: &mut Unsynced,
        newer_only: bool,
    ) -> Result<()> {
        let mut writes = Vec::new();
        for e in entries {
            if let JournalEntry::Block {
                table,
                segment,
                block,
                image,
            } = e
            {
                if newer_only && !self.is_newer(table, *segment, *block, image)? {
                    continue;
                }
                // Created (and its folder) first; no file stays open for the batch's sake, so
                // a checkpoint over thousands of stores needs no descriptor each.
                drop(self.segment_for(table, *segment, image, &mut unsynced.dirs)?);
                unsynced.segments.insert((table.clone(), *segment));
                writes.push((table, *segment, *block, image));
            }
        }
        {
            // All blocks of the batch change at once for readers (they read under the shared
            // side of this lock), and the generation tells them something changed.
            let _alone = self.blocks.write();
            for (table, segment, block, image) in &writes {
                let path = || self.segment_path(table, *segment);
                let file = self.file(table, *segment, false)?.ok_or_else(|| {
                    Error::Storage(sop_core::StorageError::Io {
                        op: "open",
                        path: path(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    })
                })?;
                file.write_at(image, block * BLOCK_SIZE as u64)
                    .map_err(Error::io("write", path()))?;
            }
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        for e in entries {
            match e {
                JournalEntry::Block { .. } => {}
                JournalEntry::PutFile { path, bytes } => {
                    check_rel_path(path)?;
                    let full = self.base.join(path);
                    let dir = full.parent().unwrap_or(&self.base).to_path_buf();
                    if !self.fs.exists(&dir).map_err(Error::io("stat", &dir))? {
                        self.fs
                            .create_dir_all(&dir)
                            .map_err(Error::io("create folder", &dir))?;
                        if let Some(up) = dir.parent() {
                            unsynced.dirs.insert(up.to_path_buf());
                        }
                    }
                    // A temporary file renamed over the old one: readers see the old bytes or
                    // the new, never a mix. Synced at the checkpoint (the journal has the bytes).
                    replace_file_unsynced(self.fs.as_ref(), &full, bytes)
                        .map_err(Error::io("write", &full))?;
                    unsynced.files.insert(full);
                    unsynced.dirs.insert(dir);
                }
                JournalEntry::RemoveFile { path } => {
                    check_rel_path(path)?;
                    let full = self.base.join(path);
                    remove_file_if_present(self.fs.as_ref(), &full)
                        .map_err(Error::io("remove", &full))?;
                    unsynced.files.remove(&full);
                    unsynced
                        .dirs
                        .insert(full.parent().unwrap_or(&self.base).to_path_buf());
                }
            }
        }
        // Once more after the files: whoever read a file in between (the old one) and noted
        // the generation sees it move on and reads again (the store-info cache relies on it).
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Some(sh) = &self.shared {
            self.bump_shared_gen(sh)?;
        }
        Ok(())
    }

    /// Finishes a batch a crash interrupted (see the journal module). In shared mode call it
    /// under the cluster-wide gate; [`Registry::write`] also does it first when it finds the
    /// journal not empty.
    ///
    /// # Errors
    /// Corruption and I/O errors.
    pub fn recover_journal(&self) -> Result<()> {
        if let Some(sh) = &self.shared {
            return self.recover_dead(sh, false);
        }
        let mut journal = self.journal.lock();
        self.replay(&mut journal)
    }

    /// Applies every intact batch in the journal, in order (a torn last frame was never
    /// acknowledged: dropped), then checkpoints.
    fn replay(&self, journal: &mut Journal) -> Result<()> {
        let path = self.journal_path.clone();
        let size = journal.file.size().map_err(Error::io("stat", &path))?;
        if size == 0 {
            journal.end = 0;
            return self.checkpoint_locked(journal);
        }
        let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
        let n = journal
            .file
            .read_at(&mut bytes, 0)
            .map_err(Error::io("read", &path))?;
        bytes.truncate(n);
        let mut at = 0usize;
        while let Some(end) = codec::sealed_frame_end(&bytes, at) {
            let location = format!("{} offset {at}", path.display());
            // A frame that fails its checksum was torn before it was synced: nothing after it
            // was acknowledged.
            let Some(entries) = crate::formats::journal_entries(&bytes[at..end], &location)? else {
                break;
            };
            self.apply(&entries, &mut journal.unsynced, false)?;
            at = end;
        }
        journal.end = size;
        self.checkpoint_locked(journal)
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
