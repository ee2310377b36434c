//! What every transaction of one database shares: storage, coordination and caches.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sop_blobstore_ec::BlobStore;
use sop_coord::{Cache, Locker};
use sop_core::{Result, Uuid, now_millis};
use sop_registry::{Registry, StoreRepository};

use crate::l1::NodeCache;
use crate::txlog::{self, TXLOG_DIR, TxLog};
use crate::{Transaction, TxOptions};

/// How often the idle sweep looks for logs of transactions that died (SOP's cadence).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The parts an [`Engine`] is built from.
pub struct EngineParts {
    /// Handles, and the small files committed with them (store info, transaction logs).
    pub registry: Arc<Registry>,
    /// Store info, over the same folder as the registry.
    pub stores: Arc<StoreRepository>,
    /// Node and value blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// Locks (in-memory in standalone mode).
    pub locker: Arc<dyn Locker>,
    /// The L2 cache (in-memory in standalone mode).
    pub cache: Arc<dyn Cache>,
    /// Bytes of decoded nodes kept in the process-wide L1 cache.
    pub l1_bytes: u64,
}

/// What [`Engine::recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Transactions that died before their commit point: their blobs were removed.
    pub rolled_back: usize,
    /// Transactions that committed but had not cleaned up: their obsolete blobs were removed.
    pub finished: usize,
    /// Logs torn before their first sync: removed.
    pub torn: usize,
}

/// The shared state of one database's transactions.
pub struct Engine {
    pub(crate) registry: Arc<Registry>,
    pub(crate) stores: Arc<StoreRepository>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) locker: Arc<dyn Locker>,
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) l1: NodeCache,
    /// Serialises the commit point (store counts are read and written under it).
    pub(crate) gate: Mutex<()>,
    /// Transactions of this process that are between begin and end.
    live: Mutex<HashSet<Uuid>>,
    last_sweep: Mutex<Instant>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `parts`; first finishes or rolls back every transaction a crash
    /// interrupted (see [`Engine::recover`]).
    ///
    /// # Errors
    /// Storage errors of the recovery.
    pub fn open(parts: EngineParts) -> Result<(Arc<Engine>, RecoveryReport)> {
        let engine = Arc::new(Engine {
            registry: parts.registry,
            stores: parts.stores,
            blobs: parts.blobs,
            locker: parts.locker,
            cache: parts.cache,
            l1: NodeCache::new(parts.l1_bytes),
            gate: Mutex::new(()),
            live: Mutex::new(HashSet::new()),
            last_sweep: Mutex::new(Instant::now()),
        });
        let report = engine.recover(Duration::ZERO)?;
        Ok((engine, report))
    }

    /// Begins a transaction.
    #[must_use]
    pub fn begin(self: &Arc<Self>, options: TxOptions) -> Transaction {
        self.maybe_sweep();
        Transaction::new(Arc::clone(self), options)
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The store repository.
    #[must_use]
    pub fn stores(&self) -> &Arc<StoreRepository> {
        &self.stores
    }

    /// The registry's generation: changes whenever committed handles change.
    pub(crate) fn epoch(&self) -> u64 {
        self.registry.generation()
    }

    pub(crate) fn set_live(&self, tid: Uuid, live: bool) {
        let mut set = self.live.lock();
        if live {
            set.insert(tid);
        } else {
            set.remove(&tid);
        }
    }

    /// Runs [`Engine::recover`] for logs older than an hour when the last sweep is
    /// [`SWEEP_INTERVAL`] old. Errors are logged, not returned: the next sweep tries again.
    fn maybe_sweep(&self) {
        {
            let mut last = self.last_sweep.lock();
            if last.elapsed() < SWEEP_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        if let Err(e) = self.recover(crate::MAX_TIME_CAP) {
            tracing::warn!(error = %e, "idle sweep of transaction logs failed");
        }
    }

    /// Finishes or rolls back the transactions whose logs are older than `min_age` and that are
    /// not live in this process: a `Pending` log's blobs are removed (the commit never
    /// happened), a `Committed` log's obsolete blobs are removed (the commit happened), then the
    /// log. On open `min_age` is zero: no transaction of this database is running anywhere (the
    /// folder lock says so).
    ///
    /// # Errors
    /// Storage errors; what was not done is done by the next sweep.
    pub fn recover(&self, min_age: Duration) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let now = now_millis();
        let min_age_ms = i64::try_from(min_age.as_millis()).unwrap_or(i64::MAX);
        for name in self.registry.list_files(TXLOG_DIR)? {
            let Some(tid) = name
                .strip_suffix(".log")
                .and_then(|s| s.parse::<Uuid>().ok())
            else {
                continue;
            };
            if self.live.lock().contains(&tid) {
                continue;
            }
            let path = txlog::path_of(tid);
            let Some(bytes) = self.registry.read_file(&path)? else {
                continue;
            };
            let records = txlog::decode_all(&bytes, &path);
            if records.is_empty() {
                if min_age.is_zero() {
                    self.registry.remove_file_lazy(&path)?;
                    report.torn += 1;
                }
                continue;
            }
            let committed = records.iter().find_map(|r| match r {
                TxLog::Committed { obsolete, .. } => Some(obsolete.clone()),
                TxLog::Pending { .. } => None,
            });
            if let Some(obsolete) = committed {
                self.remove_blobs(&obsolete)?;
                self.registry.remove_file_lazy(&path)?;
                report.finished += 1;
                continue;
            }
            let started = records
                .iter()
                .filter_map(|r| match r {
                    TxLog::Pending { started_ms, .. } => Some(*started_ms),
                    TxLog::Committed { .. } => None,
                })
                .min()
                .unwrap_or(now);
            if now.saturating_sub(started) < min_age_ms {
                continue;
            }
            let blobs: Vec<(String, Uuid)> = records
                .into_iter()
                .flat_map(|r| match r {
                    TxLog::Pending { blobs, .. } => blobs,
                    TxLog::Committed { .. } => Vec::new(),
                })
                .collect();
            self.remove_blobs(&blobs)?;
            self.registry.remove_file_lazy(&path)?;
            report.rolled_back += 1;
        }
        Ok(report)
    }

    /// Removes a removed store's blob table.
    ///
    /// # Errors
    /// Storage errors.
    pub fn remove_blob_table(&self, table: &str) -> Result<()> {
        self.blobs.remove_table(table)
    }

    pub(crate) fn remove_blobs(&self, blobs: &[(String, Uuid)]) -> Result<()> {
        let mut by_table: std::collections::BTreeMap<&str, Vec<Uuid>> = Default::default();
        for (t, id) in blobs {
            by_table.entry(t.as_str()).or_default().push(*id);
        }
        for (t, ids) in by_table {
            self.blobs.remove(t, &ids)?;
        }
        Ok(())
    }
}
