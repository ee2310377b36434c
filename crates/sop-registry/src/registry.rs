//! The registry: logical id -> handle, in segment files of 4 KiB blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use sop_core::codec::{self, seal};
use sop_core::vfs::{
    FileHandle, FileSystem, read_file, remove_dir_all_if_present, remove_file_if_present,
    write_file_atomic,
};
use sop_core::{Error, Handle, Result, Uuid, validate_store_name};

use crate::journal::{JOURNAL_FORMAT_VERSION, Journal, JournalEntry, Unsynced};
use crate::record::{BLOCK_SIZE, Block};

/// The fewest blocks per segment file (1 MiB segments).
pub const MIN_HASH_MOD: u32 = 250;
/// The most blocks per segment file (about 3 GiB segments).
pub const MAX_HASH_MOD: u32 = 750_000;
/// The most segment files of one table.
pub const MAX_SEGMENTS: u32 = 1000;
const CONF_FILE: &str = "registry.conf";
const JOURNAL_FILE: &str = "registry.journal";
const GEN_FILE: &str = "registry.gen";
/// How long a reader waits for another process to finish applying a batch.
const SHARED_APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// At most this many registry segment files are kept open.
const OPEN_FILES: usize = 64;
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
    /// Several processes open this registry at once (clustered mode). Then the caller must
    /// serialise [`Registry::write`] across processes (a cluster-wide gate), the journal is
    /// not replayed on open but by [`Registry::recover_journal`] under that gate (and by the
    /// next write), and the generation lives in a shared file (`registry.gen`) so readers in
    /// every process see when a batch is being applied.
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

/// One change in a [`RegistryBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Add(Handle),
    /// Replace a handle; with `Some(v)`, only if its stored version is `v`.
    Update(Handle, Option<u64>),
    /// Remove a handle; with `Some(v)`, only if its stored version is `v`.
    Remove(Uuid, Option<u64>),
    /// Write nothing, but fail the batch unless the handle is absent (`None`) or has this
    /// version (`Some`).
    Check(Uuid, Option<u64>),
    /// Add or replace a handle, whatever is there (checkpoints write final states).
    Put(Handle),
    /// Remove a handle if it is there.
    Delete(Uuid),
}

/// A file change riding in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FileChange {
    Put(String, Vec<u8>),
    Remove(String),
}

/// What [`Registry::scan_table`] found.
#[derive(Clone, Debug, Default)]
pub struct TableScan {
    /// Segment files read.
    pub segments: u32,
    /// Every handle in the intact blocks.
    pub handles: Vec<Handle>,
    /// The blocks that failed their checks, each with file, offset and what is wrong.
    pub bad_blocks: Vec<String>,
}

/// Handle changes over any number of tables, version checks, and small file replacements under
/// the registry folder, written atomically by [`Registry::write`]: all or nothing, also across a
/// crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryBatch {
    changes: Vec<(String, Change)>,
    files: Vec<FileChange>,
}

