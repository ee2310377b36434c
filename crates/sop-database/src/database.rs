//! Opening a database and managing its stores.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sop_blobstore_ec::{EcFs, ErasureConfig, LogOptions};
use sop_btree::KeyComparator;
use sop_coord::{Cache, FolderLock, Locker, MemCache, MemLocker, Redis, RedisConfig};
use sop_core::vfs::{FileSystem, StdFs};
use sop_core::{Error, Result, StoreInfo, StoreOptions};
use sop_registry::{
    Registry, RegistryMetadata, RegistryOptions, ReplicatedFs, ReplicationStatus, StoreRepository,
};
use sop_txn::{
    Data, Engine, EngineParts, Gate, RecoveryReport, Store, Transaction, TxMode, TxOptions,
};

/// How to open a database. `Default` is what [`Database::standalone`] uses.
#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    /// Registry blocks per segment file, fixed when the database is created (`250..=750_000`;
    /// `None`: 250 for a new database, the stored value for an existing one).
    pub registry_hash_mod: Option<u32>,
    /// Bytes of decoded nodes kept in the process-wide L1 cache (default 256 MiB).
    pub l1_cache_bytes: u64,
    /// Bytes of the in-process L2 cache (values cached "globally"; default 64 MiB).
    pub l2_cache_bytes: usize,
    /// Standalone: log bytes after which a commit also checkpoints the registry (writes the
    /// handles and store infos of every commit since the last checkpoint into the registry, so
    /// the log before it is no longer replayed). Default 16 MiB: an open replays at most about
    /// that much. Each commit syncs only the log. Clustered mode writes the registry at every
    /// commit.
    pub registry_checkpoint_bytes: u64,
    /// Size of the log's segment files (default 16 MiB): the unit of space reclamation.
    pub segment_bytes: u64,
    /// Erasure coding of the log across drives, instead of plain segments under `<db>/log`.
    pub erasure: Option<ErasureConfig>,
    /// Replicate the registry, store files and log to these two folders (active, passive)
    /// instead of `<db>/meta` and `<db>/log`; a drive failure on the active one fails over to
    /// the other.
    pub replication: Option<[PathBuf; 2]>,
    /// The file layer (default: the real file system). Tests inject faults here.
    pub fs: Option<Arc<dyn FileSystem>>,
    /// Checkpoints, compaction and the consolidation of long delta chains run on a thread of
    /// the database's own (default `true`). `false`: each runs right after the commit that
    /// asks for it, and that commit's call waits: the same file-system calls at the same
    /// points every run (the crash-point tests use it).
    pub background_maintenance: bool,
    /// Open to read only ([`Database::open_read_only`]): nothing is written, not even the
    /// lock file, so it works on a read-only mount; writes are refused with a typed error.
    pub read_only: bool,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            registry_hash_mod: None,
            l1_cache_bytes: 256 << 20,
            l2_cache_bytes: 64 << 20,
            registry_checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
            segment_bytes: 16 << 20,
            erasure: None,
            replication: None,
            fs: None,
            background_maintenance: true,
            read_only: false,
        }
    }
}

/// Log bytes between two registry checkpoints by default (`DatabaseOptions::registry_checkpoint_bytes`).
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 16 << 20;

/// How to open a database in clustered mode.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Where Redis is.
    pub redis: RedisConfig,
    /// The rest, as for standalone (`fs` must be the real file system: the folder is shared).
    pub database: DatabaseOptions,
}

impl ClusterOptions {
    /// Defaults with Redis at `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        ClusterOptions {
            redis: RedisConfig::new(url),
            database: DatabaseOptions::default(),
        }
    }
}

/// A store's numbers, for `sop stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreStats {
    /// The store's info.
    pub info: StoreInfo,
}

