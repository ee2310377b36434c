//! A node's search index: its items' key heads in one contiguous array, built once a node
//! version has been searched often enough to pay for reading every key once.
//!
//! Why: a binary search over `Arc`ed items follows two pointers per comparison (item, then key
//! bytes), each a likely cache miss in a tree bigger than the cache; the heads of a 1,000-item
//! node are 8 KB of integers, and a search in them touches a few lines, then compares one or
//! two whole keys. Why lazily: a node version a write transaction makes is searched a few
//! times before the next version replaces it, so building its heads would cost more than it
//! saves; a committed node read over and over pays for its heads after a few dozen searches.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::Arc;

use crate::{KeyComparator, NodeItem};

/// Searches of one node version before its heads are built.
const BUILD_AFTER: u32 = 32;

/// The search index of one node version. Cloning a node starts a fresh one (the clone is about
/// to change), and so does [`SearchIndex::reset`], which the tree calls on every node it takes
/// out of its repository to change.
#[derive(Default)]
pub(crate) struct SearchIndex {
    searches: AtomicU32,
    heads: OnceLock<Box<[u64]>>,
}

impl Clone for SearchIndex {
    fn clone(&self) -> Self {
        SearchIndex::default()
    }
}

impl PartialEq for SearchIndex {
    /// A cache: never part of what a node is.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SearchIndex {}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SearchIndex")
    }
}

impl SearchIndex {
    /// Forgets the heads: the node is about to change.
    pub(crate) fn reset(&mut self) {
        *self = SearchIndex::default();
    }

    /// The heads of `items`, once built (`None` before, and for comparators without heads).
    pub(crate) fn heads<K, V, C: KeyComparator<K>>(
        &self,
        items: &[Arc<NodeItem<K, V>>],
        cmp: &C,
    ) -> Option<&[u64]> {
        let heads = match self.heads.get() {
            Some(h) => h,
            None => {
                // A plain load and store, not a read-modify-write: a count lost to a race
                // only delays the build by a search.
                let n = self.searches.load(Ordering::Relaxed);
                if n < BUILD_AFTER {
                    self.searches.store(n + 1, Ordering::Relaxed);
                    return None;
                }
                self.heads.get_or_init(|| {
                    items
                        .iter()
                        .map(|it| cmp.head(&it.key))
                        .collect::<Option<Box<[u64]>>>()
                        .unwrap_or_default()
                })
            }
        };
        // Empty for a comparator without heads; a length that differs is a node changed in
        // place after its heads were built, which the tree never does: never trust it.
        (!heads.is_empty() && heads.len() == items.len()).then_some(&**heads)
    }
}