impl RegistryBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        RegistryBatch::default()
    }
    /// Adds a new handle to `table`.
    #[must_use]
    pub fn add(mut self, table: &str, handle: Handle) -> Self {
        self.changes.push((table.into(), Change::Add(handle)));
        self
    }
    /// Adds the handle to `table`, or replaces the one there: the handle's final state, as a
    /// checkpoint writes it (idempotent, so a replayed checkpoint is harmless).
    #[must_use]
    pub fn put(mut self, table: &str, handle: Handle) -> Self {
        self.changes.push((table.into(), Change::Put(handle)));
        self
    }
    /// Removes the handle of `id` from `table` if it is there.
    #[must_use]
    pub fn delete(mut self, table: &str, id: Uuid) -> Self {
        self.changes.push((table.into(), Change::Delete(id)));
        self
    }
    /// Replaces an existing handle of `table`.
    #[must_use]
    pub fn update(mut self, table: &str, handle: Handle) -> Self {
        self.changes
            .push((table.into(), Change::Update(handle, None)));
        self
    }
    /// Replaces a handle of `table` only if its stored version is still `expected`: the fence
    /// that keeps a writer from overwriting a change it did not see.
    #[must_use]
    pub fn update_if(mut self, table: &str, handle: Handle, expected: u64) -> Self {
        self.changes
            .push((table.into(), Change::Update(handle, Some(expected))));
        self
    }
    /// Removes a handle from `table`.
    #[must_use]
    pub fn remove(mut self, table: &str, id: Uuid) -> Self {
        self.changes.push((table.into(), Change::Remove(id, None)));
        self
    }
    /// Removes a handle from `table` only if its stored version is still `expected`.
    #[must_use]
    pub fn remove_if(mut self, table: &str, id: Uuid, expected: u64) -> Self {
        self.changes
            .push((table.into(), Change::Remove(id, Some(expected))));
        self
    }
    /// Makes the batch fail unless the handle has version `expected` (`None`: unless it is
    /// absent). Writes nothing: it validates what a transaction read.
    #[must_use]
    pub fn check(mut self, table: &str, id: Uuid, expected: Option<u64>) -> Self {
        self.changes
            .push((table.into(), Change::Check(id, expected)));
        self
    }
    /// Replaces (or creates) the file at `path`, relative to the registry folder.
    #[must_use]
    pub fn put_file(mut self, path: &str, bytes: Vec<u8>) -> Self {
        self.files.push(FileChange::Put(path.into(), bytes));
        self
    }
    /// Removes the file at `path`, relative to the registry folder (absent is fine).
    #[must_use]
    pub fn remove_file(mut self, path: &str) -> Self {
        self.files.push(FileChange::Remove(path.into()));
        self
    }
    /// Whether the batch has no changes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.files.is_empty()
    }
}

/// A relative path of plain components, so a batch cannot write outside the registry folder.
pub(crate) fn check_rel_path(path: &str) -> Result<()> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            what: "registry batch",
            reason: format!("{path:?} is not a plain relative path"),
        })
    }
}

type BlockKey = (String, u32, u64);

