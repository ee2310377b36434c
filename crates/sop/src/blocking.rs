//! The blocking API: the same databases, transactions and trees for plain threads and
//! `fn main`, with no async runtime of the caller's.
//!
//! Each [`Database`] owns a small private runtime (one worker: Redis connections in clustered
//! mode, maintenance hand-offs) and every call runs to completion on the calling thread, so
//! any number of threads can call at once. Handles are `Send + Sync`; a [`Store`] is used from
//! the thread that has it (`&mut self` for changes, `&self` for reads), ranges are
//! `DoubleEndedIterator`s.
//!
//! ```
//! use sop::blocking::Database;
//! use sop::{StoreOptions, TableDefinition, TxMode};
//!
//! const ACCOUNTS: TableDefinition<u32, i64> = TableDefinition::new("accounts");
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::standalone(dir.path())?;
//! let tx = db.begin(TxMode::ForWriting);
//! let mut accounts = tx.open_table(&ACCOUNTS)?;
//! for id in 0..10 {
//!     accounts.add(id, 100)?;
//! }
//! tx.commit()?;
//!
//! // Read-modify-write with retries on conflicts.
//! db.run(TxMode::ForWriting, 10, |tx| {
//!     let mut a = tx.open_table(&ACCOUNTS)?;
//!     let from = a.get(&1)?.unwrap_or(0);
//!     a.update(&1, from - 30)?;
//!     let to = a.get(&2)?.unwrap_or(0);
//!     a.update(&2, to + 30)
//! })?;
//!
//! let tx = db.begin(TxMode::ForReading);
//! let accounts = tx.open_table(&ACCOUNTS)?;
//! let total: i64 = accounts.iter().map(|it| it.map(|it| it.value)).sum::<sop::Result<i64>>()?;
//! assert_eq!(total, 1000);
//! let last_two: Vec<u32> = accounts.range(..).rev().take(2).map(|it| it.map(|it| it.key)).collect::<sop::Result<_>>()?;
//! assert_eq!(last_two, [9, 8]);
//! tx.commit()?;
//! # Ok::<(), anyhow::Error>(())
//! ```

#[cfg(feature = "streaming")]
mod streaming;
#[cfg(feature = "streaming")]
pub use streaming::{StreamReader, StreamWriter, StreamingStore};

use std::future::Future;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use sop_btree::{Item, KeyComparator, NaturalOrder, TreeStats};
use sop_core::{Error, Result, StoreInfo, StoreOptions, Uuid};
use sop_txn::{Data, TableDefinition, TxMode, TxOptions};

