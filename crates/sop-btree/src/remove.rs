//! Removal: take the item out (an item of a branch is replaced by its in-order predecessor from
//! a leaf), then, going up, refill nodes that fell under half full by borrowing from a sibling or
//! merging with it.

use sop_core::{Result, Uuid};
use std::sync::Arc;

use crate::insert::IdPath;
use crate::{BTree, KeyComparator, Node, NodeItem, NodeRepository, ValueStore};

impl<K, V, R, C> BTree<K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    /// Removes the item the path points at and returns it: always the item asked for, even when
    /// its slot is refilled by its predecessor.
    pub(crate) async fn remove_at(&mut self, mut path: IdPath) -> Result<NodeItem<K, V>> {
        let Some((node_id, index)) = path.pop() else {
            return Err(self.invariant("removal without a path".into()));
        };
        let mut node = self.checkout_node(node_id).await?;
        if index >= node.items.len() {
            let detail = format!(
                "removal of item {index} of node {node_id}, which has {}",
                node.items.len()
            );
            self.repo.update(node)?;
            return Err(self.invariant(detail));
        }
        if node.is_leaf() {
            let removed = node.items.remove(index);
            self.fix_underflow(node, path).await?;
            return Ok(Arc::unwrap_or_clone(removed));
        }
        // A branch item: its predecessor, the last item of the rightmost leaf under child
        // `index`, takes its place, and that leaf may underflow.
        path.push((node_id, index));
        let mut id = self.child_id(&node, index)?;
        loop {
            let below = self.repo.get(id).await?;
            if below.is_leaf() {
                break;
            }
            let last = below.children.len().saturating_sub(1);
            path.push((id, last));
            id = self.child_id(&below, last)?;
        }
        let mut leaf = self.checkout_node(id).await?;
        let Some(predecessor) = leaf.items.pop() else {
            self.repo.update(leaf)?;
            self.repo.update(node)?;
            return Err(self.invariant(format!("leaf {id} under a branch is empty")));
        };
        let removed = std::mem::replace(&mut node.items[index], predecessor);
        self.repo.update(node)?;
        self.fix_underflow(leaf, path).await?;
        Ok(Arc::unwrap_or_clone(removed))
    }

    /// Brings `node` back to at least half full, going up while parents underflow in turn.
    async fn fix_underflow(&mut self, mut node: Node<K, V>, mut ancestors: IdPath) -> Result<()> {
        let min = self.info.min_items();
        loop {
            let Some((parent_id, c)) = ancestors.pop() else {
                return self.shrink_root(node).await;
            };
            if node.items.len() >= min {
                return self.repo.update(node);
            }
            let (left_id, right_id) = {
                let parent = self.repo.get(parent_id).await?;
                if c >= parent.children.len() || parent.children.len() != parent.items.len() + 1 {
                    let detail = format!(
                        "node {parent_id} with {} items and {} children was reached through child {c}",
                        parent.items.len(),
                        parent.children.len()
                    );
                    drop(parent);
                    self.repo.update(node)?;
                    return Err(self.invariant(detail));
                }
                let left = c
                    .checked_sub(1)
                    .and_then(|i| parent.children.get(i).copied());
                (left, parent.children.get(c + 1).copied())
            };
            if let Some(left_id) = left_id
                && self.repo.get(left_id).await?.items.len() > min
            {
                return self.borrow_from_left(node, parent_id, c, left_id).await;
            }
            if let Some(right_id) = right_id
                && self.repo.get(right_id).await?.items.len() > min
            {
                return self.borrow_from_right(node, parent_id, c, right_id).await;
            }
            let mut parent = self.checkout_node(parent_id).await?;
            if let Some(left_id) = left_id {
                // left + separator + node; node goes away.
                let mut left = self.checkout_node(left_id).await?;
                left.items.push(parent.items.remove(c - 1));
                parent.children.remove(c);
                left.items.append(&mut node.items);
                left.children.append(&mut node.children);
                self.repo.update(left)?;
                self.repo.remove(node.id)?;
            } else if let Some(right_id) = right_id {
                // node + separator + right; right goes away.
                let mut right = self.checkout_node(right_id).await?;
                node.items.push(parent.items.remove(c));
                parent.children.remove(c + 1);
                node.items.append(&mut right.items);
                node.children.append(&mut right.children);
                self.repo.update(node)?;
                self.repo.remove(right_id)?;
            } else {
                let detail = format!("node {parent_id} has a single child and no items");
                self.repo.update(parent)?;
                self.repo.update(node)?;
                return Err(self.invariant(detail));
            }
            node = parent;
        }
    }

    /// The last item of the left sibling goes up, the separator comes down in front of `node`.
    async fn borrow_from_left(
        &mut self,
        mut node: Node<K, V>,
        parent_id: Uuid,
        c: usize,
        left_id: Uuid,
    ) -> Result<()> {
        let mut parent = self.checkout_node(parent_id).await?;
        let mut left = self.checkout_node(left_id).await?;
        if let Some(up) = left.items.pop() {
            let down = std::mem::replace(&mut parent.items[c - 1], up);
            node.items.insert(0, down);
            if let Some(child) = left.children.pop() {
                node.children.insert(0, child);
            }
        }
        self.repo.update(left)?;
        self.repo.update(node)?;
        self.repo.update(parent)
    }

    /// The first item of the right sibling goes up, the separator comes down after `node`'s items.
    async fn borrow_from_right(
        &mut self,
        mut node: Node<K, V>,
        parent_id: Uuid,
        c: usize,
        right_id: Uuid,
    ) -> Result<()> {
        let mut parent = self.checkout_node(parent_id).await?;
        let mut right = self.checkout_node(right_id).await?;
        if !right.items.is_empty() {
            let up = right.items.remove(0);
            let down = std::mem::replace(&mut parent.items[c], up);
            node.items.push(down);
            if !right.children.is_empty() {
                node.children.push(right.children.remove(0));
            }
        }
        self.repo.update(right)?;
        self.repo.update(node)?;
        self.repo.update(parent)
    }

    /// A root left with no items and one child takes that child's contents: the tree gets one
    /// level shorter and the root keeps its id.
    async fn shrink_root(&mut self, mut root: Node<K, V>) -> Result<()> {
        if root.items.is_empty() && root.children.len() == 1 {
            let child_id = root.children[0];
            let child = self.checkout_node(child_id).await?;
            root.items = child.items;
            root.children = child.children;
            self.repo.remove(child_id)?;
        }
        self.repo.update(root)
    }
}
