//! Reads that take `&self`: point reads, lazy ranges and independent cursors. Each records what
//! it read (in a transaction that validates reads) as it goes, so a range abandoned half way
//! only claims the part it walked.

use std::ops::{Bound, RangeBounds};

use sop_btree::{Item, ItemRef, KeyComparator};
use sop_core::{Result, Uuid};

use crate::repo::{Data, TxRepo};
use crate::store::Store;

type TreeRange<'a, K, V, C> = sop_btree::Range<'a, K, V, TxRepo<K, V, C>, C>;
type TreeCursor<'a, K, V, C> = sop_btree::Cursor<'a, K, V, TxRepo<K, V, C>, C>;

impl<K, V, C> Store<K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    /// The value of the first item with this key. Takes `&self`: any number of reads, ranges
    /// and cursors can be at work on one handle.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = sop_txn::Engine::in_memory()?;
    /// let tx = engine.begin(sop_txn::TxOptions::new(sop_txn::TxMode::ForWriting));
    /// let mut t = tx.new_btree::<u32, String>(&sop_core::StoreOptions::new("t"))?;
    /// t.add(1, "one".into()).await?;
    /// assert_eq!(t.get(&1).await?.as_deref(), Some("one"));
    /// assert_eq!(t.get(&2).await?, None);
    /// tx.commit().await
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// Storage errors, [`TransactionError::TransactionState`](sop_core::TransactionError::TransactionState) once the transaction has ended.
    pub async fn get(&self, key: &K) -> Result<Option<V>> {
        self.enter_read()?;
        let r = self.tree().get(key).await;
        let v = self.guard_read(r)?;
        self.read_key(key);
        Ok(v)
    }

    /// The first item with this key without copying its key or value: the guard shares the
    /// item in the decoded node (redb's `AccessGuard`), so reading a big value this way costs
    /// no copy; [`ItemRef::value`] reads it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = sop_txn::Engine::in_memory()?;
    /// let tx = engine.begin(sop_txn::TxOptions::new(sop_txn::TxMode::ForWriting));
    /// let mut t = tx.new_btree::<u32, Vec<u8>>(&sop_core::StoreOptions::new("t"))?;
    /// t.add(1, vec![7; 4096]).await?;
    /// let got = t.get_ref(&1).await?.expect("added above");
    /// assert_eq!(got.value().len(), 4096);
    /// assert!(t.get_ref(&2).await?.is_none());
    /// tx.commit().await
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn get_ref(&self, key: &K) -> Result<Option<ItemRef<K, V>>> {
        self.enter_read()?;
        let r = self.tree().get_ref(key).await;
        let v = self.guard_read(r)?;
        self.read_key(key);
        Ok(v)
    }

    /// Calls `f` on the value of the first item with this key without copying it (the value
    /// as the node holds it): for reading part of a big value, or a value that need not be
    /// owned.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = sop_txn::Engine::in_memory()?;
    /// let tx = engine.begin(sop_txn::TxOptions::new(sop_txn::TxMode::ForWriting));
    /// let mut t = tx.new_btree::<u32, Vec<u8>>(&sop_core::StoreOptions::new("t"))?;
    /// t.add(1, vec![7; 4096]).await?;
    /// assert_eq!(t.get_with(&1, |v| v.len()).await?, Some(4096));
    /// tx.commit().await
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn get_with<T, F: FnOnce(&V) -> T + Send>(&self, key: &K, f: F) -> Result<Option<T>> {
        self.enter_read()?;
        let r = self.tree().get_with(key, f).await;
        let v = self.guard_read(r)?;
        self.read_key(key);
        Ok(v)
    }

    /// Whether an item has this key.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn contains_key(&self, key: &K) -> Result<bool> {
        self.enter_read()?;
        let r = self.tree().contains_key(key).await;
        let found = self.guard_read(r)?;
        self.read_key(key);
        Ok(found)
    }

    /// A lazy, double-ended range over the items with keys in `bounds`, in key order: it
    /// holds a few nodes whatever the range's size, and loads nodes as it goes.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = sop_txn::Engine::in_memory()?;
    /// let tx = engine.begin(sop_txn::TxOptions::new(sop_txn::TxMode::ForWriting));
    /// let mut t = tx.new_btree::<u32, u32>(&sop_core::StoreOptions::new("t"))?;
    /// for k in 0..100 {
    ///     t.add(k, k * 2).await?;
    /// }
    /// let mut r = t.range(10..20);
    /// assert_eq!(r.next().await?.map(|it| it.key), Some(10));
    /// assert_eq!(r.next_back().await?.map(|it| it.value), Some(38));
    /// assert_eq!(r.collect().await?.len(), 8); // 11..=18
    /// tx.commit().await
    /// # }).unwrap();
    /// ```
    pub fn range(&self, bounds: impl RangeBounds<K>) -> StoreRange<'_, K, V, C> {
        let lo = bounds.start_bound().cloned();
        let hi = bounds.end_bound().cloned();
        StoreRange {
            store: self,
            inner: self.tree().range((lo.clone(), hi.clone())),
            lo,
            hi,
            front_read: None,
            back_read: None,
        }
    }

    /// Every item in key order: `range(..)`.
    pub fn iter(&self) -> StoreRange<'_, K, V, C> {
        self.range(..)
    }

    /// A cursor of its own (SOP's independent cursors): moves without touching this handle's
    /// cursor or any other.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = sop_txn::Engine::in_memory()?;
    /// let tx = engine.begin(sop_txn::TxOptions::new(sop_txn::TxMode::ForWriting));
    /// let mut t = tx.new_btree::<u32, u32>(&sop_core::StoreOptions::new("t"))?;
    /// for k in 0..10 {
    ///     t.add(k, k).await?;
    /// }
    /// let (mut a, mut b) = (t.cursor(), t.cursor());
    /// a.first().await?;
    /// b.find_descending(&5).await?;
    /// b.previous().await?;
    /// assert_eq!((a.key(), b.key()), (Some(&0), Some(&4)));
    /// tx.commit().await
    /// # }).unwrap();
    /// ```
    pub fn cursor(&self) -> StoreCursor<'_, K, V, C> {
        StoreCursor {
            store: self,
            inner: self.tree().cursor(),
        }
    }
}

