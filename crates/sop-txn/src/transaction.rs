//! A transaction: the stores it opened, its mode and deadline, and how it ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sop_btree::{BTree, KeyComparator, NaturalOrder};
use sop_core::{Error, Result, StoreInfo, StoreOptions, Uuid, now_millis};

use crate::engine::Engine;
use crate::plan::StoreTx;
use crate::repo::{Data, TxRepo};
use crate::state::{StoreShared, StoreState};
use crate::store::Store;
use crate::{TxMode, TxOptions};

/// What a store of `K` keys and `V` values ordered by `cmp` records as its types.
pub(crate) fn store_types<K, V, C: KeyComparator<K>>(cmp: &C) -> sop_core::StoreTypes {
    sop_core::StoreTypes {
        key: std::any::type_name::<K>().to_string(),
        value: std::any::type_name::<V>().to_string(),
        order: cmp.name().into_owned(),
    }
}

/// Checks that a store may be opened with these types (see [`StoreInfo::check_types`]).
fn check_types<K, V, C: KeyComparator<K>>(info: &StoreInfo, cmp: &C) -> Result<()> {
    info.check_types(
        std::any::type_name::<K>(),
        std::any::type_name::<V>(),
        &cmp.name(),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Open,
    Committing,
    Committed,
    RolledBack,
    /// Begun on an engine whose database was closed: it never opened.
    Closed,
    /// Phase 1 of a two-phase commit done: it waits for `commit` (phase 2) or `rollback`.
    Prepared,
}

/// What runs when a transaction ends (see [`Transaction::on_commit`]).
pub(crate) enum Hook {
    Commit(Box<dyn FnOnce() + Send>),
    Rollback(Box<dyn FnOnce() + Send>),
}

pub(crate) struct TxInner {
    pub id: Uuid,
    pub engine: Arc<Engine>,
    /// The snapshot (LSN) it reads at; registered with the catalog until it drops, so nothing
    /// it can read is reclaimed.
    pub snap: u64,
    pub mode: TxMode,
    pub max_time: Duration,
    pub deadline: Instant,
    pub status: Mutex<Status>,
    pub stores: Mutex<Vec<Arc<dyn StoreTx>>>,
    /// Bytes its commit appended to the log (pieces, values and the record).
    pub bytes_written: Mutex<u64>,
    /// Whether its snapshot is still registered (released when it ends, once).
    pub reading: std::sync::atomic::AtomicBool,
    /// The right to write the folder, held while it is open (see [`crate::Lease`]).
    pub lease: Mutex<Option<Arc<crate::Lease>>>,
    /// Phase 1's result, between `prepare` and `commit`.
    pub prepared: Mutex<Option<crate::commit::Prepared>>,
    /// Commit and rollback hooks, in the order given.
    pub hooks: Mutex<Vec<Hook>>,
}

impl TxInner {
    /// Releases the snapshot: what only it could read may be reclaimed from now on.
    fn end_read(&self) {
        if self
            .reading
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            self.engine.catalog.end_read(self.snap);
            self.engine.reader_ended();
        }
        self.lease.lock().take();
    }
}

impl TxInner {
    /// Runs the hooks of the outcome (`committed` or not), once, outside any lock.
    fn run_hooks(&self, committed: bool) {
        let hooks = std::mem::take(&mut *self.hooks.lock());
        for h in hooks {
            match (h, committed) {
                (Hook::Commit(f), true) | (Hook::Rollback(f), false) => f(),
                _ => {}
            }
        }
    }

    pub fn check_open(&self) -> Result<()> {
        match *self.status.lock() {
            Status::Open | Status::Committing | Status::Prepared => Ok(()),
            Status::Closed => Err(Error::Transaction(
                sop_core::TransactionError::TransactionState {
                    id: self.id,
                    reason: "its Database was closed (the engine no longer writes); open the \
                         Database again and begin there"
                        .into(),
                },
            )),
            s => Err(Error::Transaction(
                sop_core::TransactionError::TransactionState {
                    id: self.id,
                    reason: format!("it has ended ({s:?}); begin a new one"),
                },
            )),
        }
    }

