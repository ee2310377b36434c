//! Locks that several processes take on parts of one shared registry (clustered mode).
//!
//! On a real folder they are Linux *open file description* byte-range locks (`F_OFD_SETLK`)
//! on single bytes of `registry.lock`:
//!
//! ```text
//! byte 0                          the generation file's lock (to cut it)
//! byte 1                          recovery: held shared by every batch, alone by an open that
//!                                 finishes the journals of registries that are gone
//! bytes 2^20 .. 2^20 + 4096       journal slots: a live registry holds its slot's byte
//! bytes 2^32 ..                   a registry block (table, block number) or a small file,
//!                                 hashed (CRC32C, two seeds) into 2^40 bytes
//! ```
//!
//! Why these locks: they belong to one open file description, so (a) two registries in one
//! process, each with its own, exclude each other like two processes do, and (b) when a
//! process dies, the kernel drops every lock of the description in one step, so whoever gets
//! a dead writer's block lock next also finds its slot free (and recovers its journal). They
//! never expire: a stopped process keeps its locks, and others wait (Redis leases, not these,
//! are what time out). A hash collision only makes two unrelated keys wait for each other.
//!
//! On a virtual file system (tests) the same locks live in this process's memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};
use sop_core::{Error, Result};

/// The byte of the generation file's lock (taken only to cut it).
const GEN_KEY: u64 = 0;
/// The recovery byte: every batch holds it shared; an open holds it alone while it finishes the
/// journals of registries that are gone (after a power cut every batch of those may be missing
/// from the blocks, not only the last one, so nothing may commit meanwhile).
pub(super) const RECOVERY_KEY: u64 = 1;
/// The file counting table removals.
const REMOVALS_FILE: &str = "registry.removals";
/// The generation file is cut back to empty past this size.
const GEN_WRAP: u64 = 64 << 20;
/// The first journal slot's byte.
const SLOT_BASE: u64 = 1 << 20;
/// Journal slots (registries open at once on one folder).
pub(super) const MAX_SLOTS: u32 = 4096;
/// Where hashed keys start.
const KEY_BASE: u64 = 1 << 32;

/// The lock byte of a key (a block: `b"B" table 0 block`; a file: `b"F" path`).
pub(super) fn key_of(bytes: &[u8]) -> u64 {
    let high = u64::from(crc32c::crc32c(bytes));
    let low = u64::from(crc32c::crc32c_append(0x9e37_79b9, bytes));
    KEY_BASE + (((high << 32) | low) & ((1 << 40) - 1))
}

/// The lock byte of a registry block.
pub(super) fn block_key(table: &str, block: u64) -> u64 {
    let mut b = Vec::with_capacity(table.len() + 10);
    b.push(b'B');
    b.extend_from_slice(table.as_bytes());
    b.push(0);
    b.extend_from_slice(&block.to_le_bytes());
    key_of(&b)
}

/// The lock byte of a small file (relative path).
pub(super) fn file_key(path: &str) -> u64 {
    let mut b = Vec::with_capacity(path.len() + 1);
    b.push(b'F');
    b.extend_from_slice(path.as_bytes());
    key_of(&b)
}

fn slot_byte(slot: u32) -> u64 {
    SLOT_BASE + u64::from(slot)
}

/// The locks of one registry on its folder.
pub(super) enum Locks {
    Os(OsLocks),
    Mem(MemLocks),
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Locks::Os(_) => "Locks::Os",
            Locks::Mem(_) => "Locks::Mem",
        })
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(op, path)(e)
}

