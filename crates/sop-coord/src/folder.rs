//! The operating-system lock that keeps a standalone database folder to one process.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use sop_core::{Error, Result};

/// How long `acquire` waits for a lock that is busy before it reports [`UsageError::InUse`](sop_core::UsageError::InUse).
pub const HANDOFF_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// An exclusive lock on `<folder>/sop.lock`, held until dropped.
///
/// It is an advisory `flock`-style lock (`File::try_lock`): the kernel drops it when the
/// process dies, so a crash never leaves the folder locked. A second process, or a second
/// `Database` on the same folder in this process, gets [`UsageError::InUse`](sop_core::UsageError::InUse). (The original let two
/// processes open one standalone folder, each with its own in-memory locks, and corrupt it.)
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    path: PathBuf,
}

impl FolderLock {
    /// Takes the lock on `folder` (created when missing).
    ///
    /// # Errors
    /// [`UsageError::InUse`](sop_core::UsageError::InUse) when another holder has it; I/O errors.
    pub fn acquire(folder: &Path) -> Result<Self> {
        Self::take(folder, false)
    }

    /// Takes the lock shared, as clustered processes do: any number of them hold it together,
    /// and a standalone open (exclusive) is refused while they do, and the other way round.
    ///
    /// # Errors
    /// [`UsageError::InUse`](sop_core::UsageError::InUse) when a standalone process has the folder; I/O errors.
    pub fn acquire_shared(folder: &Path) -> Result<Self> {
        Self::take(folder, true)
    }

    /// Takes the lock shared without writing anything (a read-only open, which may be on a
    /// read-only mount): a standalone writer excludes it and the other way round. `None` when
    /// the folder has no lock file (nothing ever opened it to write: nobody to exclude).
    ///
    /// # Errors
    /// [`UsageError::InUse`](sop_core::UsageError::InUse) when a standalone process has the folder open to write; I/O errors.
    pub fn acquire_read_only(folder: &Path) -> Result<Option<Self>> {
        let path = folder.join("sop.lock");
        let file = match OpenOptions::new().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &path)(e)),
        };
        Self::lock(folder, path, file, true).map(Some)
    }

    fn take(folder: &Path, shared: bool) -> Result<Self> {
        std::fs::create_dir_all(folder).map_err(Error::io("create folder", folder))?;
        let path = folder.join("sop.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        Self::lock(folder, path, file, shared)
    }

    fn lock(folder: &Path, path: PathBuf, file: File, shared: bool) -> Result<Self> {
        // A lock just released can still be held for a moment by a child this process is
        // forking (the child shares the open file until its `exec` closes it): retry briefly
        // before calling the folder in use.
        let deadline = std::time::Instant::now() + HANDOFF_WAIT;
        let r = loop {
            let r = if shared {
                file.try_lock_shared()
            } else {
                file.try_lock()
            };
            match r {
                Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r,
            }
        };
        match r {
            Ok(()) => Ok(FolderLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(Error::Usage(sop_core::UsageError::InUse {
                path: folder.to_path_buf(),
            })),
            Err(TryLockError::Error(e)) => Err(Error::Storage(sop_core::StorageError::Io {
                op: "lock",
                path,
                source: e,
            })),
        }
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_holder_gets_in_use_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path()).unwrap();
        let err = FolderLock::acquire(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::Usage(sop_core::UsageError::InUse { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("clustered mode"), "{err}");
        drop(first);
        let excl = FolderLock::acquire(dir.path()).unwrap();
        assert!(FolderLock::acquire_shared(dir.path()).is_err());
        drop(excl);
        let s1 = FolderLock::acquire_shared(dir.path()).unwrap();
        let _s2 = FolderLock::acquire_shared(dir.path()).unwrap();
        assert!(FolderLock::acquire(dir.path()).is_err());
        drop(s1);
    }
}
