//! Independent read cursors: any number per tree, each with its own place.

use std::cmp::Ordering;
use std::sync::Arc;

use sop_core::{Result, Uuid};

use crate::path::{Held, Seek, item_at, shared_item_at};
use crate::{BTree, Item, KeyComparator, NodeRepository, ValueStore};

/// A read cursor of its own over a tree ([`BTree::cursor`]): SOP's `First`, `Last`, `Find`,
/// `FindInDescendingOrder`, `Next`, `Previous` and `GetCurrent*`, without touching the tree's
/// cursor or any other. It borrows the tree shared and holds one path of nodes.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use sop_btree::MemBTree;
/// use sop_core::StoreOptions;
///
/// let mut tree = MemBTree::<u32, u32>::in_memory(&StoreOptions::new("c").slot_length(4))?;
/// for k in 0..10 {
///     tree.add(k, k * 10).await?;
/// }
/// let (mut up, mut down) = (tree.cursor(), tree.cursor());
/// assert!(up.find(&3).await?);
/// assert!(!down.find_descending(&100).await?); // lands on the last key <= 100
/// assert_eq!((up.key(), down.key()), (Some(&3), Some(&9)));
/// up.next().await?;
/// down.previous().await?;
/// assert_eq!(up.value().await?, Some(40));
/// assert_eq!(down.value().await?, Some(80));
/// # Ok::<(), sop_core::Error>(())
/// # }).unwrap();
/// ```
pub struct Cursor<'a, K, V, R, C> {
    tree: &'a BTree<K, V, R, C>,
    at: Option<Held<K, V>>,
}

impl<'a, K, V, R, C> Cursor<'a, K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    pub(crate) fn new(tree: &'a BTree<K, V, R, C>) -> Self {
        Cursor { tree, at: None }
    }

    fn place(&mut self, path: crate::path::Path<K, V>) -> bool {
        if item_at(&path).is_some() {
            self.at = Some(self.tree.hold(path));
            true
        } else {
            self.at = None;
            false
        }
    }

    /// Moves to the first item; `false` when the tree is empty.
    ///
    /// # Errors
    /// Repository errors, [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned).
    pub async fn first(&mut self) -> Result<bool> {
        self.tree.guard()?;
        let path = self.tree.seek_forward(Seek::First).await?;
        Ok(self.place(path))
    }

    /// Moves to the last item; `false` when the tree is empty.
    ///
    /// # Errors
    /// As [`Cursor::first`].
    pub async fn last(&mut self) -> Result<bool> {
        self.tree.guard()?;
        let path = self.tree.seek_backward(Seek::Last).await?;
        Ok(self.place(path))
    }

    /// Moves to the first item whose key is `>=` `key`; returns whether its key equals `key`
    /// (the cursor is on none when every key is smaller).
    ///
    /// # Errors
    /// As [`Cursor::first`].
    pub async fn find(&mut self, key: &K) -> Result<bool> {
        self.tree.guard()?;
        let path = self.tree.seek_forward(Seek::Lower(key)).await?;
        let found = item_at(&path).is_some_and(|it| self.equal(&it.key, key));
        self.place(path);
        Ok(found)
    }

    /// Moves to the last item whose key is `<=` `key` (the last of equal keys), where a walk in
    /// descending order starts; returns whether its key equals `key` (the cursor is on none
    /// when every key is greater).
    ///
    /// # Errors
    /// As [`Cursor::first`].
    pub async fn find_descending(&mut self, key: &K) -> Result<bool> {
        self.tree.guard()?;
        let path = self.tree.seek_backward(Seek::Upper(key)).await?;
        let found = item_at(&path).is_some_and(|it| self.equal(&it.key, key));
        self.place(path);
        Ok(found)
    }

    /// Moves to the item with this key and id; `false` (on none) when there is none.
    ///
    /// # Errors
    /// As [`Cursor::first`].
    pub async fn find_with_id(&mut self, key: &K, id: Uuid) -> Result<bool> {
        self.tree.guard()?;
        let path = self.tree.locate(key, id).await?;
        Ok(self.place(path))
    }

    fn equal(&self, a: &K, b: &K) -> bool {
        self.tree.cmp.compare(a, b) == Ordering::Equal
    }

    /// Moves to the next item; `false` (on none) at the end or when on none.
    ///
    /// # Errors
    /// As [`Cursor::first`].
    pub async fn next(&mut self) -> Result<bool> {
        self.tree.guard()?;
        let Some(held) = self.at.take() else {
            return Ok(false);
        };
        let path = self.tree.after(held).await?;
        Ok(self.place(path))
    }

    /// Moves to the previous item; `false` (on none) at the start or when on none.
    ///
    /// # Errors
    /// As [`Cursor::first`].
    pub async fn previous(&mut self) -> Result<bool> {
        self.tree.guard()?;
        let Some(held) = self.at.take() else {
            return Ok(false);
        };
        let path = self.tree.before(held).await?;
        Ok(self.place(path))
    }

    /// The key of the item it is on.
    #[must_use]
    pub fn key(&self) -> Option<&K> {
        self.at
            .as_ref()
            .and_then(|h| item_at(&h.path))
            .map(|it| &it.key)
    }

    /// The id of the item it is on.
    #[must_use]
    pub fn id(&self) -> Option<Uuid> {
        self.at
            .as_ref()
            .and_then(|h| item_at(&h.path))
            .map(|it| it.id)
    }

    /// The value of the item it is on (as it is now, when another handle changed it).
    ///
    /// # Errors
    /// As [`Cursor::first`], value-store errors.
    pub async fn value(&mut self) -> Result<Option<V>> {
        Ok(self.item_ref().await?.map(|it| it.value().clone()))
    }

    /// The item it is on (as it is now, when another handle changed it; `None` when another
    /// handle removed it).
    ///
    /// # Errors
    /// As [`Cursor::value`].
    pub async fn item(&mut self) -> Result<Option<Item<K, V>>> {
        Ok(self.item_ref().await?.map(|it| it.to_item()))
    }

    /// The item it is on without copying its key or value (see [`crate::ItemRef`]).
    ///
    /// # Errors
    /// As [`Cursor::value`].
    pub async fn item_ref(&mut self) -> Result<Option<crate::ItemRef<K, V>>> {
        self.tree.guard()?;
        let Some(held) = self.at.take() else {
            return Ok(None);
        };
        let path = self.tree.refresh(held).await?;
        let Some(item) = shared_item_at(&path).map(Arc::clone) else {
            return Ok(None);
        };
        self.at = Some(self.tree.hold(path));
        self.tree.item_ref(item).await.map(Some)
    }
}
