//! The file layer: every open, read, write, sync, rename, remove and listing sop-rs does goes
//! through [`FileSystem`], so tests can inject faults ([`FaultyFs`]) and count syncs.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub use crate::rofs::ReadOnlyFs;
pub use crate::simfs::SimFs;

/// An open file. Offsets are absolute; there is no cursor, so one handle can serve many threads.
pub trait FileHandle: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    ///
    /// # Errors
    /// The operating system's error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `data` at `offset`, growing the file as needed.
    ///
    /// # Errors
    /// The operating system's error.
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// The file's length.
    ///
    /// # Errors
    /// The operating system's error.
    fn size(&self) -> io::Result<u64>;
    /// Sets the length; new bytes read as zeros (the file may stay sparse).
    ///
    /// # Errors
    /// The operating system's error.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (`fsync`).
    ///
    /// # Errors
    /// The operating system's error.
    fn sync(&self) -> io::Result<()>;
    /// Makes the file's data durable, and its metadata only where reading the data needs it
    /// (`fdatasync`): an overwrite of bytes that were already allocated flushes no metadata.
    /// Counted as a sync. The default is [`FileHandle::sync`].
    ///
    /// # Errors
    /// The operating system's error.
    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }
}

/// The narrow file-system interface of the engine.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Opens a file for reading and writing; creates it when `create` is set.
    ///
    /// # Errors
    /// The operating system's error (`NotFound` when it does not exist and `create` is not set).
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FileHandle>>;
    /// Opens an existing file to read only (no write access asked for: it works on a
    /// read-only mount). The default is `open(path, false)`.
    ///
    /// # Errors
    /// The operating system's error.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        self.open(path, false)
    }
    /// Creates a file that must not exist yet (`O_EXCL`: of two processes creating one name,
    /// exactly one succeeds). The default checks, then creates: exclusive within one process
    /// only.
    ///
    /// # Errors
    /// `AlreadyExists` when it exists; the operating system's error.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        if self.exists(path)? {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        self.open(path, true)
    }
    /// Renames a file, replacing `to` if it exists (atomic on POSIX file systems).
    ///
    /// # Errors
    /// The operating system's error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    ///
    /// # Errors
    /// The operating system's error (`NotFound` included).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a folder and its missing parents.
    ///
    /// # Errors
    /// The operating system's error.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Removes a folder and everything in it.
    ///
    /// # Errors
    /// The operating system's error.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names in a folder, sorted.
    ///
    /// # Errors
    /// The operating system's error.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Makes a folder's entries (creations, renames, removals) durable.
    ///
    /// # Errors
    /// The operating system's error.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether a path exists.
    ///
    /// # Errors
    /// The operating system's error, other than not existing.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// One barrier for everything written on the file system that holds `path`: every file's
    /// data and every folder entry written before the call is durable when it returns. One call
    /// replaces a sync per file when a commit writes many new files (Linux `syncfs`).
    ///
    /// # Errors
    /// The operating system's error, including a write-back error of any file on it.
    fn sync_fs(&self, path: &Path) -> io::Result<()>;
    /// How many file and folder syncs this file system has done (for the sync budget).
    fn sync_count(&self) -> u64 {
        0
    }
    /// Where `path` is on the machine's own file system, when this file system is it (so
    /// other processes can lock the same file); `None` for virtual and layered ones.
    fn native_path(&self, path: &Path) -> Option<PathBuf> {
        let _ = path;
        None
    }
}

/// The real file system (`std::fs`), counting its syncs.
#[derive(Debug, Default)]
pub struct StdFs {
    syncs: Arc<AtomicU64>,
}

impl StdFs {
    /// A new handle on the real file system.
    #[must_use]
    pub fn new() -> Self {
        StdFs::default()
    }
}

struct StdFile {
    file: File,
    syncs: Arc<AtomicU64>,
}

impl FileHandle for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_all()
    }
    fn sync_data(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data()
    }
}

