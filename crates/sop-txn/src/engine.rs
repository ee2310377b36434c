//! What every transaction of one database shares: the log, the catalog, coordination, caches.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sop_blobstore_ec::{LogDamage, LogOptions, SegmentLog, blocking};
use sop_coord::{Cache, Locker};
use sop_core::meta::Metadata;
use sop_core::vfs::FileSystem;
use sop_core::{Error, Loc, Result, StoreInfo, Uuid};

use crate::catalog::Catalog;
use crate::l1::NodeCache;
use crate::record::CommitRecord;
use crate::{Transaction, TxOptions};

/// How long the cluster-wide commit gate is held at most (a holder that pauses longer loses it).
pub const GATE_TTL: Duration = Duration::from_secs(30);

/// Stored bytes of leaves a standalone transaction keeps for itself by default: beyond, it
/// keeps their handles only and reads them through L1 again, so a scan holds a bounded number
/// of nodes whatever the tree's size.
const KEEP_LEAF_BYTES: u64 = 4 << 20;

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
    },
}

/// The parts an [`Engine`] is built from.
pub struct EngineParts {
    /// Handles and store infos as of the last checkpoint (standalone) or as committed
    /// (clustered), and the replay point.
    pub meta: Arc<dyn Metadata>,
    /// The file layer of the log.
    pub log_fs: Arc<dyn FileSystem>,
    /// The log's folder.
    pub log_dir: PathBuf,
    /// How the log is laid out.
    pub log_options: LogOptions,
    /// Locks (in-memory in standalone mode, Redis in clustered mode).
    pub locker: Arc<dyn Locker>,
    /// The L2 cache (in-memory in standalone mode, Redis in clustered mode).
    pub cache: Arc<dyn Cache>,
    /// Bytes of decoded nodes kept in the process-wide L1 cache.
    pub l1_bytes: u64,
    /// The commit gate.
    pub gate: Gate,
    /// Standalone: log bytes after which a commit also checkpoints the registry.
    pub checkpoint_bytes: u64,
    /// Checkpoints, compaction and consolidation on a thread of the engine's own (`true`),
    /// or right after the commit that asks, which then waits for them (`false`: the same work
    /// at the same points every run, for crash-point tests).
    pub background_maintenance: bool,
    /// Held until the engine is dropped, after its last checkpoint: the folder lock. Whatever
    /// can still write (a transaction, an engine clone) keeps the folder locked, so the folder
    /// cannot be opened a second time while it does.
    pub hold: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// What opening the engine found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Commit records replayed from the log (commits since the last checkpoint).
    pub replayed: usize,
    /// Damage that stopped the replay early: commits from there on were lost (file, offset
    /// and LSN named). `None` when the whole log was read.
    pub damage: Option<LogDamage>,
}

/// The shared state of one database's transactions.
pub struct Engine {
    pub(crate) catalog: Catalog,
    pub(crate) log: SegmentLog,
    pub(crate) locker: Arc<dyn Locker>,
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) l1: NodeCache,
    gate: Gate,
    /// Serialises the commit point within the process.
    pub(crate) local_gate: Mutex<()>,
    /// A prepared transaction (phase 1 of an application's two-phase commit) and until when:
    /// no other commit passes the gate meanwhile.
    reserved: Mutex<Option<(Uuid, Instant)>>,
    /// One compaction at a time.
    pub(crate) compacting: Mutex<()>,
    /// Segments compaction found dead, with the snapshot it found them at.
    pub(crate) dead: Mutex<std::collections::BTreeMap<u32, u64>>,
    /// What compaction's mark learned of each node version (by location: never stale).
    pub(crate) marks:
        quick_cache::sync::Cache<Loc, Arc<crate::compact::NodeMark>, crate::compact::MarkWeight>,
    pub(crate) maintenance: crate::maint::Maintenance,
    checkpoint_bytes: u64,
    /// Log bytes appended since the last checkpoint.
    since_checkpoint: AtomicU64,
    /// Commits that wrote something, ever: the maintenance thread's sign of activity.
    pub(crate) commits: AtomicU64,
    /// Stored bytes of leaves a standalone transaction keeps for itself (see `TxRepo::read`).
    keep_leaf_bytes: AtomicU64,
    /// Opened read-only (`LogOptions::read_only`): nothing is ever written.
    pub(crate) read_only: bool,
    /// The right to write the folder (see [`Lease`]): owned here until [`Engine::detach_lease`]
    /// hands it to the database, then only reachable while someone holds it.
    lease: Mutex<LeaseSlot>,
}