/// The private runtime of a blocking database, shut down without waiting when the last handle
/// goes (even when that happens inside someone's async code).
struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    fn new() -> Result<Arc<Rt>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sop-blocking")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::Storage(crate::StorageError::Io {
                    op: "start the blocking API's runtime",
                    path: std::path::PathBuf::new(),
                    source: e,
                })
            })?;
        Ok(Arc::new(Rt(Some(rt))))
    }

    /// Runs `f` to completion on this thread.
    fn block_on<F: Future<Output = Result<T>>, T>(&self, f: F) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Usage(crate::UsageError::InvalidConfig {
                what: "blocking API",
                reason: "called from inside an async runtime, where blocking would stall it; \
                         use the async API (sop::Database) there, or call from a plain thread \
                         (tokio::task::spawn_blocking)"
                    .into(),
            }));
        }
        match &self.0 {
            Some(rt) => rt.block_on(f),
            None => Err(Error::Usage(crate::UsageError::InvalidConfig {
                what: "blocking API",
                reason: "its runtime is shut down".into(),
            })),
        }
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A database for blocking code: [`crate::Database`] with calls that return when done.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let db = sop::blocking::Database::standalone(dir.path())?;
/// let tx = db.begin(sop::TxMode::ForWriting);
/// let mut t = tx.new_btree::<String, String>(&sop::StoreOptions::new("t"))?;
/// t.add("k".into(), "v".into())?;
/// tx.commit()?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Database {
    // Declared first: dropped (and the folder unlocked) before the runtime stops.
    db: crate::Database,
    rt: Arc<Rt>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Database")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (or creates) a standalone database in `path` with the default options.
    ///
    /// # Errors
    /// As [`crate::Database::standalone`].
    pub fn standalone(path: impl AsRef<Path>) -> Result<Self> {
        Self::open(path, crate::DatabaseOptions::default())
    }

    /// Opens the standalone database in `path`, or rebuilds it from `kit` when it is missing
    /// or damaged (see [`crate::kit::open_or_restore`]).
    ///
    /// # Errors
    /// As [`crate::kit::open_or_restore`].
    #[cfg(feature = "json")]
    pub fn open_or_restore(
        path: impl AsRef<Path>,
        kit: &crate::kit::Kit,
    ) -> Result<(Self, crate::kit::Restored)> {
        let rt = Rt::new()?;
        let (db, what) = rt.block_on(crate::kit::open_or_restore(path.as_ref(), kit))?;
        Ok((Database { db, rt }, what))
    }

    /// Opens (or creates) a standalone database in `path`.
    ///
    /// # Errors
    /// As [`crate::Database::open`].
    pub fn open(path: impl AsRef<Path>, options: crate::DatabaseOptions) -> Result<Self> {
        let rt = Rt::new()?;
        let path = path.as_ref().to_path_buf();
        let db = rt.block_on(async move { crate::Database::open(path, options) })?;
        Ok(Database { db, rt })
    }

    /// Opens an existing database to read only (see [`crate::Database::open_read_only`]).
    ///
    /// # Errors
    /// As [`crate::Database::open_read_only`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let rt = Rt::new()?;
        let path = path.as_ref().to_path_buf();
        let db = rt.block_on(async move { crate::Database::open_read_only(path) })?;
        Ok(Database { db, rt })
    }

    /// Opens (or creates) a database shared by many processes through Redis (clustered mode).
    ///
    /// # Errors
    /// As [`crate::Database::open_clustered`].
    pub fn open_clustered(path: impl AsRef<Path>, options: crate::ClusterOptions) -> Result<Self> {
        let rt = Rt::new()?;
        let path = path.as_ref().to_path_buf();
        let db = rt.block_on(crate::Database::open_clustered(path, options))?;
        Ok(Database { db, rt })
    }

    /// The async database underneath (for code that has a runtime).
    #[must_use]
    pub fn as_async(&self) -> &crate::Database {
        &self.db
    }

    /// The database folder.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Begins a transaction.
    #[must_use]
    pub fn begin(&self, mode: TxMode) -> Transaction {
        self.begin_with(TxOptions::new(mode))
    }

    /// Begins a transaction with full options.
    #[must_use]
    pub fn begin_with(&self, options: TxOptions) -> Transaction {
        Transaction {
            tx: self.db.begin_with(options),
            rt: Arc::clone(&self.rt),
        }
    }

    /// Runs `work` in a transaction and commits; on a conflict (see [`crate::is_retryable`])
    /// runs it again in a fresh transaction after a jittered pause, up to `attempts` times.
    ///
    /// # Errors
    /// The last conflict, or the first other error.
    pub fn run<T>(
        &self,
        mode: TxMode,
        attempts: usize,
        mut work: impl FnMut(&Transaction) -> Result<T>,
    ) -> Result<T> {
        let mut last = None;
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(sop_txn::backoff(attempt));
            }
            let tx = self.begin(mode);
            let r = match work(&tx) {
                Ok(v) => tx.commit().map(|()| v),
                Err(e) => {
                    let _ = tx.rollback();
                    Err(e)
                }
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) if sop_txn::is_retryable(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(
            last.unwrap_or(Error::Transaction(crate::TransactionError::Conflict {
                store: String::new(),
                detail: "no attempt was made".into(),
            })),
        )
    }

    /// Removes a store and its data (see [`crate::Database::remove_btree`]).
    ///
    /// # Errors
    /// As [`crate::Database::remove_btree`].
    pub fn remove_btree(&self, name: &str) -> Result<()> {
        self.rt.block_on(async { self.db.remove_btree(name) })
    }

    /// The names of all stores.
    ///
    /// # Errors
    /// Storage errors.
    pub fn stores(&self) -> Result<Vec<String>> {
        self.db.stores()
    }

    /// A store's committed info.
    ///
    /// # Errors
    /// Storage errors.
    pub fn store_info(&self, name: &str) -> Result<Option<StoreInfo>> {
        self.db.store_info(name)
    }

    /// Compacts the log now (see [`crate::Database::compact`]).
    ///
    /// # Errors
    /// Storage errors.
    pub fn compact(&self) -> Result<crate::CompactionReport> {
        self.rt.block_on(async { self.db.compact() })
    }

    /// Checks (and with `repair`, repairs) the database (see `sop verify`).
    ///
    /// # Errors
    /// Storage errors.
    pub fn verify(&self, repair: bool) -> Result<sop_database::VerifyReport> {
        self.rt.block_on(self.db.verify(repair))
    }
}

