//! The small files kept beside the registry (store infos, the checkpoint record, transaction
//! logs): reading, listing, appending and removing them outside batches; the unsynced replace
//! a batch's put files go through; and the path rule that keeps every such file, and every file
//! a batch writes, inside the registry folder.

use std::path::Path;

use sop_core::vfs::{FileSystem, read_file, remove_file_if_present};
use sop_core::{Error, Result};

use super::Registry;

/// A relative path of plain components, so a batch cannot write outside the registry folder.
pub(crate) fn check_rel_path(path: &str) -> Result<()> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(sop_core::UsageError::InvalidConfig {
            what: "registry batch",
            reason: format!("{path:?} is not a plain relative path"),
        }))
    }
}

impl Registry {
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
            Err(e) => Err(Error::Storage(sop_core::StorageError::Io {
                op: "read",
                path: full,
                source: e,
            })),
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
            Err(e) => Err(Error::Storage(sop_core::StorageError::Io {
                op: "list",
                path: full,
                source: e,
            })),
        }
    }

    /// Removes a small file under the registry folder without a sync: for files whose
    /// reappearance after a crash is harmless (a temporary file an interrupted write left).
    ///
    /// # Errors
    /// I/O errors other than not-found.
    pub fn remove_file_lazy(&self, path: &str) -> Result<()> {
        check_rel_path(path)?;
        let full = self.base.join(path);
        remove_file_if_present(self.fs.as_ref(), &full).map_err(Error::io("remove", &full))
    }
}

/// Writes `data` to a temporary file and renames it over `path`, without syncing: atomic for
/// readers, durable only once synced (a checkpoint).
pub(super) fn replace_file_unsynced(
    fs: &dyn FileSystem,
    path: &Path,
    data: &[u8],
) -> std::io::Result<()> {
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