impl Locks {
    /// Locks for the registry folder `base` of `fs`: OS locks when `fs` is the machine's own
    /// file system, else in memory (only registries of this process share them).
    pub(super) fn open(fs: &dyn sop_core::vfs::FileSystem, base: &Path) -> Result<Self> {
        if let Some(native) = fs.native_path(base) {
            let path = native.join("registry.lock");
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(&path)
            };
            let writer = open().map_err(io_err(&path, "open"))?;
            let gen_path = native.join(super::shared::GEN_FILE);
            let generation = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&gen_path)
                .map_err(io_err(&gen_path, "open"))?;
            let rem_path = native.join(REMOVALS_FILE);
            let removals = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&rem_path)
                .map_err(io_err(&rem_path, "open"))?;
            Ok(Locks::Os(OsLocks {
                writer,
                readers: Mutex::new(Vec::new()),
                path,
                generation,
                gen_path,
                removals,
                rem_path,
            }))
        } else {
            static TABLES: OnceLock<Mutex<HashMap<PathBuf, Arc<MemTable>>>> = OnceLock::new();
            let table = TABLES
                .get_or_init(|| Mutex::new(HashMap::new()))
                .lock()
                .entry(base.to_path_buf())
                .or_default()
                .clone();
            static OWNERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            Ok(Locks::Mem(MemLocks {
                table,
                owner: OWNERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            }))
        }
    }

    /// Claims the first free journal slot (held until this registry is dropped).
    pub(super) fn claim_slot(&self) -> Result<u32> {
        for slot in 0..MAX_SLOTS {
            if self.try_slot(slot)? {
                return Ok(slot);
            }
        }
        Err(Error::Usage(sop_core::UsageError::InvalidConfig {
            what: "clustered mode",
            reason: format!("more than {MAX_SLOTS} registries are open on this folder at once"),
        }))
    }

    /// Takes slot `slot` if nobody holds it (its registry is gone, or it is free).
    pub(super) fn try_slot(&self, slot: u32) -> Result<bool> {
        match self {
            Locks::Os(os) => os.lock(&os.writer, slot_byte(slot), true, false),
            Locks::Mem(m) => Ok(m.lock(slot_byte(slot), true, false)),
        }
    }

    /// Lets slot `slot` go (after recovering a dead registry's journal).
    pub(super) fn release_slot(&self, slot: u32) {
        match self {
            Locks::Os(os) => os.unlock(&os.writer, slot_byte(slot), 1),
            Locks::Mem(m) => m.unlock(slot_byte(slot)),
        }
    }

    /// Takes `keys` (sorted, distinct) exclusively, waiting for each in order: deadlock-free,
    /// since every registry takes its keys in ascending order.
    pub(super) fn lock_keys(&self, keys: &[u64]) -> Result<KeysGuard<'_>> {
        let all: Vec<(u64, bool)> = keys.iter().map(|k| (*k, true)).collect();
        self.lock_mixed(&all)
    }

    /// Takes `keys` (sorted by key, distinct), each exclusively (`true`) or shared, in order.
    pub(super) fn lock_mixed(&self, keys: &[(u64, bool)]) -> Result<KeysGuard<'_>> {
        let mut guard = KeysGuard {
            locks: self,
            keys: Vec::with_capacity(keys.len()),
            shared: Vec::new(),
        };
        for &(k, exclusive) in keys {
            match self {
                Locks::Os(os) => {
                    os.lock(&os.writer, k, exclusive, true)?;
                }
                Locks::Mem(m) if exclusive => {
                    m.lock(k, true, true);
                }
                Locks::Mem(m) => m.lock_shared(k),
            }
            if exclusive {
                guard.keys.push(k);
            } else {
                guard.shared.push(k);
            }
        }
        Ok(guard)
    }

    /// Runs `f` holding `key` shared (a block being read: never while a writer has it).
    pub(super) fn shared<T>(&self, key: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        match self {
            Locks::Os(os) => {
                // A description of its own: a read lock through the writer's would turn its
                // write lock into a read lock, and two readers sharing one would unlock each
                // other.
                let file = match os.readers.lock().pop() {
                    Some(f) => f,
                    None => std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&os.path)
                        .map_err(io_err(&os.path, "open"))?,
                };
                os.lock(&file, key, false, true)?;
                let r = f();
                os.unlock(&file, key, 1);
                os.readers.lock().push(file);
                r
            }
            Locks::Mem(m) => {
                m.lock_shared(key);
                let r = f();
                m.unlock_shared(key);
                r
            }
        }
    }

    /// The shared generation: a number that moves whenever a batch is applied anywhere (the
    /// size of `registry.gen`; one `fstat`).
    pub(super) fn generation(&self) -> u64 {
        match self {
            Locks::Os(os) => os.generation.metadata().map_or(0, |m| m.len()),
            Locks::Mem(m) => m
                .table
                .generation
                .load(std::sync::atomic::Ordering::Acquire),
        }
    }

    /// How many tables were removed in this folder (the size of `registry.removals`): a
    /// registry that sees it move forgets the segment files it holds open, which may be of a
    /// removed table (and a new one of the same name has new files).
    pub(super) fn removals(&self) -> u64 {
        match self {
            Locks::Os(os) => os.removals.metadata().map_or(0, |m| m.len()),
            Locks::Mem(m) => m.table.removals.load(std::sync::atomic::Ordering::Acquire),
        }
    }

    /// Counts a table removal (one byte appended).
    pub(super) fn bump_removals(&self) -> Result<()> {
        match self {
            Locks::Os(os) => {
                use std::io::Write;
                (&os.removals)
                    .write_all(&[0])
                    .map_err(io_err(&os.rem_path, "write"))
            }
            Locks::Mem(m) => {
                m.table
                    .removals
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                Ok(())
            }
        }
    }

    /// Moves the shared generation on: one byte appended to `registry.gen` (an append is
    /// atomic, so no lock is needed). Past `GEN_WRAP` bytes the file is cut to empty, under
    /// its lock; a reader could only mistake that for "nothing changed" if exactly as many
    /// batches were applied during one of its reads.
    pub(super) fn bump_generation(&self) -> Result<()> {
        match self {
            Locks::Os(os) => {
                use std::io::Write;
                (&os.generation)
                    .write_all(&[0])
                    .map_err(io_err(&os.gen_path, "write"))?;
                if os.generation.metadata().map_or(0, |m| m.len()) > GEN_WRAP {
                    let _g = self.lock_keys(&[GEN_KEY])?;
                    if os.generation.metadata().map_or(0, |m| m.len()) > GEN_WRAP {
                        os.generation
                            .set_len(0)
                            .map_err(io_err(&os.gen_path, "truncate"))?;
                    }
                }
            }
            Locks::Mem(m) => {
                m.table
                    .generation
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        Ok(())
    }
}

/// Exclusive keys held; released when dropped.
pub(super) struct KeysGuard<'a> {
    locks: &'a Locks,
    /// Held exclusively, sorted.
    keys: Vec<u64>,
    /// Held shared.
    shared: Vec<u64>,
}

