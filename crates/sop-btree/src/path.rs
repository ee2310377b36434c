//! Paths from the root to an item, and moving them through the tree.
//!
//! A path is a list of `(node, index)` steps from the root. In every step but the last the index
//! is the child the path went down into; in the last step it is the item's index. Going up to a
//! step `(node, c)` from child `c`, the next item in order is `node.items[c]` and the previous
//! one is `node.items[c - 1]`; that one rule drives every move below.

use std::cmp::Ordering;
use std::sync::Arc;

use sop_core::{Error, Result, Uuid};

use crate::{BTree, KeyComparator, Node, NodeItem, NodeRepository, ValueStore};

/// Steps from the root to an item.
pub(crate) type Path<K, V> = Vec<(Arc<Node<K, V>>, usize)>;

/// Room for a path without regrowing: a tree of 1,000-slot nodes is 4 deep at a billion items.
const PATH_CAPACITY: usize = 6;

/// Which slot to take in each node on the way down.
#[derive(Clone, Copy)]
pub(crate) enum Seek<'a, K> {
    /// The first slot whose key is `>=` the key.
    Lower(&'a K),
    /// The first slot whose key is `>` the key.
    Upper(&'a K),
    /// The leftmost slot.
    First,
    /// The rightmost slot.
    Last,
}

/// The items whose keys may compare equal to `key`, by the node's heads: every item before the
/// range is less than `key` and every item after it greater (heads never decrease along a
/// node's items). `None` when the node has no heads yet or the comparator has none.
fn head_range<K, V, C: KeyComparator<K>>(
    cmp: &C,
    node: &Node<K, V>,
    key: &K,
) -> Option<(usize, usize)> {
    let heads = node.index.heads(&node.items, cmp)?;
    let h = cmp.head(key)?;
    let lo = heads.lower(h);
    Some((lo, lo + heads.run(lo, h)))
}

/// The first index in `lo..hi` (as found by the heads, or the whole node) whose item does not
/// satisfy `before`.
fn bound<K, V>(
    node: &Node<K, V>,
    range: Option<(usize, usize)>,
    before: &impl Fn(&NodeItem<K, V>) -> bool,
) -> usize {
    match range.and_then(|(lo, hi)| Some((lo, node.items.get(lo..hi)?))) {
        Some((lo, items)) => lo + items.partition_point(|it| before(it)),
        None => node.items.partition_point(|it| before(it)),
    }
}

/// Debug builds: a search through the heads of a node whose keys are in order finds what a
/// search without them finds (a stale index would not).
fn debug_check<K, V, C: KeyComparator<K>>(
    cmp: &C,
    node: &Node<K, V>,
    range: Option<(usize, usize)>,
    at: usize,
    plain: impl FnOnce() -> usize,
) {
    if cfg!(debug_assertions)
        && range.is_some()
        && node
            .items
            .windows(2)
            .all(|w| cmp.compare(&w[0].key, &w[1].key) != Ordering::Greater)
    {
        assert_eq!(at, plain(), "a node's heads disagree with its keys");
    }
}

/// The index of the first item whose key is not less than `key`.
pub(crate) fn lower_bound<K, V, C: KeyComparator<K>>(cmp: &C, node: &Node<K, V>, key: &K) -> usize {
    let before = |it: &NodeItem<K, V>| cmp.compare(&it.key, key) == Ordering::Less;
    let range = head_range(cmp, node, key);
    let at = bound(node, range, &before);
    debug_check(cmp, node, range, at, || bound(node, None, &before));
    at
}

/// The index of the first item whose key is greater than `key`.
pub(crate) fn upper_bound<K, V, C: KeyComparator<K>>(cmp: &C, node: &Node<K, V>, key: &K) -> usize {
    let before = |it: &NodeItem<K, V>| cmp.compare(&it.key, key) != Ordering::Greater;
    let range = head_range(cmp, node, key);
    let at = bound(node, range, &before);
    debug_check(cmp, node, range, at, || bound(node, None, &before));
    at
}

/// Drops the path's step objects, keeping ids: what a change needs, holding no node alive.
pub(crate) fn ids<K, V>(path: Path<K, V>) -> Vec<(Uuid, usize)> {
    path.into_iter().map(|(n, i)| (n.id, i)).collect()
}

/// The item a path points at.
pub(crate) fn item_at<K, V>(path: &Path<K, V>) -> Option<&NodeItem<K, V>> {
    shared_item_at(path).map(AsRef::as_ref)
}

/// The item a path points at, as the node shares it.
pub(crate) fn shared_item_at<K, V>(path: &Path<K, V>) -> Option<&Arc<NodeItem<K, V>>> {
    path.last().and_then(|(n, i)| n.items.get(*i))
}

/// Moves up until the last step points at an item, for forward moves: ends empty at the end.
fn settle_forward<K, V>(path: &mut Path<K, V>) {
    while let Some((n, i)) = path.last() {
        if *i < n.items.len() {
            return;
        }
        path.pop();
    }
}

/// Moves to the item before the last step's slot, going up as needed: ends empty at the start.
fn settle_backward<K, V>(path: &mut Path<K, V>) {
    while let Some((_, i)) = path.last_mut() {
        if *i > 0 {
            *i -= 1;
            return;
        }
        path.pop();
    }
}

impl<K, V, R, C> BTree<K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    /// Takes a node out of the repository to change it, with a fresh search index (the
    /// repository may hand over the very version it stored, heads included).
    pub(crate) async fn checkout_node(&mut self, id: Uuid) -> Result<Node<K, V>> {
        let mut node = self.repo.checkout(id).await?;
        node.index.reset();
        Ok(node)
    }

    pub(crate) fn child_id(&self, node: &Node<K, V>, index: usize) -> Result<Uuid> {
        node.children.get(index).copied().ok_or_else(|| {
            Error::Corruption(sop_core::CorruptionError::Invariant {
                store: self.info.name.clone(),
                detail: format!(
                    "node {} has {} children, child {index} was asked for",
                    node.id,
                    node.children.len()
                ),
            })
        })
    }

    /// Goes down from the root to a leaf, taking the slot `seek` picks in each node. The last
    /// step's index is a slot in the leaf (it may be one past its last item).
    pub(crate) async fn descend(&self, seek: Seek<'_, K>) -> Result<Path<K, V>> {
        let mut path = Vec::with_capacity(PATH_CAPACITY);
        let mut id = self.info.root_id;
        loop {
            let node = self.repo.get(id).await?;
            let slot = match seek {
                Seek::Lower(k) => lower_bound(&self.cmp, &node, k),
                Seek::Upper(k) => upper_bound(&self.cmp, &node, k),
                Seek::First => 0,
                Seek::Last => node.items.len(),
            };
            if node.is_leaf() {
                path.push((node, slot));
                return Ok(path);
            }
            id = self.child_id(&node, slot)?;
            path.push((node, slot));
        }
    }

    /// Goes down looking for `key`, stopping at the first node that holds it. Returns whether it
    /// was found; when not, the last step is the leaf slot where it would be inserted.
    pub(crate) async fn descend_exact(&self, key: &K) -> Result<(Path<K, V>, bool)> {
        let mut path = Vec::with_capacity(PATH_CAPACITY);
        let mut id = self.info.root_id;
        loop {
            let node = self.repo.get(id).await?;
            let slot = lower_bound(&self.cmp, &node, key);
            let found = node
                .items
                .get(slot)
                .is_some_and(|it| self.cmp.compare(&it.key, key) == Ordering::Equal);
            if found || node.is_leaf() {
                path.push((node, slot));
                return Ok((path, found));
            }
            id = self.child_id(&node, slot)?;
            path.push((node, slot));
        }
    }

    /// The path to the first item `>=` key (`upper == false`) or `>` key (`upper == true`);
    /// empty when there is none.
    pub(crate) async fn seek_forward(&self, seek: Seek<'_, K>) -> Result<Path<K, V>> {
        let mut path = self.descend(seek).await?;
        settle_forward(&mut path);
        Ok(path)
    }

    /// The path to the last item before the slot `seek` picks; empty when there is none.
    pub(crate) async fn seek_backward(&self, seek: Seek<'_, K>) -> Result<Path<K, V>> {
        let mut path = self.descend(seek).await?;
        settle_backward(&mut path);
        Ok(path)
    }

    /// Moves a path to the next item in order; it becomes empty past the last item.
    pub(crate) async fn advance(&self, path: &mut Path<K, V>) -> Result<()> {
        let Some((node, i)) = path.last_mut() else {
            return Ok(());
        };
        *i += 1;
        if !node.is_leaf() {
            let node = Arc::clone(node);
            let child = self.child_id(&node, *i)?;
            self.descend_edge(path, child, Seek::First).await?;
        }
        settle_forward(path);
        Ok(())
    }

    /// Moves a path to the previous item in order; it becomes empty before the first item.
    pub(crate) async fn retreat(&self, path: &mut Path<K, V>) -> Result<()> {
        let Some((node, i)) = path.last() else {
            return Ok(());
        };
        if !node.is_leaf() {
            let child = self.child_id(node, *i)?;
            self.descend_edge(path, child, Seek::Last).await?;
        }
        settle_backward(path);
        Ok(())
    }

    /// Appends the steps from `id` down its leftmost (`First`) or rightmost (`Last`) edge.
    async fn descend_edge(
        &self,
        path: &mut Path<K, V>,
        mut id: Uuid,
        seek: Seek<'_, K>,
    ) -> Result<()> {
        loop {
            let node = self.repo.get(id).await?;
            let slot = if matches!(seek, Seek::Last) {
                node.items.len()
            } else {
                0
            };
            if node.is_leaf() {
                path.push((node, slot));
                return Ok(());
            }
            id = self.child_id(&node, slot)?;
            path.push((node, slot));
        }
    }

    /// Finds the path to the item with this key and id, or an empty path.
    pub(crate) async fn locate(&self, key: &K, id: Uuid) -> Result<Path<K, V>> {
        if self.info.unique {
            let (path, found) = self.descend_exact(key).await?;
            let hit = found && item_at(&path).is_some_and(|it| it.id == id);
            return Ok(if hit { path } else { Vec::new() });
        }
        // A new duplicate goes after the others, so try the last item with this key first.
        let path = self.seek_backward(Seek::Upper(key)).await?;
        if item_at(&path).is_some_and(|it| it.id == id) {
            return Ok(path);
        }
        let mut path = self.seek_forward(Seek::Lower(key)).await?;
        while let Some(it) = item_at(&path) {
            if self.cmp.compare(&it.key, key) != Ordering::Equal {
                break;
            }
            if it.id == id {
                return Ok(path);
            }
            self.advance(&mut path).await?;
        }
        Ok(Vec::new())
    }
}

