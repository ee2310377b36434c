//! The tree object and its public API.

use std::cmp::Ordering;
use std::ops::RangeBounds;
use std::sync::Arc;

use sop_core::{Error, Result, StoreInfo, StoreOptions, Uuid, now_millis};

use crate::path::{Path, Seek, ids, item_at, shared_item_at};
use crate::{
    Item, ItemValue, KeyComparator, MemRepository, NaturalOrder, Node, NodeItem, NodeRepository,
    Range, ValueStore,
};

/// Where the cursor is.
pub(crate) enum CursorState<K, V> {
    /// On no item.
    None,
    /// On the item the path leads to, taken at this repository generation (another handle's
    /// change since makes it pending: found again by key and id).
    At(Path<K, V>, u64),
    /// On the item with this key and id; the path is found again when next needed (after a
    /// change, which invalidates paths).
    Pending { key: K, id: Uuid },
}

/// A value handed to a tree's add or update: to be stored by the tree, or already stored by
/// the caller (see [`BTree::add_stored_with_id`]).
#[derive(Debug, Clone)]
pub enum Put<V> {
    /// A value the tree stores (inline or through its value store, as the store's options say).
    Value(V),
    /// A value already where it is to stay: inline, or external under an id the value store
    /// knows.
    Stored(ItemValue<V>),
}

impl<V> From<V> for Put<V> {
    fn from(v: V) -> Self {
        Put::Value(v)
    }
}

/// What [`BTree::upsert_with_id`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted<K> {
    /// It added a new item with the id it was given.
    Added,
    /// It replaced the value of the existing item `id`, whose key and version before the
    /// change are given.
    Updated {
        /// The item's id.
        id: Uuid,
        /// The item's key as stored (equal to the key given, possibly not identical).
        key: K,
        /// The item's version before this change.
        version: u32,
    },
}

/// A B-tree of `K` keys and `V` values over the node repository and value store `R`, ordered by
/// `C`.
///
/// The tree keeps a cursor: [`find`](BTree::find), [`first`](BTree::first),
/// [`last`](BTree::last), [`next`](BTree::next) and [`previous`](BTree::previous) move it, and
/// the `current_*` calls work on its item. A change through the cursor keeps it on the item;
/// [`remove_current_item`](BTree::remove_current_item) leaves it on none. [`range`](BTree::range)
/// iterates without touching the cursor.
///
/// Every node but the root holds between `slot_length / 2` and `slot_length` items and all
/// leaves are at one depth: removals borrow from or merge with siblings. The root's id never
/// changes: a root split moves its items down into two new children, and a root left with one
/// child takes that child's items back.
///
/// A call that fails part-way through a change (a repository or value-store error) leaves the
/// tree refusing every later call with [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned): roll the transaction back. Errors
/// found before anything changed ([`CursorError::NoCurrentItem`](sop_core::CursorError::NoCurrentItem), [`CursorError::KeyChanged`](sop_core::CursorError::KeyChanged)) do not.
pub struct BTree<K, V, R, C = NaturalOrder> {
    pub(crate) repo: R,
    // Shared with the transaction layer's copy: opening a tree copies no strings; the first
    // change of the count copies it (`Arc::make_mut`), readers never do.
    pub(crate) info: Arc<StoreInfo>,
    pub(crate) cmp: C,
    pub(crate) cursor: CursorState<K, V>,
    poisoned: Option<String>,
}

/// A tree kept entirely in memory.
pub type MemBTree<K, V, C = NaturalOrder> = BTree<K, V, MemRepository<K, V>, C>;

impl<K, V> MemBTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync,
{
    /// An empty in-memory tree.
    ///
    /// # Errors
    /// When the options do not validate ([`StoreOptions::validate`]).
    pub fn in_memory(options: &StoreOptions) -> Result<Self> {
        Self::in_memory_with(options, NaturalOrder)
    }
}

impl<K, V, C> MemBTree<K, V, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    C: KeyComparator<K>,
{
    /// An empty in-memory tree ordered by `cmp`.
    ///
    /// # Errors
    /// When the options do not validate ([`StoreOptions::validate`]).
    pub fn in_memory_with(options: &StoreOptions, cmp: C) -> Result<Self> {
        let info = StoreInfo::new(options, now_millis())?;
        BTree::create(MemRepository::new(options.name.clone()), info, cmp)
    }
}