/// A database: a folder of B-trees, opened by one process (standalone).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use sop_database::{Database, TxMode};
/// use sop_core::StoreOptions;
///
/// let dir = tempfile::tempdir()?;
/// let db = Database::standalone(dir.path())?;
/// let tx = db.begin(TxMode::ForWriting);
/// let mut people = db.new_btree::<u32, String>(&tx, &StoreOptions::new("people"))?;
/// people.add(1, "Ada".into()).await?;
/// tx.commit().await?;
///
/// let tx = db.begin(TxMode::ForReading);
/// let mut people = db.open_btree::<u32, String>(&tx, "people")?;
/// assert_eq!(people.get(&1).await?.as_deref(), Some("Ada"));
/// tx.commit().await?;
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub struct Database {
    engine: Arc<Engine>,
    /// The engine's metadata is this registry (verification reads its files).
    pub(crate) registry: Arc<Registry>,
    path: PathBuf,
    recovery: RecoveryReport,
    replicated: Option<Arc<ReplicatedFs>>,
    erasure: Option<Arc<EcFs>>,
    redis: Option<Arc<Redis>>,
    /// The right to write the folder (holding its lock). Declared last: the engine's last
    /// checkpoint (when this holds the last engine reference) runs while it is still held.
    /// Open transactions hold it too, so the folder stays locked until they end; engine
    /// clones alone do not, and stop writing once it is gone.
    _lease: Option<Arc<sop_txn::Lease>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (or creates) a standalone database in `path` with the default options.
    ///
    /// # Errors
    /// [`UsageError::InUse`](sop_core::UsageError::InUse) when another process (or `Database`) has the folder open; storage
    /// errors; corruption.
    pub fn standalone(path: impl AsRef<Path>) -> Result<Self> {
        Self::open(path, DatabaseOptions::default())
    }

    /// Opens (or creates) a standalone database in `path`.
    ///
    /// # Errors
    /// As [`Database::standalone`]; [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) for options that cannot work or
    /// differ from the ones the database was created with.
    pub fn open(path: impl AsRef<Path>, options: DatabaseOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if options.read_only {
            return Self::open_read_only_with(path, options);
        }
        let lock = FolderLock::acquire(&path)?;
        Self::open_standalone(path, &options, Some(lock))
    }

    /// The standalone engine over `path`, holding `lock` in its lease (it outlives this
    /// `Database` while a transaction is open, and nothing else writes without it).
    fn open_standalone(
        path: PathBuf,
        options: &DatabaseOptions,
        lock: Option<FolderLock>,
    ) -> Result<Self> {
        let (mut parts, registry, replicated, erasure) = Self::parts(
            &path,
            options,
            false,
            Arc::new(MemLocker::new()),
            Arc::new(MemCache::new(options.l2_cache_bytes)),
            Gate::Local,
        )?;
        parts.log_options.read_only = options.read_only;
        let fs: Arc<dyn FileSystem> = options.fs.clone().unwrap_or_else(|| Arc::new(StdFs::new()));
        let meta_dir = path.join("meta");
        if options.replication.is_none() && crate::handover::is_clustered(fs.as_ref(), &meta_dir)? {
            if options.read_only {
                return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                    what: "read-only open",
                    reason: "the folder was last used in clustered mode: open it read-write \
                             (standalone) once so that it becomes standalone"
                        .into(),
                }));
            }
            crate::handover::adopt(fs.as_ref(), Arc::clone(&fs), &meta_dir, &parts)?;
        }
        if let Some(lock) = lock {
            parts.hold.push(Box::new(lock));
        }
        let (engine, recovery) = Engine::open(parts)?;
        let lease = engine.detach_lease();
        Ok(Database {
            engine,
            registry,
            path,
            recovery,
            replicated,
            erasure,
            redis: None,
            _lease: lease,
        })
    }

    /// Opens an existing standalone database to read only: nothing is written (not the lock
    /// file, the log, the registry or a checkpoint), so it works on a read-only mount or a
    /// snapshot of the folder; reads see every commit that was durable; every change is
    /// refused with [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig). A process writing the folder excludes it
    /// ([`UsageError::InUse`](sop_core::UsageError::InUse)), as it excludes a second writer.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use sop_database::{Database, TxMode};
    /// let dir = tempfile::tempdir()?;
    /// {
    ///     let db = Database::standalone(dir.path())?;
    ///     let tx = db.begin(TxMode::ForWriting);
    ///     let mut t = db.new_btree::<u32, String>(&tx, &sop_core::StoreOptions::new("t"))?;
    ///     t.add(1, "one".into()).await?;
    ///     tx.commit().await?;
    /// }
    /// let db = Database::open_read_only(dir.path())?;
    /// let tx = db.begin(TxMode::ForReading);
    /// let t = db.open_btree::<u32, String>(&tx, "t")?;
    /// assert_eq!(t.get(&1).await?.as_deref(), Some("one"));
    /// # Ok::<(), anyhow::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`UsageError::InUse`](sop_core::UsageError::InUse) while a process writes the folder; [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) when the
    /// folder is not a database or needs a recovery that writes (open it read-write once);
    /// storage errors; corruption.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let options = DatabaseOptions {
            read_only: true,
            ..DatabaseOptions::default()
        };
        Self::open_read_only_with(path.as_ref().to_path_buf(), options)
    }

    fn open_read_only_with(path: PathBuf, mut options: DatabaseOptions) -> Result<Self> {
        if options.replication.is_some() || options.erasure.is_some() {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "read-only open",
                reason: "not available yet with replication or erasure coding".into(),
            }));
        }
        if !path.join("meta").exists() {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "read-only open",
                reason: format!("{} is not a database folder (no meta/)", path.display()),
            }));
        }
        let lock = FolderLock::acquire_read_only(&path)?;
        let fs: Arc<dyn FileSystem> = match options.fs.take() {
            Some(inner) => Arc::new(sop_core::vfs::ReadOnlyFs::over(inner)),
            None => Arc::new(sop_core::vfs::ReadOnlyFs::new()),
        };
        options.fs = Some(fs);
        options.background_maintenance = false;
        options.read_only = true;
        Self::open_standalone(path, &options, lock)
    }

    /// Opens (or creates) a database in `path` shared by many processes through Redis at
    /// `redis_url` (clustered mode): the same B-tree and transaction API as standalone.
    ///
    /// # Errors
    /// [`CoordinationError::Redis`](sop_core::CoordinationError::Redis) when Redis cannot be reached; [`UsageError::InUse`](sop_core::UsageError::InUse) when a
    /// standalone process has the folder; storage errors.
    pub async fn clustered(path: impl AsRef<Path>, redis_url: &str) -> Result<Self> {
        Self::open_clustered(path, ClusterOptions::new(redis_url)).await
    }

    /// As [`Database::clustered`], with options.
    ///
    /// # Errors
    /// As [`Database::clustered`].
    pub async fn open_clustered(path: impl AsRef<Path>, options: ClusterOptions) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            // Its Redis client runs on tokio: without a runtime it could only panic later.
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "clustered mode",
                reason: "it needs a tokio runtime (with I/O and timers enabled): open it from \
                         async code running on tokio, or use sop::blocking::Database"
                    .into(),
            }));
        }
        if options.database.replication.is_some() {
            // Processes lock registry blocks through the OS; a replicated registry is a
            // layered file system they could not lock together.
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "clustered mode",
                reason: "not available with replication yet: use erasure coding for the log, \
                         or replicate the folder below sop-rs"
                    .into(),
            }));
        }
        let path = path.as_ref().to_path_buf();
        let lock = Self::take_over(&path, &options.database)?;
        let redis = Arc::new(Redis::connect(&options.redis).await?);
        let id = database_id(&path).await?;
        let (mut parts, registry, replicated, erasure) = Self::parts(
            &path,
            &options.database,
            true,
            redis.clone() as Arc<dyn Locker>,
            redis.clone() as Arc<dyn Cache>,
            Gate::Cluster {
                key: format!("G{id}"),
            },
        )?;
        // The lease holds the folder lock: it outlives this `Database` while a transaction is
        // open, and nothing else writes without it.
        parts.hold.push(Box::new(lock));
        let (engine, recovery) = Engine::open(parts)?;
        let lease = engine.detach_lease();
        // A registry batch a dead process synced but did not apply is finished first.
        engine.recover_shared().await?;
        Ok(Database {
            engine,
            registry,
            path,
            recovery,
            replicated,
            erasure,
            redis: Some(redis),
            _lease: lease,
        })
    }

    /// The folder's shared lock, once the folder is in clustered use: a folder last used
    /// standalone is opened standalone and closed first (its log replayed into the registry,
    /// which clustered processes read directly), then marked clustered, all under the exclusive
    /// lock (see `handover`).
    fn take_over(path: &Path, options: &DatabaseOptions) -> Result<FolderLock> {
        let fs: Arc<dyn FileSystem> = options.fs.clone().unwrap_or_else(|| Arc::new(StdFs::new()));
        let meta = path.join("meta");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let shared = FolderLock::acquire_shared(path)?;
            if crate::handover::is_clustered(fs.as_ref(), &meta)? {
                return Ok(shared);
            }
            drop(shared);
            let alone = match FolderLock::acquire(path) {
                Ok(l) => l,
                // Another process is taking it over (or has it open): wait for it.
                Err(Error::Usage(sop_core::UsageError::InUse { .. }))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if crate::handover::has_replay_point(fs.as_ref(), &meta)? {
                let mut standalone = options.clone();
                standalone.background_maintenance = false;
                drop(Self::open_standalone(
                    path.to_path_buf(),
                    &standalone,
                    None,
                )?);
            }
            crate::handover::mark_clustered(fs.as_ref(), &meta)?;
            drop(alone);
        }
    }

    #[allow(clippy::type_complexity)]
    fn parts(
        path: &Path,
        options: &DatabaseOptions,
        shared: bool,
        locker: Arc<dyn Locker>,
        cache: Arc<dyn Cache>,
        gate: Gate,
    ) -> Result<(
        EngineParts,
        Arc<Registry>,
        Option<Arc<ReplicatedFs>>,
        Option<Arc<EcFs>>,
    )> {
        let fs: Arc<dyn FileSystem> = options.fs.clone().unwrap_or_else(|| Arc::new(StdFs::new()));
        let (meta_fs, meta_base, replicated): (Arc<dyn FileSystem>, PathBuf, _) =
            match &options.replication {
                Some(roots) => {
                    let r = Arc::new(ReplicatedFs::open(Arc::clone(&fs), roots.clone())?);
                    (
                        r.clone() as Arc<dyn FileSystem>,
                        PathBuf::from("meta"),
                        Some(r),
                    )
                }
                None => (Arc::clone(&fs), path.join("meta"), None),
            };
        let registry = Arc::new(Registry::open(
            Arc::clone(&meta_fs),
            &meta_base,
            RegistryOptions {
                hash_mod: options.registry_hash_mod,
                shared,
                // Every batch is a checkpoint (standalone) or a commit (clustered): synced.
                checkpoint_bytes: 0,
            },
        )?);
        let stores = Arc::new(StoreRepository::open(Arc::clone(&meta_fs), &meta_base)?);
        let mut log_options = LogOptions {
            segment_bytes: options.segment_bytes,
            ..LogOptions::default()
        };
        let erasure = match &options.erasure {
            Some(cfg) => {
                let ec = Arc::new(EcFs::new(Arc::clone(&fs), cfg)?);
                // Frames fill whole stripes, so no stripe holding a commit is written twice;
                // nothing is written ahead (zeros would cost parity).
                log_options.align = ec.stripe();
                log_options.prealloc_bytes = 0;
                Some(ec)
            }
            None => None,
        };
        let (log_fs, log_dir): (Arc<dyn FileSystem>, PathBuf) = match (&erasure, &replicated) {
            (Some(ec), _) => (ec.clone() as Arc<dyn FileSystem>, PathBuf::from("log")),
            (None, Some(r)) => (r.clone() as Arc<dyn FileSystem>, PathBuf::from("log")),
            (None, None) => (Arc::clone(&fs), path.join("log")),
        };
        let parts = EngineParts {
            meta: Arc::new(RegistryMetadata::new(Arc::clone(&registry), stores)),
            log_fs,
            log_dir,
            log_options,
            locker,
            cache,
            l1_bytes: options.l1_cache_bytes,
            gate,
            checkpoint_bytes: options.registry_checkpoint_bytes,
            background_maintenance: options.background_maintenance,
            hold: Vec::new(),
        };
        Ok((parts, registry, replicated, erasure))
    }

    /// Whether the database is open in clustered mode.
    #[must_use]
    pub fn is_clustered(&self) -> bool {
        self.redis.is_some()
    }

    /// The Redis endpoint in clustered mode (without a password).
    #[must_use]
    pub fn redis_endpoint(&self) -> Option<&str> {
        self.redis.as_deref().map(Redis::endpoint)
    }

    /// The folder.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening the database recovered from its last run.
    #[must_use]
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The transaction engine (for [`sop_txn::run`] and lower-level use).
    #[must_use]
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Begins a transaction in `mode` with the default `max_time` (15 minutes).
    #[must_use]
    pub fn begin(&self, mode: TxMode) -> Transaction {
        self.engine.begin(TxOptions::new(mode))
    }

    /// Begins a transaction with full options.
    #[must_use]
    pub fn begin_with(&self, options: TxOptions) -> Transaction {
        self.engine.begin(options)
    }

    /// Runs `work` in a transaction and commits, again on conflicts (up to `attempts` times),
    /// with jittered backoff. See [`sop_txn::run`]. `work` gets the transaction by value (a
    /// cheap handle) and may run more than once: keep its side effects in the transaction,
    /// or in an [`on_commit`](Transaction::on_commit) hook.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use sop_database::{Database, TxMode};
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::standalone(dir.path())?;
    /// let tx = db.begin(TxMode::ForWriting);
    /// db.new_btree::<String, u64>(&tx, &sop_core::StoreOptions::new("hits"))?;
    /// tx.commit().await?;
    /// let n = db
    ///     .run(TxMode::ForWriting, 10, |tx| {
    ///         let db = &db;
    ///         async move {
    ///             let mut hits = db.open_btree::<String, u64>(&tx, "hits")?;
    ///             let n = hits.get(&"home".to_string()).await?.unwrap_or(0) + 1;
    ///             hits.upsert("home".to_string(), n).await?;
    ///             Ok(n)
    ///         }
    ///     })
    ///     .await?;
    /// assert_eq!(n, 1);
    /// # Ok::<(), anyhow::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The last conflict, or the first other error.
    pub async fn run<T, F, Fut>(&self, mode: TxMode, attempts: usize, work: F) -> Result<T>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        sop_txn::run(&self.engine, TxOptions::new(mode), attempts, work).await
    }

    /// Creates a B-tree in `tx` (visible to others when `tx` commits).
    ///
    /// # Errors
    /// [`UsageError::StoreExists`](sop_core::UsageError::StoreExists), invalid options, a read-only transaction.
    pub fn new_btree<K: Data + Ord, V: Data>(
        &self,
        tx: &Transaction,
        options: &StoreOptions,
    ) -> Result<Store<K, V>> {
        self.check_tx(tx)?;
        tx.new_btree(options)
    }

    /// As [`Database::new_btree`], ordered by `cmp`.
    ///
    /// # Errors
    /// As [`Database::new_btree`].
    pub fn new_btree_with<K: Data, V: Data, C>(
        &self,
        tx: &Transaction,
        options: &StoreOptions,
        cmp: C,
    ) -> Result<Store<K, V, C>>
    where
        C: KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        self.check_tx(tx)?;
        tx.new_btree_with(options, cmp)
    }

    /// Opens a B-tree in `tx`.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`](sop_core::UsageError::StoreNotFound), storage errors.
    pub fn open_btree<K: Data + Ord, V: Data>(
        &self,
        tx: &Transaction,
        name: &str,
    ) -> Result<Store<K, V>> {
        self.check_tx(tx)?;
        tx.open_btree(name)
    }

    /// Opens a B-tree in `tx`, checking that `options` match the stored ones (an incompatible
    /// option is an error naming it).
    ///
    /// # Errors
    /// [`UsageError::InvalidOptions`](sop_core::UsageError::InvalidOptions), [`UsageError::StoreNotFound`](sop_core::UsageError::StoreNotFound), storage errors.
    pub fn open_btree_checked<K: Data + Ord, V: Data>(
        &self,
        tx: &Transaction,
        options: &StoreOptions,
    ) -> Result<Store<K, V>> {
        let info = self.engine.store_info(&options.name)?.ok_or_else(|| {
            Error::Usage(sop_core::UsageError::StoreNotFound {
                name: options.name.clone(),
            })
        })?;
        info.check_compatible(options)?;
        self.open_btree(tx, &options.name)
    }

    /// Opens a table (see [`sop_txn::TableDefinition`]): its types are checked, and a
    /// `ForWriting` transaction creates it when it does not exist.
    ///
    /// # Errors
    /// As [`Transaction::open_table`].
    pub fn open_table<K, V, C>(
        &self,
        tx: &Transaction,
        table: &sop_txn::TableDefinition<'_, K, V, C>,
    ) -> Result<Store<K, V, C>>
    where
        K: Data,
        V: Data,
        C: sop_btree::KeyComparator<K> + Clone + Send + Sync + 'static,
    {
        self.check_tx(tx)?;
        tx.open_table(table)
    }

    /// Opens the B-tree, or creates it when it does not exist.
    ///
    /// # Errors
    /// As [`Database::open_btree_checked`] and [`Database::new_btree`].
    pub fn open_or_create_btree<K: Data + Ord, V: Data>(
        &self,
        tx: &Transaction,
        options: &StoreOptions,
    ) -> Result<Store<K, V>> {
        if self.engine.store_info(&options.name)?.is_some() {
            self.open_btree_checked(tx, options)
        } else {
            self.new_btree(tx, options)
        }
    }

    fn check_tx(&self, tx: &Transaction) -> Result<()> {
        if tx.is_open() {
            Ok(())
        } else {
            Err(Error::Transaction(
                sop_core::TransactionError::TransactionState {
                    id: tx.id(),
                    reason: "it has ended; begin a new one".into(),
                },
            ))
        }
    }

    /// Removes a B-tree and all its data, outside any transaction (destructive). No transaction
    /// may be using it: one that is will fail its commit.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`](sop_core::UsageError::StoreNotFound), storage errors.
    pub fn remove_btree(&self, name: &str) -> Result<()> {
        self.engine.remove_store(name)
    }

    /// Reclaims space now: removes log segments nothing can read any more and empties those
    /// mostly superseded (it also runs by itself after checkpoints). See
    /// [`sop_txn::Engine::compact`].
    ///
    /// # Errors
    /// As [`sop_txn::Engine::compact`].
    pub fn compact(&self) -> Result<sop_txn::CompactionReport> {
        self.engine.log().flush()?;
        self.engine.checkpoint()?;
        self.engine.compact()
    }

    /// The names of all stores, sorted.
    ///
    /// # Errors
    /// Storage errors.
    pub fn stores(&self) -> Result<Vec<String>> {
        self.engine.store_names()
    }

    /// A store's committed info.
    ///
    /// # Errors
    /// Storage errors.
    pub fn store_info(&self, name: &str) -> Result<Option<StoreInfo>> {
        self.engine.store_info(name)
    }

    /// The erasure-coding file layer of the log, when the database was opened with one.
    #[must_use]
    pub fn erasure(&self) -> Option<&Arc<EcFs>> {
        self.erasure.as_ref()
    }

    /// The replication state, when the registry is replicated.
    #[must_use]
    pub fn replication_status(&self) -> Option<ReplicationStatus> {
        self.replicated.as_ref().map(|r| r.status())
    }

    /// Brings a failed registry drive back (see `ReplicatedFs::reinstate`).
    ///
    /// # Errors
    /// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) when the registry is not replicated; storage errors.
    pub fn reinstate(&self) -> Result<sop_registry::Reinstated> {
        match &self.replicated {
            Some(r) => r.reinstate(),
            None => Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "replication",
                reason: "the database was opened without replication folders".into(),
            })),
        }
    }
}

/// The database's id, created once (the first process to create `sop.id` wins), so processes
/// agree on the Redis keys of this database whatever path they mount it at.
async fn database_id(path: &Path) -> Result<sop_core::Uuid> {
    let file = path.join("sop.id");
    let fresh = sop_core::Uuid::new_v4().to_string();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(fresh.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(Error::io("write", &file))?;
            if let Ok(dir) = std::fs::File::open(path) {
                let _ = dir.sync_all();
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create", &file)(e)),
    }
    // A writer may be between create and write: wait for the id to appear.
    for _ in 0..200 {
        let text = std::fs::read_to_string(&file).map_err(Error::io("read", &file))?;
        if let Ok(id) = text.trim().parse() {
            return Ok(id);
        }
        sop_blobstore_ec::pause(std::time::Duration::from_millis(5)).await;
    }
    Err(Error::Corruption(sop_core::CorruptionError::Damaged {
        what: "database id",
        location: file.display().to_string(),
        detail: "not a uuid".into(),
    }))
}
