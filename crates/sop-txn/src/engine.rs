//! What every transaction of one database shares: storage, coordination and caches.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sop_blobstore_ec::BlobStore;
use sop_coord::{Cache, Locker};
use sop_core::{Error, Result, Uuid, now_millis};
use sop_registry::{Registry, StoreRepository};

use crate::l1::NodeCache;
use crate::txlog::{self, TXLOG_DIR, TxLog};
use crate::{Transaction, TxOptions};

/// How often the idle sweep looks for logs of transactions that died (SOP's cadence).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How long the cluster-wide commit gate is held at most (a holder that pauses longer loses it).
pub const GATE_TTL: Duration = Duration::from_secs(30);

/// Who may reach the commit point at a time.
#[derive(Clone, Debug)]
pub enum Gate {
    /// One process owns the database (standalone): an in-process mutex.
    Local,
    /// Many processes (clustered): a lock in the shared [`Locker`] under this key, plus the
    /// in-process mutex.
    Cluster {
        /// The lock key, unique to the database.
        key: String,
        /// A `Pending` log whose transaction holds no liveness lock is rolled back by a sweep
        /// once it is this old.
        orphan_age: Duration,
        /// How often a process sweeps.
        sweep_every: Duration,
    },
}

/// The parts an [`Engine`] is built from.
pub struct EngineParts {
    /// Handles, and the small files committed with them (store info, transaction logs).
    pub registry: Arc<Registry>,
    /// Store info, over the same folder as the registry.
    pub stores: Arc<StoreRepository>,
    /// Node and value blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// Locks (in-memory in standalone mode, Redis in clustered mode).
    pub locker: Arc<dyn Locker>,
    /// The L2 cache (in-memory in standalone mode, Redis in clustered mode).
    pub cache: Arc<dyn Cache>,
    /// Bytes of decoded nodes kept in the process-wide L1 cache.
    pub l1_bytes: u64,
    /// The commit gate.
    pub gate: Gate,
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
    gate: Gate,
    /// Serialises the commit point within the process (store counts are read and written
    /// under it).
    local_gate: Mutex<()>,
    /// Transactions of this process that are between begin and end.
    live: Mutex<HashSet<Uuid>>,
    last_sweep: Mutex<Instant>,
    /// Logs of finished transactions whose blobs were deleted but whose deletions may not be
    /// durable yet: each is removed only after a later blob barrier (the next commit's, or
    /// close), so a power loss can never keep the log's removal and lose the deletions (which
    /// would leak the blobs: the power-loss test found it).
    retired: Mutex<Vec<String>>,
    /// Standalone: store infos read, each with the registry generation it was read at. Every
    /// change of a store file comes with a registry batch (or table removal) of this process,
    /// which changes the generation, so an entry of the current generation is current. Saves a
    /// file read per transaction.
    store_cache: Mutex<std::collections::HashMap<String, (u64, Option<sop_core::StoreInfo>)>>,
    /// The lock service's identity when last seen (Redis `run_id`), and when it was checked.
    coordinator: tokio::sync::Mutex<(Option<String>, Option<Instant>)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.registry)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl Drop for Engine {
    /// Retired logs go once a final barrier has made their blob deletions durable; if that
    /// fails they stay, and recovery on the next open finishes them.
    fn drop(&mut self) {
        let _ = self.flush_retired();
    }
}

/// The liveness lock a writing transaction holds (see [`Engine::recover`]).
pub(crate) fn live_key(tid: Uuid) -> String {
    format!("T{tid}")
}

impl Engine {
    fn build(parts: EngineParts) -> Arc<Engine> {
        Arc::new(Engine {
            registry: parts.registry,
            stores: parts.stores,
            blobs: parts.blobs,
            locker: parts.locker,
            cache: parts.cache,
            l1: NodeCache::new(parts.l1_bytes),
            gate: parts.gate,
            local_gate: Mutex::new(()),
            live: Mutex::new(HashSet::new()),
            last_sweep: Mutex::new(Instant::now()),
            retired: Mutex::new(Vec::new()),
            store_cache: Mutex::new(std::collections::HashMap::new()),
            coordinator: tokio::sync::Mutex::new((None, None)),
        })
    }

    /// A standalone engine (`parts.gate` must be [`Gate::Local`]); first finishes or rolls
    /// back every transaction a crash interrupted. No runtime needed.
    ///
    /// # Errors
    /// Storage errors of the recovery; [`Error::InvalidConfig`] for a cluster gate.
    pub fn open_local(parts: EngineParts) -> Result<(Arc<Engine>, RecoveryReport)> {
        if !matches!(parts.gate, Gate::Local) {
            return Err(Error::InvalidConfig {
                what: "engine",
                reason: "a clustered engine opens with Engine::open".into(),
            });
        }
        let engine = Self::build(parts);
        let tids = engine.log_tids()?;
        let report = {
            let _g = engine.local_gate.lock();
            engine.recover_logs(&tids, Duration::ZERO)?
        };
        Ok((engine, report))
    }