/// A transaction of a blocking [`Database`]. Dropped without commit, it rolls back.
#[derive(Clone)]
pub struct Transaction {
    tx: crate::Transaction,
    rt: Arc<Rt>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.tx.fmt(f)
    }
}

impl Transaction {
    /// The async transaction underneath.
    #[must_use]
    pub fn as_async(&self) -> &crate::Transaction {
        &self.tx
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> Uuid {
        self.tx.id()
    }

    /// Its mode.
    #[must_use]
    pub fn mode(&self) -> TxMode {
        self.tx.mode()
    }

    /// Whether it is still open.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.tx.is_open()
    }

    fn wrap<K, V, C>(&self, r: Result<crate::Store<K, V, C>>) -> Result<Store<K, V, C>> {
        r.map(|store| Store {
            store,
            rt: Arc::clone(&self.rt),
        })
    }

    /// Opens a table, creating it in a `ForWriting` transaction when it does not exist.
    ///
    /// # Errors
    /// As [`crate::Transaction::open_table`].
    pub fn open_table<K, V, C>(
        &self,
        table: &TableDefinition<'_, K, V, C>,
    ) -> Result<Store<K, V, C>>
    where
        K: Data,
        V: Data,
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        self.wrap(self.tx.open_table(table))
    }

    /// Creates a store.
    ///
    /// # Errors
    /// As [`crate::Transaction::new_btree`].
    pub fn new_btree<K: Data + Ord, V: Data>(
        &self,
        options: &StoreOptions,
    ) -> Result<Store<K, V, NaturalOrder>> {
        self.wrap(self.tx.new_btree(options))
    }

    /// Creates a store ordered by `cmp`.
    ///
    /// # Errors
    /// As [`crate::Transaction::new_btree_with`].
    pub fn new_btree_with<K: Data, V: Data, C>(
        &self,
        options: &StoreOptions,
        cmp: C,
    ) -> Result<Store<K, V, C>>
    where
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        self.wrap(self.tx.new_btree_with(options, cmp))
    }

    /// Opens a store.
    ///
    /// # Errors
    /// As [`crate::Transaction::open_btree`].
    pub fn open_btree<K: Data + Ord, V: Data>(&self, name: &str) -> Result<Store<K, V>> {
        self.wrap(self.tx.open_btree(name))
    }

    /// Opens a store ordered by `cmp`.
    ///
    /// # Errors
    /// As [`crate::Transaction::open_btree_with`].
    pub fn open_btree_with<K: Data, V: Data, C>(&self, name: &str, cmp: C) -> Result<Store<K, V, C>>
    where
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        self.wrap(self.tx.open_btree_with(name, cmp))
    }

    /// Commits (see [`crate::Transaction::commit`]).
    ///
    /// # Errors
    /// As [`crate::Transaction::commit`].
    pub fn commit(&self) -> Result<()> {
        self.rt.block_on(self.tx.commit())
    }

    /// Phase 1 of a two-phase commit (see [`crate::Transaction::prepare`]); end it with
    /// [`Transaction::commit`] or [`Transaction::rollback`].
    ///
    /// # Errors
    /// As [`crate::Transaction::prepare`].
    pub fn prepare(&self) -> Result<()> {
        self.rt.block_on(self.tx.prepare())
    }

    /// Runs `f` once it has committed.
    pub fn on_commit(&self, f: impl FnOnce() + Send + 'static) {
        self.tx.on_commit(f);
    }

    /// Runs `f` if it ends without committing.
    pub fn on_rollback(&self, f: impl FnOnce() + Send + 'static) {
        self.tx.on_rollback(f);
    }

    /// Rolls back.
    ///
    /// # Errors
    /// As [`crate::Transaction::rollback`].
    pub fn rollback(&self) -> Result<()> {
        self.rt.block_on(self.tx.rollback())
    }
}

/// A B-tree in a blocking [`Transaction`]: [`crate::Store`]'s calls, returning when done.
pub struct Store<K, V, C = NaturalOrder> {
    store: crate::Store<K, V, C>,
    rt: Arc<Rt>,
}

impl<K, V, C> std::fmt::Debug for Store<K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

