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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Open,
    Committing,
    Committed,
    RolledBack,
}

pub(crate) struct TxInner {
    pub id: Uuid,
    pub engine: Arc<Engine>,
    pub mode: TxMode,
    pub max_time: Duration,
    pub deadline: Instant,
    pub status: Mutex<Status>,
    pub stores: Mutex<Vec<Arc<dyn StoreTx>>>,
}

impl TxInner {
    pub fn check_open(&self) -> Result<()> {
        match *self.status.lock() {
            Status::Open | Status::Committing => Ok(()),
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

    /// Deletes what the transaction wrote before its commit (actively persisted values). Safe to
    /// call more than once.
    pub fn discard(&self) -> Result<()> {
        let stores = self.stores.lock().clone();
        let mut first_err = None;
        for s in stores {
            if let Err(e) = self.engine.remove_blobs(&s.rollback_blobs()) {
                first_err.get_or_insert(e);
            }
        }
        // With everything it listed gone, the log goes too; otherwise it stays for the sweep.
        // (Only a transaction that wrote ahead or began a commit has a log.)
        let path = crate::txlog::path_of(self.id);
        if first_err.is_none() && matches!(self.engine.registry.read_file(&path), Ok(Some(_))) {
            self.engine.retire_log(path);
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for TxInner {
    fn drop(&mut self) {
        let status = *self.status.lock();
        if matches!(status, Status::Open | Status::Committing) {
            *self.status.lock() = Status::RolledBack;
            if let Err(e) = self.discard() {
                tracing::warn!(tid = %self.id, error = %e, "rollback of a dropped transaction failed; the idle sweep will retry");
            }
        }
        self.engine.set_live(self.id, false);
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
        engine.set_live(id, true);
        Transaction {
            inner: Arc::new(TxInner {
                id,
                engine,
                mode: options.mode,
                max_time,
                deadline,
                status: Mutex::new(Status::Open),
                stores: Mutex::new(Vec::new()),
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
        let info = StoreInfo::new(options, now_millis())?;
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
        self.check_not_open_yet(name)?;
        let info = self
            .inner
            .engine
            .store_info(name)?
            .ok_or_else(|| Error::StoreNotFound { name: name.into() })?;
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
            state: Mutex::new(StoreState::new(info, created, self.inner.engine.epoch())),
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
        let end = match &r {
            Ok(()) => Status::Committed,
            // In doubt: keep everything; the log tells recovery what happened.
            Err(e) if crate::commit::is_in_doubt(e) => Status::RolledBack,
            Err(_) => {
                // Everything the commit wrote it has taken back; what was written before it
                // goes now.
                let _ = self.inner.discard();
                Status::RolledBack
            }
        };
        *self.inner.status.lock() = end;
        r
    }

    /// Rolls back: nothing it did becomes visible, and what it wrote ahead is removed.
    ///
    /// # Errors
    /// Storage errors of the cleanup (the idle sweep finishes it).
    pub async fn rollback(&self) -> Result<()> {
        {
            let mut s = self.inner.status.lock();
            if *s != Status::Open {
                return Ok(());
            }
            *s = Status::RolledBack;
        }
        self.inner.discard()
    }
}