impl FileSystem for StdFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(StdFile {
            file,
            syncs: Arc::clone(&self.syncs),
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).open(path)?;
        Ok(Box::new(StdFile {
            file,
            syncs: Arc::clone(&self.syncs),
        }))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(StdFile {
            file,
            syncs: Arc::clone(&self.syncs),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        File::open(path)?.sync_all()
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let dir = File::open(path)?;
        #[cfg(target_os = "linux")]
        {
            rustix::fs::syncfs(&dir).map_err(io::Error::from)
        }
        #[cfg(not(target_os = "linux"))]
        {
            // No per-file-system barrier: flush the folder, then everything.
            dir.sync_all()?;
            rustix::fs::sync();
            Ok(())
        }
    }
    fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
    fn native_path(&self, path: &Path) -> Option<PathBuf> {
        std::path::absolute(path).ok()
    }
}

/// Whether an I/O error means the drive itself is failing (so replication should fail over to
/// the other drive) rather than a bad request: EIO, ENXIO, ENODEV, ENOSPC, EROFS, EDQUOT, and
/// "structure needs cleaning" (EUCLEAN).
#[must_use]
pub fn is_drive_failure(e: &io::Error) -> bool {
    const EIO: i32 = 5;
    const ENXIO: i32 = 6;
    const ENODEV: i32 = 19;
    const ENOSPC: i32 = 28;
    const EROFS: i32 = 30;
    const EUCLEAN: i32 = 117;
    const EDQUOT: i32 = 122;
    matches!(
        e.raw_os_error(),
        Some(EIO | ENXIO | ENODEV | ENOSPC | EROFS | EUCLEAN | EDQUOT)
    ) || matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Reads a whole file.
///
/// # Errors
/// The operating system's error.
pub fn read_file(fs: &dyn FileSystem, path: &Path) -> io::Result<Vec<u8>> {
    let file = fs.open(path, false)?;
    let len = usize::try_from(file.size()?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file larger than memory"))?;
    let mut buf = vec![0; len];
    let n = file.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

/// Removes a file; one that is not there is fine.
///
/// # Errors
/// The operating system's error other than not-found.
pub fn remove_file_if_present(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a folder and everything in it; one that is not there is fine.
///
/// # Errors
/// The operating system's error other than not-found.
pub fn remove_dir_all_if_present(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    match fs.remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Replaces a file's contents atomically and durably: write a temporary file beside it, sync it,
/// rename it over the file, sync the folder. After a crash the file holds the old or the new
/// bytes, never a mix. Costs two syncs.
///
/// # Errors
/// The operating system's error; the temporary file is removed on failure.
pub fn write_file_atomic(fs: &dyn FileSystem, path: &Path, data: &[u8]) -> io::Result<()> {
    replace_file(fs, path, data)?;
    fs.sync_dir(path.parent().unwrap_or_else(|| Path::new(".")))
}

/// [`write_file_atomic`] without the folder sync, for callers that replace several files in a
/// folder and sync it once: temporary file, write, sync, rename over `path`. The temporary file
/// is removed on failure.
///
/// # Errors
/// The operating system's error.
pub fn replace_file(fs: &dyn FileSystem, path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let file = fs.open(&tmp, true)?;
        file.set_len(0)?;
        file.write_at(data, 0)?;
        file.sync()?;
        drop(file);
        fs.rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs.remove_file(&tmp);
    }
    result
}

/// Writes `data` as the whole content of `path` (created when missing), with no sync.
///
/// # Errors
/// The operating system's error.
pub fn overwrite_file(fs: &dyn FileSystem, path: &Path, data: &[u8]) -> io::Result<()> {
    let file = fs.open(path, true)?;
    file.set_len(0)?;
    file.write_at(data, 0)
}

/// The temporary name [`write_file_atomic`] uses for `path`: same folder, `.tmp` suffix.
#[must_use]
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// A file-system operation, as [`FaultyFs`] matches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `open`.
    Open,
    /// A read.
    Read,
    /// A write or `set_len`.
    Write,
    /// A file or folder sync.
    Sync,
    /// A rename (matched on either path).
    Rename,
    /// A file or folder removal.
    Remove,
    /// Folder creation or listing, `exists`.
    Meta,
}

/// One injected fault: operations under `prefix` (any path when `None`), of kind `op` (any when
/// `None`), fail with the OS error `errno` after `skip` matching calls went through, for `times`
/// calls (forever when `None`).
#[derive(Clone, Debug)]
pub struct Fault {
    /// Paths the fault applies to.
    pub prefix: Option<PathBuf>,
    /// The operation it applies to.
    pub op: Option<Op>,
    /// The error number returned (5 = EIO).
    pub errno: i32,
    /// Matching calls let through first.
    pub skip: u64,
    /// How many calls fail; `None` = all that follow.
    pub times: Option<u64>,
}

impl Fault {
    /// EIO on every operation under `prefix`, as a dead drive gives.
    #[must_use]
    pub fn dead_drive(prefix: impl Into<PathBuf>) -> Self {
        Fault {
            prefix: Some(prefix.into()),
            op: None,
            errno: 5,
            skip: 0,
            times: None,
        }
    }
}

/// A [`FileSystem`] that fails chosen operations: the test seam for drive failures.
#[derive(Debug)]
pub struct FaultyFs {
    inner: Arc<dyn FileSystem>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl FaultyFs {
    /// Wraps `inner`; no faults until [`FaultyFs::inject`].
    #[must_use]
    pub fn new(inner: Arc<dyn FileSystem>) -> Self {
        FaultyFs {
            inner,
            faults: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        self.faults.lock().push(fault);
    }

    /// Whether a fault has not reached its first failing call yet (calls it lets through are
    /// left): a crash-point sweep is done when its fault was never reached.
    #[must_use]
    pub fn has_unreached_fault(&self) -> bool {
        self.faults.lock().iter().any(|f| f.skip > 0)
    }

    /// Removes every fault (the drive is repaired).
    pub fn clear(&self) {
        self.faults.lock().clear();
    }

    fn check(faults: &Mutex<Vec<Fault>>, op: Op, path: &Path) -> io::Result<()> {
        let mut faults = faults.lock();
        for f in faults.iter_mut() {
            let path_hit = f.prefix.as_ref().is_none_or(|p| path.starts_with(p));
            if !path_hit || f.op.is_some_and(|o| o != op) {
                continue;
            }
            if f.skip > 0 {
                f.skip -= 1;
                continue;
            }
            match &mut f.times {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            return Err(io::Error::from_raw_os_error(f.errno));
        }
        Ok(())
    }
}

struct FaultyFile {
    inner: Box<dyn FileHandle>,
    path: PathBuf,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl FileHandle for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FaultyFs::check(&self.faults, Op::Read, &self.path)?;
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        FaultyFs::check(&self.faults, Op::Write, &self.path)?;
        self.inner.write_at(data, offset)
    }
    fn size(&self) -> io::Result<u64> {
        FaultyFs::check(&self.faults, Op::Read, &self.path)?;
        self.inner.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        FaultyFs::check(&self.faults, Op::Write, &self.path)?;
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        FaultyFs::check(&self.faults, Op::Sync, &self.path)?;
        self.inner.sync()
    }
    fn sync_data(&self) -> io::Result<()> {
        FaultyFs::check(&self.faults, Op::Sync, &self.path)?;
        self.inner.sync_data()
    }
}

impl FileSystem for FaultyFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FileHandle>> {
        Self::check(&self.faults, Op::Open, path)?;
        Ok(Box::new(FaultyFile {
            inner: self.inner.open(path, create)?,
            path: path.to_path_buf(),
            faults: Arc::clone(&self.faults),
        }))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Self::check(&self.faults, Op::Open, path)?;
        Ok(Box::new(FaultyFile {
            inner: self.inner.create_new(path)?,
            path: path.to_path_buf(),
            faults: Arc::clone(&self.faults),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        Self::check(&self.faults, Op::Rename, from)?;
        Self::check(&self.faults, Op::Rename, to)?;
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        Self::check(&self.faults, Op::Remove, path)?;
        self.inner.remove_file(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        Self::check(&self.faults, Op::Meta, path)?;
        self.inner.create_dir_all(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        Self::check(&self.faults, Op::Remove, path)?;
        self.inner.remove_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        Self::check(&self.faults, Op::Meta, path)?;
        self.inner.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        Self::check(&self.faults, Op::Sync, path)?;
        self.inner.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        Self::check(&self.faults, Op::Meta, path)?;
        self.inner.exists(path)
    }
    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        Self::check(&self.faults, Op::Sync, path)?;
        self.inner.sync_fs(path)
    }
    fn sync_count(&self) -> u64 {
        self.inner.sync_count()
    }
    fn native_path(&self, path: &Path) -> Option<PathBuf> {
        self.inner.native_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_counts_two_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFs::new();
        let p = dir.path().join("f");
        write_file_atomic(&fs, &p, b"one").unwrap();
        let before = fs.sync_count();
        write_file_atomic(&fs, &p, b"two!").unwrap();
        assert_eq!(fs.sync_count() - before, 2, "file sync + folder sync");
        assert_eq!(read_file(&fs, &p).unwrap(), b"two!");
        assert!(!fs.exists(&tmp_path(&p)).unwrap(), "no temporary file left");
        assert_eq!(fs.list_dir(dir.path()).unwrap(), ["f"]);
    }

    #[test]
    fn positional_io_and_sparse_growth() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFs::new();
        let f = fs.open(&dir.path().join("g"), true).unwrap();
        f.set_len(8192).unwrap();
        f.write_at(b"xy", 4096).unwrap();
        let mut buf = [1u8; 4];
        assert_eq!(f.read_at(&mut buf, 4094).unwrap(), 4);
        assert_eq!(buf, [0, 0, b'x', b'y']);
        assert_eq!(
            f.read_at(&mut buf, 8190).unwrap(),
            2,
            "short read only at the end"
        );
        assert_eq!(f.size().unwrap(), 8192);
    }

    #[test]
    fn faults_hit_only_their_paths_and_ops() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let fs = FaultyFs::new(Arc::new(StdFs::new()));
        fs.create_dir_all(&a).unwrap();
        fs.create_dir_all(&b).unwrap();
        fs.inject(Fault::dead_drive(&a));
        let err = write_file_atomic(&fs, &a.join("x"), b"1").unwrap_err();
        assert!(is_drive_failure(&err), "{err}");
        write_file_atomic(&fs, &b.join("x"), b"1").unwrap();
        fs.clear();
        write_file_atomic(&fs, &a.join("x"), b"1").unwrap();

        // The second sync anywhere fails, once.
        fs.inject(Fault {
            prefix: None,
            op: Some(Op::Sync),
            errno: 28,
            skip: 1,
            times: Some(1),
        });
        write_file_atomic(&fs, &b.join("y"), b"1").unwrap_err();
        write_file_atomic(&fs, &b.join("y"), b"1").unwrap();
    }

    #[test]
    fn drive_failure_classification() {
        for errno in [5, 6, 19, 28, 30, 117, 122] {
            assert!(
                is_drive_failure(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        for errno in [2, 13, 17, 22] {
            assert!(
                !is_drive_failure(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
    }
}
