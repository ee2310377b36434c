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
    pub fn check_open(&self) -> Result<()> {
        match *self.status.lock() {
            Status::Open | Status::Committing => Ok(()),
            Status::Closed => Err(Error::TransactionState {
                id: self.id,
                reason: "its Database was closed (the engine no longer writes); open the \
                         Database again and begin there"
                    .into(),
            }),
            s => Err(Error::TransactionState {
                id: self.id,
                reason: format!("it has ended ({s:?}); begin a new one"),
            }),
        }
    }

    pub fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.mode == TxMode::ForReading {
            return Err(Error::TransactionState {
                id: self.id,
                reason:
                    "it is read-only (ForReading); begin a ForWriting transaction to change data"
                        .into(),
            });
        }
        Ok(())
    }
}

impl Drop for TxInner {
    /// A transaction dropped without commit rolls back: nothing it did is visible, and what it
    /// wrote ahead (values) is unreachable space that compaction reclaims.
    fn drop(&mut self) {
        let mut status = self.status.lock();
        if matches!(*status, Status::Open | Status::Committing) {
            *status = Status::RolledBack;
        }
        drop(status);
        self.end_read();
    }
}

/// A transaction over any number of B-trees of one database: begun with a mode, ended by
/// [`commit`](Transaction::commit) or [`rollback`](Transaction::rollback). Dropped without
/// either, it rolls back.
///
/// It is a cheap handle (clones share the transaction), so a closure can take one by value.
/// What a transaction reads is only known to be consistent once its commit returns `Ok`.
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
            return Err(Error::TransactionState {
                id: self.inner.id,
                reason: format!("store {name:?} is already open in it; use the handle you have"),
            });
        }
        Ok(())
    }

    /// Creates a store in this transaction (it exists for others once the transaction commits).
    ///
    /// # Errors
    /// [`Error::StoreExists`], invalid options, a read-only transaction.
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
            return Err(Error::StoreExists {
                name: options.name.clone(),
            });
        }
        let mut info = StoreInfo::new(options, now_millis())?;
        info.types = Some(store_types::<K, V, C>(&cmp));
        let shared = self.register(info.clone(), true, cmp.clone());
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
    /// [`Error::StoreNotFound`], storage errors.
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
            .ok_or_else(|| Error::StoreNotFound { name: name.into() })?;
        check_types::<K, V, C>(&info, &cmp)?;
        let shared = self.register(info.clone(), false, cmp.clone());
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
            .map_err(|_| Error::TypeMismatch {
                store: name.into(),
                asked: format!(
                    "{} -> {} ordered by {}",
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>(),
                    std::any::type_name::<C>()
                ),
                holds: "other types (as opened earlier in this transaction)".into(),
            })?;
        let info = {
            let st = shared.state.lock();
            let mut info = st.info.clone();
            info.count = st.count;
            info
        };
        check_types::<K, V, C>(&info, &cmp)?;
        let tree = BTree::open(
            TxRepo {
                shared: shared.clone(),
            },
            info,
            cmp,
        );
        Ok(Some(Store::new(tree, shared)))
    }

    fn register<K: Data, V: Data, C>(
        &self,
        info: StoreInfo,
        created: bool,
        cmp: C,
    ) -> Arc<StoreShared<K, V, C>>
    where
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        let shared = Arc::new(StoreShared {
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
    /// `NoCheck`). On a conflict it returns [`Error::Conflict`] and has rolled back; run the
    /// transaction again (see [`crate::run`]).
    ///
    /// # Errors
    /// [`Error::Conflict`], [`Error::Timeout`], [`Error::LockBusy`], storage errors.
    pub async fn commit(&self) -> Result<()> {
        {
            let mut s = self.inner.status.lock();
            if *s != Status::Open {
                return Err(Error::TransactionState {
                    id: self.inner.id,
                    reason: format!("cannot commit: it has ended ({s:?})"),
                });
            }
            *s = Status::Committing;
        }
        let r = crate::commit::commit(&self.inner).await;
        *self.inner.status.lock() = if r.is_ok() {
            Status::Committed
        } else {
            Status::RolledBack
        };
        self.inner.end_read();
        r
    }

    /// Rolls back: nothing it did becomes visible (what it wrote ahead is unreachable space
    /// that compaction reclaims).
    ///
    /// # Errors
    /// None today; kept fallible for parity with SOP's API.
    pub async fn rollback(&self) -> Result<()> {
        let mut s = self.inner.status.lock();
        if *s == Status::Open {
            *s = Status::RolledBack;
        }
        drop(s);
        self.inner.end_read();
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
