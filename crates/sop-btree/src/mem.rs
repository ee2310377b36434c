//! The in-memory repository: a tree with no disk, no transactions, and no I/O errors.

use std::collections::HashMap;
use std::sync::Arc;

use sop_core::{Error, Result, Uuid};

use crate::{Node, NodeRepository, ValueStore};

/// Nodes and out-of-node values in hash maps. Used by the in-memory tree ([`crate::MemBTree`])
/// and by tests of the algorithm.
pub struct MemRepository<K, V> {
    store: String,
    nodes: HashMap<Uuid, Arc<Node<K, V>>>,
    values: HashMap<Uuid, V>,
}

impl<K, V> MemRepository<K, V> {
    /// An empty repository for the store `store` (the name appears in errors).
    #[must_use]
    pub fn new(store: impl Into<String>) -> Self {
        MemRepository {
            store: store.into(),
            nodes: HashMap::new(),
            values: HashMap::new(),
        }
    }

    /// How many nodes it holds.
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// How many out-of-node values it holds.
    #[must_use]
    pub fn value_count(&self) -> usize {
        self.values.len()
    }

    fn not_found(&self, id: Uuid) -> Error {
        Error::Corruption(sop_core::CorruptionError::NodeNotFound {
            store: self.store.clone(),
            id,
        })
    }
}

impl<K, V> NodeRepository<K, V> for MemRepository<K, V>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    async fn get(&self, id: Uuid) -> Result<Arc<Node<K, V>>> {
        self.nodes
            .get(&id)
            .cloned()
            .ok_or_else(|| self.not_found(id))
    }

    async fn checkout(&mut self, id: Uuid) -> Result<Node<K, V>> {
        let node = self.nodes.remove(&id).ok_or_else(|| self.not_found(id))?;
        Ok(Arc::unwrap_or_clone(node))
    }

    fn add(&mut self, node: Node<K, V>) -> Result<()> {
        self.nodes.insert(node.id, Arc::new(node));
        Ok(())
    }

    fn update(&mut self, node: Node<K, V>) -> Result<()> {
        self.nodes.insert(node.id, Arc::new(node));
        Ok(())
    }

    fn remove(&mut self, id: Uuid) -> Result<()> {
        self.nodes.remove(&id);
        Ok(())
    }
}

impl<K, V> ValueStore<V> for MemRepository<K, V>
where
    K: Send + Sync,
    V: Clone + Send + Sync,
{
    async fn get_value(&self, id: Uuid) -> Result<V> {
        self.values.get(&id).cloned().ok_or_else(|| {
            Error::Corruption(sop_core::CorruptionError::ValueNotFound {
                store: self.store.clone(),
                id,
            })
        })
    }

    async fn put_value(&mut self, id: Uuid, value: V) -> Result<()> {
        self.values.insert(id, value);
        Ok(())
    }

    async fn remove_value(&mut self, id: Uuid) -> Result<()> {
        self.values.remove(&id);
        Ok(())
    }
}
