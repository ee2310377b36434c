//! A double-ended cursor over a key range.

use std::cmp::Ordering;
use std::ops::Bound;

use sop_core::{Result, Uuid};

use crate::path::{Path, Seek, item_at};
use crate::{BTree, Item, ItemValue, KeyComparator, NodeRepository, ValueStore};

/// One end of a range cursor.
enum End<K, V> {
    /// Not moved yet: the first call seeks the bound.
    Unstarted,
    /// On the item it last returned.
    At(Path<K, V>),
    /// Past the bound, or met the other end.
    Done,
}

/// Items whose keys fall in a range, from either end: [`Range::next`] walks up from the start
/// bound, [`Range::next_back`] down from the end bound, and the two stop where they meet, so
/// every item is returned exactly once; once either end has run out, both have. Items with equal keys come in insertion order (reversed
/// from the back).
///
/// It borrows the tree, so the tree cannot change while it is alive; that is what keeps it
/// stable.
pub struct Range<'a, K, V, R, C> {
    tree: &'a mut BTree<K, V, R, C>,
    start: Bound<K>,
    end: Bound<K>,
    front: End<K, V>,
    back: End<K, V>,
}

fn same_item<K, V>(a: &Path<K, V>, b: &Path<K, V>) -> bool {
    match (a.last(), b.last()) {
        (Some((x, i)), Some((y, j))) => x.id == y.id && i == j,
        _ => false,
    }
}

impl<'a, K, V, R, C> Range<'a, K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    pub(crate) fn new(tree: &'a mut BTree<K, V, R, C>, start: Bound<K>, end: Bound<K>) -> Self {
        Range {
            tree,
            start,
            end,
            front: End::Unstarted,
            back: End::Unstarted,
        }
    }

    /// The next item from the front, or `None` when the range is exhausted.
    ///
    /// # Errors
    /// Repository and value-store errors, or [`sop_core::Error::Poisoned`].
    pub async fn next(&mut self) -> Result<Option<Item<K, V>>> {
        let Some((id, key, value)) = self.step_front().await? else {
            return Ok(None);
        };
        let value = match value {
            ItemValue::Inline(v) => v,
            other => self.tree.load_value(other).await?,
        };
        Ok(Some(Item { id, key, value }))
    }

    /// The next item's id, key and version from the front, without loading a value kept
    /// outside its node: what a transaction compares to validate a range it read.
    ///
    /// # Errors
    /// Repository errors, or [`sop_core::Error::Poisoned`].
    pub async fn next_version(&mut self) -> Result<Option<(Uuid, K, u32)>> {
        let Some((id, key, _)) = self.step_front().await? else {
            return Ok(None);
        };
        let version = match &self.front {
            End::At(path) => item_at(path).map_or(0, |it| it.version),
            _ => 0,
        };
        Ok(Some((id, key, version)))
    }

    async fn step_front(&mut self) -> Result<Option<(Uuid, K, ItemValue<V>)>> {
        self.tree.guard()?;
        let path = match std::mem::replace(&mut self.front, End::Done) {
            End::Done => return Ok(None),
            End::Unstarted => {
                let seek = match &self.start {
                    Bound::Included(k) => Seek::Lower(k),
                    Bound::Excluded(k) => Seek::Upper(k),
                    Bound::Unbounded => Seek::First,
                };
                self.tree.seek_forward(seek).await?
            }
            End::At(mut path) => {
                self.tree.advance(&mut path).await?;
                path
            }
        };
        let Some(item) = item_at(&path) else {
            self.back = End::Done;
            return Ok(None);
        };
        let past_end = match &self.end {
            Bound::Included(k) => self.tree.cmp.compare(&item.key, k) == Ordering::Greater,
            Bound::Excluded(k) => self.tree.cmp.compare(&item.key, k) != Ordering::Less,
            Bound::Unbounded => false,
        };
        if past_end || matches!(&self.back, End::At(b) if same_item(b, &path)) {
            self.back = End::Done;
            return Ok(None);
        }
        let (id, key, value) = (item.id, item.key.clone(), item.value.clone());
        self.front = End::At(path);
        Ok(Some((id, key, value)))
    }

    /// The next item from the back, or `None` when the range is exhausted.
    ///
    /// # Errors
    /// As [`Range::next`].
    pub async fn next_back(&mut self) -> Result<Option<Item<K, V>>> {
        self.tree.guard()?;
        let path = match std::mem::replace(&mut self.back, End::Done) {
            End::Done => return Ok(None),
            End::Unstarted => {
                let seek = match &self.end {
                    Bound::Included(k) => Seek::Upper(k),
                    Bound::Excluded(k) => Seek::Lower(k),
                    Bound::Unbounded => Seek::Last,
                };
                self.tree.seek_backward(seek).await?
            }
            End::At(mut path) => {
                self.tree.retreat(&mut path).await?;
                path
            }
        };
        let Some(item) = item_at(&path) else {
            self.front = End::Done;
            return Ok(None);
        };
        let before_start = match &self.start {
            Bound::Included(k) => self.tree.cmp.compare(&item.key, k) == Ordering::Less,
            Bound::Excluded(k) => self.tree.cmp.compare(&item.key, k) != Ordering::Greater,
            Bound::Unbounded => false,
        };
        if before_start || matches!(&self.front, End::At(f) if same_item(f, &path)) {
            self.front = End::Done;
            return Ok(None);
        }
        let (id, key, value) = (item.id, item.key.clone(), item.value.clone());
        self.back = End::At(path);
        let value = self.tree.load_value(value).await?;
        Ok(Some(Item { id, key, value }))
    }

    /// All remaining items from the front.
    ///
    /// # Errors
    /// As [`Range::next`].
    pub async fn collect(mut self) -> Result<Vec<Item<K, V>>> {
        let mut out = Vec::new();
        while let Some(item) = self.next().await? {
            out.push(item);
        }
        Ok(out)
    }
}
