//! A B-tree inside a transaction: the SOP B-tree API, recording what the transaction reads and
//! changes so its commit can validate and, on a conflict at node level only, merge.

use std::ops::Bound;
use std::sync::Arc;

use sop_btree::{BTree, Item, ItemValue, KeyComparator, NaturalOrder, Put, TreeStats, Upserted};
use sop_core::{Result, StoreInfo, Uuid};

use crate::repo::{Data, TxRepo};
use crate::state::StoreShared;

type Tree<K, V, C> = BTree<K, V, TxRepo<K, V, C>, C>;

/// A B-tree opened in a transaction (SOP's `Btree`). Its calls are SOP's: `add`, `find`,
/// `next`, `current_value`, `update_current_value`... plus `get`, `contains_key` and `range`.
///
/// Every read records the key range it looked at, and every change the item it changed, so the
/// commit can check at item level that nothing it depended on changed, and replay its changes
/// onto nodes another transaction changed meanwhile.
pub struct Store<K, V, C = NaturalOrder> {
    tree: Tree<K, V, C>,
    pub(crate) shared: Arc<StoreShared<K, V, C>>,
}

impl<K, V, C> std::fmt::Debug for Store<K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<K, V, C> Store<K, V, C> {
    /// The store's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Marks this store's changes in the transaction unusable: its commit then fails with
    /// [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned) naming `cause`. For
    /// layers above that find, outside any call, that what they wrote is incomplete (a stream
    /// writer dropped before it finished), so the transaction can never commit half of it.
    pub fn poison(&self, cause: impl Into<String>) {
        self.shared.state.lock().broken.get_or_insert(cause.into());
    }

    /// Holds the transaction's commit for `holder` (any id the caller owns): while a hold is
    /// on, a commit fails with [`UsageError::InvalidArgument`](sop_core::UsageError::InvalidArgument)
    /// saying `why`, and the transaction rolls back. For layers above with work in flight
    /// that the commit would otherwise cut in half (a stream writer with bytes not yet
    /// stored). Released by [`Store::release_commit`].
    pub fn hold_commit(&self, holder: Uuid, why: impl Into<String>) {
        self.shared.state.lock().holds.insert(holder, why.into());
    }

    /// Releases a hold taken by [`Store::hold_commit`].
    pub fn release_commit(&self, holder: Uuid) {
        self.shared.state.lock().holds.remove(&holder);
    }
}