/// A path held by a reader (a range or a cursor) and the repository generation it was taken
/// at: when another handle changed the tree since, the reader finds its item again by key and
/// id instead of trusting node copies that may be stale.
pub(crate) struct Held<K, V> {
    pub path: Path<K, V>,
    pub generation: u64,
}

impl<K, V, R, C> BTree<K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    /// Holds `path` at the repository's current generation.
    pub(crate) fn hold(&self, path: Path<K, V>) -> Held<K, V> {
        Held {
            path,
            generation: self.repo.generation(),
        }
    }

    /// The held path, found again by its item's key and id when the tree changed since it was
    /// taken; empty when that item is gone.
    pub(crate) async fn refresh(&self, held: Held<K, V>) -> Result<Path<K, V>> {
        if held.generation == self.repo.generation() {
            return Ok(held.path);
        }
        let Some((key, id)) = item_at(&held.path).map(|it| (it.key.clone(), it.id)) else {
            return Ok(Vec::new());
        };
        self.locate(&key, id).await
    }

    /// The path to the item after the held one (empty past the last). When the held item is
    /// gone (removed through another handle), the first item with a greater key.
    pub(crate) async fn after(&self, held: Held<K, V>) -> Result<Path<K, V>> {
        if held.generation == self.repo.generation() {
            let mut path = held.path;
            self.advance(&mut path).await?;
            return Ok(path);
        }
        let Some(key) = item_at(&held.path).map(|it| it.key.clone()) else {
            return Ok(Vec::new());
        };
        let mut path = self.refresh(held).await?;
        if path.is_empty() {
            return self.seek_forward(Seek::Upper(&key)).await;
        }
        self.advance(&mut path).await?;
        Ok(path)
    }

    /// The path to the item before the held one (empty before the first). When the held item
    /// is gone, the last item with a smaller key.
    pub(crate) async fn before(&self, held: Held<K, V>) -> Result<Path<K, V>> {
        if held.generation == self.repo.generation() {
            let mut path = held.path;
            self.retreat(&mut path).await?;
            return Ok(path);
        }
        let Some(key) = item_at(&held.path).map(|it| it.key.clone()) else {
            return Ok(Vec::new());
        };
        let mut path = self.refresh(held).await?;
        if path.is_empty() {
            return self.seek_backward(Seek::Lower(&key)).await;
        }
        self.retreat(&mut path).await?;
        Ok(path)
    }
}