impl<K, V, R, C> BTree<K, V, R, C>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    /// A new, empty tree: records its empty root (with `info.root_id`) in `repo`.
    ///
    /// # Errors
    /// [`UsageError::InvalidOptions`](sop_core::UsageError::InvalidOptions) when `info` says the store is not empty, or what the repository
    /// returns.
    pub fn create(mut repo: R, info: impl Into<Arc<StoreInfo>>, cmp: C) -> Result<Self> {
        let info = info.into();
        if info.count != 0 {
            return Err(Error::Usage(sop_core::UsageError::InvalidOptions {
                store: info.name.clone(),
                reason: format!(
                    "a new tree must be empty, its info says {} items",
                    info.count
                ),
            }));
        }
        repo.add(Node::new(info.root_id))?;
        Ok(Self::open(repo, info, cmp))
    }

    /// A tree whose nodes are already in `repo`, rooted at `info.root_id`.
    pub fn open(repo: R, info: impl Into<Arc<StoreInfo>>, cmp: C) -> Self {
        BTree {
            repo,
            info: info.into(),
            cmp,
            cursor: CursorState::None,
            poisoned: None,
        }
    }

    /// The store's info as this tree sees it (the count includes its uncommitted changes).
    pub fn store_info(&self) -> &StoreInfo {
        &self.info
    }

    /// How many items the tree holds.
    pub fn count(&self) -> u64 {
        self.info.count
    }

    /// Sets the item count this tree works with: for several handles on one store's nodes
    /// (one transaction opening a store twice), which keep one shared count.
    pub fn set_count(&mut self, count: u64) {
        if self.info.count != count {
            Arc::make_mut(&mut self.info).count = count;
        }
    }

    /// Whether keys are unique.
    pub fn is_unique(&self) -> bool {
        self.info.unique
    }

    /// The repository, for the layer that owns it (a transaction reads its changes at commit).
    pub fn repository(&self) -> &R {
        &self.repo
    }

    /// The repository, mutably.
    pub fn repository_mut(&mut self) -> &mut R {
        &mut self.repo
    }

    /// Gives the repository back.
    pub fn into_repository(self) -> R {
        self.repo
    }

    /// Adds an item. In a unique tree an existing equal key is left alone: the call returns
    /// `false` and leaves the cursor on that item. In a non-unique tree the item goes after the
    /// items with an equal key (insertion order is kept). On success the cursor is on the new
    /// item.
    ///
    /// # Errors
    /// Repository and value-store errors (they poison the tree).
    pub async fn add(&mut self, key: K, value: V) -> Result<bool> {
        self.guard()?;
        let unique = self.info.unique;
        let r = self
            .add_inner(Uuid::new_v4(), key, Put::Value(value), unique)
            .await;
        self.poison_on(r)
    }

    /// As [`BTree::add`], with the item id given: for a transaction that replays its own adds
    /// onto a fresh tree and must keep the ids it already handed out. The id must not be in the
    /// tree.
    ///
    /// # Errors
    /// As [`BTree::add`].
    pub async fn add_with_id(&mut self, id: Uuid, key: K, value: V) -> Result<bool> {
        self.add_stored_with_id(id, key, Put::Value(value)).await
    }

    /// As [`BTree::add_with_id`], with the value given as it is to be stored: inline, or
    /// already placed in the value store by the caller (a transaction that writes big values
    /// ahead keeps only their ids, never the bytes). An [`ItemValue::External`] id must name a
    /// value the repository's [`ValueStore`](crate::ValueStore) can read.
    ///
    /// # Errors
    /// As [`BTree::add`].
    pub async fn add_stored_with_id(
        &mut self,
        id: Uuid,
        key: K,
        value: impl Into<Put<V>>,
    ) -> Result<bool> {
        self.guard()?;
        let unique = self.info.unique;
        let r = self.add_inner(id, key, value.into(), unique).await;
        self.poison_on(r)
    }

    /// Adds an item only if no item has an equal key, in unique and non-unique trees alike.
    /// When one exists, returns `false` with the cursor on the first such item.
    ///
    /// # Errors
    /// As [`BTree::add`].
    pub async fn add_if_not_exist(&mut self, key: K, value: V) -> Result<bool> {
        self.add_if_not_exist_with_id(Uuid::new_v4(), key, value)
            .await
    }

    /// As [`BTree::add_if_not_exist`], with the item id given (see [`BTree::add_with_id`]).
    ///
    /// # Errors
    /// As [`BTree::add`].
    pub async fn add_if_not_exist_with_id(
        &mut self,
        id: Uuid,
        key: K,
        value: impl Into<Put<V>>,
    ) -> Result<bool> {
        self.guard()?;
        let r = self.add_inner(id, key, value.into(), true).await;
        self.poison_on(r)
    }

    /// Adds the item, or, when an equal key exists, replaces the value of the first such item.
    /// Returns `true` when it added. The cursor ends on the item.
    ///
    /// # Errors
    /// As [`BTree::add`].
    pub async fn upsert(&mut self, key: K, value: V) -> Result<bool> {
        let done = self.upsert_with_id(Uuid::new_v4(), key, value).await?;
        Ok(matches!(done, Upserted::Added))
    }

    /// As [`BTree::upsert`], with the id a new item gets given (see [`BTree::add_with_id`]),
    /// saying what it did: for a caller that tracks items by id (a transaction). In a unique
    /// tree it walks from the root once, whichever way it goes.
    ///
    /// # Errors
    /// As [`BTree::add`].
    pub async fn upsert_with_id(
        &mut self,
        id: Uuid,
        key: K,
        value: impl Into<Put<V>>,
    ) -> Result<Upserted<K>> {
        self.guard()?;
        let value = value.into();
        let r = async {
            let (path, found) = if self.info.unique {
                self.descend_exact(&key).await?
            } else {
                self.cursor = CursorState::None;
                let (path, found) = self.find_path(&key).await?;
                if !found {
                    drop(path);
                    self.add_inner(id, key, value, false).await?;
                    return Ok(Upserted::Added);
                }
                (path, found)
            };
            if !found {
                self.insert_new(path, id, key, value).await?;
                return Ok(Upserted::Added);
            }
            let Some((id, key, version)) =
                item_at(&path).map(|it| (it.id, it.key.clone(), it.version))
            else {
                return Err(self.invariant("a found key's path points at no item".into()));
            };
            self.cursor = self.at(path);
            self.set_current(None, Some(value), "upsert").await?;
            Ok(Upserted::Updated { id, key, version })
        }
        .await;
        self.poison_on(r)
    }

    /// Replaces the value of the first item whose key equals `key`. Returns `false` (and changes
    /// nothing) when there is none; the cursor is then where [`BTree::find`] leaves it.
    ///
    /// # Errors
    /// As [`BTree::add`].
    pub async fn update(&mut self, key: &K, value: V) -> Result<bool> {
        self.guard()?;
        let r = async {
            if !self.find_inner(key).await? {
                return Ok(false);
            }
            self.set_current(None, Some(Put::Value(value)), "update")
                .await?;
            Ok(true)
        }
        .await;
        self.poison_on(r)
    }

    /// Removes the first item whose key equals `key`. Returns `false` when there is none.
    /// The cursor ends on no item when it removed, where [`BTree::find`] leaves it otherwise.
    ///
    /// # Errors
    /// As [`BTree::add`].
    pub async fn remove(&mut self, key: &K) -> Result<bool> {
        self.guard()?;
        let r = async {
            if !self.find_inner(key).await? {
                return Ok(false);
            }
            self.remove_current_inner().await?;
            Ok(true)
        }
        .await;
        self.poison_on(r)
    }

    /// Moves the cursor to the first item whose key equals `key` and returns `true`; when there
    /// is none, returns `false` and leaves the cursor on the first item with a greater key (or on
    /// none when no key is greater). sop-rs always lands on the *first* of equal keys, whatever
    /// `first_item_with_key` says; the parameter is kept for parity with SOP, whose `false`
    /// could land on any of them.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn find(&mut self, key: &K, first_item_with_key: bool) -> Result<bool> {
        let _ = first_item_with_key;
        self.guard()?;
        self.find_inner(key).await
    }

    /// Moves the cursor to the item with this key and id. On a miss returns `false` and leaves
    /// the cursor on the first item with a key greater than `key`. It only walks the items with
    /// an equal key, never the rest of the tree.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn find_with_id(&mut self, key: &K, id: Uuid) -> Result<bool> {
        self.guard()?;
        self.cursor = CursorState::None;
        let path = self.locate(key, id).await?;
        if !path.is_empty() {
            self.cursor = self.at(path);
            return Ok(true);
        }
        let path = self.seek_forward(Seek::Upper(key)).await?;
        self.set_path(path);
        Ok(false)
    }

    /// Moves the cursor to the last item whose key is `<=` `key` (the last of equal keys): where
    /// a walk in descending order starts (SOP's `FindInDescendingOrder`). Returns whether that
    /// item's key equals `key`; the cursor is on none when every key is greater.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn find_descending(&mut self, key: &K) -> Result<bool> {
        self.guard()?;
        self.cursor = CursorState::None;
        let path = self.seek_backward(Seek::Upper(key)).await?;
        let found =
            item_at(&path).is_some_and(|it| self.cmp.compare(&it.key, key) == Ordering::Equal);
        self.set_path(path);
        Ok(found)
    }

    /// Moves the cursor to the first item; `false` when the tree is empty.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn first(&mut self) -> Result<bool> {
        self.guard()?;
        self.cursor = CursorState::None;
        let path = self.seek_forward(Seek::First).await?;
        Ok(self.set_path(path))
    }

    /// Moves the cursor to the last item; `false` when the tree is empty.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn last(&mut self) -> Result<bool> {
        self.guard()?;
        self.cursor = CursorState::None;
        let path = self.seek_backward(Seek::Last).await?;
        Ok(self.set_path(path))
    }

    /// Moves the cursor to the next item. Returns `false` when the cursor is on no item or on
    /// the last one; it is then on none.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn next(&mut self) -> Result<bool> {
        self.step(true).await
    }

    /// Moves the cursor to the previous item. Returns `false` when the cursor is on no item or
    /// on the first one; it is then on none.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn previous(&mut self) -> Result<bool> {
        self.step(false).await
    }

    /// The key of the cursor's item, if it is on one.
    pub fn current_key(&self) -> Option<&K> {
        if self.poisoned.is_some() {
            return None;
        }
        match &self.cursor {
            CursorState::None => None,
            CursorState::At(path, _) => item_at(path).map(|it| &it.key),
            CursorState::Pending { key, .. } => Some(key),
        }
    }

    /// The value of the cursor's item (loaded from the value store when kept outside the node).
    ///
    /// # Errors
    /// Repository and value-store errors.
    pub async fn current_value(&mut self) -> Result<Option<V>> {
        self.guard()?;
        self.resolve().await?;
        // Only the value is cloned: a point read pays for nothing else.
        let Some(value) = self.current_stored_value() else {
            return Ok(None);
        };
        self.load_value(value).await.map(Some)
    }

    /// The cursor's item's stored value (inline or a reference), if the cursor is on one.
    fn current_stored_value(&self) -> Option<ItemValue<V>> {
        let CursorState::At(path, _) = &self.cursor else {
            return None;
        };
        item_at(path).map(|it| it.value.clone())
    }

    /// The cursor's item: id, key and value.
    ///
    /// # Errors
    /// Repository and value-store errors.
    pub async fn current_item(&mut self) -> Result<Option<Item<K, V>>> {
        self.guard()?;
        self.resolve().await?;
        let CursorState::At(path, _) = &self.cursor else {
            return Ok(None);
        };
        let Some(it) = item_at(path) else {
            return Ok(None);
        };
        let (id, key, value) = (it.id, it.key.clone(), it.value.clone());
        let value = self.load_value(value).await?;
        Ok(Some(Item { id, key, value }))
    }

    /// The id and version of the cursor's item, without loading its value.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn current_version(&mut self) -> Result<Option<(Uuid, u32)>> {
        self.guard()?;
        self.resolve().await?;
        let CursorState::At(path, _) = &self.cursor else {
            return Ok(None);
        };
        Ok(item_at(path).map(|it| (it.id, it.version)))
    }

    /// Replaces the cursor's key with `key`, which must compare equal to it: for keys that carry
    /// data the order ignores (SOP's metadata-carrying keys). The item does not move.
    ///
    /// # Errors
    /// [`CursorError::NoCurrentItem`](sop_core::CursorError::NoCurrentItem), [`CursorError::KeyChanged`](sop_core::CursorError::KeyChanged), or repository errors.
    pub async fn update_current_key(&mut self, key: K) -> Result<()> {
        self.guard()?;
        let r = self
            .set_current(Some(key), None, "update_current_key")
            .await;
        self.poison_on(r)
    }

    /// Replaces the value of the cursor's item.
    ///
    /// # Errors
    /// [`CursorError::NoCurrentItem`](sop_core::CursorError::NoCurrentItem), or repository and value-store errors.
    pub async fn update_current_value(&mut self, value: impl Into<Put<V>>) -> Result<()> {
        self.guard()?;
        let r = self
            .set_current(None, Some(value.into()), "update_current_value")
            .await;
        self.poison_on(r)
    }

    /// Replaces key (which must compare equal) and value of the cursor's item.
    ///
    /// # Errors
    /// As [`BTree::update_current_key`].
    pub async fn update_current_item(&mut self, key: K, value: impl Into<Put<V>>) -> Result<()> {
        self.guard()?;
        let r = self
            .set_current(Some(key), Some(value.into()), "update_current_item")
            .await;
        self.poison_on(r)
    }

    /// Removes the cursor's item; the cursor is then on none.
    ///
    /// # Errors
    /// [`CursorError::NoCurrentItem`](sop_core::CursorError::NoCurrentItem), or repository and value-store errors.
    pub async fn remove_current_item(&mut self) -> Result<()> {
        self.guard()?;
        let r = self.remove_current_inner().await;
        self.poison_on(r)
    }

    /// The value of the first item whose key equals `key`. Leaves the cursor alone.
    ///
    /// # Errors
    /// Repository and value-store errors.
    pub async fn get(&self, key: &K) -> Result<Option<V>> {
        self.guard()?;
        let (path, found) = self.find_path(key).await?;
        let Some(value) = item_at(&path).filter(|_| found).map(|it| it.value.clone()) else {
            return Ok(None);
        };
        self.load_value(value).await.map(Some)
    }

    /// The first item whose key equals `key`, without copying its key or value (a value kept
    /// outside its node is loaded). Leaves the cursor alone.
    ///
    /// # Errors
    /// Repository and value-store errors.
    pub async fn get_ref(&self, key: &K) -> Result<Option<crate::ItemRef<K, V>>> {
        self.guard()?;
        let (path, found) = self.find_path(key).await?;
        let Some(item) = shared_item_at(&path).filter(|_| found).map(Arc::clone) else {
            return Ok(None);
        };
        drop(path);
        self.item_ref(item).await.map(Some)
    }

    /// Calls `f` on the value of the first item whose key equals `key`, without copying a
    /// value kept in its node (a value kept outside is loaded first). Leaves the cursor alone.
    ///
    /// # Errors
    /// Repository and value-store errors.
    pub async fn get_with<T, F: FnOnce(&V) -> T + Send>(&self, key: &K, f: F) -> Result<Option<T>> {
        self.guard()?;
        let (path, found) = self.find_path(key).await?;
        let Some(item) = item_at(&path).filter(|_| found) else {
            return Ok(None);
        };
        match &item.value {
            ItemValue::Inline(v) => Ok(Some(f(v))),
            ItemValue::External(id) => {
                let v = self.repo.get_value(*id).await?;
                Ok(Some(f(&v)))
            }
        }
    }

    /// Whether an item's key equals `key`. Leaves the cursor alone.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn contains_key(&self, key: &K) -> Result<bool> {
        self.guard()?;
        Ok(self.find_path(key).await?.1)
    }

    /// A lazy, double-ended range over the items whose keys are in `bounds`, in key order
    /// (equal keys in insertion order). It leaves the tree's own cursor alone, and any number
    /// of ranges and [`cursors`](BTree::cursor) can walk the tree at once.
    pub fn range(&self, bounds: impl RangeBounds<K>) -> Range<'_, K, V, R, C> {
        Range::new(
            self,
            bounds.start_bound().cloned(),
            bounds.end_bound().cloned(),
        )
    }

    /// A cursor of its own over the tree (SOP's independent cursors): it moves without
    /// touching the tree's cursor or any other.
    pub fn cursor(&self) -> crate::Cursor<'_, K, V, R, C> {
        crate::Cursor::new(self)
    }

    // ---- internals shared by the API ----

    pub(crate) fn guard(&self) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(cause) => Err(Error::Transaction(sop_core::TransactionError::Poisoned {
                store: self.info.name.clone(),
                cause: cause.clone(),
            })),
        }
    }

    fn poison_on<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && !matches!(
                e,
                Error::Cursor(sop_core::CursorError::NoCurrentItem { .. })
                    | Error::Cursor(sop_core::CursorError::KeyChanged { .. })
            )
        {
            self.poisoned = Some(e.to_string());
            self.cursor = CursorState::None;
        }
        r
    }

    pub(crate) fn invariant(&self, detail: String) -> Error {
        Error::Corruption(sop_core::CorruptionError::Invariant {
            store: self.info.name.clone(),
            detail,
        })
    }

    fn set_path(&mut self, path: Path<K, V>) -> bool {
        if path.is_empty() {
            self.cursor = CursorState::None;
            false
        } else {
            self.cursor = self.at(path);
            true
        }
    }

    async fn find_inner(&mut self, key: &K) -> Result<bool> {
        self.cursor = CursorState::None;
        let (path, found) = self.find_path(key).await?;
        self.set_path(path);
        Ok(found)
    }

    /// The path to the first item equal to `key`, or to the next greater one when none is.
    async fn find_path(&self, key: &K) -> Result<(Path<K, V>, bool)> {
        if self.info.unique {
            let (path, found) = self.descend_exact(key).await?;
            if found {
                return Ok((path, true));
            }
        }
        let path = self.seek_forward(Seek::Lower(key)).await?;
        let found =
            item_at(&path).is_some_and(|it| self.cmp.compare(&it.key, key) == Ordering::Equal);
        Ok((path, found))
    }

    fn at(&self, path: Path<K, V>) -> CursorState<K, V> {
        CursorState::At(path, self.repo.generation())
    }

    /// Turns a pending cursor (or one another handle's change made stale) into a path.
    async fn resolve(&mut self) -> Result<()> {
        if let CursorState::At(path, generation) = &self.cursor
            && *generation != self.repo.generation()
        {
            self.cursor = match item_at(path) {
                Some(it) => CursorState::Pending {
                    key: it.key.clone(),
                    id: it.id,
                },
                None => CursorState::None,
            };
        }
        if let CursorState::Pending { .. } = self.cursor {
            let CursorState::Pending { key, id } =
                std::mem::replace(&mut self.cursor, CursorState::None)
            else {
                return Ok(());
            };
            let path = self.locate(&key, id).await?;
            self.set_path(path);
        }
        Ok(())
    }

    /// Takes the cursor's path for a change: the cursor is left on none and holds no node.
    async fn take_path(&mut self, operation: &'static str) -> Result<Path<K, V>> {
        self.resolve().await?;
        match std::mem::replace(&mut self.cursor, CursorState::None) {
            CursorState::At(path, _) if item_at(&path).is_some() => Ok(path),
            _ => Err(Error::Cursor(sop_core::CursorError::NoCurrentItem {
                operation,
            })),
        }
    }

    async fn step(&mut self, forward: bool) -> Result<bool> {
        self.guard()?;
        self.resolve().await?;
        let CursorState::At(mut path, _) = std::mem::replace(&mut self.cursor, CursorState::None)
        else {
            return Ok(false);
        };
        if forward {
            self.advance(&mut path).await?;
        } else {
            self.retreat(&mut path).await?;
        }
        Ok(self.set_path(path))
    }

    /// A guard over a node's item, its value loaded when kept outside the node.
    pub(crate) async fn item_ref(&self, item: Arc<NodeItem<K, V>>) -> Result<crate::ItemRef<K, V>> {
        let loaded = match &item.value {
            ItemValue::Inline(_) => None,
            ItemValue::External(id) => Some(self.repo.get_value(*id).await?),
        };
        Ok(crate::ItemRef::new(item, loaded))
    }

    pub(crate) async fn load_value(&self, value: ItemValue<V>) -> Result<V> {
        match value {
            ItemValue::Inline(v) => Ok(v),
            ItemValue::External(id) => self.repo.get_value(id).await,
        }
    }

    /// Where a value goes: as given when the caller placed it, else stored by this tree.
    async fn place(&mut self, value: Put<V>) -> Result<ItemValue<V>> {
        match value {
            Put::Value(v) => self.store_value(v).await,
            Put::Stored(stored) => Ok(stored),
        }
    }

    /// The cursor's value as stored: inline, or the id of its external value (which is not
    /// read). `None` when the cursor is on no item.
    ///
    /// # Errors
    /// Repository errors.
    pub async fn current_value_stored(&mut self) -> Result<Option<ItemValue<V>>> {
        self.guard()?;
        self.resolve().await?;
        let CursorState::At(path, _) = &self.cursor else {
            return Ok(None);
        };
        Ok(item_at(path).map(|it| it.value.clone()))
    }

    async fn store_value(&mut self, value: V) -> Result<ItemValue<V>> {
        if self.info.value_in_node {
            return Ok(ItemValue::Inline(value));
        }
        let id = Uuid::new_v4();
        self.repo.put_value(id, value).await?;
        Ok(ItemValue::External(id))
    }

    async fn add_inner(&mut self, id: Uuid, key: K, value: Put<V>, unique: bool) -> Result<bool> {
        self.cursor = CursorState::None;
        let path = if unique {
            let (path, found) = self.descend_exact(&key).await?;
            if found {
                if self.info.unique {
                    self.cursor = self.at(path);
                } else {
                    drop(path);
                    self.find_inner(&key).await?;
                }
                return Ok(false);
            }
            path
        } else {
            self.descend(Seek::Upper(&key)).await?
        };
        self.insert_new(path, id, key, value).await?;
        Ok(true)
    }

    /// Inserts a new item where `path` (from a descent for its key) says it goes.
    async fn insert_new(
        &mut self,
        path: Path<K, V>,
        id: Uuid,
        key: K,
        value: Put<V>,
    ) -> Result<()> {
        let value = self.place(value).await?;
        let item = NodeItem {
            id,
            key,
            value,
            version: 0,
        };
        let (id, pending_key) = (item.id, item.key.clone());
        self.insert_at(ids(path), item).await?;
        Arc::make_mut(&mut self.info).count += 1;
        self.cursor = CursorState::Pending {
            key: pending_key,
            id,
        };
        Ok(())
    }

    /// Replaces the key and/or value of the cursor's item in place.
    async fn set_current(
        &mut self,
        key: Option<K>,
        value: Option<Put<V>>,
        operation: &'static str,
    ) -> Result<()> {
        let path = self.take_path(operation).await?;
        if let (Some(new), Some(old)) = (&key, item_at(&path))
            && self.cmp.compare(new, &old.key) != Ordering::Equal
        {
            self.cursor = self.at(path);
            return Err(Error::Cursor(sop_core::CursorError::KeyChanged {
                operation,
            }));
        }
        let value = match value {
            Some(v) => Some(self.place(v).await?),
            None => None,
        };
        let mut steps = ids(path);
        let Some((node_id, index)) = steps.pop() else {
            return Err(Error::Cursor(sop_core::CursorError::NoCurrentItem {
                operation,
            }));
        };
        let mut node = self.checkout_node(node_id).await?;
        let Some(item) = node.items.get_mut(index).map(Arc::make_mut) else {
            let len = node.items.len();
            self.repo.update(node)?;
            return Err(self.invariant(format!(
                "cursor points at item {index} of node {node_id}, which has {len}"
            )));
        };
        if let Some(k) = key {
            item.key = k;
        }
        let old = value.map(|v| std::mem::replace(&mut item.value, v));
        item.version = item.version.wrapping_add(1);
        let pending = CursorState::Pending {
            key: item.key.clone(),
            id: item.id,
        };
        self.repo.update(node)?;
        if let Some(ItemValue::External(old_id)) = old {
            self.repo.remove_value(old_id).await?;
        }
        self.cursor = pending;
        Ok(())
    }

    async fn remove_current_inner(&mut self) -> Result<()> {
        let path = self.take_path("remove_current_item").await?;
        let removed = self.remove_at(ids(path)).await?;
        let info = Arc::make_mut(&mut self.info);
        info.count = info.count.saturating_sub(1);
        if let ItemValue::External(id) = removed.value {
            self.repo.remove_value(id).await?;
        }
        Ok(())
    }
}
