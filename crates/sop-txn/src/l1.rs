//! The process-wide cache of decoded nodes (L1), bounded in bytes.

use std::any::Any;
use std::sync::Arc;

use quick_cache::Weighter;
use sop_core::Uuid;

/// A decoded node version and what its piece chain costs.
#[derive(Clone)]
pub(crate) struct Entry {
    /// An `Arc<Node<K, V>>` of the store's types.
    pub node: Arc<dyn Any + Send + Sync>,
    /// Deltas in its chain (0: a full piece).
    pub depth: u8,
    /// About how big a full piece of it is.
    pub full_len: u32,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<Uuid, Entry> for ByBytes {
    fn weight(&self, _: &Uuid, v: &Entry) -> u64 {
        u64::from(v.full_len).max(1)
    }
}

/// Decoded nodes by piece location. A location names immutable bytes, so an entry can never
/// be stale: a changed node is at a new location. Weighed by the node's encoded size.
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

    /// The node at `pid`, if cached with type `T`, with its chain depth and full size.
    pub fn get<T: Any + Send + Sync>(&self, pid: Uuid) -> Option<(Arc<T>, u8, u32)> {
        let e = self.cache.get(&pid)?;
        let node = Arc::downcast::<T>(e.node).ok()?;
        Some((node, e.depth, e.full_len))
    }

    /// The chain depth of the node cached at `pid`, whatever its types.
    pub fn depth(&self, pid: Uuid) -> Option<u8> {
        self.cache.peek(&pid).map(|e| e.depth)
    }

    pub fn insert(&self, pid: Uuid, entry: Entry) {
        self.cache.insert(pid, entry);
    }

    /// Forgets the node at `pid` (a superseded version: readers of older snapshots that still
    /// want it read it from its piece).
    pub fn remove(&self, pid: Uuid) {
        self.cache.remove(&pid);
    }

    /// A background rewrite put the node cached at `old` at `new` as one full piece of
    /// `full_len` bytes: same content, so the decoded node serves the new location. With
    /// `keep_old` (snapshot readers are open: they still read the old location) it serves both
    /// (one node, two keys; the old key ages out once unread), else it moves.
    pub fn alias(&self, old: Uuid, new: Uuid, full_len: u32, keep_old: bool) {
        let entry = if keep_old {
            // Not counted as a use: the old key should age out once its readers end.
            self.cache.peek(&old)
        } else {
            self.cache.remove(&old).map(|(_, e)| e)
        };
        if let Some(e) = entry {
            self.cache.insert(
                new,
                Entry {
                    node: e.node,
                    depth: 0,
                    full_len,
                },
            );
        }
    }
}
