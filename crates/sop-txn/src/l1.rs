//! The process-wide cache of decoded nodes (L1), bounded in bytes.

use std::any::Any;
use std::sync::{Arc, Weak};

use quick_cache::Weighter;
use sop_core::Uuid;

/// A decoded node version and what its piece chain costs.
#[derive(Clone)]
pub(crate) struct Entry {
    /// An `Arc<Node<K, V>>` of the store's types.
    pub node: Slot,
    /// Deltas in its chain (0: a full piece).
    pub depth: u8,
    /// About how big a full piece of it is.
    pub full_len: u32,
}

/// How an entry holds its node.
#[derive(Clone)]
pub(crate) enum Slot {
    /// The node, counted at its full size.
    Held(Arc<dyn Any + Send + Sync>),
    /// A second key for a node the entry of its new location holds (see
    /// [`NodeCache::alias`]): weak, so it never keeps the node alive once that entry is gone,
    /// and weighed as what the entry itself costs.
    Alias(Weak<dyn Any + Send + Sync>),
}

impl Entry {
    /// An entry holding `node`.
    pub fn held(node: Arc<dyn Any + Send + Sync>, depth: u8, full_len: u32) -> Self {
        Entry {
            node: Slot::Held(node),
            depth,
            full_len,
        }
    }
}

/// What an alias entry is weighed as: its key, its slot and the cache's bookkeeping.
const ALIAS_WEIGHT: u64 = 64;

#[derive(Clone)]
struct ByBytes;

impl Weighter<Uuid, Entry> for ByBytes {
    fn weight(&self, _: &Uuid, v: &Entry) -> u64 {
        match v.node {
            Slot::Held(_) => u64::from(v.full_len).max(1),
            Slot::Alias(_) => ALIAS_WEIGHT,
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
        let node = match e.node {
            Slot::Held(n) => n,
            Slot::Alias(w) => match w.upgrade() {
                Some(n) => n,
                None => {
                    // Its node left with the entry that held it: a miss from now on.
                    self.cache.remove(&pid);
                    return None;
                }
            },
        };
        let node = Arc::downcast::<T>(node).ok()?;
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
    /// `keep_old` (snapshot readers are open: they still read the old location) the old key
    /// stays as a weak alias of it: the node is counted once, under the new location
    /// (counting it twice halved what L1 held while a rewrite ran under a long reader), and
    /// an alias never keeps a node alive once the new location's entry is superseded or
    /// evicted. Else the entry moves.
    pub fn alias(&self, old: Uuid, new: Uuid, full_len: u32, keep_old: bool) {
        let node = if keep_old {
            let Some(e) = self.cache.peek(&old) else {
                return;
            };
            let node = match &e.node {
                Slot::Held(n) => Arc::clone(n),
                Slot::Alias(w) => match w.upgrade() {
                    Some(n) => n,
                    None => return,
                },
            };
            let alias = Entry {
                node: Slot::Alias(Arc::downgrade(&node)),
                ..e
            };
            // Soft: not counted as a use, so the old key ages out once its readers end.
            let _ = self.cache.replace(old, alias, true);
            node
        } else {
            match self.cache.remove(&old).map(|(_, e)| e.node) {
                Some(Slot::Held(n)) => n,
                Some(Slot::Alias(w)) => match w.upgrade() {
                    Some(n) => n,
                    None => return,
                },
                None => return,
            }
        };
        self.cache.insert(new, Entry::held(node, 0, full_len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &Arc<Vec<u8>>, full_len: u32) -> Entry {
        Entry::held(Arc::clone(node) as Arc<dyn Any + Send + Sync>, 2, full_len)
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
        // The node once (under its new location), and what the old key's entry costs.
        assert_eq!(l1.cache.weight(), 9_000 + ALIAS_WEIGHT);
        drop((old, new, node));
        // The next version supersedes the new location's entry: the alias keeps nothing alive.
        l1.remove(id(2));
        assert!(l1.get::<Vec<u8>>(id(1)).is_none());
        assert_eq!(l1.cache.weight(), 0);
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