impl<K, V, C> Store<K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    pub(crate) fn new(tree: Tree<K, V, C>, shared: Arc<StoreShared<K, V, C>>) -> Self {
        Store { tree, shared }
    }

    pub(crate) fn tree(&self) -> &Tree<K, V, C> {
        &self.tree
    }

    pub(crate) fn read(&self, lo: Bound<K>, hi: Bound<K>) {
        if self.shared.record_reads {
            self.shared.state.lock().reads.push((lo, hi));
        }
    }

    pub(crate) fn read_key(&self, k: &K) {
        if self.shared.record_reads {
            self.read(Bound::Included(k.clone()), Bound::Included(k.clone()));
        }
    }

    /// Records what the cursor now shows after a move from `from` (None: from an end).
    fn read_move(&self, from: Bound<&K>, forward: bool) {
        if !self.shared.record_reads {
            return;
        }
        let from = from.cloned();
        let here = self.tree.current_key().cloned();
        let to = here.map_or(Bound::Unbounded, Bound::Included);
        if forward {
            self.read(from, to);
        } else {
            self.read(to, from);
        }
    }

    fn sync_count(&self) {
        self.shared.state.lock().count = self.tree.count();
    }

    /// Before a read: the transaction must be open (a handle outliving it errors, never
    /// answers from a stale view).
    pub(crate) fn enter_read(&self) -> Result<()> {
        self.shared.tx()?.check_open()
    }

    /// Refuses a key or value too big to be read back, before anything changes.
    fn check_size<T: Data>(&self, what: &'static str, data: &T) -> Result<()> {
        let size = sop_core::codec::encoded_len(data)?;
        if size > sop_core::codec::MAX_VALUE_BYTES {
            return Err(sop_core::Error::Usage(
                sop_core::UsageError::ValueTooLarge {
                    store: self.shared.name.clone(),
                    what,
                    size,
                    max: sop_core::codec::MAX_VALUE_BYTES,
                },
            ));
        }
        Ok(())
    }

    fn enter_put(&mut self, key: Option<&K>, value: &V) -> Result<()> {
        self.enter_write()?;
        if let Some(k) = key {
            self.check_size("a key", k)?;
        }
        self.check_size("a value", value)
    }

    /// Before a change: the transaction must be open and writable, checked before anything
    /// changes so a refused write leaves the store usable; and the tree works with the count
    /// shared by every handle on this store.
    fn enter_write(&mut self) -> Result<()> {
        self.shared.tx()?.check_writable()?;
        let count = self.shared.state.lock().count;
        self.tree.set_count(count);
        Ok(())
    }

    /// A read's outcome: an error of a call that changes nothing (a damaged piece, a missing
    /// segment) leaves the store usable, and the error is the caller's to see.
    pub(crate) fn guard_read<T>(&self, r: Result<T>) -> Result<T> {
        r
    }

    /// Marks the store unusable for commit after a failed change (the tree refuses calls too).
    fn guard<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && !matches!(
                e,
                sop_core::Error::Cursor(sop_core::CursorError::NoCurrentItem { .. })
                    | sop_core::Error::Cursor(sop_core::CursorError::KeyChanged { .. })
            )
        {
            self.shared.state.lock().broken.get_or_insert(e.to_string());
        }
        r
    }

    /// The value as the tree is to store it: a value of a store that writes values ahead is
    /// written now and only its id kept (the transaction then holds no copy of a big value,
    /// whatever it writes); others are kept to be stored by the tree.
    fn place(&self, value: V) -> Result<Put<V>> {
        if !self.shared.writes_ahead {
            return Ok(Put::Value(value));
        }
        let id = Uuid::new_v4();
        crate::repo::write_ahead(&self.shared, id, &value)?;
        Ok(Put::Stored(ItemValue::External(id)))
    }

    /// Whether an add that refuses a taken key (`unique`) would refuse `key`, asked before a
    /// value is written ahead (so a refused add of a big value writes nothing); records the
    /// read and leaves the cursor on the item, as a refused add does.
    async fn taken_before_placing(&mut self, key: &K, unique: bool) -> Result<bool> {
        if !self.shared.writes_ahead || !unique {
            return Ok(false);
        }
        let r = self.tree.find(key, true).await;
        let found = self.guard_read(r)?;
        if found {
            self.read_key(key);
        }
        Ok(found)
    }

    async fn before_change(&mut self) -> Result<Option<(Uuid, K)>> {
        let Some((id, version)) = self.tree.current_version().await? else {
            return Ok(None);
        };
        let Some(key) = self.tree.current_key().cloned() else {
            return Ok(None);
        };
        self.shared.state.lock().touch_before(id, &key, version);
        Ok(Some((id, key)))
    }

    /// The store's info as this transaction sees it (count included).
    pub fn store_info(&self) -> &StoreInfo {
        self.tree.store_info()
    }

    /// How many items the store holds, as this transaction sees it. Reading it is reading the
    /// whole key range: any commit that adds or removes items conflicts with it.
    ///
    /// # Errors
    /// [`TransactionError::TransactionState`](sop_core::TransactionError::TransactionState) once the transaction has ended.
    pub fn count(&self) -> Result<u64> {
        self.enter_read()?;
        self.read(Bound::Unbounded, Bound::Unbounded);
        Ok(self.shared.state.lock().count)
    }

    /// Adds an item; in a unique store an existing key is left alone and `false` returned.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn add(&mut self, key: K, value: V) -> Result<bool> {
        self.enter_put(Some(&key), &value)?;
        let unique = self.shared.state.lock().info.unique;
        if self.taken_before_placing(&key, unique).await? {
            return Ok(false);
        }
        let id = Uuid::new_v4();
        let value = self.guard(self.place(value))?;
        let r = self
            .tree
            .add_stored_with_id(id, key.clone(), value.clone())
            .await;
        let added = self.guard(r)?;
        self.after_add(added, id, key, value);
        Ok(added)
    }

    /// Records an add (the new item `id`), or the read that found the key taken.
    fn after_add(&mut self, added: bool, id: Uuid, key: K, value: Put<V>) {
        if added {
            self.shared.state.lock().touch_after(id, Some((key, value)));
            self.sync_count();
        } else {
            self.read_key(&key);
        }
    }

    /// Adds an item only if no item has an equal key.
    ///
    /// # Errors
    /// As [`Store::add`].
    pub async fn add_if_not_exist(&mut self, key: K, value: V) -> Result<bool> {
        self.enter_put(Some(&key), &value)?;
        if self.taken_before_placing(&key, true).await? {
            return Ok(false);
        }
        let id = Uuid::new_v4();
        let value = self.guard(self.place(value))?;
        let r = self
            .tree
            .add_if_not_exist_with_id(id, key.clone(), value.clone())
            .await;
        let added = self.guard(r)?;
        if added {
            // It read that no equal key existed (a failed add records that itself).
            self.read_key(&key);
        }
        self.after_add(added, id, key, value);
        Ok(added)
    }

    /// Adds the item or replaces the value of the first item with an equal key; `true` when it
    /// added.
    ///
    /// # Errors
    /// As [`Store::add`].
    pub async fn upsert(&mut self, key: K, value: V) -> Result<bool> {
        self.enter_put(Some(&key), &value)?;
        let id = Uuid::new_v4();
        let value = self.guard(self.place(value))?;
        let r = self
            .tree
            .upsert_with_id(id, key.clone(), value.clone())
            .await;
        // Either way it read whether the key was there.
        self.read_key(&key);
        match self.guard(r)? {
            Upserted::Added => {
                self.after_add(true, id, key, value);
                Ok(true)
            }
            Upserted::Updated {
                id,
                key: stored,
                version,
            } => {
                let mut state = self.shared.state.lock();
                state.touch_before(id, &stored, version);
                state.touch_after(id, Some((stored, value)));
                Ok(false)
            }
        }
    }

    /// Replaces the value of the first item with this key; `false` when there is none.
    ///
    /// # Errors
    /// As [`Store::add`].
    pub async fn update(&mut self, key: &K, value: V) -> Result<bool> {
        self.enter_put(None, &value)?;
        if !self.find(key, true).await? {
            return Ok(false);
        }
        self.update_current_value(value).await?;
        Ok(true)
    }

    /// Removes the first item with this key; `false` when there is none.
    ///
    /// # Errors
    /// As [`Store::add`].
    pub async fn remove(&mut self, key: &K) -> Result<bool> {
        self.enter_write()?;
        if !self.find(key, true).await? {
            return Ok(false);
        }
        self.remove_current_item().await?;
        Ok(true)
    }

    /// Moves the cursor to the first item with this key (`true`), or to the first greater key
    /// (`false`).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn find(&mut self, key: &K, first_item_with_key: bool) -> Result<bool> {
        self.enter_read()?;
        let r = self.tree.find(key, first_item_with_key).await;
        let found = self.guard_read(r)?;
        self.read_move(Bound::Included(key), true);
        Ok(found)
    }

    /// Moves the cursor to the item with this key and id.
    ///
    /// # Errors
    /// As [`Store::find`].
    pub async fn find_with_id(&mut self, key: &K, id: Uuid) -> Result<bool> {
        self.enter_read()?;
        let r = self.tree.find_with_id(key, id).await;
        let found = self.guard_read(r)?;
        self.read_move(Bound::Included(key), true);
        Ok(found)
    }

    /// Moves the cursor to the last item whose key is `<=` `key` (the last of equal keys),
    /// where a walk with [`Store::previous`] starts (SOP's `FindInDescendingOrder`); `true` when
    /// its key equals `key`.
    ///
    /// # Errors
    /// As [`Store::find`].
    pub async fn find_descending(&mut self, key: &K) -> Result<bool> {
        self.enter_read()?;
        let r = self.tree.find_descending(key).await;
        let found = self.guard_read(r)?;
        self.read_move(Bound::Included(key), false);
        Ok(found)
    }

    /// Moves the cursor to the first item.
    ///
    /// # Errors
    /// As [`Store::find`].
    pub async fn first(&mut self) -> Result<bool> {
        self.enter_read()?;
        let r = self.tree.first().await;
        let found = self.guard_read(r)?;
        self.read_move(Bound::Unbounded, true);
        Ok(found)
    }

    /// Moves the cursor to the last item.
    ///
    /// # Errors
    /// As [`Store::find`].
    pub async fn last(&mut self) -> Result<bool> {
        self.enter_read()?;
        let r = self.tree.last().await;
        let found = self.guard_read(r)?;
        self.read_move(Bound::Unbounded, false);
        Ok(found)
    }

    /// Moves the cursor to the next item.
    ///
    /// # Errors
    /// As [`Store::find`].
    pub async fn next(&mut self) -> Result<bool> {
        self.enter_read()?;
        let from = if self.shared.record_reads {
            self.tree.current_key().cloned()
        } else {
            None
        };
        let r = self.tree.next().await;
        let moved = self.guard_read(r)?;
        if let Some(k) = &from {
            self.read_move(Bound::Included(k), true);
        }
        Ok(moved)
    }

    /// Moves the cursor to the previous item.
    ///
    /// # Errors
    /// As [`Store::find`].
    pub async fn previous(&mut self) -> Result<bool> {
        self.enter_read()?;
        let from = if self.shared.record_reads {
            self.tree.current_key().cloned()
        } else {
            None
        };
        let r = self.tree.previous().await;
        let moved = self.guard_read(r)?;
        if let Some(k) = &from {
            self.read_move(Bound::Included(k), false);
        }
        Ok(moved)
    }

    /// The cursor's key.
    pub fn current_key(&self) -> Option<&K> {
        self.tree.current_key()
    }

    /// The cursor's value.
    ///
    /// # Errors
    /// As [`Store::find`].
    pub async fn current_value(&mut self) -> Result<Option<V>> {
        self.enter_read()?;
        let r = self.tree.current_value().await;
        self.guard_read(r)
    }

    /// The cursor's item.
    ///
    /// # Errors
    /// As [`Store::find`].
    pub async fn current_item(&mut self) -> Result<Option<Item<K, V>>> {
        self.enter_read()?;
        let r = self.tree.current_item().await;
        self.guard_read(r)
    }

    /// Replaces the cursor's key with an equal one (metadata-carrying keys).
    ///
    /// # Errors
    /// As [`Store::add`], and [`CursorError::KeyChanged`](sop_core::CursorError::KeyChanged).
    pub async fn update_current_key(&mut self, key: K) -> Result<()> {
        self.enter_write()?;
        self.check_size("a key", &key)?;
        // The replay needs the value: a value written and durable stays where it is (only its
        // id is kept); any other is read.
        let stored = self.tree.current_value_stored().await;
        let value = match self.guard_read(stored)? {
            Some(ItemValue::External(vid))
                if !self.shared.state.lock().values_pending.contains_key(&vid) =>
            {
                Some(Put::Stored(ItemValue::External(vid)))
            }
            Some(_) => self.current_value().await?.map(Put::Value),
            None => None,
        };
        match value {
            Some(v) => self.update_current_put(key, v).await,
            None => {
                let r = self.tree.update_current_key(key).await;
                self.guard(r)
            }
        }
    }

    /// Replaces the cursor's value.
    ///
    /// # Errors
    /// As [`Store::add`].
    pub async fn update_current_value(&mut self, value: V) -> Result<()> {
        self.enter_put(None, &value)?;
        let value = self.guard(self.place(value))?;
        let Some((id, key)) = self.before_change().await? else {
            let r = self.tree.update_current_value(value).await;
            return self.guard(r);
        };
        let r = self.tree.update_current_value(value.clone()).await;
        self.guard(r)?;
        self.shared.state.lock().touch_after(id, Some((key, value)));
        Ok(())
    }

    /// Replaces the cursor's key (equal) and value.
    ///
    /// # Errors
    /// As [`Store::update_current_key`].
    pub async fn update_current_item(&mut self, key: K, value: V) -> Result<()> {
        self.enter_put(Some(&key), &value)?;
        let value = self.guard(self.place(value))?;
        self.update_current_put(key, value).await
    }

    async fn update_current_put(&mut self, key: K, value: Put<V>) -> Result<()> {
        let Some((id, _)) = self.before_change().await? else {
            let r = self.tree.update_current_item(key, value).await;
            return self.guard(r);
        };
        let r = self
            .tree
            .update_current_item(key.clone(), value.clone())
            .await;
        self.guard(r)?;
        self.shared.state.lock().touch_after(id, Some((key, value)));
        Ok(())
    }

    /// Removes the cursor's item.
    ///
    /// # Errors
    /// As [`Store::add`].
    pub async fn remove_current_item(&mut self) -> Result<()> {
        self.enter_write()?;
        let Some((id, _)) = self.before_change().await? else {
            let r = self.tree.remove_current_item().await;
            return self.guard(r);
        };
        let r = self.tree.remove_current_item().await;
        self.guard(r)?;
        self.shared.state.lock().touch_after(id, None);
        self.sync_count();
        Ok(())
    }

    /// Checks the tree's invariants (see `sop_btree::BTree::check`).
    ///
    /// # Errors
    /// A broken invariant, storage errors.
    pub async fn check(&self) -> Result<TreeStats> {
        self.enter_read()?;
        self.read(Bound::Unbounded, Bound::Unbounded);
        let r = self.tree.check().await;
        self.guard_read(r)
    }
}
