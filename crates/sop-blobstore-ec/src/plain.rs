//! One checksummed file per blob.

use std::path::PathBuf;
use std::sync::Arc;

use sop_core::codec::{seal, unseal};
use sop_core::vfs::{FileSystem, read_file};
use sop_core::{Error, Result, Uuid};

use crate::BlobStore;
use crate::layout::{
    BLOB_FORMAT_VERSION, blob_dir, check_table, remove_if_present, remove_table_dir, write_batch,
};

/// Blobs as files under one base folder: `<base>/<table>/ab/cd/<id>`, each a sealed frame
/// (version, length, CRC32C, bytes), so bit rot and torn files are detected on read.
#[derive(Debug)]
pub struct PlainBlobStore {
    fs: Arc<dyn FileSystem>,
    base: PathBuf,
}

impl PlainBlobStore {
    /// A store under `base`.
    pub fn new(fs: Arc<dyn FileSystem>, base: impl Into<PathBuf>) -> Self {
        PlainBlobStore {
            fs,
            base: base.into(),
        }
    }

    /// The file of a blob.
    #[must_use]
    pub fn path_of(&self, table: &str, id: Uuid) -> PathBuf {
        blob_dir(&self.base, table, id).join(id.to_string())
    }
}

impl PlainBlobStore {
    fn write(&self, table: &str, blobs: &[(Uuid, &[u8])], synced: bool) -> Result<()> {
        check_table(table)?;
        let files: Vec<_> = blobs
            .iter()
            .map(|(id, bytes)| (self.path_of(table, *id), seal(BLOB_FORMAT_VERSION, bytes)))
            .collect();
        write_batch(self.fs.as_ref(), &files, synced)
    }
}

impl BlobStore for PlainBlobStore {
    fn put(&self, table: &str, blobs: &[(Uuid, &[u8])]) -> Result<()> {
        self.write(table, blobs, true)
    }

    fn put_deferred(&self, table: &str, blobs: &[(Uuid, &[u8])]) -> Result<()> {
        self.write(table, blobs, false)
    }

    fn barrier(&self) -> Result<()> {
        if !self
            .fs
            .exists(&self.base)
            .map_err(Error::io("stat", &self.base))?
        {
            return Ok(());
        }
        self.fs
            .sync_fs(&self.base)
            .map_err(Error::io("sync file system of", &self.base))
    }

    fn get(&self, table: &str, id: Uuid) -> Result<Vec<u8>> {
        check_table(table)?;
        let path = self.path_of(table, id);
        let bytes = match read_file(self.fs.as_ref(), &path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound {
                    table: table.into(),
                    id,
                });
            }
            r => r.map_err(Error::io("read", &path))?,
        };
        Ok(unseal(&bytes, BLOB_FORMAT_VERSION, "blob", &path.display())?.to_vec())
    }

    fn remove(&self, table: &str, ids: &[Uuid]) -> Result<()> {
        check_table(table)?;
        for id in ids {
            remove_if_present(self.fs.as_ref(), &self.path_of(table, *id))?;
        }
        Ok(())
    }

    fn remove_temporary(&self, paths: &[std::path::PathBuf]) -> Result<()> {
        crate::layout::remove_temporary(self.fs.as_ref(), paths)
    }

    fn remove_table(&self, table: &str) -> Result<()> {
        remove_table_dir(self.fs.as_ref(), &self.base, table)
    }

    fn list(&self, table: &str) -> Result<crate::BlobListing> {
        check_table(table)?;
        let mut out = crate::BlobListing::default();
        crate::layout::scan_table_dir(
            self.fs.as_ref(),
            &self.base,
            table,
            &mut out.ids,
            &mut out.temporary,
        );
        Ok(out)
    }

    /// Plain blobs have one copy: a blob failing its checksum is reported, never repaired.
    fn scrub(&self, table: &str, _repair: bool) -> Result<crate::ScrubReport> {
        let mut report = crate::ScrubReport::default();
        for id in self.list(table)?.ids {
            report.blobs += 1;
            match self.get(table, id) {
                Ok(_) => report.healthy += 1,
                Err(e) => report.unrecoverable.push((id, e.to_string())),
            }
        }
        Ok(report)
    }
}