    pub fn check_writable(&self) -> Result<()> {
        // One look at the status (every change asks): an ended one says why through
        // `check_open`.
        let status = *self.status.lock();
        if !matches!(status, Status::Open | Status::Committing | Status::Prepared) {
            return self.check_open();
        }
        if self.engine.read_only {
            return Err(crate::engine::read_only_error());
        }
        if status == Status::Prepared {
            return Err(Error::Transaction(
                sop_core::TransactionError::TransactionState {
                    id: self.id,
                    reason:
                        "it is prepared (phase 1 of its commit is done): commit or roll it back"
                            .into(),
                },
            ));
        }
        if self.mode == TxMode::ForReading {
            return Err(Error::Transaction(sop_core::TransactionError::TransactionState {
                id: self.id,
                reason:
                    "it is read-only (ForReading); begin a ForWriting transaction to change data"
                        .into(),
            }));
        }
        Ok(())
    }
}

impl Drop for TxInner {
    /// A transaction dropped without commit rolls back: nothing it did is visible, and what it
    /// wrote ahead (values) is unreachable space that compaction reclaims.
    fn drop(&mut self) {
        let mut status = self.status.lock();
        let rolled_back = matches!(
            *status,
            Status::Open | Status::Committing | Status::Prepared
        );
        if rolled_back {
            *status = Status::RolledBack;
        }
        drop(status);
        if let Some(p) = self.prepared.lock().take() {
            self.engine.release_gate(self.id);
            // Its node locks: released now when the locker answers at once (in-process);
            // otherwise they expire by themselves (no runtime to wait on from here).
            let keys = crate::commit::prepared_keys(&p);
            let mut unlock = self.engine.locker.unlock(keys, self.id);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if unlock.as_mut().poll(&mut cx).is_pending() {
                tracing::debug!(tx = %self.id, "node locks of a dropped prepared transaction left to expire");
            }
        }
        self.end_read();
        if rolled_back {
            self.run_hooks(false);
        }
    }
}

/// A transaction over any number of B-trees of one database: begun with a mode, ended by
/// [`commit`](Transaction::commit) or [`rollback`](Transaction::rollback). Dropped without
/// either, it rolls back.
///
/// It is a cheap handle (clones share the transaction), so a closure can take one by value.
/// What a transaction reads is only known to be consistent once its commit returns `Ok`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use sop_core::StoreOptions;
/// use sop_txn::{Engine, TxMode, TxOptions};
///
/// let engine = Engine::in_memory()?;
/// // Two stores, one atomic commit.
/// let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
/// let mut orders = tx.new_btree::<u64, String>(&StoreOptions::new("orders"))?;
/// let mut stock = tx.new_btree::<String, i64>(&StoreOptions::new("stock"))?;
/// orders.add(1, "2 apples".into()).await?;
/// stock.add("apple".into(), -2).await?;
/// tx.on_commit(|| println!("order 1 is durable"));
/// tx.commit().await?;
///
/// // Rolled back: nothing of it is ever visible.
/// let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
/// tx.open_btree::<u64, String>("orders")?.add(2, "lost".into()).await?;
/// tx.rollback().await?;
///
/// let tx = engine.begin(TxOptions::new(TxMode::ForReading));
/// let orders = tx.open_btree::<u64, String>("orders")?;
/// assert_eq!(orders.count()?, 1);
/// # Ok::<(), sop_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Transaction {
    pub(crate) inner: Arc<TxInner>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.inner.id)
            .field("mode", &self.inner.mode)
            .field("status", &*self.inner.status.lock())
            .finish()
    }
}

