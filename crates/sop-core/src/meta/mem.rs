//! [`MemMetadata`]: the metadata seam in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::{HandleChange, MetaBatch, Metadata};
use crate::{Error, Handle, Result, StoreInfo, Uuid, validate_store_name};

#[derive(Debug, Default, Clone)]
struct State {
    tables: BTreeMap<String, HashMap<Uuid, Handle>>,
    stores: BTreeMap<String, StoreInfo>,
    replay_point: Option<Vec<u8>>,
}

/// Metadata held in memory, with the same rules as the registry's: a batch applies all or
/// nothing, changes in a batch apply in order, an expectation that fails writes nothing.
///
/// Clone the `Arc` holding it to "reopen" an engine over the same metadata in a test.
///
/// ```
/// use sop_core::meta::{HandleChange, MemMetadata, MetaBatch, Metadata};
/// use sop_core::{Handle, Uuid};
///
/// let meta = MemMetadata::new();
/// let h = Handle::new(Uuid::new_v4());
/// meta.apply(&MetaBatch::new().handle("t", HandleChange::Add(h)))?;
/// assert_eq!(meta.handle("t", h.logical_id)?, Some(h));
/// // A second add of the same id fails and changes nothing.
/// assert!(meta.apply(&MetaBatch::new().handle("t", HandleChange::Add(h))).is_err());
/// # Ok::<(), sop_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemMetadata {
    state: RwLock<State>,
    generation: AtomicU64,
}

impl MemMetadata {
    /// Empty metadata.
    #[must_use]
    pub fn new() -> Self {
        MemMetadata::default()
    }

    /// A copy of everything held now: what a crash at this instant leaves (every batch that
    /// returned is in it), for reopening an engine as after a power cut.
    #[must_use]
    pub fn snapshot(&self) -> MemMetadata {
        MemMetadata {
            state: RwLock::new(self.state.read().clone()),
            generation: AtomicU64::new(self.generation()),
        }
    }

    /// How many handles all tables hold.
    #[must_use]
    pub fn handle_count(&self) -> usize {
        self.state.read().tables.values().map(HashMap::len).sum()
    }
}

/// Applies one change to the working copy of a table.
fn change(table: &str, t: &mut HashMap<Uuid, Handle>, c: &HandleChange) -> Result<()> {
    let id = c.id();
    let stored = t.get(&id).map(|h| h.version);
    let mismatch = |expected: u64| {
        Error::Transaction(crate::TransactionError::VersionMismatch {
            table: table.to_string(),
            id,
            expected,
            found: stored.unwrap_or(0),
        })
    };
    match c {
        HandleChange::Add(h) => {
            if stored.is_some() {
                return Err(Error::Corruption(crate::CorruptionError::HandleExists {
                    table: table.to_string(),
                    id,
                }));
            }
            t.insert(id, *h);
        }
        HandleChange::Put(h) => {
            t.insert(id, *h);
        }
        HandleChange::Delete(_) => {
            t.remove(&id);
        }
        HandleChange::UpdateIf(h, v) => {
            if stored != Some(*v) {
                return Err(mismatch(*v));
            }
            t.insert(id, *h);
        }
        HandleChange::RemoveIf(_, v) => {
            if stored != Some(*v) {
                return Err(mismatch(*v));
            }
            t.remove(&id);
        }
        HandleChange::Check(_, expected) => {
            if stored != *expected {
                return Err(mismatch(expected.unwrap_or(0)));
            }
        }
    }
    Ok(())
}

impl Metadata for MemMetadata {
    fn handles(&self, table: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Handle>> {
        let s = self.state.read();
        let Some(t) = s.tables.get(table) else {
            return Ok(HashMap::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| t.get(id).map(|h| (*id, *h)))
            .collect())
    }

    fn tables(&self) -> Result<Vec<String>> {
        Ok(self.state.read().tables.keys().cloned().collect())
    }

    fn store_info(&self, name: &str) -> Result<Option<StoreInfo>> {
        validate_store_name(name)?;
        Ok(self.state.read().stores.get(name).cloned())
    }

    fn store_names(&self) -> Result<Vec<String>> {
        Ok(self.state.read().stores.keys().cloned().collect())
    }

    fn replay_point(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.state.read().replay_point.clone())
    }

