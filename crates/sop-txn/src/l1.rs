//! The process-wide cache of decoded nodes (L1), bounded in bytes.

use std::any::Any;
use std::sync::Arc;

use quick_cache::Weighter;
use sop_core::Uuid;

#[derive(Clone)]
struct Entry {
    node: Arc<dyn Any + Send + Sync>,
    bytes: u64,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<Uuid, Entry> for ByBytes {
    fn weight(&self, _: &Uuid, v: &Entry) -> u64 {
        v.bytes.max(1)
    }
}

/// Decoded nodes by *physical* id. A physical id names an immutable blob, so an entry can never
/// be stale: a changed node has a new physical id. Weighed by the node's encoded size.
pub(crate) struct NodeCache {
    cache: quick_cache::sync::Cache<Uuid, Entry, ByBytes>,
}

impl NodeCache {
    pub fn new(bytes: u64) -> Self {
        let items = usize::try_from(bytes / 4096).unwrap_or(usize::MAX).max(16);
        NodeCache {
            cache: quick_cache::sync::Cache::with_weighter(items, bytes.max(1), ByBytes),
        }
    }

    pub fn get<T: Any + Send + Sync>(&self, pid: Uuid) -> Option<Arc<T>> {
        self.cache
            .get(&pid)
            .and_then(|e| Arc::downcast::<T>(e.node).ok())
    }

    pub fn insert(&self, pid: Uuid, node: Arc<dyn Any + Send + Sync>, bytes: usize) {
        self.cache.insert(
            pid,
            Entry {
                node,
                bytes: bytes as u64,
            },
        );
    }
}