impl KeysGuard<'_> {
    /// Whether `key` is held, shared or exclusively.
    pub(super) fn holds_any(&self, key: u64) -> bool {
        self.holds(key) || self.shared.contains(&key)
    }

    /// Whether `key` is held exclusively.
    pub(super) fn holds(&self, key: u64) -> bool {
        self.keys.binary_search(&key).is_ok()
    }
}

impl Drop for KeysGuard<'_> {
    fn drop(&mut self) {
        match self.locks {
            Locks::Os(os) => {
                for &k in self.keys.iter().chain(&self.shared) {
                    os.unlock(&os.writer, k, 1);
                }
            }
            Locks::Mem(m) => {
                for &k in &self.keys {
                    m.unlock(k);
                }
                for &k in &self.shared {
                    m.unlock_shared(k);
                }
            }
        }
    }
}

/// OS locks: one description for the writer's locks (and the slot), a pool for readers.
pub(super) struct OsLocks {
    writer: std::fs::File,
    readers: Mutex<Vec<std::fs::File>>,
    path: PathBuf,
    /// `registry.gen`, opened for appending.
    generation: std::fs::File,
    gen_path: PathBuf,
    /// `registry.removals`, opened for appending.
    removals: std::fs::File,
    rem_path: PathBuf,
}

impl OsLocks {
    /// Locks byte `at`; `Ok(false)` when `wait` is off and someone else holds it.
    fn lock(&self, file: &std::fs::File, at: u64, exclusive: bool, wait: bool) -> Result<bool> {
        os::lock(file, at, exclusive, wait).map_err(io_err(&self.path, "lock"))
    }

    fn unlock(&self, file: &std::fs::File, at: u64, len: u64) {
        if let Err(e) = os::unlock(file, at, len) {
            // Only a closed description fails here, and closing it drops its locks anyway.
            tracing::warn!(error = %e, "could not release a registry lock");
        }
    }
}

#[cfg(target_os = "linux")]
mod os {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::libc;