impl Transaction {
    pub(crate) fn new(engine: Arc<Engine>, options: TxOptions) -> Self {
        let id = Uuid::new_v4();
        let max_time = options.effective_max_time();
        let by_max = Instant::now() + max_time;
        let deadline = options.deadline.map_or(by_max, |d| d.min(by_max));
        let snap = engine.catalog.begin_read(&engine.log);
        let lease = engine.lease();
        let status = if lease.is_some() {
            Status::Open
        } else {
            Status::Closed
        };
        Transaction {
            inner: Arc::new(TxInner {
                id,
                engine,
                snap,
                mode: options.mode,
                max_time,
                deadline,
                status: Mutex::new(status),
                stores: Mutex::new(Vec::new()),
                bytes_written: Mutex::new(0),
                reading: std::sync::atomic::AtomicBool::new(true),
                lease: Mutex::new(lease),
                prepared: Mutex::new(None),
                hooks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The transaction's id (also the owner of its locks and the name of its log).
    #[must_use]
    pub fn id(&self) -> Uuid {
        self.inner.id
    }

    /// Its mode.
    #[must_use]
    pub fn mode(&self) -> TxMode {
        self.inner.mode
    }

    /// Whether it is still open.
    #[must_use]
    pub fn is_open(&self) -> bool {
        *self.inner.status.lock() == Status::Open
    }

    fn check_not_open_yet(&self, name: &str) -> Result<()> {
        self.inner.check_open()?;
        if self.inner.stores.lock().iter().any(|s| s.name() == name) {
            return Err(Error::Transaction(
                sop_core::TransactionError::TransactionState {
                    id: self.inner.id,
                    reason: format!(
                        "store {name:?} is already open in it; use the handle you have"
                    ),
                },
            ));
        }
        Ok(())
    }

    /// A store's info as this transaction sees it: the one it created or opened (count as it
    /// stands in the transaction), else the one committed at its snapshot. `None`: no such
    /// store. Layers above read what they recorded with a store (its key order, its types)
    /// before they open it.
    ///
    /// # Errors
    /// Storage errors, an ended transaction.
    pub fn store_info(&self, name: &str) -> Result<Option<StoreInfo>> {
        self.inner.check_open()?;
        let open = self
            .inner
            .stores
            .lock()
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.info());
        if let Some(info) = open {
            return Ok(Some((*info).clone()));
        }
        let info = self
            .inner
            .engine
            .catalog
            .store_info(name, self.inner.snap)?;
        Ok(info.map(|i| (*i).clone()))
    }

    /// The names of the stores this transaction sees (committed at its snapshot, and those it
    /// created), sorted.
    ///
    /// # Errors
    /// Storage errors, an ended transaction.
    pub fn stores(&self) -> Result<Vec<String>> {
        self.inner.check_open()?;
        let mut names = self.inner.engine.catalog.store_names(self.inner.snap)?;
        for s in self.inner.stores.lock().iter() {
            if let Err(at) = names.binary_search_by(|n| n.as_str().cmp(s.name())) {
                names.insert(at, s.name().to_string());
            }
        }
        Ok(names)
    }

    /// Creates a store in this transaction (it exists for others once the transaction commits).
    ///
    /// # Errors
    /// [`UsageError::StoreExists`](sop_core::UsageError::StoreExists), invalid options, a read-only transaction.
    pub fn new_btree<K: Data + Ord, V: Data>(
        &self,
        options: &StoreOptions,
    ) -> Result<Store<K, V, NaturalOrder>> {
        self.new_btree_with(options, NaturalOrder)
    }

    /// As [`Transaction::new_btree`], ordered by `cmp`.
    ///
    /// # Errors
    /// As [`Transaction::new_btree`].
    pub fn new_btree_with<K: Data, V: Data, C>(
        &self,
        options: &StoreOptions,
        cmp: C,
    ) -> Result<Store<K, V, C>>
    where
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        self.inner.check_writable()?;
        self.check_not_open_yet(&options.name)?;
        if self.inner.engine.store_info(&options.name)?.is_some() {
            return Err(Error::Usage(sop_core::UsageError::StoreExists {
                name: options.name.clone(),
            }));
        }
        let mut info = StoreInfo::new(options, now_millis())?;
        info.types = Some(store_types::<K, V, C>(&cmp));
        let info = Arc::new(info);
        let shared = self.register(Arc::clone(&info), true, cmp.clone());
        let tree = BTree::create(
            TxRepo {
                shared: shared.clone(),
            },
            info,
            cmp,
        )?;
        Ok(Store::new(tree, shared))
    }

    /// Opens an existing store.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`](sop_core::UsageError::StoreNotFound), storage errors.
    pub fn open_btree<K: Data + Ord, V: Data>(&self, name: &str) -> Result<Store<K, V>> {
        self.open_btree_with(name, NaturalOrder)
    }

    /// As [`Transaction::open_btree`], ordered by `cmp` (which must be the order the store was
    /// built with).
    ///
    /// # Errors
    /// As [`Transaction::open_btree`].
    pub fn open_btree_with<K: Data, V: Data, C>(&self, name: &str, cmp: C) -> Result<Store<K, V, C>>
    where
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        self.inner.check_open()?;
        if let Some(store) = self.open_again(name, cmp.clone())? {
            return Ok(store);
        }
        let info = self
            .inner
            .engine
            .catalog
            .store_info(name, self.inner.snap)?
            .ok_or_else(|| {
                Error::Usage(sop_core::UsageError::StoreNotFound { name: name.into() })
            })?;
        check_types::<K, V, C>(&info, &cmp)?;
        let shared = self.register(Arc::clone(&info), false, cmp.clone());
        let tree = BTree::open(
            TxRepo {
                shared: shared.clone(),
            },
            info,
            cmp,
        );
        Ok(Store::new(tree, shared))
    }

    /// A second handle on a store this transaction already opened: it shares the first one's
    /// changes, reads and count (SOP allows opening a store twice in one transaction).
    fn open_again<K: Data, V: Data, C>(&self, name: &str, cmp: C) -> Result<Option<Store<K, V, C>>>
    where
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        let existing = self
            .inner
            .stores
            .lock()
            .iter()
            .find(|s| s.name() == name)
            .cloned();
        let Some(existing) = existing else {
            return Ok(None);
        };
        let shared = existing
            .as_any()
            .downcast::<StoreShared<K, V, C>>()
            .map_err(|_| {
                Error::Usage(sop_core::UsageError::TypeMismatch {
                    store: name.into(),
                    asked: format!(
                        "{} -> {} ordered by {}",
                        std::any::type_name::<K>(),
                        std::any::type_name::<V>(),
                        std::any::type_name::<C>()
                    ),
                    holds: "other types (as opened earlier in this transaction)".into(),
                })
            })?;
        let (info, count) = {
            let st = shared.state.lock();
            (Arc::clone(&st.info), st.count)
        };
        check_types::<K, V, C>(&info, &cmp)?;
        let mut tree = BTree::open(
            TxRepo {
                shared: shared.clone(),
            },
            info,
            cmp,
        );
        tree.set_count(count);
        Ok(Some(Store::new(tree, shared)))
    }