/// What a change in a read-only database gets.
pub(crate) fn read_only_error() -> Error {
    Error::Usage(sop_core::UsageError::InvalidConfig {
        what: "read-only database",
        reason: "it was opened read-only (Database::open_read_only); open it read-write to \
                 change it"
            .into(),
    })
}

/// The right to write a database's folder: it holds the folder lock ([`EngineParts::hold`]),
/// released when the last holder drops it. The `Database` holds one, and so does every open
/// transaction (until it ends); an engine whose lease is gone never writes again (its
/// transactions begin ended, its maintenance and its last checkpoint are skipped), so a folder
/// reopened after its `Database` is dropped has one writer, whatever old handles live on.
pub struct Lease {
    _hold: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

enum LeaseSlot {
    Owned(Arc<Lease>),
    Detached(std::sync::Weak<Lease>),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("log", &self.log)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl Drop for Engine {
    /// A last checkpoint, so the next open replays nothing; if it fails, the next open replays
    /// the log (nothing is lost either way).
    fn drop(&mut self) {
        self.maintenance.stop();
        if self.read_only {
            return;
        }
        let Some(_lease) = self.lease() else {
            // The folder may belong to another engine by now: leave it alone (the next open
            // replays the log from the last checkpoint; nothing is lost).
            return;
        };
        if self.catalog.versioned() {
            if let Err(e) = self.log.flush() {
                tracing::warn!(error = %e, "final log sync failed; the next open replays what was durable");
                return;
            }
            if let Err(e) = self.catalog.checkpoint(&self.log) {
                tracing::warn!(error = %e, "final checkpoint failed; the next open replays the log");
                return;
            }
            // No reader is left: segments found dead go now, not at the next open's compaction.
            if let Err(e) = self.remove_dead_segments() {
                tracing::warn!(error = %e, "removing dead segments failed; the next compaction retries");
            }
        }
    }
}

impl Engine {
    /// Opens the engine: the log is replayed from the registry's checkpoint (standalone), so
    /// every commit that was durable is there. No runtime needed.
    ///
    /// # Errors
    /// Storage errors; corruption of the checkpoint record or the log's start.
    pub fn open(parts: EngineParts) -> Result<(Arc<Engine>, RecoveryReport)> {
        let versioned = matches!(parts.gate, Gate::Local);
        let read_only = parts.log_options.read_only;
        let (catalog, from, _) = Catalog::open(parts.meta, versioned)?;
        let mut log_options = parts.log_options;
        log_options.shared = !versioned;
        let (log, replay) = SegmentLog::open(parts.log_fs, parts.log_dir, log_options, from)?;
        let mut report = RecoveryReport {
            replayed: 0,
            damage: replay.damage.clone(),
        };
        for (lsn, bytes) in &replay.records {
            let rec = CommitRecord::decode(bytes).map_err(|e| {
                Error::Corruption(sop_core::CorruptionError::Damaged {
                    what: "commit record",
                    location: format!("{} LSN {lsn}", log.dir().display()),
                    detail: e.to_string(),
                })
            })?;
            catalog.publish(*lsn, &rec);
            report.replayed += 1;
        }
        if let Some(d) = &report.damage {
            tracing::error!(file = %d.file.display(), offset = d.offset, lsn = d.lsn, detail = %d.detail, "the log is damaged: commits after the damage were not replayed");
        }
        let engine = Arc::new(Engine {
            catalog,
            log,
            locker: parts.locker,
            cache: parts.cache,
            l1: NodeCache::new(parts.l1_bytes),
            gate: parts.gate,
            local_gate: Mutex::new(()),
            reserved: Mutex::new(None),
            compacting: Mutex::new(()),
            dead: Mutex::new(std::collections::BTreeMap::new()),
            marks: quick_cache::sync::Cache::with_weighter(
                1 << 16,
                crate::compact::MARK_CACHE_IDS,
                crate::compact::MarkWeight,
            ),
            maintenance: crate::maint::Maintenance::default(),
            checkpoint_bytes: parts.checkpoint_bytes.max(1),
            since_checkpoint: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            keep_leaf_bytes: AtomicU64::new(KEEP_LEAF_BYTES),
            read_only,
            lease: Mutex::new(LeaseSlot::Owned(Arc::new(Lease { _hold: parts.hold }))),
        });
        if (report.damage.is_some() || report.replayed > 0) && !read_only {
            // Start clean: what was replayed goes into the registry, and the damaged part of
            // the log is never read again.
            engine.catalog.checkpoint(&engine.log)?;
        }
        if parts.background_maintenance && versioned && !read_only {
            crate::maint::Maintenance::start(&engine)?;
        }
        Ok((engine, report))
    }

