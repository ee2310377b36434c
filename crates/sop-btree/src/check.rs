//! The structural checker: what `sop verify` and the property tests rely on.

use std::cmp::Ordering;
use std::collections::HashSet;

use sop_core::{Result, Uuid};

use crate::{BTree, KeyComparator, NodeRepository, ValueStore};

/// What [`BTree::check`] measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TreeStats {
    /// Levels from the root to the leaves (1 for a tree that is one leaf).
    pub depth: usize,
    /// Nodes, root included.
    pub nodes: usize,
    /// Leaves.
    pub leaves: usize,
    /// Items.
    pub items: u64,
    /// Items over slots, in percent (0 for an empty tree).
    pub fill_percent: f64,
}

impl<K, V, R, C> BTree<K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    /// Walks every node and checks the tree's invariants: each node is reached once; keys are in
    /// order within nodes and between separators (strictly in a unique tree); every non-root node
    /// holds `slot_length / 2 ..= slot_length` items; a branch has one more child than items; all
    /// leaves are at one depth; the items add up to [`BTree::count`].
    ///
    /// # Errors
    /// [`CorruptionError::Invariant`](sop_core::CorruptionError::Invariant) naming the first broken rule and node, or repository errors.
    pub async fn check(&self) -> Result<TreeStats> {
        self.guard()?;
        let (min, max) = (self.info.min_items(), self.info.slot_length);
        let strict = self.info.unique;
        let mut stats = TreeStats::default();
        let mut seen = HashSet::new();
        let mut leaf_depth = None;
        // (node id, depth, lower bound, upper bound): the separators around the subtree.
        let mut stack: Vec<(Uuid, usize, Option<K>, Option<K>)> =
            vec![(self.info.root_id, 1, None, None)];
        while let Some((id, depth, low, high)) = stack.pop() {
            if !seen.insert(id) {
                return Err(self.invariant(format!("node {id} is reached twice")));
            }
            let node = self.repo.get(id).await?;
            if node.id != id {
                return Err(self.invariant(format!("node {id} says its id is {}", node.id)));
            }
            let is_root = id == self.info.root_id;
            let n = node.items.len();
            if n > max || (!is_root && n < min) || (is_root && !node.is_leaf() && n == 0) {
                return Err(self.invariant(format!(
                    "node {id} holds {n} items, allowed {}..={max}",
                    if is_root { 0 } else { min }
                )));
            }
            let keys = node.items.iter().map(|it| &it.key);
            let mut prev = low.as_ref();
            for (i, key) in keys.enumerate() {
                if let Some(p) = prev {
                    let ord = self.cmp.compare(p, key);
                    if ord == Ordering::Greater || (strict && ord == Ordering::Equal) {
                        return Err(self.invariant(format!("key {i} of node {id} is out of order")));
                    }
                }
                prev = Some(key);
            }
            if let (Some(last), Some(h)) = (prev, high.as_ref()) {
                let ord = self.cmp.compare(last, h);
                if ord == Ordering::Greater || (strict && ord == Ordering::Equal) {
                    return Err(self.invariant(format!(
                        "the last key of node {id} is not below its parent's separator"
                    )));
                }
            }
            stats.nodes += 1;
            stats.items += n as u64;
            stats.depth = stats.depth.max(depth);
            if node.is_leaf() {
                stats.leaves += 1;
                match leaf_depth {
                    None => leaf_depth = Some(depth),
                    Some(d) if d != depth => {
                        return Err(self.invariant(format!(
                            "leaf {id} is at depth {depth}, another leaf at depth {d}"
                        )));
                    }
                    Some(_) => {}
                }
                continue;
            }
            if node.children.len() != n + 1 {
                return Err(self.invariant(format!(
                    "branch {id} has {n} items and {} children",
                    node.children.len()
                )));
            }
            for (c, child) in node.children.iter().enumerate() {
                let lo = if c == 0 {
                    low.clone()
                } else {
                    node.items.get(c - 1).map(|it| it.key.clone())
                };
                let hi = node
                    .items
                    .get(c)
                    .map(|it| it.key.clone())
                    .or_else(|| high.clone());
                stack.push((*child, depth + 1, lo, hi));
            }
        }
        if stats.items != self.info.count {
            return Err(self.invariant(format!(
                "the nodes hold {} items but the count is {}",
                stats.items, self.info.count
            )));
        }
        if stats.items > 0 {
            #[expect(clippy::cast_precision_loss, reason = "a percentage for people")]
            let fill = stats.items as f64 * 100.0 / (stats.nodes * max) as f64;
            stats.fill_percent = fill;
        }
        Ok(stats)
    }
}
