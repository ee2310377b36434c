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
    /// A second key for a node another entry holds (see [`NodeCache::alias`]): weighed as
    /// one byte, since the node's memory is counted once, under its new location.
    pub alias: bool,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<Uuid, Entry> for ByBytes {
    fn weight(&self, _: &Uuid, v: &Entry) -> u64 {
        if v.alias {
            1
        } else {
            u64::from(v.full_len).max(1)
        }
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
    /// `keep_old` (snapshot readers are open: they still read the old location) it serves both:
    /// one node under two keys, the old one an alias weighed as one byte (counting the node
    /// twice halved what L1 held while a rewrite ran under a long reader), which ages out
    /// once unread. Else it moves.
    pub fn alias(&self, old: Uuid, new: Uuid, full_len: u32, keep_old: bool) {
        let entry = if keep_old {
            // Not counted as a use: the old key should age out once its readers end.
            self.cache.peek(&old).inspect(|e| {
                self.cache.insert(
                    old,
                    Entry {
                        alias: true,
                        ..e.clone()
                    },
                );
            })
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
                    alias: false,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &Arc<Vec<u8>>, full_len: u32) -> Entry {
        Entry {
            node: Arc::clone(node) as Arc<dyn Any + Send + Sync>,
            depth: 2,
            full_len,
            alias: false,
        }
    }

    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn a_rewrite_under_open_readers_serves_both_locations_and_counts_the_node_once() {
        let l1 = NodeCache::new(1 << 20);
        let node = Arc::new(vec![7u8; 10]);
        l1.insert(id(1), entry(&node, 10_000));
        l1.alias(id(1), id(2), 9_000, true);
        let (old, _, _) = l1.get::<Vec<u8>>(id(1)).expect("kept for open readers");
        let (new, depth, full_len) = l1.get::<Vec<u8>>(id(2)).expect("moved");
        assert!(Arc::ptr_eq(&old, &new) && Arc::ptr_eq(&new, &node));
        assert_eq!((depth, full_len), (0, 9_000));
        // The node once (under its new location) and one byte for the old key.
        assert_eq!(l1.cache.weight(), 9_001);
    }

    #[test]
    fn a_rewrite_with_no_reader_moves_the_node() {
        let l1 = NodeCache::new(1 << 20);
        let node = Arc::new(vec![7u8; 10]);
        l1.insert(id(1), entry(&node, 10_000));
        l1.alias(id(1), id(2), 9_000, false);
        assert!(l1.get::<Vec<u8>>(id(1)).is_none());
        assert!(l1.get::<Vec<u8>>(id(2)).is_some());
        assert_eq!(l1.cache.weight(), 9_000);
    }
}
