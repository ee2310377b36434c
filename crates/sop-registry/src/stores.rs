//! The store repository: which stores exist, and each one's [`StoreInfo`].
//!
//! One file per store, `stores/<name>.store`: a sealed frame (version 1, length, CRC32C) around
//! the codec encoding of its `StoreInfo`. Every change replaces the file atomically (temporary
//! file, sync, rename, folder sync), so a crash leaves the old or the new info, never a mix; the
//! list of stores is the folder's listing, so there is no second file to keep in step.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use sop_core::codec::{self, seal};
use sop_core::vfs::{FileSystem, read_file, write_file_atomic};
use sop_core::{Error, Result, StoreInfo, validate_store_name};

/// Format version of a store file.
pub const STORE_FORMAT_VERSION: u8 = 2;
const SUFFIX: &str = ".store";

/// Stores and their info, under `<base>/stores/`.
#[derive(Debug)]
pub struct StoreRepository {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Serialises read-modify-write of counts within the process.
    lock: Mutex<()>,
}

impl StoreRepository {
    /// Opens (or creates) the repository under `base`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(fs: Arc<dyn FileSystem>, base: impl Into<PathBuf>) -> Result<Self> {
        let base = base.into();
        let dir = base.join("stores");
        if !fs.exists(&dir).map_err(Error::io("stat", &dir))? {
            fs.create_dir_all(&dir)
                .map_err(Error::io("create folder", &dir))?;
            fs.sync_dir(&base)
                .map_err(Error::io("sync folder", &base))?;
        }
        Ok(StoreRepository {
            fs,
            dir,
            lock: Mutex::new(()),
        })
    }

    /// A store file's path relative to the base folder, for a [`crate::RegistryBatch`] that
    /// replaces it in the same atomic step as a commit's handle changes.
    #[must_use]
    pub fn relative_path(name: &str) -> String {
        format!("stores/{name}{SUFFIX}")
    }

    /// A store file's bytes.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn encode_info(info: &StoreInfo) -> Result<Vec<u8>> {
        Ok(seal(STORE_FORMAT_VERSION, &codec::encode(info)?))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    /// The names of all stores, sorted.
    ///
    /// # Errors
    /// I/O errors.
    pub fn list(&self) -> Result<Vec<String>> {
        let names = self
            .fs
            .list_dir(&self.dir)
            .map_err(Error::io("list", &self.dir))?;
        Ok(names
            .into_iter()
            .filter_map(|n| n.strip_suffix(SUFFIX).map(str::to_string))
            .collect())
    }

    /// A store's info, or `None` when it does not exist.
    ///
    /// # Errors
    /// Corruption and I/O errors.
    pub fn get(&self, name: &str) -> Result<Option<StoreInfo>> {
        validate_store_name(name)?;
        let path = self.path(name);
        match read_file(self.fs.as_ref(), &path) {
            Ok(bytes) => Ok(Some(crate::formats::store_info(&bytes, &path.display())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Storage(sop_core::StorageError::Io {
                op: "read",
                path,
                source: e,
            })),
        }
    }

    fn put(&self, info: &StoreInfo) -> Result<()> {
        let path = self.path(&info.name);
        let bytes = Self::encode_info(info)?;
        write_file_atomic(self.fs.as_ref(), &path, &bytes).map_err(Error::io("write", &path))
    }

    /// Creates a store.
    ///
    /// # Errors
    /// [`UsageError::StoreExists`](sop_core::UsageError::StoreExists), I/O errors.
    pub fn add(&self, info: &StoreInfo) -> Result<()> {
        validate_store_name(&info.name)?;
        let _g = self.lock.lock();
        if self.get(&info.name)?.is_some() {
            return Err(Error::Usage(sop_core::UsageError::StoreExists {
                name: info.name.clone(),
            }));
        }
        self.put(info)
    }

    /// Replaces a store's info with `info`, except its count, which becomes the stored count plus
    /// `count_delta`: concurrent committers each apply their own delta. Returns the new info.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`](sop_core::UsageError::StoreNotFound), [`UsageError::InvalidOptions`](sop_core::UsageError::InvalidOptions) for a count that would go below zero,
    /// corruption and I/O errors.
    pub fn update(&self, info: &StoreInfo, count_delta: i64) -> Result<StoreInfo> {
        validate_store_name(&info.name)?;
        let _g = self.lock.lock();
        let current = self.get(&info.name)?.ok_or_else(|| {
            Error::Usage(sop_core::UsageError::StoreNotFound {
                name: info.name.clone(),
            })
        })?;
        let count = current
            .count
            .checked_add_signed(count_delta)
            .ok_or_else(|| {
                Error::Usage(sop_core::UsageError::InvalidOptions {
                    store: info.name.clone(),
                    reason: format!("count {} cannot change by {count_delta}", current.count),
                })
            })?;
        let next = StoreInfo {
            count,
            ..info.clone()
        };
        self.put(&next)?;
        Ok(next)
    }

    /// Removes a store's info. A store that does not exist is an error.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`](sop_core::UsageError::StoreNotFound), I/O errors.
    pub fn remove(&self, name: &str) -> Result<()> {
        validate_store_name(name)?;
        let _g = self.lock.lock();
        let path = self.path(name);
        match self.fs.remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::Usage(sop_core::UsageError::StoreNotFound {
                    name: name.into(),
                }))
            }
            Err(e) => Err(Error::Storage(sop_core::StorageError::Io {
                op: "remove",
                path,
                source: e,
            })),
            Ok(()) => self
                .fs
                .sync_dir(&self.dir)
                .map_err(Error::io("sync folder", &self.dir)),
        }
    }
}