    fn replay_point_location(&self) -> String {
        "memory (replay point)".into()
    }

    fn apply(&self, batch: &MetaBatch) -> Result<()> {
        for (name, _) in &batch.stores {
            validate_store_name(name)?;
        }
        let mut s = self.state.write();
        // Applied in place with an undo list: a failed expectation puts back what the batch
        // changed before it, so `s` is as it was (cost proportional to the batch).
        let mut undo: Vec<(&str, Uuid, Option<Handle>)> = Vec::new();
        let mut failed = None;
        let mut created: Vec<&str> = Vec::new();
        for (table, c) in &batch.handles {
            if !s.tables.contains_key(table) {
                if let HandleChange::Check(..) = c {
                    // A check writes nothing: no table is made for it.
                    if let Err(e) = change(table, &mut HashMap::new(), c) {
                        failed = Some(e);
                        break;
                    }
                    continue;
                }
                created.push(table.as_str());
            }
            let t = s.tables.entry(table.clone()).or_default();
            let before = t.get(&c.id()).copied();
            if let Err(e) = change(table, t, c) {
                failed = Some(e);
                break;
            }
            undo.push((table.as_str(), c.id(), before));
        }
        if let Some(e) = failed {
            for (table, id, before) in undo.into_iter().rev() {
                if let Some(t) = s.tables.get_mut(table) {
                    match before {
                        Some(h) => t.insert(id, h),
                        None => t.remove(&id),
                    };
                }
            }
            for table in created {
                s.tables.remove(table);
            }
            return Err(e);
        }
        let writes = batch
            .handles
            .iter()
            .any(|(_, c)| !matches!(c, HandleChange::Check(..)));
        for (name, info) in &batch.stores {
            match info {
                Some(i) => {
                    s.stores.insert(name.clone(), i.clone());
                }
                None => {
                    s.stores.remove(name);
                }
            }
        }
        if let Some(r) = &batch.replay_point {
            s.replay_point = Some(r.clone());
        }
        if writes || !batch.stores.is_empty() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    fn remove_store(&self, name: &str) -> Result<()> {
        validate_store_name(name)?;
        let mut s = self.state.write();
        s.stores.remove(name);
        s.tables.remove(name);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn refresh(&self) -> Result<()> {
        Ok(())
    }

    fn recover(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{HandleChange, MemMetadata, MetaBatch, Metadata};
    use crate::{Handle, Uuid};

    #[test]
    fn a_failed_expectation_leaves_everything_as_it_was() {
        let m = MemMetadata::new();
        let a = Handle::new(Uuid::new_v4());
        let b = Handle::new(Uuid::new_v4());
        m.apply(&MetaBatch::new().handle("t", HandleChange::Add(a)))
            .unwrap();
        let g = m.generation();
        // An add, then a check that fails: the add is undone, no table "u" appears.
        let bad = MetaBatch::new()
            .handle("u", HandleChange::Add(b))
            .handle("t", HandleChange::Check(b.logical_id, Some(1)));
        assert!(m.apply(&bad).is_err());
        assert_eq!(m.tables().unwrap(), ["t"]);
        assert_eq!(m.handle_count(), 1);
        assert_eq!(m.generation(), g);
        // Checks on a table that does not exist: absent passes, a version fails; neither
        // makes the table.
        m.apply(&MetaBatch::new().handle("v", HandleChange::Check(b.logical_id, None)))
            .unwrap();
        assert!(
            m.apply(&MetaBatch::new().handle("v", HandleChange::Check(b.logical_id, Some(0))))
                .is_err()
        );
        assert_eq!(m.tables().unwrap(), ["t"]);
    }
}
