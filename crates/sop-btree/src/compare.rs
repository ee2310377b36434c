//! How a tree orders its keys.

use std::cmp::Ordering;

/// Orders keys. A tree uses exactly one comparator for its whole life.
///
/// It must be a total order, and it must be consistent with what the application treats as the
/// same key: two keys that compare `Equal` are the same key to the tree (a unique store keeps one
/// of them; [`crate::BTree::update_current_key`] lets one replace the other). A comparator that
/// is not a total order (not transitive, or `compare(a, b)` not the reverse of `compare(b, a)`)
/// does not make the tree panic, but searches then miss items and the tree's checker reports the
/// order as broken.
pub trait KeyComparator<K>: Send + Sync {
    /// Compares two keys.
    fn compare(&self, a: &K, b: &K) -> Ordering;
}

/// The comparator of keys that implement [`Ord`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NaturalOrder;

impl<K: Ord> KeyComparator<K> for NaturalOrder {
    fn compare(&self, a: &K, b: &K) -> Ordering {
        a.cmp(b)
    }
}

/// A comparator made of a function, for keys that are not [`Ord`] or that order differently.
///
/// ```
/// use sop_btree::{FnComparator, KeyComparator};
/// let by_len = FnComparator(|a: &String, b: &String| a.len().cmp(&b.len()));
/// assert!(by_len.compare(&"ab".to_string(), &"c".to_string()).is_gt());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FnComparator<F>(pub F);

impl<K, F> KeyComparator<K> for FnComparator<F>
where
    F: Fn(&K, &K) -> Ordering + Send + Sync,
{
    fn compare(&self, a: &K, b: &K) -> Ordering {
        (self.0)(a, b)
    }
}