    /// An engine in memory: metadata in a map, its log on a simulated file system. Nothing
    /// persists; for tests, examples and scratch work (the same code paths as on disk).
    ///
    /// # Errors
    /// None in practice (kept fallible as [`Engine::open`] is).
    pub fn in_memory() -> Result<Arc<Engine>> {
        let dir = std::path::Path::new("/in-memory");
        let parts = EngineParts {
            meta: Arc::new(sop_core::meta::MemMetadata::new()),
            log_fs: Arc::new(sop_core::vfs::SimFs::new(dir)),
            log_dir: dir.join("log"),
            log_options: sop_blobstore_ec::LogOptions {
                prealloc_bytes: 0,
                ..sop_blobstore_ec::LogOptions::default()
            },
            locker: Arc::new(sop_coord::MemLocker::new()),
            cache: Arc::new(sop_coord::MemCache::new(1 << 20)),
            l1_bytes: 64 << 20,
            gate: Gate::Local,
            checkpoint_bytes: 16 << 20,
            background_maintenance: false,
            hold: Vec::new(),
        };
        Ok(Engine::open(parts)?.0)
    }

    /// The right to write, while anyone holds it (`None`: this engine must not write).
    #[must_use]
    pub fn lease(&self) -> Option<Arc<Lease>> {
        match &*self.lease.lock() {
            LeaseSlot::Owned(l) => Some(Arc::clone(l)),
            LeaseSlot::Detached(w) => w.upgrade(),
        }
    }

    /// The lease, for a call that writes the folder.
    ///
    /// # Errors
    /// [`TransactionError::TransactionState`](sop_core::TransactionError::TransactionState)-like refusal when the engine lost its lease (its database
    /// was closed).
    pub(crate) fn writer(&self) -> Result<Arc<Lease>> {
        if self.read_only {
            return Err(read_only_error());
        }
        self.lease().ok_or_else(|| {
            Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "engine",
                reason:
                    "its Database was closed (and the folder may be open again elsewhere): this \
                     engine no longer writes; open the Database again"
                        .into(),
            })
        })
    }

    /// Hands the lease over to the caller (the `Database`): from now on the folder stays locked
    /// only while the caller or an open transaction holds it.
    pub fn detach_lease(&self) -> Option<Arc<Lease>> {
        let mut slot = self.lease.lock();
        let lease = match &*slot {
            LeaseSlot::Owned(l) => Arc::clone(l),
            LeaseSlot::Detached(w) => w.upgrade()?,
        };
        *slot = LeaseSlot::Detached(Arc::downgrade(&lease));
        Some(lease)
    }

    /// Whether it was opened read-only.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Begins a transaction.
    #[must_use]
    pub fn begin(self: &Arc<Self>, options: TxOptions) -> Transaction {
        Transaction::new(Arc::clone(self), options)
    }

    /// The metadata (handles and store infos as of the last checkpoint in standalone mode).
    #[must_use]
    pub fn meta(&self) -> &Arc<dyn Metadata> {
        &self.catalog.meta
    }

    /// The log.
    #[must_use]
    pub fn log(&self) -> &SegmentLog {
        &self.log
    }

    /// A store's newest committed info.
    ///
    /// # Errors
    /// Storage errors.
    pub fn store_info(&self, name: &str) -> Result<Option<StoreInfo>> {
        Ok(self.catalog.latest_store_info(name)?.map(|i| (*i).clone()))
    }

    /// The names of all stores, sorted.
    ///
    /// # Errors
    /// Storage errors.
    pub fn store_names(&self) -> Result<Vec<String>> {
        self.catalog.store_names(u64::MAX)
    }

    /// The newest committed handle of a node.
    ///
    /// # Errors
    /// Storage errors.
    pub fn handle(&self, table: &str, lid: Uuid) -> Result<Option<sop_core::Handle>> {
        self.catalog.handle(table, lid, u64::MAX)
    }

    /// Whether many processes share the database.
    #[must_use]
    pub fn is_clustered(&self) -> bool {
        matches!(self.gate, Gate::Cluster { .. })
    }

