//! [`RegistryBatch`]: the builder of an atomic batch of handle changes, version checks and
//! small file changes, written by [`Registry::write`](super::Registry::write).

use sop_core::{Handle, Uuid};

/// One change in a [`RegistryBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Add(Handle),
    /// Replace a handle; with `Some(v)`, only if its stored version is `v`.
    Update(Handle, Option<u64>),
    /// Remove a handle; with `Some(v)`, only if its stored version is `v`.
    Remove(Uuid, Option<u64>),
    /// Write nothing, but fail the batch unless the handle is absent (`None`) or has this
    /// version (`Some`).
    Check(Uuid, Option<u64>),
    /// Add or replace a handle, whatever is there (checkpoints write final states).
    Put(Handle),
    /// Remove a handle if it is there.
    Delete(Uuid),
}

impl Change {
    /// Whether it only checks a version (writes nothing).
    pub(super) fn is_check(&self) -> bool {
        matches!(self, Change::Check(..))
    }

    /// The logical id it is about.
    pub(super) fn id(&self) -> Uuid {
        match self {
            Change::Add(h) | Change::Update(h, _) | Change::Put(h) => h.logical_id,
            Change::Remove(id, _) | Change::Check(id, _) | Change::Delete(id) => *id,
        }
    }
}

impl FileChange {
    /// The file's path, relative to the registry folder.
    pub(super) fn path(&self) -> &str {
        match self {
            FileChange::Put(p, _) | FileChange::Remove(p) => p,
        }
    }
}

/// A file change riding in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum FileChange {
    Put(String, Vec<u8>),
    Remove(String),
}

/// Handle changes over any number of tables, version checks, and small file replacements under
/// the registry folder, written atomically by [`Registry::write`](super::Registry::write): all or
/// nothing, also across a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryBatch {
    pub(super) changes: Vec<(String, Change)>,
    pub(super) files: Vec<FileChange>,
}

impl RegistryBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        RegistryBatch::default()
    }
    /// Adds a new handle to `table`.
    #[must_use]
    pub fn add(mut self, table: &str, handle: Handle) -> Self {
        self.changes.push((table.into(), Change::Add(handle)));
        self
    }
    /// Adds the handle to `table`, or replaces the one there: the handle's final state, as a
    /// checkpoint writes it (idempotent, so a replayed checkpoint is harmless).
    #[must_use]
    pub fn put(mut self, table: &str, handle: Handle) -> Self {
        self.changes.push((table.into(), Change::Put(handle)));
        self
    }
    /// Removes the handle of `id` from `table` if it is there.
    #[must_use]
    pub fn delete(mut self, table: &str, id: Uuid) -> Self {
        self.changes.push((table.into(), Change::Delete(id)));
        self
    }
    /// Replaces an existing handle of `table`.
    #[must_use]
    pub fn update(mut self, table: &str, handle: Handle) -> Self {
        self.changes
            .push((table.into(), Change::Update(handle, None)));
        self
    }
    /// Replaces a handle of `table` only if its stored version is still `expected`: the fence
    /// that keeps a writer from overwriting a change it did not see.
    #[must_use]
    pub fn update_if(mut self, table: &str, handle: Handle, expected: u64) -> Self {
        self.changes
            .push((table.into(), Change::Update(handle, Some(expected))));
        self
    }
    /// Removes a handle from `table`.
    #[must_use]
    pub fn remove(mut self, table: &str, id: Uuid) -> Self {
        self.changes.push((table.into(), Change::Remove(id, None)));
        self
    }
    /// Removes a handle from `table` only if its stored version is still `expected`.
    #[must_use]
    pub fn remove_if(mut self, table: &str, id: Uuid, expected: u64) -> Self {
        self.changes
            .push((table.into(), Change::Remove(id, Some(expected))));
        self
    }
    /// Makes the batch fail unless the handle has version `expected` (`None`: unless it is
    /// absent). Writes nothing: it validates what a transaction read.
    #[must_use]
    pub fn check(mut self, table: &str, id: Uuid, expected: Option<u64>) -> Self {
        self.changes
            .push((table.into(), Change::Check(id, expected)));
        self
    }
    /// Replaces (or creates) the file at `path`, relative to the registry folder.
    #[must_use]
    pub fn put_file(mut self, path: &str, bytes: Vec<u8>) -> Self {
        self.files.push(FileChange::Put(path.into(), bytes));
        self
    }
    /// Removes the file at `path`, relative to the registry folder (absent is fine).
    #[must_use]
    pub fn remove_file(mut self, path: &str) -> Self {
        self.files.push(FileChange::Remove(path.into()));
        self
    }
    /// Whether the batch has no changes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.files.is_empty()
    }
}
