//! A file system that never writes: the layer of a database opened read-only.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::vfs::{FileHandle, FileSystem, StdFs};

/// Reads a file system and refuses every change (`PermissionDenied`, "read-only"): files are
/// opened without write access ([`FileSystem::open_read`]), so a database on a read-only mount
/// opens, and no code path can write by mistake. `new()` reads the real file system.
#[derive(Clone)]
pub struct ReadOnlyFs {
    inner: Arc<dyn FileSystem>,
}

impl Default for ReadOnlyFs {
    fn default() -> Self {
        ReadOnlyFs::over(Arc::new(StdFs::new()))
    }
}

impl fmt::Debug for ReadOnlyFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyFs").finish_non_exhaustive()
    }
}

fn refused(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{what} {}: the database was opened read-only",
            path.display()
        ),
    )
}

impl ReadOnlyFs {
    /// The real file system, read-only.
    #[must_use]
    pub fn new() -> Self {
        ReadOnlyFs::default()
    }

    /// `inner`, read-only.
    #[must_use]
    pub fn over(inner: Arc<dyn FileSystem>) -> Self {
        ReadOnlyFs { inner }
    }
}

/// A handle whose writes are refused.
struct Guarded(Box<dyn FileHandle>);

impl FileHandle for Guarded {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(refused("write to", Path::new("a file")))
    }
    fn size(&self) -> io::Result<u64> {
        self.0.size()
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(refused("resize", Path::new("a file")))
    }
    fn sync(&self) -> io::Result<()> {
        // Nothing was written: nothing to make durable.
        Ok(())
    }
}

impl FileSystem for ReadOnlyFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FileHandle>> {
        if create && !self.exists(path)? {
            return Err(refused("create", path));
        }
        self.open_read(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(Guarded(self.inner.open_read(path)?)))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Err(refused("create", path))
    }
    fn rename(&self, from: &Path, _: &Path) -> io::Result<()> {
        Err(refused("rename", from))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if !self.exists(path)? {
            // What is not there needs no removing (callers that remove "if present").
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            ));
        }
        Err(refused("remove", path))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.exists(path)? {
            return Ok(());
        }
        Err(refused("create", path))
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        Err(refused("remove", path))
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn sync_fs(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn it_reads_and_refuses_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let fs = ReadOnlyFs::new();
        let h = fs.open(&f, false).unwrap();
        let mut buf = [0u8; 5];
        assert_eq!(h.read_at(&mut buf, 0).unwrap(), 5);
        assert_eq!(&buf, b"hello");
        let denied = |r: io::Result<()>| {
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        };
        denied(h.write_at(b"x", 0));
        denied(h.set_len(0));
        denied(fs.rename(&f, &dir.path().join("g")));
        denied(fs.remove_file(&f));
        denied(fs.create_dir_all(&dir.path().join("d")));
        denied(fs.open(&dir.path().join("new"), true).map(|_| ()));
        assert_eq!(
            fs.remove_file(&dir.path().join("absent"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(std::fs::read(&f).unwrap(), b"hello");
        assert!(!dir.path().join("d").exists());
    }
}
