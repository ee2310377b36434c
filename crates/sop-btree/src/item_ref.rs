//! An item handed out without copying it: it shares the node's item.

use std::sync::Arc;

use sop_core::Uuid;

use crate::{Item, ItemValue, NodeItem};

/// An item read without copying its key or value (redb's `AccessGuard`): it shares the item
/// inside the decoded node, so reading a 1 MiB value this way copies nothing. A value kept
/// outside its node (`value_in_node(false)`) is loaded into the guard once.
///
/// It keeps that node version alive (not the tree, not the transaction): drop it, or take an
/// owned [`Item`] with [`ItemRef::to_item`], when holding many.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use sop_btree::MemBTree;
/// use sop_core::StoreOptions;
///
/// let mut t = MemBTree::<u32, Vec<u8>>::in_memory(&StoreOptions::new("t"))?;
/// t.add(1, vec![7; 4096]).await?;
/// let got = t.get_ref(&1).await?.expect("added above");
/// assert_eq!((got.key(), got.value().len()), (&1, 4096));
/// # Ok::<(), sop_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ItemRef<K, V> {
    item: Arc<NodeItem<K, V>>,
    /// The value when the node holds only where it is; `None` when it is in the node.
    loaded: Option<V>,
}

impl<K, V> ItemRef<K, V> {
    /// An item whose value is in its node (`loaded: None`), or was loaded from the value store
    /// (`loaded: Some`).
    pub(crate) fn new(item: Arc<NodeItem<K, V>>, loaded: Option<V>) -> Self {
        ItemRef { item, loaded }
    }

    /// The item's id (stable for its life; tells apart items with equal keys).
    #[must_use]
    pub fn id(&self) -> Uuid {
        self.item.id
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &K {
        &self.item.key
    }

    /// The value.
    #[must_use]
    pub fn value(&self) -> &V {
        match (&self.loaded, &self.item.value) {
            (Some(v), _) | (None, ItemValue::Inline(v)) => v,
            // `BTree::item_ref` loads every value kept outside its node before it makes a
            // guard, so this arm is never taken.
            (None, ItemValue::External(id)) => {
                unreachable!("value {id} kept outside its node was not loaded into the ItemRef")
            }
        }
    }

    /// An owned copy (key and value cloned).
    #[must_use]
    pub fn to_item(&self) -> Item<K, V>
    where
        K: Clone,
        V: Clone,
    {
        Item {
            id: self.item.id,
            key: self.item.key.clone(),
            value: self.value().clone(),
        }
    }
}
