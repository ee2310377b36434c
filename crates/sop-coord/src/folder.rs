//! The operating-system lock that keeps a standalone database folder to one process.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use sop_core::{Error, Result};

/// An exclusive lock on `<folder>/sop.lock`, held until dropped.
///
/// It is an advisory `flock`-style lock (`File::try_lock`): the kernel drops it when the
/// process dies, so a crash never leaves the folder locked. A second process, or a second
/// `Database` on the same folder in this process, gets [`Error::InUse`]. (The original let two
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
    /// [`Error::InUse`] when another holder has it; I/O errors.
    pub fn acquire(folder: &Path) -> Result<Self> {
        std::fs::create_dir_all(folder).map_err(Error::io("create folder", folder))?;
        let path = folder.join("sop.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(FolderLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(Error::InUse {
                path: folder.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::Io {
                op: "lock",
                path,
                source: e,
            }),
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
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        assert!(err.to_string().contains("clustered mode"), "{err}");
        drop(first);
        FolderLock::acquire(dir.path()).unwrap();
    }
}