    /// The registry's generation (clustered mode: changes whenever committed handles change).
    pub(crate) fn epoch(&self) -> u64 {
        if self.catalog.versioned() {
            return self.catalog.meta.generation();
        }
        // Clustered: may wait for another process's batch (see `blocking`).
        blocking(|| self.catalog.meta.generation())
    }

    /// Runs `f` at the commit gate: alone in the process, and in clustered mode alone in the
    /// cluster (holding the gate lock, waited for until `deadline`).
    pub(crate) async fn at_gate<T>(
        &self,
        owner: Uuid,
        deadline: Instant,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let Gate::Cluster { key } = &self.gate else {
            // Standalone: alone in the process, and not while another transaction is prepared
            // (waited for asynchronously, so its phase 2 can run on this very thread).
            let mut f = Some(f);
            let start = Instant::now();
            loop {
                {
                    let _g = self.local_gate.lock();
                    if !self.reserved_by_other(owner)
                        && let Some(f) = f.take()
                    {
                        return f();
                    }
                }
                if Instant::now() >= deadline {
                    return Err(Error::Transaction(sop_core::TransactionError::LockBusy {
                        key: "the commit gate, reserved by a prepared transaction".into(),
                        waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                    }));
                }
                sop_blobstore_ec::pause(Duration::from_millis(1)).await;
            }
        };
        // Clustered: no cluster-wide lock. The registry batch locks exactly the blocks and
        // store files it touches (see sop-registry's `shared`), so commits over different
        // nodes run at once, in any processes. The batch syncs and may wait for its locks.
        let _ = key;
        blocking(f)
    }

    /// Whether a transaction other than `owner` holds the gate reserved (prepared, within its
    /// time); an expired reservation is dropped here. Called under the gate.
    pub(crate) fn reserved_by_other(&self, owner: Uuid) -> bool {
        let mut r = self.reserved.lock();
        match *r {
            Some((o, until)) if o != owner => {
                if Instant::now() < until {
                    return true;
                }
                tracing::warn!(tx = %o, "a prepared transaction outlived its time; its reservation of the commit gate is dropped and its commit will fail");
                *r = None;
                false
            }
            _ => false,
        }
    }

    /// Reserves the gate for `owner` until `until` (called under the gate).
    pub(crate) fn reserve_gate(&self, owner: Uuid, until: Instant) {
        *self.reserved.lock() = Some((owner, until));
    }

    /// Whether `owner` still holds the gate reserved, within its time.
    pub(crate) fn holds_gate(&self, owner: Uuid) -> bool {
        matches!(*self.reserved.lock(), Some((o, until)) if o == owner && Instant::now() < until)
    }

    /// Drops `owner`'s reservation, if it has one.
    pub(crate) fn release_gate(&self, owner: Uuid) {
        let mut r = self.reserved.lock();
        if matches!(*r, Some((o, _)) if o == owner) {
            *r = None;
        }
    }

