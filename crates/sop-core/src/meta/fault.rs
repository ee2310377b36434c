//! [`FaultyMetadata`]: the metadata seam with an injected failure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{MetaBatch, Metadata};
use crate::{Error, Handle, Result, StoreInfo, Uuid};

/// A failure to inject into [`FaultyMetadata`]. Counts start at 1 from the injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaFault {
    /// The n-th write (`apply`, `remove_store`) fails and takes no effect.
    WriteBefore(u64),
    /// The n-th write takes effect, then reports an error (as a sync that fails after the data
    /// reached the disk): the caller cannot tell it from a write that did not happen.
    WriteAfter(u64),
    /// The n-th read (handles, store infos, tables, replay point) fails.
    Read(u64),
}

/// Wraps another [`Metadata`] and fails one chosen call; everything else passes through.
///
/// ```
/// use std::sync::Arc;
/// use sop_core::meta::{FaultyMetadata, MemMetadata, MetaBatch, MetaFault, Metadata};
///
/// let meta = FaultyMetadata::new(Arc::new(MemMetadata::new()));
/// meta.inject(MetaFault::WriteBefore(1));
/// assert!(meta.apply(&MetaBatch::new().replay_point(vec![1])).is_err());
/// assert_eq!(meta.replay_point()?, None);
/// meta.apply(&MetaBatch::new().replay_point(vec![1]))?;
/// assert_eq!(meta.replay_point()?, Some(vec![1]));
/// # Ok::<(), sop_core::Error>(())
/// ```
#[derive(Debug)]
pub struct FaultyMetadata {
    inner: Arc<dyn Metadata>,
    /// The fault, with the absolute call number it fires at.
    fault: Mutex<Option<(MetaFault, u64)>>,
    writes: AtomicU64,
    reads: AtomicU64,
}

fn injected(what: &str) -> Error {
    Error::Storage(crate::StorageError::Io {
        op: "metadata (injected fault)",
        path: PathBuf::from(what),
        source: std::io::Error::other("injected fault"),
    })
}

impl FaultyMetadata {
    /// Wraps `inner`, with no fault.
    #[must_use]
    pub fn new(inner: Arc<dyn Metadata>) -> Self {
        FaultyMetadata {
            inner,
            fault: Mutex::new(None),
            writes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }

    /// Arms a fault (replacing any armed one), counted from now.
    pub fn inject(&self, fault: MetaFault) {
        let at = match fault {
            MetaFault::WriteBefore(n) | MetaFault::WriteAfter(n) => {
                self.writes.load(Ordering::Acquire) + n
            }
            MetaFault::Read(n) => self.reads.load(Ordering::Acquire) + n,
        };
        *self.fault.lock() = Some((fault, at));
    }

    /// Disarms the fault.
    pub fn clear(&self) {
        *self.fault.lock() = None;
    }

    /// Whether an armed fault has not fired yet (a test's sign that it ran out of calls).
    #[must_use]
    pub fn armed(&self) -> bool {
        self.fault.lock().is_some()
    }

    /// Writes so far.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Reads so far.
    #[must_use]
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Acquire)
    }

    fn read(&self, what: &str) -> Result<()> {
        let n = self.reads.fetch_add(1, Ordering::AcqRel) + 1;
        let mut f = self.fault.lock();
        if let Some((MetaFault::Read(_), at)) = *f
            && at == n
        {
            *f = None;
            return Err(injected(what));
        }
        Ok(())
    }

    fn write(&self, what: &str, op: impl FnOnce() -> Result<()>) -> Result<()> {
        let n = self.writes.fetch_add(1, Ordering::AcqRel) + 1;
        let fire = {
            let mut f = self.fault.lock();
            match *f {
                Some((fault @ (MetaFault::WriteBefore(_) | MetaFault::WriteAfter(_)), at))
                    if at == n =>
                {
                    *f = None;
                    Some(fault)
                }
                _ => None,
            }
        };
        match fire {
            Some(MetaFault::WriteBefore(_)) => Err(injected(what)),
            Some(_) => {
                op()?;
                Err(injected(what))
            }
            None => op(),
        }
    }
}

impl Metadata for FaultyMetadata {
    fn handles(&self, table: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Handle>> {
        self.read(table)?;
        self.inner.handles(table, ids)
    }

    fn tables(&self) -> Result<Vec<String>> {
        self.read("tables")?;
        self.inner.tables()
    }

    fn store_info(&self, name: &str) -> Result<Option<StoreInfo>> {
        self.read(name)?;
        self.inner.store_info(name)
    }

    fn store_names(&self) -> Result<Vec<String>> {
        self.read("stores")?;
        self.inner.store_names()
    }

    fn replay_point(&self) -> Result<Option<Vec<u8>>> {
        self.read("replay point")?;
        self.inner.replay_point()
    }

    fn replay_point_location(&self) -> String {
        self.inner.replay_point_location()
    }

    fn apply(&self, batch: &MetaBatch) -> Result<()> {
        self.write("batch", || self.inner.apply(batch))
    }

    fn apply_with_stores(
        &self,
        batch: MetaBatch,
        stores: &[String],
        finish: &mut dyn FnMut(MetaBatch) -> Result<MetaBatch>,
    ) -> Result<()> {
        self.write("batch", || {
            self.inner.apply_with_stores(batch, stores, finish)
        })
    }

    fn remove_store(&self, name: &str) -> Result<()> {
        self.write(name, || self.inner.remove_store(name))
    }

    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    fn refresh(&self) -> Result<()> {
        self.inner.refresh()
    }

    fn recover(&self) -> Result<()> {
        self.inner.recover()
    }
}
