//! The metadata seam: what the transaction layer needs from the registry and the store
//! repository, behind one narrow trait, so that layer knows no file, folder or block.
//!
//! Three implementations: the real one over registry blocks and store files (in
//! `sop-registry`), [`MemMetadata`] (in memory: tests of the transaction layer, and engines
//! that need no durability of their metadata) and [`FaultyMetadata`] (wraps another and fails
//! a chosen call, before or after it took effect, to test what a caller does with an error it
//! cannot tell apart from success).

use std::collections::HashMap;
use std::fmt;

use crate::{Handle, Result, StoreInfo, Uuid};

mod fault;
mod mem;

pub use fault::{FaultyMetadata, MetaFault};
pub use mem::MemMetadata;

/// One handle change in a [`MetaBatch`]. Changes with an expected version fail the whole batch
/// (nothing written) when the stored version differs: the fence that keeps a writer from
/// overwriting a change it did not see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandleChange {
    /// A new handle; the batch fails with [`CorruptionError::HandleExists`](crate::CorruptionError::HandleExists) if one is there.
    Add(Handle),
    /// The handle's final state, whatever is there (idempotent: checkpoints write these).
    Put(Handle),
    /// Remove the handle if it is there.
    Delete(Uuid),
    /// Replace the handle only if its stored version is the given one.
    UpdateIf(Handle, u64),
    /// Remove the handle only if its stored version is the given one.
    RemoveIf(Uuid, u64),
    /// Write nothing; fail unless the handle has this version (`None`: unless it is absent).
    Check(Uuid, Option<u64>),
}

impl HandleChange {
    /// The logical id the change is about.
    #[must_use]
    pub fn id(&self) -> Uuid {
        match self {
            HandleChange::Add(h) | HandleChange::Put(h) | HandleChange::UpdateIf(h, _) => {
                h.logical_id
            }
            HandleChange::Delete(id)
            | HandleChange::RemoveIf(id, _)
            | HandleChange::Check(id, _) => *id,
        }
    }
}

/// Handle changes over any number of tables, store infos and the replay point, applied by
/// [`Metadata::apply`] all or nothing, also across a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaBatch {
    /// Handle changes, in order (a later change sees the earlier ones), by table.
    pub handles: Vec<(String, HandleChange)>,
    /// Store infos to write (`Some`) or remove (`None`), by store name.
    pub stores: Vec<(String, Option<StoreInfo>)>,
    /// The new replay point (an opaque record of the transaction layer), if it changes.
    pub replay_point: Option<Vec<u8>>,
}

impl MetaBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        MetaBatch::default()
    }

    /// Adds a handle change to `table`.
    #[must_use]
    pub fn handle(mut self, table: &str, change: HandleChange) -> Self {
        self.handles.push((table.to_string(), change));
        self
    }

    /// Writes a store's info.
    #[must_use]
    pub fn put_store(mut self, info: StoreInfo) -> Self {
        self.stores.push((info.name.clone(), Some(info)));
        self
    }

    /// Removes a store's info.
    #[must_use]
    pub fn remove_store(mut self, name: &str) -> Self {
        self.stores.push((name.to_string(), None));
        self
    }

    /// Sets the replay point.
    #[must_use]
    pub fn replay_point(mut self, bytes: Vec<u8>) -> Self {
        self.replay_point = Some(bytes);
        self
    }

    /// Whether the batch changes and checks nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty() && self.stores.is_empty() && self.replay_point.is_none()
    }
}

/// Handles by table, store infos by name, and one replay point: the metadata of a database.
///
/// Every method may be called from many threads. Reads see every batch [`Metadata::apply`]
/// returned `Ok` for (in clustered use, after [`Metadata::refresh`]).
pub trait Metadata: Send + Sync + fmt::Debug {
    /// The present handles among `ids` in `table` (absent ones are left out).
    ///
    /// # Errors
    /// Storage errors; corruption naming what is damaged.
    fn handles(&self, table: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Handle>>;

    /// The handle of `id` in `table`.
    ///
    /// # Errors
    /// As [`Metadata::handles`].
    fn handle(&self, table: &str, id: Uuid) -> Result<Option<Handle>> {
        Ok(self.handles(table, &[id])?.remove(&id))
    }

    /// The tables that hold (or held) handles, sorted.
    ///
    /// # Errors
    /// Storage errors.
    fn tables(&self) -> Result<Vec<String>>;

    /// A store's info, `None` when it does not exist.
    ///
    /// # Errors
    /// Storage errors; corruption.
    fn store_info(&self, name: &str) -> Result<Option<StoreInfo>>;

    /// The names of all stores, sorted.
    ///
    /// # Errors
    /// Storage errors.
    fn store_names(&self) -> Result<Vec<String>>;

    /// The replay point last written, `None` when none ever was.
    ///
    /// # Errors
    /// Storage errors.
    fn replay_point(&self) -> Result<Option<Vec<u8>>>;

    /// Where the replay point lives, for error messages (a file path, or `memory`).
    fn replay_point_location(&self) -> String;

    /// Applies a batch, all or nothing.
    ///
    /// # Errors
    /// [`TransactionError::VersionMismatch`](crate::TransactionError::VersionMismatch), [`CorruptionError::HandleExists`](crate::CorruptionError::HandleExists),
    /// [`CorruptionError::HandleNotFound`](crate::CorruptionError::HandleNotFound) for a failed expectation (nothing written); storage
    /// errors, after which the batch may or may not have taken effect (read again to know).
    fn apply(&self, batch: &MetaBatch) -> Result<()>;

    /// Applies a batch whose store infos are computed from the current ones (a commit's count
    /// change): `finish` adds them to `batch` at a point where the infos of `stores` cannot
    /// change until the batch is written (clustered: holding their locks and the locks of the
    /// batch's handles). By default the caller serialises its batches, and this is `finish`
    /// then [`Metadata::apply`].
    ///
    /// # Errors
    /// As [`Metadata::apply`], and what `finish` returns.
    fn apply_with_stores(
        &self,
        batch: MetaBatch,
        stores: &[String],
        finish: &mut dyn FnMut(MetaBatch) -> Result<MetaBatch>,
    ) -> Result<()> {
        let _ = stores;
        self.apply(&finish(batch)?)
    }

    /// Removes a store's info and its table, so that an interruption is told apart from lost
    /// metadata (the real implementation leaves a marker until both are gone).
    ///
    /// # Errors
    /// Storage errors.
    fn remove_store(&self, name: &str) -> Result<()>;

    /// A number that changes whenever the visible handles or store infos change (clustered:
    /// another process's batch; standalone: each applied batch). Readers that cache compare it
    /// before and after a read.
    fn generation(&self) -> u64;

    /// Makes reads see every batch other processes applied (clustered); a no-op alone.
    ///
    /// # Errors
    /// Storage errors.
    fn refresh(&self) -> Result<()>;

    /// Finishes a batch that a process which died left half applied (clustered); a no-op
    /// alone.
    ///
    /// # Errors
    /// Storage errors.
    fn recover(&self) -> Result<()>;
}
