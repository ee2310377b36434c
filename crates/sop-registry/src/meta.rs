//! [`RegistryMetadata`]: the metadata seam over registry blocks and store files.
//!
//! Where each piece lives (relative to the registry folder): handles in `tables/<store>/`,
//! store infos in `stores/<store>.store`, the replay point in `checkpoint`, and a marker
//! `removed/<store>` while a store's removal is in progress. A batch is one atomic
//! [`RegistryBatch`](crate::RegistryBatch): the store files and the replay point ride in its
//! journal with the handle changes.

use std::collections::HashMap;
use std::sync::Arc;

use sop_core::meta::{HandleChange, MetaBatch, Metadata};
use sop_core::{Handle, Result, StoreInfo, Uuid};

use crate::{Registry, RegistryBatch, StoreRepository};

/// The replay point's file, relative to the registry folder.
pub const REPLAY_POINT_FILE: &str = "checkpoint";

/// Folder of removal markers, relative to the registry folder.
pub const REMOVED_DIR: &str = "removed";

/// The marker of a store removal in progress, relative to the registry folder.
#[must_use]
pub fn removal_marker(name: &str) -> String {
    format!("{REMOVED_DIR}/{name}")
}

/// The registry and the store repository of one folder, as [`Metadata`].
#[derive(Debug, Clone)]
pub struct RegistryMetadata {
    registry: Arc<Registry>,
    stores: Arc<StoreRepository>,
}

impl RegistryMetadata {
    /// Joins a registry and the store repository over the same folder.
    #[must_use]
    pub fn new(registry: Arc<Registry>, stores: Arc<StoreRepository>) -> Self {
        RegistryMetadata { registry, stores }
    }

    /// The registry (for verification and repair, which look at its files).
    #[must_use]
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The store repository.
    #[must_use]
    pub fn stores(&self) -> &Arc<StoreRepository> {
        &self.stores
    }

    /// The registry batch that does what `batch` says.
    ///
    /// # Errors
    /// Encoding errors of a store info.
    pub fn registry_batch(batch: &MetaBatch) -> Result<RegistryBatch> {
        let mut b = RegistryBatch::new();
        for (table, c) in &batch.handles {
            b = match *c {
                HandleChange::Add(h) => b.add(table, h),
                HandleChange::Put(h) => b.put(table, h),
                HandleChange::Delete(id) => b.delete(table, id),
                HandleChange::UpdateIf(h, v) => b.update_if(table, h, v),
                HandleChange::RemoveIf(id, v) => b.remove_if(table, id, v),
                HandleChange::Check(id, v) => b.check(table, id, v),
            };
        }
        for (name, info) in &batch.stores {
            let path = StoreRepository::relative_path(name);
            b = match info {
                Some(info) => b.put_file(&path, StoreRepository::encode_info(info)?),
                None => b.remove_file(&path),
            };
        }
        if let Some(r) = &batch.replay_point {
            b = b.put_file(REPLAY_POINT_FILE, r.clone());
        }
        Ok(b)
    }
}

impl Metadata for RegistryMetadata {
    fn handles(&self, table: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Handle>> {
        self.registry.get(table, ids)
    }

    fn handle(&self, table: &str, id: Uuid) -> Result<Option<Handle>> {
        self.registry.get_one(table, id)
    }

    fn tables(&self) -> Result<Vec<String>> {
        self.registry.tables()
    }

    fn store_info(&self, name: &str) -> Result<Option<StoreInfo>> {
        self.stores.get(name)
    }

    fn store_names(&self) -> Result<Vec<String>> {
        self.stores.list()
    }

    fn replay_point(&self) -> Result<Option<Vec<u8>>> {
        self.registry.read_file(REPLAY_POINT_FILE)
    }

    fn replay_point_location(&self) -> String {
        self.registry
            .base()
            .join(REPLAY_POINT_FILE)
            .display()
            .to_string()
    }

    fn apply(&self, batch: &MetaBatch) -> Result<()> {
        self.registry.write(&Self::registry_batch(batch)?)
    }

    /// Clustered: the store files are read and written holding their locks (and the blocks'),
    /// so two processes changing one store's count each add their own change.
    fn apply_with_stores(
        &self,
        batch: MetaBatch,
        stores: &[String],
        finish: &mut dyn FnMut(MetaBatch) -> Result<MetaBatch>,
    ) -> Result<()> {
        let pre = Self::registry_batch(&batch)?;
        let files: Vec<String> = stores
            .iter()
            .map(|n| StoreRepository::relative_path(n))
            .collect();
        self.registry
            .write_with(&pre, &files, || Self::registry_batch(&finish(batch)?))
    }

    /// A marker is written with the store file's removal and taken away last, so an
    /// interrupted removal is told apart from lost metadata (`verify --repair` finishes the one
    /// and refuses to touch the other).
    fn remove_store(&self, name: &str) -> Result<()> {
        let marker = removal_marker(name);
        if self.registry.is_shared() {
            return self.registry.remove_store_shared(
                &StoreRepository::relative_path(name),
                &marker,
                name,
            );
        }
        self.registry.write(
            &RegistryBatch::new()
                .put_file(&marker, Vec::new())
                .remove_file(&StoreRepository::relative_path(name)),
        )?;
        self.registry.remove_table(name)?;
        self.registry
            .write(&RegistryBatch::new().remove_file(&marker))
    }

    fn generation(&self) -> u64 {
        self.registry.generation()
    }

    fn refresh(&self) -> Result<()> {
        self.registry.ensure_current()
    }

    fn recover(&self) -> Result<()> {
        self.registry.recover_journal()
    }
}