/// The on-disk registry: for each table, handles keyed by logical id, hashed to a block
/// (`high 64 bits % hash_mod`) and probed through segment files `<table>/<table>-<n>.reg`.
///
/// Writes are batched and atomic ([`Registry::write`]); reads verify every block's CRC32C and
/// fail with [`Error::Corruption`] naming the file and offset. One process owns a registry
/// folder at a time (the transaction layer enforces it); within the process it is safe to share.
pub struct Registry {
    fs: Arc<dyn FileSystem>,
    base: PathBuf,
    hash_mod: u32,
    files: RwLock<HashMap<(String, u32), Arc<dyn FileHandle>>>,
    journal: parking_lot::Mutex<Journal>,
    /// `RegistryOptions::checkpoint_bytes` (0 in shared mode).
    checkpoint_bytes: u64,
    /// Block reads share it; writing blocks in place takes it alone, so a reader never sees a
    /// block half overwritten (a 4 KiB `pwrite` is not atomic against a concurrent `pread`).
    blocks: RwLock<()>,
    /// Bumped each time a batch's blocks become visible (and when a table is removed).
    generation: std::sync::atomic::AtomicU64,
    /// Clustered mode: the generation shared by every process (a seqlock: odd while a batch is
    /// being applied).
    shared_gen: Option<Box<dyn FileHandle>>,
    /// Clustered mode on a real folder: an OS lock held while a batch is written, so two
    /// processes of one machine never write the journal at once even if the cluster gate was
    /// lost (a Redis restart under a commit).
    os_lock: Option<std::fs::File>,
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
    /// [`Error::InvalidConfig`] for a hash mod out of range or different from the stored one;
    /// corruption and I/O errors.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        base: impl Into<PathBuf>,
        options: RegistryOptions,
    ) -> Result<Self> {
        let base = base.into();
        fs.create_dir_all(&base)
            .map_err(Error::io("create folder", &base))?;
        let hash_mod = Self::settle_hash_mod(fs.as_ref(), &base, options.hash_mod)?;
        let journal_path = base.join(JOURNAL_FILE);
        let existed = fs
            .exists(&journal_path)
            .map_err(Error::io("stat", &journal_path))?;
        let journal = fs
            .open(&journal_path, true)
            .map_err(Error::io("open", &journal_path))?;
        if !existed {
            journal.sync().map_err(Error::io("sync", &journal_path))?;
            fs.sync_dir(&base)
                .map_err(Error::io("sync folder", &base))?;
        }
        let shared_gen = if options.shared {
            let p = base.join(GEN_FILE);
            let f = fs.open(&p, true).map_err(Error::io("open", &p))?;
            if f.size().map_err(Error::io("stat", &p))? < 8 {
                f.write_at(&0u64.to_le_bytes(), 0)
                    .map_err(Error::io("write", &p))?;
            }
            Some(f)
        } else {
            None
        };
        let os_lock = if options.shared && base.is_absolute() {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(base.join("registry.lock"))
                .ok()
        } else {
            None
        };
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
            checkpoint_bytes: if options.shared {
                0
            } else {
                options.checkpoint_bytes
            },
            blocks: RwLock::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
            shared_gen,
            os_lock,
            failed: parking_lot::Mutex::new(None),
        };
        if !options.shared {
            registry.recover_journal()?;
        }
        Ok(registry)
    }

    fn settle_hash_mod(fs: &dyn FileSystem, base: &Path, asked: Option<u32>) -> Result<u32> {
        if let Some(m) = asked
            && !(MIN_HASH_MOD..=MAX_HASH_MOD).contains(&m)
        {
            return Err(Error::InvalidConfig {
                what: "registry",
                reason: format!("hash mod {m} is out of range {MIN_HASH_MOD}..={MAX_HASH_MOD}"),
            });
        }
        let path = base.join(CONF_FILE);
        match read_file(fs, &path) {
            Ok(bytes) => {
                let stored = crate::formats::registry_conf(&bytes, &path.display())?;
                match asked {
                    Some(m) if m != stored => Err(Error::InvalidConfig {
                        what: "registry",
                        reason: format!(
                            "hash mod {m} was asked but the registry at {} was created with {stored}; it cannot change",
                            base.display()
                        ),
                    }),
                    _ => Ok(stored),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A registry that has data but lost its configuration must not be re-created
                // with defaults: every handle would be looked for in the wrong block.
                for dir in [TABLES_DIR, "stores"] {
                    let p = base.join(dir);
                    if fs.list_dir(&p).is_ok_and(|names| !names.is_empty()) {
                        return Err(Error::Corruption {
                            what: "registry configuration",
                            location: path.display().to_string(),
                            detail: format!(
                                "missing, but {} holds data: restore the file (its hash mod cannot be guessed safely)",
                                p.display()
                            ),
                        });
                    }
                }
                let m = asked.unwrap_or(MIN_HASH_MOD);
                let bytes = seal(crate::formats::CONF_FORMAT_VERSION, &codec::encode(&m)?);
                write_file_atomic(fs, &path, &bytes).map_err(Error::io("write", &path))?;
                Ok(m)
            }
            Err(e) => Err(Error::Io {
                op: "read",
                path,
                source: e,
            }),
        }
    }

    /// Makes sure every committed batch is applied (finishing one an I/O error interrupted,
    /// from the journal) before the caller reads files the registry writes in batches, such as
    /// store info.
    ///
    /// # Errors
    /// [`Error::Poisoned`] when the journal still cannot be applied.
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
        if self.recover_journal().is_ok() {
            *self.failed.lock() = None;
            return Ok(());
        }
        Err(Error::Poisoned {
            store: format!("registry at {}", self.base.display()),
            cause,
        })
    }

    /// Blocks per segment file.
    #[must_use]
    pub fn hash_mod(&self) -> u32 {
        self.hash_mod
    }

    fn table_dir(&self, table: &str) -> PathBuf {
        self.base.join(TABLES_DIR).join(table)
    }

    fn segment_path(&self, table: &str, segment: u32) -> PathBuf {
        self.table_dir(table).join(format!("{table}-{segment}.reg"))
    }

    fn block_of(&self, id: Uuid) -> u64 {
        id.high_low().0 % u64::from(self.hash_mod)
    }

    /// The segment's open file, or `None` when the segment does not exist.
    fn file(&self, table: &str, segment: u32, create: bool) -> Result<Option<Arc<dyn FileHandle>>> {
        let key = (table.to_string(), segment);
        if let Some(f) = self.files.read().get(&key) {
            return Ok(Some(Arc::clone(f)));
        }
        let path = self.segment_path(table, segment);
        let file: Arc<dyn FileHandle> = match self.fs.open(&path, create) {
            Ok(f) => Arc::from(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    op: "open",
                    path,
                    source: e,
                });
            }
        };
        let size = u64::from(self.hash_mod) * BLOCK_SIZE as u64;
        if create && file.size().map_err(Error::io("stat", &path))? < size {
            file.set_len(size).map_err(Error::io("extend", &path))?;
        }
        let mut files = self.files.write();
        if files.len() >= OPEN_FILES {
            // Bounded: thousands of stores never hold a descriptor each.
            files.clear();
        }
        files.insert(key, Arc::clone(&file));
        Ok(Some(file))
    }

    /// Reads and checks a block; `None` when its segment does not exist.
    fn read_block(&self, table: &str, segment: u32, block: u64) -> Result<Option<Block>> {
        let Some(file) = self.file(table, segment, false)? else {
            return Ok(None);
        };
        let mut buf = [0u8; BLOCK_SIZE];
        let offset = block * BLOCK_SIZE as u64;
        let path = || self.segment_path(table, segment);
        // A short read is the unwritten (sparse) end of a segment: zeros.
        {
            let _shared = self.blocks.read();
            file.read_at(&mut buf, offset).map_err(|e| Error::Io {
                op: "read",
                path: path(),
                source: e,
            })?;
        }
        let decoded = Block::decode(&buf);
        if decoded.is_err()
            && let Some(f) = &self.shared_gen
        {
            // Another process may be overwriting this block right now: read again once its
            // batch is applied. Only a block that stays bad is corrupt.
            let start = std::time::Instant::now();
            while start.elapsed() < SHARED_APPLY_WAIT {
                std::thread::sleep(std::time::Duration::from_millis(1));
                if !read_gen(f.as_ref()).is_multiple_of(2) {
                    continue;
                }
                file.read_at(&mut buf, offset).map_err(|e| Error::Io {
                    op: "read",
                    path: path(),
                    source: e,
                })?;
                if let Ok(b) = Block::decode(&buf) {
                    return Ok(Some(b));
                }
            }
        }
        decoded.map(Some).map_err(|detail| Error::Corruption {
            what: "registry block",
            location: format!("{} offset {offset}", path().display()),
            detail,
        })
    }

    /// Finds the handle's block and slot, looking in `working` before the disk.
    fn locate(
        &self,
        working: &mut BTreeMap<BlockKey, Block>,
        table: &str,
        id: Uuid,
    ) -> Result<Option<(u32, usize)>> {
        let block = self.block_of(id);
        for segment in 1..=MAX_SEGMENTS {
            let Some(b) = self.load(working, table, segment, block)? else {
                return Ok(None);
            };
            if let Some(slot) = b.find(id) {
                return Ok(Some((segment, slot)));
            }
            if !b.overflow {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// A block from `working`, else from disk into `working`; `None` when its segment is absent.
    fn load<'w>(
        &self,
        working: &'w mut BTreeMap<BlockKey, Block>,
        table: &str,
        segment: u32,
        block: u64,
    ) -> Result<Option<&'w mut Block>> {
        let key = (table.to_string(), segment, block);
        if !working.contains_key(&key) {
            let Some(b) = self.read_block(table, segment, block)? else {
                return Ok(None);
            };
            working.insert(key.clone(), b);
        }
        Ok(working.get_mut(&key))
    }

    /// The handles of `ids` in `table` that exist, keyed by logical id.
    ///
    /// # Errors
    /// Corruption and I/O errors.
    pub fn get(&self, table: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Handle>> {
        self.check_failed()?;
        validate_store_name(table)?;
        let mut seen = BTreeMap::new();
        let mut out = HashMap::with_capacity(ids.len());
        for &id in ids {
            if let Some((segment, slot)) = self.locate(&mut seen, table, id)? {
                let key = (table.to_string(), segment, self.block_of(id));
                if let Some(Some(h)) = seen.get(&key).and_then(|b| b.slots.get(slot)) {
                    out.insert(id, *h);
                }
            }
        }
        Ok(out)
    }

    /// The handle of `id` in `table`, if any.
    ///
    /// # Errors
    /// Corruption and I/O errors.
    pub fn get_one(&self, table: &str, id: Uuid) -> Result<Option<Handle>> {
        Ok(self.get(table, &[id])?.remove(&id))
    }

    /// Applies a batch atomically and durably: after a crash at any point, the next
    /// [`Registry::open`] sees all of it or none of it. Costs one journal sync plus one sync per
    /// segment file touched.
    ///
    /// `Ok` means the batch is durable (if applying it in place failed, the registry finishes it
    /// from the journal before serving the next call). An error other than
    /// [`Error::Poisoned`] means it was not written and never will be; `Poisoned` means its
    /// outcome is in doubt until the journal is replayed: do not undo anything it depends on.
    ///
    /// # Errors
    /// [`Error::HandleExists`] / [`Error::HandleNotFound`] (nothing is written then), corruption
    /// and I/O errors.
    pub fn write(&self, batch: &RegistryBatch) -> Result<()> {
        self.check_failed()?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut journal = self.journal.lock();
        let journal = &mut *journal;
        let _os = OsLockGuard::take(self.os_lock.as_ref())?;
        // Shared mode: a batch another process synced but did not finish applying (it died)
        // comes first. (In lazy mode the journal is never empty for that reason.)
        let journal_path = self.base.join(JOURNAL_FILE);
        if self.checkpoint_bytes == 0
            && journal
                .file
                .size()
                .map_err(Error::io("stat", &journal_path))?
                > 0
        {
            self.replay(journal)?;
        }
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
                    return Err(Error::VersionMismatch {
                        table: table.clone(),
                        id,
                        expected,
                        found: stored.unwrap_or(0),
                    });
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
                    return Err(Error::HandleExists {
                        table: table.clone(),
                        id,
                    });
                }
                (Change::Update(..) | Change::Remove(..), None) => {
                    return Err(Error::HandleNotFound {
                        table: table.clone(),
                        id,
                    });
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
                working.get(&key).map(|b| JournalEntry::Block {
                    table: key.0,
                    segment: key.1,
                    block: key.2,
                    image: b.encode().to_vec(),
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
        if entries.is_empty() {
            // Only checks: validated under the journal lock, nothing to write.
            return Ok(());
        }
        let frame = seal(JOURNAL_FORMAT_VERSION, &codec::encode(&entries)?);
        let at = journal.end;
        let write_journal = || -> std::io::Result<()> {
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
            let cut = journal.file.set_len(at).and_then(|()| journal.file.sync());
            let err = Error::Io {
                op: "write",
                path: journal_path,
                source: e,
            };
            if cut.is_err() {
                *self.failed.lock() = Some(err.to_string());
                return Err(Error::Poisoned {
                    store: format!("registry at {}", self.base.display()),
                    cause: format!("the outcome of a batch is in doubt: {err}"),
                });
            }
            return Err(err);
        }
        journal.end = at + frame.len() as u64;
        // From here the batch is committed: the journal is durable and will be replayed.
        let lazy = self.checkpoint_bytes > 0;
        let applied = self.apply(&entries, &mut journal.unsynced).and_then(|()| {
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

    /// Syncs everything applied in place since the last checkpoint and empties the journal
    /// (one sync per file touched, plus the journal's). A standalone registry does it by itself
    /// when the journal reaches `RegistryOptions::checkpoint_bytes`, before removing a table, and
    /// when dropped; call it before changing, outside batches, a file that batches also write.
    ///
    /// # Errors
    /// [`Error::Poisoned`] when a batch is not applied yet and cannot be; I/O errors (then the
    /// journal still holds every batch, and nothing is lost).
    pub fn checkpoint(&self) -> Result<()> {
        self.check_failed()?;
        let mut journal = self.journal.lock();
        self.checkpoint_locked(&mut journal)
    }

    fn checkpoint_locked(&self, journal: &mut Journal) -> Result<()> {
        if journal.end == 0 && journal.unsynced.is_empty() {
            return Ok(());
        }
        self.sync_unsynced(&mut journal.unsynced)?;
        let path = self.base.join(JOURNAL_FILE);
        journal
            .file
            .set_len(0)
            .map_err(Error::io("truncate", &path))?;
        journal.file.sync().map_err(Error::io("sync", &path))?;
        journal.end = 0;
        Ok(())
    }

    /// Syncs the segment files, small files and folders changed in place.
    fn sync_unsynced(&self, unsynced: &mut Unsynced) -> Result<()> {
        for (table, segment) in &unsynced.segments {
            let path = self.segment_path(table, *segment);
            match self.file(table, *segment, false)? {
                Some(f) => f.sync().map_err(Error::io("sync", &path))?,
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

    /// Reads a small file under the registry folder (one a batch put there).
    ///
    /// # Errors
    /// I/O errors; a missing file is `Ok(None)`.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        check_rel_path(path)?;
        let full = self.base.join(path);
        match read_file(self.fs.as_ref(), &full) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                op: "read",
                path: full,
                source: e,
            }),
        }
    }

    /// The names in a folder under the registry folder, sorted; a missing folder is empty.
    ///
    /// # Errors
    /// I/O errors.
    pub fn list_files(&self, dir: &str) -> Result<Vec<String>> {
        check_rel_path(dir)?;
        let full = self.base.join(dir);
        match self.fs.list_dir(&full) {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Io {
                op: "list",
                path: full,
                source: e,
            }),
        }
    }

    /// Appends `bytes` to a file under the registry folder and syncs it (and its folder when it
    /// is new): for a transaction's log, which grows by one record per step.
    ///
    /// # Errors
    /// I/O errors.
    pub fn append_file_durable(&self, path: &str, bytes: &[u8]) -> Result<()> {
        check_rel_path(path)?;
        let full = self.base.join(path);
        let dir = full.parent().unwrap_or(&self.base).to_path_buf();
        if !self.fs.exists(&dir).map_err(Error::io("stat", &dir))? {
            self.fs
                .create_dir_all(&dir)
                .map_err(Error::io("create folder", &dir))?;
            self.fs
                .sync_dir(&self.base)
                .map_err(Error::io("sync folder", &self.base))?;
        }
        let f = self
            .fs
            .open(&full, true)
            .map_err(Error::io("open", &full))?;
        let end = f.size().map_err(Error::io("stat", &full))?;
        f.write_at(bytes, end).map_err(Error::io("write", &full))?;
        f.sync().map_err(Error::io("sync", &full))?;
        // An empty file was just created (logs are never left empty): its name needs a sync.
        if end == 0 {
            self.fs
                .sync_dir(&dir)
                .map_err(Error::io("sync folder", &dir))?;
        }
        Ok(())
    }

    /// Removes a small file under the registry folder without a sync: for files whose
    /// reappearance after a crash is harmless (a finished transaction's log, redone idempotently).
    ///
    /// # Errors
    /// I/O errors other than not-found.
    pub fn remove_file_lazy(&self, path: &str) -> Result<()> {
        check_rel_path(path)?;
        let full = self.base.join(path);
        remove_file_if_present(self.fs.as_ref(), &full).map_err(Error::io("remove", &full))
    }

    /// A number that changes whenever committed handles change (a batch applied, a table
    /// removed): bumped when a batch's blocks become visible and again after its files are
    /// replaced. A reader that saw the same generation before and after its reads saw one state.
    #[must_use]
    pub fn generation(&self) -> u64 {
        let Some(f) = &self.shared_gen else {
            return self.generation.load(std::sync::atomic::Ordering::Acquire);
        };
        let start = std::time::Instant::now();
        loop {
            let g = read_gen(f.as_ref());
            // Odd: another process is applying a batch; wait for it (a dead one is finished by
            // the next writer, so this wait is bounded).
            if g.is_multiple_of(2) || start.elapsed() > SHARED_APPLY_WAIT {
                return g;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The registry folder.
    #[must_use]
    pub fn base(&self) -> &Path {
        &self.base
    }

    fn set_slot(
        &self,
        working: &mut BTreeMap<BlockKey, Block>,
        table: &str,
        segment: u32,
        block: u64,
        slot: usize,
        value: Option<Handle>,
    ) -> Result<()> {
        if let Some(Some(b)) = self
            .load(working, table, segment, block)?
            .map(|b| b.slots.get_mut(slot))
        {
            *b = value;
        }
        Ok(())
    }

    /// Puts a new handle in the first block of its chain with room, marking full blocks as
    /// overflowing and starting a new segment when every existing one is full there.
    fn place(
        &self,
        working: &mut BTreeMap<BlockKey, Block>,
        dirty: &mut BTreeSet<BlockKey>,
        table: &str,
        block: u64,
        h: Handle,
    ) -> Result<()> {
        for segment in 1..=MAX_SEGMENTS {
            let key = (table.to_string(), segment, block);
            if self.load(working, table, segment, block)?.is_none() {
                working.insert(key.clone(), Block::empty());
            }
            let Some(b) = working.get_mut(&key) else {
                continue;
            };
            dirty.insert(key);
            if let Some(slot) = b.free_slot(h.logical_id) {
                b.slots[slot] = Some(h);
                return Ok(());
            }
            b.overflow = true;
        }
        Err(Error::InvalidConfig {
            what: "registry",
            reason: format!(
                "table {table:?} needs more than {MAX_SEGMENTS} segments at block {block}; create the database with a larger hash mod"
            ),
        })
    }

    /// Writes journal images in place and syncs them (and any new folder or file); replaces and
    /// removes the journal's files.
    fn apply(&self, entries: &[JournalEntry], unsynced: &mut Unsynced) -> Result<()> {
        let mut writes = Vec::new();
        for e in entries {
            if let JournalEntry::Block {
                table,
                segment,
                block,
                image,
            } = e
            {
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
                let file = self
                    .file(table, *segment, false)?
                    .ok_or_else(|| Error::Io {
                        op: "open",
                        path: path(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
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
        Ok(())
    }

    /// The segment file a block image goes to, created (with its folder) when new.
    fn segment_for(
        &self,
        table: &str,
        segment: u32,
        image: &[u8],
        new_dirs: &mut BTreeSet<PathBuf>,
    ) -> Result<Arc<dyn FileHandle>> {
        validate_store_name(table)?;
        let path = self.segment_path(table, segment);
        if image.len() != BLOCK_SIZE {
            return Err(Error::Corruption {
                what: "registry journal",
                location: path.display().to_string(),
                detail: format!("a block image of {} bytes", image.len()),
            });
        }
        let file = match self.file(table, segment, false)? {
            Some(f) => f,
            None => {
                let dir = self.table_dir(table);
                if !self.fs.exists(&dir).map_err(Error::io("stat", &dir))? {
                    self.fs
                        .create_dir_all(&dir)
                        .map_err(Error::io("create folder", &dir))?;
                    new_dirs.insert(self.base.join(TABLES_DIR));
                    new_dirs.insert(self.base.clone());
                }
                new_dirs.insert(dir);
                self.file(table, segment, true)?.ok_or_else(|| Error::Io {
                    op: "create",
                    path: path.clone(),
                    source: std::io::ErrorKind::NotFound.into(),
                })?
            }
        };
        Ok(file)
    }

    /// Finishes a batch a crash interrupted (see the journal module). In shared mode call it
    /// under the cluster-wide gate; [`Registry::write`] also does it first when it finds the
    /// journal not empty.
    ///
    /// # Errors
    /// Corruption and I/O errors.
    pub fn recover_journal(&self) -> Result<()> {
        let mut journal = self.journal.lock();
        let _os = OsLockGuard::take(self.os_lock.as_ref())?;
        self.replay(&mut journal)
    }

    /// Applies every intact batch in the journal, in order (a torn last frame was never
    /// acknowledged: dropped), then checkpoints.
    fn replay(&self, journal: &mut Journal) -> Result<()> {
        let path = self.base.join(JOURNAL_FILE);
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
            self.apply(&entries, &mut journal.unsynced)?;
            at = end;
        }
        journal.end = size;
        self.checkpoint_locked(journal)
    }

    /// The tables that have a folder under `tables/`.
    ///
    /// # Errors
    /// I/O errors other than the folder missing.
    pub fn tables(&self) -> Result<Vec<String>> {
        let dir = self.base.join(TABLES_DIR);
        match self.fs.list_dir(&dir) {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("list", &dir)(e)),
        }
    }

    /// Reads every block of every segment of `table`, checking each one's checksum and format,
    /// and returns every handle found, with the blocks that failed. For verification: it reads
    /// the whole table.
    ///
    /// # Errors
    /// I/O errors; a bad table name.
    pub fn scan_table(&self, table: &str) -> Result<TableScan> {
        validate_store_name(table)?;
        self.ensure_current()?;
        let mut scan = TableScan::default();
        for segment in 1..=MAX_SEGMENTS {
            let Some(file) = self.file(table, segment, false)? else {
                break;
            };
            let path = self.segment_path(table, segment);
            scan.segments += 1;
            let mut buf = vec![0u8; BLOCK_SIZE];
            for block in 0..u64::from(self.hash_mod) {
                let offset = block * BLOCK_SIZE as u64;
                buf.fill(0);
                {
                    let _shared = self.blocks.read();
                    file.read_at(&mut buf, offset)
                        .map_err(Error::io("read", &path))?;
                }
                let at = format!("{} offset {offset}", path.display());
                match crate::formats::block(&buf, &at) {
                    Ok(handles) => scan.handles.extend(handles),
                    Err(e) => scan.bad_blocks.push(e.to_string()),
                }
            }
        }
        Ok(scan)
    }

    /// Removes a table and all its handles.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_table(&self, table: &str) -> Result<()> {
        validate_store_name(table)?;
        self.check_failed()?;
        let mut journal = self.journal.lock();
        // Batches in the journal must never be replayed over the removal.
        self.checkpoint_locked(&mut journal)?;
        let _alone = self.blocks.write();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.files.write().retain(|(t, _), _| t != table);
        let dir = self.table_dir(table);
        remove_dir_all_if_present(self.fs.as_ref(), &dir).map_err(Error::io("remove", &dir))?;
        self.fs
            .sync_dir(&self.base.join(TABLES_DIR))
            .map_err(Error::io("sync folder", &self.base))
    }
}

impl Drop for Registry {
    /// A clean close leaves an empty journal (best effort: a journal left behind is replayed
    /// on the next open). Never while a batch is not applied: that needs a replay first.
    fn drop(&mut self) {
        if self.failed.lock().is_none() {
            let mut journal = self.journal.lock();
            let _ = self.checkpoint_locked(&mut journal);
        }
    }
}

/// Writes `data` to a temporary file and renames it over `path`, without syncing: atomic for
/// readers, durable only once synced (a checkpoint).
fn replace_file_unsynced(fs: &dyn FileSystem, path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = sop_core::vfs::tmp_path(path);
    let written = (|| {
        let file = fs.open(&tmp, true)?;
        file.set_len(0)?;
        file.write_at(data, 0)?;
        drop(file);
        fs.rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs.remove_file(&tmp);
    }
    written
}

/// The shared generation (0 when the file is short or unreadable).
fn read_gen(f: &dyn FileHandle) -> u64 {
    let mut b = [0u8; 8];
    match f.read_at(&mut b, 0) {
        Ok(8) => u64::from_le_bytes(b),
        _ => 0,
    }
}

/// Holds the OS lock of a shared registry for one batch.
struct OsLockGuard<'a>(Option<&'a std::fs::File>);

impl<'a> OsLockGuard<'a> {
    fn take(file: Option<&'a std::fs::File>) -> Result<Self> {
        if let Some(f) = file {
            f.lock().map_err(|e| Error::Io {
                op: "lock",
                path: std::path::PathBuf::from("registry.lock"),
                source: e,
            })?;
        }
        Ok(OsLockGuard(file))
    }
}

impl Drop for OsLockGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0 {
            let _ = f.unlock();
        }
    }
}