    /// An engine over `parts`; first finishes or rolls back every transaction a crash
    /// interrupted (see [`Engine::recover`]).
    ///
    /// # Errors
    /// Storage and coordination errors of the recovery.
    pub async fn open(parts: EngineParts) -> Result<(Arc<Engine>, RecoveryReport)> {
        let engine = Self::build(parts);
        let report = match engine.gate {
            Gate::Local => engine.recover(Duration::ZERO).await?,
            Gate::Cluster { orphan_age, .. } => {
                let tid = Uuid::new_v4();
                let deadline = Instant::now() + GATE_TTL;
                engine
                    .at_gate(tid, deadline, || engine.registry.recover_journal())
                    .await?;
                engine.check_coordinator().await?;
                engine.recover(orphan_age).await?
            }
        };
        Ok((engine, report))
    }

    /// Begins a transaction.
    #[must_use]
    pub fn begin(self: &Arc<Self>, options: TxOptions) -> Transaction {
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

    /// A store's committed info. Store files change in registry batches, so a batch an I/O
    /// error left half applied is finished first (never a count that disagrees with the nodes).
    ///
    /// # Errors
    /// Storage errors; [`Error::Poisoned`] while the registry cannot finish that batch.
    pub fn store_info(&self, name: &str) -> Result<Option<sop_core::StoreInfo>> {
        self.registry.ensure_current()?;
        if self.is_clustered() {
            // Other processes change store files: always read the shared file.
            return self.stores.get(name);
        }
        // Read the generation first: a batch landing between it and the file read is seen at
        // the next call, as the generation will have moved on.
        let generation = self.registry.generation();
        if let Some((g, info)) = self.store_cache.lock().get(name)
            && *g == generation
        {
            return Ok(info.clone());
        }
        let info = self.stores.get(name)?;
        self.store_cache
            .lock()
            .insert(name.to_string(), (generation, info.clone()));
        Ok(info)
    }

    /// The names of all stores, sorted (see [`Engine::store_info`]).
    ///
    /// # Errors
    /// As [`Engine::store_info`].
    pub fn store_names(&self) -> Result<Vec<String>> {
        self.registry.ensure_current()?;
        self.stores.list()
    }

    /// Whether many processes share the database.
    #[must_use]
    pub fn is_clustered(&self) -> bool {
        matches!(self.gate, Gate::Cluster { .. })
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

    /// Runs `f` at the commit gate: alone in the process, and in clustered mode alone in the
    /// cluster (holding the gate lock, waited for until `deadline`).
    pub(crate) async fn at_gate<T>(
        &self,
        owner: Uuid,
        deadline: Instant,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let Gate::Cluster { key, .. } = &self.gate else {
            let _g = self.local_gate.lock();
            return f();
        };
        let keys = [key.clone()];
        let start = Instant::now();
        let mut pause = 1u64;
        while self
            .locker
            .try_lock(&keys, owner, GATE_TTL)
            .await?
            .is_some()
        {
            if Instant::now() >= deadline {
                return Err(Error::LockBusy {
                    key: key.clone(),
                    waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
            tokio::time::sleep(Duration::from_millis(pause)).await;
            pause = (pause * 2).min(20);
        }
        let r = {
            let _g = self.local_gate.lock();
            f()
        };
        if let Err(e) = self.locker.unlock(&keys, owner).await {
            tracing::warn!(error = %e, "could not release the commit gate; it expires by itself");
        }
        r
    }

    /// Clustered mode: when the lock service lost its state (Redis restarted: new `run_id`),
    /// every lock is gone, so run the recovery sweep before going on. Checked at most every
    /// 250 ms.
    pub(crate) async fn check_coordinator(&self) -> Result<()> {
        if !self.is_clustered() {
            return Ok(());
        }
        let restarted = {
            let mut seen = self.coordinator.lock().await;
            if seen
                .1
                .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
            {
                return Ok(());
            }
            let id = self.locker.instance_id().await?;
            let restarted = seen.0.is_some() && seen.0 != id;
            *seen = (id, Some(Instant::now()));
            restarted
        };
        if restarted {
            tracing::warn!("the lock service restarted (new run id): running the recovery sweep");
            self.sweep_now().await?;
        }
        Ok(())
    }

    /// Runs the periodic sweep when it is due.
    pub(crate) async fn maybe_sweep(&self) {
        let every = match &self.gate {
            Gate::Local => SWEEP_INTERVAL,
            Gate::Cluster { sweep_every, .. } => *sweep_every,
        };
        {
            let mut last = self.last_sweep.lock();
            if last.elapsed() < every {
                return;
            }
            *last = Instant::now();
        }
        if let Err(e) = self.sweep_now().await {
            tracing::warn!(error = %e, "idle sweep of transaction logs failed; the next one retries");
        }
    }

    async fn sweep_now(&self) -> Result<RecoveryReport> {
        let min_age = match &self.gate {
            Gate::Local => crate::MAX_TIME_CAP,
            Gate::Cluster { orphan_age, .. } => *orphan_age,
        };
        self.recover(min_age).await
    }

    /// Finishes or rolls back transactions that died: a `Committed` log's obsolete blobs are
    /// removed (the commit happened); a `Pending` log older than `min_age` whose transaction is
    /// not live (not in this process, and in clustered mode holding no liveness lock) has its
    /// blobs removed (the commit never happened); a torn log is removed. Then the log. Runs at
    /// the commit gate, so it never races a commit point. On a standalone open `min_age` is
    /// zero: the folder lock says nothing else runs.
    ///
    /// # Errors
    /// Storage and coordination errors; what was not done is done by the next sweep.
    pub async fn recover(&self, min_age: Duration) -> Result<RecoveryReport> {
        let mut candidates = Vec::new();
        for tid in self.log_tids()? {
            if self.is_clustered()
                && self
                    .locker
                    .is_locked_by_other(&[live_key(tid)], Uuid::NIL)
                    .await?
            {
                continue;
            }
            candidates.push(tid);
        }
        if candidates.is_empty() {
            return Ok(RecoveryReport::default());
        }
        let deadline = Instant::now() + GATE_TTL;
        self.at_gate(Uuid::new_v4(), deadline, || {
            self.recover_logs(&candidates, min_age)
        })
        .await
    }

    /// The transactions with a log that are not live in this process.
    fn log_tids(&self) -> Result<Vec<Uuid>> {
        let live = self.live.lock().clone();
        Ok(self
            .registry
            .list_files(TXLOG_DIR)?
            .iter()
            .filter_map(|n| n.strip_suffix(".log").and_then(|s| s.parse::<Uuid>().ok()))
            .filter(|t| !live.contains(t))
            .collect())
    }

    /// Clustered mode: takes the transaction's liveness lock, so sweeps in other processes
    /// leave its log alone while it runs (until `ttl`).
    pub(crate) async fn mark_live(&self, tid: Uuid, ttl: Duration) -> Result<()> {
        if self.is_clustered() {
            self.locker.try_lock(&[live_key(tid)], tid, ttl).await?;
        }
        Ok(())
    }

    fn recover_logs(&self, tids: &[Uuid], min_age: Duration) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let mut done = Vec::new();
        let now = now_millis();
        let min_age_ms = i64::try_from(min_age.as_millis()).unwrap_or(i64::MAX);
        for &tid in tids {
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
                done.push(path);
                report.finished += 1;
                continue;
            }
            let started = records
                .iter()
                .filter_map(|r| match r {
                    TxLog::Pending { started_ms, .. } => Some(*started_ms),
                    TxLog::Committed { .. } => None,
                })
                .max()
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
            done.push(path);
            report.rolled_back += 1;
        }
        if !done.is_empty() {
            // The deletions are durable before any log that lists them goes.
            self.blobs.barrier()?;
            for path in done {
                self.registry.remove_file_lazy(&path)?;
            }
        }
        Ok(report)
    }

    /// Removes the logs of finished transactions now (they otherwise go at the next commit's
    /// blob barrier, or on close): one blob barrier, then the removals.
    ///
    /// # Errors
    /// The barrier's (the logs then stay, and go later).
    pub fn flush_retired(&self) -> Result<()> {
        if self.retired.lock().is_empty() {
            return Ok(());
        }
        self.blob_barrier()
    }

    /// One blob barrier (every blob written or deleted so far is durable), then the removal of
    /// the logs retired before it.
    ///
    /// # Errors
    /// The barrier's (the logs then stay retired).
    pub(crate) fn blob_barrier(&self) -> Result<()> {
        let retired = std::mem::take(&mut *self.retired.lock());
        if let Err(e) = self.blobs.barrier() {
            self.retired.lock().extend(retired);
            return Err(e);
        }
        for path in retired {
            if let Err(e) = self.registry.remove_file_lazy(&path) {
                tracing::warn!(error = %e, "could not remove a finished transaction log");
            }
        }
        Ok(())
    }

    /// A finished transaction's log, to be removed after the next blob barrier.
    pub(crate) fn retire_log(&self, path: String) {
        self.retired.lock().push(path);
    }

    /// The blob store (nodes and out-of-node values).
    #[must_use]
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
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