/// A lazy, double-ended range of a [`Store`] ([`Store::range`]): `next` and `next_back` are
/// async; in the blocking API the same range is a `DoubleEndedIterator`.
pub struct StoreRange<'a, K, V, C> {
    store: &'a Store<K, V, C>,
    inner: TreeRange<'a, K, V, C>,
    lo: Bound<K>,
    hi: Bound<K>,
    /// Where the front's read record is in the transaction's read list.
    front_read: Option<usize>,
    back_read: Option<usize>,
}

impl<K, V, C> std::fmt::Debug for StoreRange<'_, K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRange").finish_non_exhaustive()
    }
}

impl<K, V, C> StoreRange<'_, K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    /// The next item from the front; `None` once the range is exhausted.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn next(&mut self) -> Result<Option<Item<K, V>>> {
        self.store.enter_read()?;
        let r = self.inner.next().await;
        let item = self.store.guard_read(r)?;
        self.record(item.as_ref().map(|it| &it.key), true);
        Ok(item)
    }

    /// The next item from the front without copying its key or value (see [`ItemRef`]).
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn next_ref(&mut self) -> Result<Option<ItemRef<K, V>>> {
        self.store.enter_read()?;
        let r = self.inner.next_ref().await;
        let item = self.store.guard_read(r)?;
        self.record(item.as_ref().map(ItemRef::key), true);
        Ok(item)
    }

    /// The next item from the back without copying its key or value.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn next_back_ref(&mut self) -> Result<Option<ItemRef<K, V>>> {
        self.store.enter_read()?;
        let r = self.inner.next_back_ref().await;
        let item = self.store.guard_read(r)?;
        self.record(item.as_ref().map(ItemRef::key), false);
        Ok(item)
    }

    /// The next key from the front, without loading its value.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn next_key(&mut self) -> Result<Option<K>> {
        self.store.enter_read()?;
        let r = self.inner.next_key().await;
        let key = self.store.guard_read(r)?;
        self.record(key.as_ref(), true);
        Ok(key)
    }

    /// The next item from the back; `None` once the range is exhausted.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn next_back(&mut self) -> Result<Option<Item<K, V>>> {
        self.store.enter_read()?;
        let r = self.inner.next_back().await;
        let item = self.store.guard_read(r)?;
        self.record(item.as_ref().map(|it| &it.key), false);
        Ok(item)
    }

    /// All remaining items from the front.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn collect(mut self) -> Result<Vec<Item<K, V>>> {
        let mut out = Vec::new();
        while let Some(item) = self.next().await? {
            out.push(item);
        }
        Ok(out)
    }

    /// Records the part of the range read so far: up to `key` from one end, or all of it when
    /// the range ran out (`None`).
    fn record(&mut self, key: Option<&K>, front: bool) {
        if !self.store.shared.record_reads {
            return;
        }
        let span = match (key, front) {
            (None, _) => (self.lo.clone(), self.hi.clone()),
            (Some(k), true) => (self.lo.clone(), Bound::Included(k.clone())),
            (Some(k), false) => (Bound::Included(k.clone()), self.hi.clone()),
        };
        let slot = if front {
            &mut self.front_read
        } else {
            &mut self.back_read
        };
        let mut st = self.store.shared.state.lock();
        match *slot {
            Some(i) if i < st.reads.len() => st.reads[i] = span,
            _ => {
                *slot = Some(st.reads.len());
                st.reads.push(span);
            }
        }
    }
}

