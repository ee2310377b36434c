//! Insertion: put an item in a leaf, then split (or lend to a sibling) up the path while nodes
//! overflow.

use sop_core::{Result, Uuid};
use std::sync::Arc;

use crate::{BTree, KeyComparator, Node, NodeItem, NodeRepository, ValueStore};

/// A path of `(node id, index)` steps from the root, holding no node alive.
pub(crate) type IdPath = Vec<(Uuid, usize)>;

/// A split: the item that goes up, and the new right half.
type Split<K, V> = (Arc<NodeItem<K, V>>, Node<K, V>);

impl<K, V, R, C> BTree<K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    /// Inserts `item` at the leaf slot the path ends with.
    pub(crate) async fn insert_at(&mut self, mut path: IdPath, item: NodeItem<K, V>) -> Result<()> {
        let Some((leaf_id, slot)) = path.pop() else {
            return Err(self.invariant("insertion without a path".into()));
        };
        let mut leaf = self.checkout_node(leaf_id).await?;
        if slot > leaf.items.len() || !leaf.is_leaf() {
            let detail = format!(
                "insertion at slot {slot} of node {leaf_id}, a {} of {} items",
                if leaf.is_leaf() { "leaf" } else { "branch" },
                leaf.items.len()
            );
            self.repo.update(leaf)?;
            return Err(self.invariant(detail));
        }
        leaf.items.insert(slot, Arc::new(item));
        self.fix_overflow(leaf, path).await
    }

    /// Splits `node` and its ancestors while they hold more than `slot_length` items.
    async fn fix_overflow(&mut self, mut node: Node<K, V>, mut ancestors: IdPath) -> Result<()> {
        loop {
            if node.items.len() <= self.info.slot_length {
                return self.repo.update(node);
            }
            let Some((parent_id, c)) = ancestors.pop() else {
                return self.split_root(node);
            };
            if node.is_leaf() && self.info.leaf_load_balancing {
                match self.lend_to_sibling(node, parent_id, c).await? {
                    None => return Ok(()),
                    Some(back) => node = back,
                }
            }
            let mut parent = self.checkout_node(parent_id).await?;
            let (median, right) = self.split_off_right(&mut node)?;
            if c > parent.items.len() {
                let detail = format!(
                    "child {c} of node {parent_id} split, it has {} items",
                    parent.items.len()
                );
                self.repo.update(parent)?;
                return Err(self.invariant(detail));
            }
            parent.items.insert(c, median);
            parent.children.insert(c + 1, right.id);
            self.repo.update(node)?;
            self.repo.add(right)?;
            node = parent;
        }
    }

    /// Cuts an overflowing node after its first `slot_length / 2` items: returns the item to
    /// promote and the new right sibling. The left part keeps `slot_length / 2` items and the
    /// right part `slot_length - slot_length / 2`, so both are at least half full.
    fn split_off_right(&self, node: &mut Node<K, V>) -> Result<Split<K, V>> {
        let half = self.info.slot_length / 2;
        let right_items = node.items.split_off(half + 1);
        let right_children = if node.is_leaf() {
            Vec::new()
        } else {
            node.children.split_off(half + 1)
        };
        let median = node
            .items
            .pop()
            .ok_or_else(|| self.invariant(format!("split of node {} with no items", node.id)))?;
        let right = Node {
            id: Uuid::new_v4(),
            items: right_items,
            children: right_children,
            index: crate::index::SearchIndex::default(),
        };
        Ok((median, right))
    }

    /// The root overflowed: its halves become two new children and it keeps the median, so the
    /// root's id stays the store's root id.
    fn split_root(&mut self, mut root: Node<K, V>) -> Result<()> {
        let (median, right) = self.split_off_right(&mut root)?;
        let left = Node {
            id: Uuid::new_v4(),
            items: std::mem::take(&mut root.items),
            children: std::mem::take(&mut root.children),
            index: crate::index::SearchIndex::default(),
        };
        root.items = vec![median];
        root.children = vec![left.id, right.id];
        self.repo.add(left)?;
        self.repo.add(right)?;
        self.repo.update(root)
    }

    /// Leaf load balancing: moves items of the overflowing leaf through the parent into an
    /// adjacent sibling with room, half the difference at a time. Returns the leaf back when
    /// neither sibling has room (the caller splits it).
    async fn lend_to_sibling(
        &mut self,
        mut node: Node<K, V>,
        parent_id: Uuid,
        c: usize,
    ) -> Result<Option<Node<K, V>>> {
        let max = self.info.slot_length;
        let (left_id, right_id) = {
            let parent = self.repo.get(parent_id).await?;
            let left = c
                .checked_sub(1)
                .and_then(|i| parent.children.get(i).copied());
            (left, parent.children.get(c + 1).copied())
        };
        if let Some(left_id) = left_id {
            let room = self.repo.get(left_id).await?.items.len();
            if room < max {
                let k = ((node.items.len() - room) / 2).max(1);
                let mut parent = self.checkout_node(parent_id).await?;
                let mut left = self.checkout_node(left_id).await?;
                if c > parent.items.len() {
                    return Err(self.bad_parent(parent_id, c, parent.items.len()));
                }
                let mut moved: Vec<_> = node.items.drain(..k).collect();
                if let (Some(new_sep), Some(separator)) = (moved.pop(), parent.items.get_mut(c - 1))
                {
                    left.items.push(std::mem::replace(separator, new_sep));
                    left.items.append(&mut moved);
                }
                self.repo.update(left)?;
                self.repo.update(node)?;
                self.repo.update(parent)?;
                return Ok(None);
            }
        }
        if let Some(right_id) = right_id {
            let room = self.repo.get(right_id).await?.items.len();
            if room < max {
                let len = node.items.len();
                let k = ((len - room) / 2).max(1);
                let mut parent = self.checkout_node(parent_id).await?;
                let mut right = self.checkout_node(right_id).await?;
                if c >= parent.items.len() {
                    return Err(self.bad_parent(parent_id, c, parent.items.len()));
                }
                let mut moved = node.items.split_off(len - k);
                if let Some(separator) = parent.items.get_mut(c)
                    && !moved.is_empty()
                {
                    let new_sep = moved.remove(0);
                    moved.push(std::mem::replace(separator, new_sep));
                    moved.append(&mut right.items);
                    right.items = moved;
                }
                self.repo.update(right)?;
                self.repo.update(node)?;
                self.repo.update(parent)?;
                return Ok(None);
            }
        }
        Ok(Some(node))
    }

    fn bad_parent(&self, parent_id: Uuid, c: usize, len: usize) -> sop_core::Error {
        self.invariant(format!(
            "node {parent_id} has {len} items but its child {c} was reached"
        ))
    }
}