    /// Counts log bytes toward the next checkpoint; whether one is due.
    /// Whether anything was appended since the last checkpoint.
    pub(crate) fn appended_since_checkpoint(&self) -> bool {
        self.since_checkpoint.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn note_appended(&self, bytes: u64) -> bool {
        self.catalog.versioned()
            && self.since_checkpoint.fetch_add(bytes, Ordering::Relaxed) + bytes
                >= self.checkpoint_bytes
    }

    /// Writes the registry up to the last durable commit (standalone); the log before it is no
    /// longer replayed.
    ///
    /// # Errors
    /// Storage errors (nothing is lost: the next checkpoint or open does it).
    pub fn checkpoint(&self) -> Result<()> {
        let _lease = self.writer()?;
        self.since_checkpoint.store(0, Ordering::Relaxed);
        self.catalog.checkpoint(&self.log)
    }

    /// A piece's bytes (a node version, delta or value).
    /// Stored bytes of leaves a standalone transaction keeps for itself.
    pub(crate) fn keep_leaf_bytes(&self) -> u64 {
        self.keep_leaf_bytes.load(Ordering::Relaxed)
    }

    /// Sets how many bytes of leaves a standalone transaction keeps for itself (default
    /// 4 MiB); beyond, it keeps their handles only. For tests: 0 makes every leaf read go
    /// through the handle path.
    #[doc(hidden)]
    pub fn set_keep_leaf_bytes(&self, bytes: u64) {
        self.keep_leaf_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn read_piece(&self, loc: Loc) -> Result<Vec<u8>> {
        self.log.read(loc)
    }

    /// Removes a store: its handles and info (outside any transaction; in clustered mode no
    /// other process may be using it). Standalone, the log is checkpointed first at the gate,
    /// so no later commit record mentions the store; the metadata makes an interrupted removal
    /// recognisable ([`Metadata::remove_store`]).
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`](sop_core::UsageError::StoreNotFound), storage errors.
    pub fn remove_store(&self, name: &str) -> Result<()> {
        let _lease = self.writer()?;
        let _g = self.local_gate.lock();
        if self.reserved_by_other(Uuid::NIL) {
            return Err(Error::Transaction(sop_core::TransactionError::LockBusy {
                key: "the commit gate, reserved by a prepared transaction".into(),
                waited_ms: 0,
            }));
        }
        if self.catalog.latest_store_info(name)?.is_none() {
            return Err(Error::Usage(sop_core::UsageError::StoreNotFound {
                name: name.into(),
            }));
        }
        if self.catalog.versioned() {
            self.log.flush()?;
            self.catalog.checkpoint(&self.log)?;
        }
        let r = self.catalog.meta.remove_store(name);
        // Forgotten whatever the outcome: what the metadata holds now is read afresh.
        self.catalog.forget_store(name);
        r
    }

    /// Clustered mode: finishes a registry batch that a process which died left synced in the
    /// journal but not applied, at the cluster gate.
    ///
    /// # Errors
    /// Storage and coordination errors.
    pub async fn recover_shared(&self) -> Result<()> {
        if !self.is_clustered() {
            return Ok(());
        }
        self.at_gate(Uuid::new_v4(), Instant::now() + GATE_TTL, || {
            self.catalog.meta.recover()
        })
        .await
    }

    /// The pieces of the node version stored at `loc`, head first, down to its full image.
    ///
    /// # Errors
    /// Corruption naming the segment and offset of a piece that is missing or damaged, or a
    /// chain that does not end.
    pub fn node_chain(&self, loc: Loc) -> Result<Vec<(Loc, Vec<u8>)>> {
        let mut chain = Vec::new();
        let mut at = loc;
        loop {
            let bytes = self.log.read(at)?;
            let kind = sop_btree::PieceKind::of(&bytes)?;
            chain.push((at, bytes));
            match kind {
                sop_btree::PieceKind::Full => return Ok(chain),
                sop_btree::PieceKind::Delta { base, .. } => {
                    if chain.len() > usize::from(crate::maint::HARD_CHAIN) + 1 {
                        return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                            what: "node delta",
                            location: loc.to_string(),
                            detail: "the delta chain does not end".into(),
                        }));
                    }
                    at = Loc::parse(base, "node delta base")?;
                }
            }
        }
    }

    /// The type-free shape of the node version at `loc`, and the locations of its pieces.
    ///
    /// # Errors
    /// As [`Engine::node_chain`]; corruption for a malformed piece.
    pub fn node_shape(&self, loc: Loc) -> Result<(sop_btree::NodeShape, Vec<Loc>)> {
        let chain = self.node_chain(loc)?;
        let (raw, locs) = resolve(&chain)?;
        Ok((raw.shape(), locs))
    }

    /// The node version at `loc` as one full piece (its delta chain consolidated, no types
    /// needed).
    ///
    /// # Errors
    /// As [`Engine::node_shape`].
    pub fn consolidated(&self, loc: Loc) -> Result<Vec<u8>> {
        let chain = self.node_chain(loc)?;
        Ok(resolve(&chain)?.0.encode())
    }

    /// How many handle versions the in-memory overlay holds (commits not yet checkpointed, and
    /// versions open snapshots still read).
    #[must_use]
    pub fn overlay_versions(&self) -> usize {
        self.catalog.overlay_len()
    }

    /// The LSN up to which the registry holds every commit.
    #[must_use]
    pub fn checkpointed_lsn(&self) -> u64 {
        self.catalog.checkpointed()
    }
}

/// Applies a chain (head first) from its full image up.
fn resolve(chain: &[(Loc, Vec<u8>)]) -> Result<(sop_btree::RawNode<'_>, Vec<Loc>)> {
    let Some((_, full)) = chain.last() else {
        return Err(Error::Corruption(sop_core::CorruptionError::Invariant {
            store: String::new(),
            detail: "an empty piece chain".into(),
        }));
    };
    let mut raw = sop_btree::RawNode::parse(full)?;
    for (_, delta) in chain.iter().rev().skip(1) {
        raw = raw.apply(delta)?;
    }
    Ok((raw, chain.iter().map(|(l, _)| *l).collect()))
}