impl<K, V, C> Store<K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    /// The async store underneath.
    pub fn as_async(&mut self) -> &mut crate::Store<K, V, C> {
        &mut self.store
    }

    /// The store's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.store.name()
    }

    /// How many items it holds, as this transaction sees it.
    ///
    /// # Errors
    /// As [`crate::Store::count`].
    pub fn count(&self) -> Result<u64> {
        self.store.count()
    }

    /// Adds an item (see [`crate::Store::add`]).
    ///
    /// # Errors
    /// As [`crate::Store::add`].
    pub fn add(&mut self, key: K, value: V) -> Result<bool> {
        self.rt.block_on(self.store.add(key, value))
    }

    /// Adds an item unless its key exists.
    ///
    /// # Errors
    /// As [`crate::Store::add`].
    pub fn add_if_not_exist(&mut self, key: K, value: V) -> Result<bool> {
        self.rt.block_on(self.store.add_if_not_exist(key, value))
    }

    /// Adds or replaces; `true` when it added.
    ///
    /// # Errors
    /// As [`crate::Store::add`].
    pub fn upsert(&mut self, key: K, value: V) -> Result<bool> {
        self.rt.block_on(self.store.upsert(key, value))
    }

    /// Replaces the value of the first item with this key; `false` when there is none.
    ///
    /// # Errors
    /// As [`crate::Store::add`].
    pub fn update(&mut self, key: &K, value: V) -> Result<bool> {
        self.rt.block_on(self.store.update(key, value))
    }

    /// Removes the first item with this key; `false` when there is none.
    ///
    /// # Errors
    /// As [`crate::Store::add`].
    pub fn remove(&mut self, key: &K) -> Result<bool> {
        self.rt.block_on(self.store.remove(key))
    }

    /// The value of the first item with this key.
    ///
    /// # Errors
    /// As [`crate::Store::get`].
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        self.rt.block_on(self.store.get(key))
    }

    /// The first item with this key without copying its key or value (see
    /// [`crate::ItemRef`]).
    ///
    /// # Errors
    /// As [`crate::Store::get`].
    pub fn get_ref(&self, key: &K) -> Result<Option<crate::ItemRef<K, V>>> {
        self.rt.block_on(self.store.get_ref(key))
    }

    /// Calls `f` on the value of the first item with this key, without copying it.
    ///
    /// # Errors
    /// As [`crate::Store::get`].
    pub fn get_with<T, F: FnOnce(&V) -> T + Send>(&self, key: &K, f: F) -> Result<Option<T>> {
        self.rt.block_on(self.store.get_with(key, f))
    }

    /// Whether an item has this key.
    ///
    /// # Errors
    /// As [`crate::Store::get`].
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        self.rt.block_on(self.store.contains_key(key))
    }

    /// The items with keys in `bounds`, lazily, from either end.
    pub fn range(&self, bounds: impl RangeBounds<K>) -> Range<'_, K, V, C> {
        Range {
            range: self.store.range(bounds),
            rt: &self.rt,
        }
    }

    /// Every item in key order.
    pub fn iter(&self) -> Range<'_, K, V, C> {
        self.range(..)
    }

    /// A cursor of its own.
    pub fn cursor(&self) -> Cursor<'_, K, V, C> {
        Cursor {
            cursor: self.store.cursor(),
            rt: &self.rt,
        }
    }

    /// Moves this handle's cursor to the first item with this key (SOP's `Find`).
    ///
    /// # Errors
    /// As [`crate::Store::find`].
    pub fn find(&mut self, key: &K, first_item_with_key: bool) -> Result<bool> {
        self.rt.block_on(self.store.find(key, first_item_with_key))
    }

    /// Moves this handle's cursor to the last item with a key `<=` `key`.
    ///
    /// # Errors
    /// As [`crate::Store::find`].
    pub fn find_descending(&mut self, key: &K) -> Result<bool> {
        self.rt.block_on(self.store.find_descending(key))
    }

    /// Moves this handle's cursor to the first item.
    ///
    /// # Errors
    /// As [`crate::Store::find`].
    pub fn first(&mut self) -> Result<bool> {
        self.rt.block_on(self.store.first())
    }

    /// Moves this handle's cursor to the last item.
    ///
    /// # Errors
    /// As [`crate::Store::find`].
    pub fn last(&mut self) -> Result<bool> {
        self.rt.block_on(self.store.last())
    }

    /// Moves this handle's cursor to the next item.
    ///
    /// # Errors
    /// As [`crate::Store::find`].
    #[allow(clippy::should_implement_trait)] // SOP's cursor move: it moves, it yields nothing.
    pub fn next(&mut self) -> Result<bool> {
        self.rt.block_on(self.store.next())
    }

    /// Moves this handle's cursor to the previous item.
    ///
    /// # Errors
    /// As [`crate::Store::find`].
    pub fn previous(&mut self) -> Result<bool> {
        self.rt.block_on(self.store.previous())
    }

    /// The key of this handle's cursor.
    #[must_use]
    pub fn current_key(&self) -> Option<&K> {
        self.store.current_key()
    }

    /// The value of this handle's cursor.
    ///
    /// # Errors
    /// As [`crate::Store::find`].
    pub fn current_value(&mut self) -> Result<Option<V>> {
        self.rt.block_on(self.store.current_value())
    }

    /// The item of this handle's cursor.
    ///
    /// # Errors
    /// As [`crate::Store::find`].
    pub fn current_item(&mut self) -> Result<Option<Item<K, V>>> {
        self.rt.block_on(self.store.current_item())
    }

    /// Replaces the value of this handle's cursor's item.
    ///
    /// # Errors
    /// As [`crate::Store::add`].
    pub fn update_current_value(&mut self, value: V) -> Result<()> {
        self.rt.block_on(self.store.update_current_value(value))
    }

    /// Removes this handle's cursor's item.
    ///
    /// # Errors
    /// As [`crate::Store::add`].
    pub fn remove_current_item(&mut self) -> Result<()> {
        self.rt.block_on(self.store.remove_current_item())
    }

    /// Checks the tree's invariants.
    ///
    /// # Errors
    /// A broken invariant, storage errors.
    pub fn check(&self) -> Result<TreeStats> {
        self.rt.block_on(self.store.check())
    }
}