    fn range(kind: libc::c_int, at: u64, len: u64) -> libc::flock {
        libc::flock {
            l_type: kind as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: i64::try_from(at).unwrap_or(i64::MAX),
            l_len: i64::try_from(len).unwrap_or(0),
            l_pid: 0,
        }
    }

    pub(super) fn lock(
        file: &std::fs::File,
        at: u64,
        exclusive: bool,
        wait: bool,
    ) -> std::io::Result<bool> {
        let fl = range(
            if exclusive {
                libc::F_WRLCK
            } else {
                libc::F_RDLCK
            },
            at,
            1,
        );
        loop {
            let arg = if wait {
                FcntlArg::F_OFD_SETLKW(&fl)
            } else {
                FcntlArg::F_OFD_SETLK(&fl)
            };
            match fcntl(file, arg) {
                Ok(_) => return Ok(true),
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) if !wait => {
                    return Ok(false);
                }
                Err(e) => return Err(std::io::Error::from(e)),
            }
        }
    }

    pub(super) fn unlock(file: &std::fs::File, at: u64, len: u64) -> std::io::Result<()> {
        let fl = range(libc::F_UNLCK, at, len);
        fcntl(file, FcntlArg::F_OFD_SETLK(&fl))
            .map(|_| ())
            .map_err(std::io::Error::from)
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    //! Elsewhere: one whole-file lock stands for every byte (correct, without parallel commits).
    pub(super) fn lock(
        file: &std::fs::File,
        _at: u64,
        exclusive: bool,
        wait: bool,
    ) -> std::io::Result<bool> {
        match (exclusive, wait) {
            (true, true) => file.lock().map(|()| true),
            (false, true) => file.lock_shared().map(|()| true),
            (true, false) => Ok(file.try_lock().is_ok()),
            (false, false) => Ok(file.try_lock_shared().is_ok()),
        }
    }

    pub(super) fn unlock(file: &std::fs::File, _at: u64, _len: u64) -> std::io::Result<()> {
        file.unlock()
    }
}

/// In-memory locks shared by every registry of this process on one virtual folder.
#[derive(Default)]
pub(super) struct MemTable {
    held: Mutex<HashMap<u64, Held>>,
    changed: Condvar,
    generation: std::sync::atomic::AtomicU64,
    removals: std::sync::atomic::AtomicU64,
}

enum Held {
    Exclusive(u64),
    Shared(usize),
}

pub(super) struct MemLocks {
    table: Arc<MemTable>,
    owner: u64,
}

impl MemLocks {
    fn lock(&self, key: u64, exclusive: bool, wait: bool) -> bool {
        let mut held = self.table.held.lock();
        loop {
            match held.get(&key) {
                None => {
                    held.insert(
                        key,
                        if exclusive {
                            Held::Exclusive(self.owner)
                        } else {
                            Held::Shared(1)
                        },
                    );
                    return true;
                }
                Some(Held::Exclusive(o)) if *o == self.owner => return true,
                _ if !wait => return false,
                _ => self.table.changed.wait(&mut held),
            }
        }
    }

    fn lock_shared(&self, key: u64) {
        let mut held = self.table.held.lock();
        loop {
            match held.get_mut(&key) {
                None => {
                    held.insert(key, Held::Shared(1));
                    return;
                }
                Some(Held::Shared(n)) => {
                    *n += 1;
                    return;
                }
                Some(Held::Exclusive(_)) => self.table.changed.wait(&mut held),
            }
        }
    }

    fn unlock_shared(&self, key: u64) {
        let mut held = self.table.held.lock();
        if let Some(Held::Shared(n)) = held.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&key);
            }
        }
        self.table.changed.notify_all();
    }

    fn unlock(&self, key: u64) {
        let mut held = self.table.held.lock();
        if matches!(held.get(&key), Some(Held::Exclusive(o)) if *o == self.owner) {
            held.remove(&key);
        }
        self.table.changed.notify_all();
    }
}

impl Drop for MemLocks {
    /// A registry that goes lets its slot (and anything else it held) go, as a dead process's
    /// locks do.
    fn drop(&mut self) {
        let mut held = self.table.held.lock();
        held.retain(|_, h| !matches!(h, Held::Exclusive(o) if *o == self.owner));
        self.table.changed.notify_all();
    }
}