    fn register<K: Data, V: Data, C>(
        &self,
        info: Arc<StoreInfo>,
        created: bool,
        cmp: C,
    ) -> Arc<StoreShared<K, V, C>>
    where
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        let writes_ahead = !info.value_in_node && info.value_actively_persisted;
        let shared = Arc::new(StoreShared {
            writes_ahead,
            tx: Arc::downgrade(&self.inner),
            tid: self.inner.id,
            engine: Arc::clone(&self.inner.engine),
            name: info.name.clone(),
            cmp,
            record_reads: self.inner.mode != TxMode::ForReading
                || !self.inner.engine.catalog.versioned(),
            state: Mutex::new(StoreState::new(
                info,
                created,
                self.inner.snap,
                self.inner.engine.epoch(),
            )),
            generation: std::sync::atomic::AtomicU64::new(0),
        });
        self.inner
            .stores
            .lock()
            .push(shared.clone() as Arc<dyn StoreTx>);
        shared
    }

    /// Commits: durable when it returns `Ok`, with every read and write validated (unless
    /// `NoCheck`). On a conflict it returns [`TransactionError::Conflict`](sop_core::TransactionError::Conflict) and has rolled back; run the
    /// transaction again (see [`crate::run`]). After [`Transaction::prepare`] it is phase 2,
    /// which cannot conflict.
    ///
    /// # Errors
    /// [`TransactionError::Conflict`](sop_core::TransactionError::Conflict), [`TransactionError::Timeout`](sop_core::TransactionError::Timeout), [`TransactionError::LockBusy`](sop_core::TransactionError::LockBusy), storage errors.
    pub async fn commit(&self) -> Result<()> {
        let prepared = {
            let mut s = self.inner.status.lock();
            let prepared = match *s {
                Status::Open => None,
                Status::Prepared => self.inner.prepared.lock().take(),
                _ => {
                    return Err(Error::Transaction(
                        sop_core::TransactionError::TransactionState {
                            id: self.inner.id,
                            reason: format!("cannot commit: it has ended ({s:?})"),
                        },
                    ));
                }
            };
            let was_prepared = *s == Status::Prepared;
            *s = Status::Committing;
            (was_prepared, prepared)
        };
        let r = match prepared {
            (_, Some(p)) => crate::commit::commit_prepared(&self.inner, p).await,
            // Prepared with nothing to write: its reads were one snapshot.
            (true, None) => Ok(()),
            (false, None) => crate::commit::commit(&self.inner, false).await.map(|_| ()),
        };
        self.end(r.is_ok());
        r
    }

    /// Marks the end (committed or rolled back), releases the snapshot and the lease, and
    /// runs the hooks of the outcome.
    fn end(&self, committed: bool) {
        *self.inner.status.lock() = if committed {
            Status::Committed
        } else {
            Status::RolledBack
        };
        self.inner.end_read();
        self.inner.run_hooks(committed);
    }

    /// Phase 1 of a two-phase commit, for committing sop-rs together with another resource
    /// (SOP's `TwoPhaseCommitTransaction`): everything that can fail on other transactions is
    /// done (merges, validation at the commit point, node pieces appended). Then prepare the
    /// other resource, and end with [`commit`](Transaction::commit) (phase 2: appends the
    /// commit record and waits for its sync; it cannot conflict) or
    /// [`rollback`](Transaction::rollback). Until then no other commit of the database passes
    /// its commit point (they wait), so keep the time between the phases short: past the
    /// transaction's `max_time`, or [`crate::PREPARED_HOLD`] (60 s) when shorter, the
    /// reservation is dropped and phase 2 fails with [`TransactionError::Timeout`](sop_core::TransactionError::Timeout).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use sop_txn::{Engine, TxMode, TxOptions};
    /// let engine = Engine::in_memory()?;
    /// let tx = engine.begin(TxOptions::new(TxMode::ForWriting));
    /// let mut t = tx.new_btree::<u32, String>(&sop_core::StoreOptions::new("t"))?;
    /// t.add(1, "one".into()).await?;
    /// tx.prepare().await?; // phase 1: sop-rs is ready
    /// // ... prepare the other resource; if that fails: tx.rollback().await?
    /// tx.commit().await?; // phase 2
    /// # Ok::<(), sop_core::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Transaction::commit`] (on an error it has rolled back);
    /// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) in clustered mode, which has no two-phase commit yet (the
    /// transaction stays open).
    pub async fn prepare(&self) -> Result<()> {
        if !self.inner.engine.catalog.versioned() {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "two-phase commit",
                reason: "not available in clustered mode yet; commit in one step".into(),
            }));
        }
        {
            let mut s = self.inner.status.lock();
            if *s != Status::Open {
                return Err(Error::Transaction(
                    sop_core::TransactionError::TransactionState {
                        id: self.inner.id,
                        reason: format!("cannot prepare: it is {s:?}"),
                    },
                ));
            }
            *s = Status::Committing;
        }
        match crate::commit::commit(&self.inner, true).await {
            Ok(p) => {
                // `None`: nothing to write (its reads were one snapshot): phase 2 only ends it.
                *self.inner.prepared.lock() = p;
                *self.inner.status.lock() = Status::Prepared;
                Ok(())
            }
            Err(e) => {
                self.end(false);
                Err(e)
            }
        }
    }

    /// Runs `f` once this transaction has committed (after its commit is durable, before
    /// `commit` returns); never if it rolls back.
    pub fn on_commit(&self, f: impl FnOnce() + Send + 'static) {
        self.inner.hooks.lock().push(Hook::Commit(Box::new(f)));
    }

    /// Runs `f` if this transaction ends without committing (rollback, a failed commit, or
    /// dropped).
    pub fn on_rollback(&self, f: impl FnOnce() + Send + 'static) {
        self.inner.hooks.lock().push(Hook::Rollback(Box::new(f)));
    }

    /// Rolls back: nothing it did becomes visible (what it wrote ahead is unreachable space
    /// that compaction reclaims). A prepared transaction gives its reservation back.
    ///
    /// # Errors
    /// None today; kept fallible for parity with SOP's API.
    pub async fn rollback(&self) -> Result<()> {
        let was = {
            let mut s = self.inner.status.lock();
            let was = *s;
            if matches!(was, Status::Open | Status::Prepared) {
                *s = Status::RolledBack;
            }
            was
        };
        let prepared = self.inner.prepared.lock().take();
        if let Some(p) = prepared {
            crate::commit::abandon_prepared(&self.inner, p).await;
        }
        if matches!(was, Status::Open | Status::Prepared) {
            self.end(false);
        } else {
            self.inner.end_read();
        }
        Ok(())
    }

    /// Bytes its commit appended to the log (node pieces, out-of-node values written at commit
    /// and the commit record); 0 before it commits.
    #[must_use]
    pub fn bytes_written(&self) -> u64 {
        *self.inner.bytes_written.lock()
    }

    /// The snapshot (LSN of the last commit it sees) this transaction reads at.
    #[must_use]
    pub fn snapshot_lsn(&self) -> u64 {
        self.inner.snap
    }
}