/// A lazy range of a blocking [`Store`]: a `DoubleEndedIterator` of `Result<Item>`. It ends
/// after the first error.
pub struct Range<'a, K, V, C> {
    range: crate::StoreRange<'a, K, V, C>,
    rt: &'a Rt,
}

impl<K, V, C> std::fmt::Debug for Range<'_, K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.range.fmt(f)
    }
}

impl<K, V, C> Iterator for Range<'_, K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    type Item = Result<Item<K, V>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rt.block_on(self.range.next()).transpose()
    }
}

impl<K, V, C> DoubleEndedIterator for Range<'_, K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        self.rt.block_on(self.range.next_back()).transpose()
    }
}

/// An independent cursor of a blocking [`Store`].
pub struct Cursor<'a, K, V, C> {
    cursor: crate::StoreCursor<'a, K, V, C>,
    rt: &'a Rt,
}

impl<K, V, C> std::fmt::Debug for Cursor<'_, K, V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cursor.fmt(f)
    }
}

impl<K, V, C> Cursor<'_, K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    /// Moves to the first item.
    ///
    /// # Errors
    /// As [`crate::StoreCursor::first`].
    pub fn first(&mut self) -> Result<bool> {
        self.rt.block_on(self.cursor.first())
    }

    /// Moves to the last item.
    ///
    /// # Errors
    /// As [`crate::StoreCursor::first`].
    pub fn last(&mut self) -> Result<bool> {
        self.rt.block_on(self.cursor.last())
    }

    /// Moves to the first item with a key `>=` `key`.
    ///
    /// # Errors
    /// As [`crate::StoreCursor::first`].
    pub fn find(&mut self, key: &K) -> Result<bool> {
        self.rt.block_on(self.cursor.find(key))
    }

    /// Moves to the last item with a key `<=` `key`.
    ///
    /// # Errors
    /// As [`crate::StoreCursor::first`].
    pub fn find_descending(&mut self, key: &K) -> Result<bool> {
        self.rt.block_on(self.cursor.find_descending(key))
    }

    /// Moves to the next item.
    ///
    /// # Errors
    /// As [`crate::StoreCursor::first`].
    #[allow(clippy::should_implement_trait)] // SOP's cursor move: it moves, it yields nothing.
    pub fn next(&mut self) -> Result<bool> {
        self.rt.block_on(self.cursor.next())
    }

    /// Moves to the previous item.
    ///
    /// # Errors
    /// As [`crate::StoreCursor::first`].
    pub fn previous(&mut self) -> Result<bool> {
        self.rt.block_on(self.cursor.previous())
    }

    /// The key it is on.
    #[must_use]
    pub fn key(&self) -> Option<&K> {
        self.cursor.key()
    }

    /// The value it is on.
    ///
    /// # Errors
    /// As [`crate::StoreCursor::first`].
    pub fn value(&mut self) -> Result<Option<V>> {
        self.rt.block_on(self.cursor.value())
    }
}
