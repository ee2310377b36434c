//! A double-ended, lazy cursor over a key range.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use sop_core::{Result, Uuid};

use crate::path::{Held, Path, Seek, shared_item_at};
use crate::{BTree, Item, KeyComparator, NodeItem, NodeRepository, ValueStore};

/// What one step of an end yields: the item as the node shares it, copied only as far as the
/// caller asks (a key, a guard, an owned item).
type Step<K, V> = Arc<NodeItem<K, V>>;

/// One end of a range cursor.
enum End<K, V> {
    /// Not moved yet: the first call seeks the bound.
    Unstarted,
    /// On the item it last returned (kept, shared with its node, to tell where the ends meet).
    At(Held<K, V>, Arc<NodeItem<K, V>>),
    /// Past the bound, or met the other end.
    Done,
}

impl<K, V> End<K, V> {
    fn last(&self) -> Option<(&K, Uuid)> {
        match self {
            End::At(_, item) => Some((&item.key, item.id)),
            _ => None,
        }
    }
}

/// Items whose keys fall in a range, from either end: [`Range::next`] walks up from the start
/// bound, [`Range::next_back`] down from the end bound, and the two stop where they meet, so
/// every item is returned exactly once; once either end has run out, both have. Items with
/// equal keys come in insertion order (reversed from the back).
///
/// It is lazy: it holds one path of nodes per end (a few nodes), whatever the range's size.
/// It borrows the tree shared, so any number of ranges and cursors can walk one tree at once;
/// a change through another handle on the same nodes makes it find its place again by key.
pub struct Range<'a, K, V, R, C> {
    tree: &'a BTree<K, V, R, C>,
    start: Bound<K>,
    end: Bound<K>,
    front: End<K, V>,
    back: End<K, V>,
}

impl<'a, K, V, R, C> Range<'a, K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    pub(crate) fn new(tree: &'a BTree<K, V, R, C>, start: Bound<K>, end: Bound<K>) -> Self {
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
    /// Repository and value-store errors, or [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned).
    pub async fn next(&mut self) -> Result<Option<Item<K, V>>> {
        let Some(item) = self.step_front().await? else {
            return Ok(None);
        };
        self.owned(&item).await.map(Some)
    }

    /// The next item from the front without copying its key or value (see
    /// [`crate::ItemRef`]).
    ///
    /// # Errors
    /// As [`Range::next`].
    pub async fn next_ref(&mut self) -> Result<Option<crate::ItemRef<K, V>>> {
        let Some(item) = self.step_front().await? else {
            return Ok(None);
        };
        self.tree.item_ref(item).await.map(Some)
    }

    async fn owned(&self, item: &NodeItem<K, V>) -> Result<Item<K, V>> {
        let value = self.tree.load_value(item.value.clone()).await?;
        Ok(Item {
            id: item.id,
            key: item.key.clone(),
            value,
        })
    }

    /// The next item's key from the front, without loading its value.
    ///
    /// # Errors
    /// Repository errors, or [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned).
    pub async fn next_key(&mut self) -> Result<Option<K>> {
        Ok(self.step_front().await?.map(|it| it.key.clone()))
    }

    /// The next item's id, key and version from the front, without loading a value kept
    /// outside its node: what a transaction compares to validate a range it read.
    ///
    /// # Errors
    /// Repository errors, or [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned).
    pub async fn next_version(&mut self) -> Result<Option<(Uuid, K, u32)>> {
        Ok(self
            .step_front()
            .await?
            .map(|it| (it.id, it.key.clone(), it.version)))
    }

    fn past_end(&self, item: &NodeItem<K, V>) -> bool {
        let cmp = &self.tree.cmp;
        let past_bound = match &self.end {
            Bound::Included(k) => cmp.compare(&item.key, k) == Ordering::Greater,
            Bound::Excluded(k) => cmp.compare(&item.key, k) != Ordering::Less,
            Bound::Unbounded => false,
        };
        past_bound
            || self.back.last().is_some_and(|(k, id)| {
                id == item.id || cmp.compare(&item.key, k) == Ordering::Greater
            })
    }

    fn before_start(&self, item: &NodeItem<K, V>) -> bool {
        let cmp = &self.tree.cmp;
        let before_bound = match &self.start {
            Bound::Included(k) => cmp.compare(&item.key, k) == Ordering::Less,
            Bound::Excluded(k) => cmp.compare(&item.key, k) != Ordering::Greater,
            Bound::Unbounded => false,
        };
        before_bound
            || self
                .front
                .last()
                .is_some_and(|(k, id)| id == item.id || cmp.compare(&item.key, k) == Ordering::Less)
    }

    async fn step_front(&mut self) -> Result<Option<Step<K, V>>> {
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
            End::At(held, _) => self.tree.after(held).await?,
        };
        self.settle(path, true)
    }

    /// Takes `path` as the new position of one end, or ends the range when it left it.
    fn settle(&mut self, path: Path<K, V>, front: bool) -> Result<Option<Step<K, V>>> {
        let Some(item) = shared_item_at(&path).map(Arc::clone) else {
            self.front = End::Done;
            self.back = End::Done;
            return Ok(None);
        };
        let out = if front {
            self.past_end(&item)
        } else {
            self.before_start(&item)
        };
        if out {
            self.front = End::Done;
            self.back = End::Done;
            return Ok(None);
        }
        let end = End::At(self.tree.hold(path), Arc::clone(&item));
        if front {
            self.front = end;
        } else {
            self.back = end;
        }
        Ok(Some(item))
    }

    /// The next item from the back, or `None` when the range is exhausted.
    ///
    /// # Errors
    /// As [`Range::next`].
    pub async fn next_back(&mut self) -> Result<Option<Item<K, V>>> {
        let Some(item) = self.step_back().await? else {
            return Ok(None);
        };
        self.owned(&item).await.map(Some)
    }

    /// The next item from the back without copying its key or value.
    ///
    /// # Errors
    /// As [`Range::next`].
    pub async fn next_back_ref(&mut self) -> Result<Option<crate::ItemRef<K, V>>> {
        let Some(item) = self.step_back().await? else {
            return Ok(None);
        };
        self.tree.item_ref(item).await.map(Some)
    }

    async fn step_back(&mut self) -> Result<Option<Step<K, V>>> {
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
            End::At(held, _) => self.tree.before(held).await?,
        };
        self.settle(path, false)
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