/// An independent read cursor of a [`Store`] ([`Store::cursor`]).
pub struct StoreCursor<'a, K, V, C> {
    store: &'a Store<K, V, C>,
    inner: TreeCursor<'a, K, V, C>,
}

impl<K, V, C> std::fmt::Debug for StoreCursor<'_, K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCursor").finish_non_exhaustive()
    }
}

impl<K, V, C> StoreCursor<'_, K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    /// Records the span between where the cursor was (`from`) and where it is now.
    fn moved(&self, from: Bound<K>, forward: bool) {
        if !self.store.shared.record_reads {
            return;
        }
        let here = self
            .inner
            .key()
            .cloned()
            .map_or(Bound::Unbounded, Bound::Included);
        if forward {
            self.store.read(from, here);
        } else {
            self.store.read(here, from);
        }
    }

    fn where_now(&self) -> Bound<K> {
        if self.store.shared.record_reads {
            self.inner
                .key()
                .cloned()
                .map_or(Bound::Unbounded, Bound::Included)
        } else {
            Bound::Unbounded
        }
    }

    /// Moves to the first item; `false` when the store is empty.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn first(&mut self) -> Result<bool> {
        self.store.enter_read()?;
        let r = self.inner.first().await;
        let found = self.store.guard_read(r)?;
        self.moved(Bound::Unbounded, true);
        Ok(found)
    }

    /// Moves to the last item; `false` when the store is empty.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn last(&mut self) -> Result<bool> {
        self.store.enter_read()?;
        let r = self.inner.last().await;
        let found = self.store.guard_read(r)?;
        self.moved(Bound::Unbounded, false);
        Ok(found)
    }

    /// Moves to the first item with a key `>=` `key`; `true` when it equals `key`.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn find(&mut self, key: &K) -> Result<bool> {
        self.store.enter_read()?;
        let r = self.inner.find(key).await;
        let found = self.store.guard_read(r)?;
        self.moved(Bound::Included(key.clone()), true);
        Ok(found)
    }

    /// Moves to the last item with a key `<=` `key` (SOP's `FindInDescendingOrder`); `true`
    /// when it equals `key`.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn find_descending(&mut self, key: &K) -> Result<bool> {
        self.store.enter_read()?;
        let r = self.inner.find_descending(key).await;
        let found = self.store.guard_read(r)?;
        self.moved(Bound::Included(key.clone()), false);
        Ok(found)
    }

    /// Moves to the item with this key and id; `false` (on none) when there is none.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn find_with_id(&mut self, key: &K, id: Uuid) -> Result<bool> {
        self.store.enter_read()?;
        let r = self.inner.find_with_id(key, id).await;
        let found = self.store.guard_read(r)?;
        self.store.read_key(key);
        Ok(found)
    }

    /// Moves to the next item; `false` (on none) past the last.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn next(&mut self) -> Result<bool> {
        self.store.enter_read()?;
        let from = self.where_now();
        let r = self.inner.next().await;
        let moved = self.store.guard_read(r)?;
        self.moved(from, true);
        Ok(moved)
    }

    /// Moves to the previous item; `false` (on none) before the first.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn previous(&mut self) -> Result<bool> {
        self.store.enter_read()?;
        let from = self.where_now();
        let r = self.inner.previous().await;
        let moved = self.store.guard_read(r)?;
        self.moved(from, false);
        Ok(moved)
    }

    /// The key of the item it is on.
    #[must_use]
    pub fn key(&self) -> Option<&K> {
        self.inner.key()
    }

    /// The id of the item it is on.
    #[must_use]
    pub fn id(&self) -> Option<Uuid> {
        self.inner.id()
    }

    /// The value of the item it is on.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn value(&mut self) -> Result<Option<V>> {
        self.store.enter_read()?;
        let r = self.inner.value().await;
        self.store.guard_read(r)
    }

    /// The item it is on.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn item(&mut self) -> Result<Option<Item<K, V>>> {
        self.store.enter_read()?;
        let r = self.inner.item().await;
        self.store.guard_read(r)
    }

    /// The item it is on without copying its key or value (see [`ItemRef`]).
    ///
    /// # Errors
    /// As [`Store::get`].
    pub async fn item_ref(&mut self) -> Result<Option<ItemRef<K, V>>> {
        self.store.enter_read()?;
        let r = self.inner.item_ref().await;
        self.store.guard_read(r)
    }
}
