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

/// Heads per block of the second level: 16 heads are two cache lines.
const BLOCK: usize = 16;

/// A node's key heads, and every `BLOCK`th of them in a small array of their own: a search
/// finds its block there (a few lines, hot for a node searched often), then its place in the
/// block's two lines, instead of halving 8 KB of heads line by line (one likely cache miss per
/// step in a tree bigger than the cache).
#[derive(Default)]
pub(crate) struct Heads {
    all: Box<[u64]>,
    tops: Box<[u64]>,
}

impl Heads {
    fn new(all: Box<[u64]>) -> Self {
        let tops = all.iter().step_by(BLOCK).copied().collect();
        Heads { all, tops }
    }

    /// The index of the first head not less than `h` (as `partition_point(|x| *x < h)`).
    pub(crate) fn lower(&self, h: u64) -> usize {
        // tops[t - 1] = all[(t - 1) * BLOCK] < h <= tops[t] = all[t * BLOCK].
        let t = self.tops.partition_point(|x| *x < h);
        let start = if t == 0 { 0 } else { (t - 1) * BLOCK + 1 };
        let end = (t * BLOCK).min(self.all.len());
        start
            + self
                .all
                .get(start..end)
                .map_or(0, |b| b.partition_point(|x| *x < h))
    }

    /// How many heads from `lo` on equal `h`.
    pub(crate) fn run(&self, lo: usize, h: u64) -> usize {
        self.all
            .get(lo..)
            .map_or(0, |rest| rest.partition_point(|x| *x == h))
    }
}

/// The search index of one node version. Cloning a node starts a fresh one (the clone is about
/// to change), and so does [`SearchIndex::reset`], which the tree calls on every node it takes
/// out of its repository to change.
#[derive(Default)]
pub(crate) struct SearchIndex {
    searches: AtomicU32,
    heads: OnceLock<Heads>,
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
    ) -> Option<&Heads> {
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
                    Heads::new(
                        items
                            .iter()
                            .map(|it| cmp.head(&it.key))
                            .collect::<Option<Box<[u64]>>>()
                            .unwrap_or_default(),
                    )
                })
            }
        };
        // Empty for a comparator without heads; a length that differs is a node changed in
        // place after its heads were built, which the tree never does: never trust it.
        (!heads.all.is_empty() && heads.all.len() == items.len()).then_some(heads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The two-level search finds what one binary search over all heads finds, runs of
        /// equal heads included, for any length around the block size.
        #[test]
        fn two_levels_find_what_one_search_finds(
            mut all in prop::collection::vec(0u64..40, 0..200),
            probes in prop::collection::vec(0u64..45, 1..20),
        ) {
            all.sort_unstable();
            let heads = Heads::new(all.clone().into_boxed_slice());
            for h in probes {
                let lo = all.partition_point(|x| *x < h);
                prop_assert_eq!(heads.lower(h), lo);
                prop_assert_eq!(heads.run(lo, h), all[lo..].partition_point(|x| *x == h));
            }
        }
    }
}
