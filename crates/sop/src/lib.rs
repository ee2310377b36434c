//! sop-rs: B-trees of any `serde` key and value, built to become an embeddable, transactional,
//! replicated storage engine (a Rust re-creation of SOP, Scalable Objects Persistence).
//!
//! This crate is the facade applications depend on: it re-exports what users need from the
//! layered crates below it: the [`Database`] (standalone in a folder, or clustered through
//! Redis) with ACID [`Transaction`]s over B-trees ([`Store`]: typed by a [`TableDefinition`],
//! reads on `&self`, lazy double-ended [`StoreRange`]s, independent [`StoreCursor`]s), the
//! [`blocking`] API for code without an async runtime, one [`Error`] type (with
//! [`Error::kind`] and [`Error::is_retryable`]), and the B-tree engine itself (also usable in
//! memory: [`MemBTree`]).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use sop::{Database, StoreOptions, TxMode};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::standalone(dir.path())?;
//! let tx = db.begin(TxMode::ForWriting);
//! let mut users = db.new_btree::<String, String>(&tx, &StoreOptions::new("users"))?;
//! users.add("ada".into(), "Ada Lovelace".into()).await?;
//! tx.commit().await?;
//!
//! let tx = db.begin(TxMode::ForReading);
//! let mut users = db.open_btree::<String, String>(&tx, "users")?;
//! assert_eq!(users.get(&"ada".to_string()).await?.as_deref(), Some("Ada Lovelace"));
//! tx.commit().await?;
//! # Ok::<(), anyhow::Error>(())
//! # }).unwrap();
//! ```

pub use sop_btree::{
    BTree, Cursor, FnComparator, Item, ItemRef, KeyComparator, MemBTree, MemRepository,
    NaturalOrder, Range, TreeStats,
};
pub use sop_core::{
    CodecError, CoordinationError, CorruptionError, CursorError, Error, ErrorKind, Result,
    StorageError, StoreCacheConfig, StoreInfo, StoreOptions, StoreTypes, TransactionError,
    UsageError, Uuid, ValueDataSize,
};
pub use sop_database::{
    ClusterOptions, Database, DatabaseOptions, RedisConfig, StoreCheck, StoreStats, VerifyReport,
};
pub use sop_txn::{
    CompactionReport, DEFAULT_MAX_TIME, Data, MAX_TIME_CAP, PREPARED_HOLD, RecoveryReport, Store,
    StoreCursor, StoreRange, TableDefinition, Transaction, TxMode, TxOptions, is_retryable,
};

pub mod blocking;

/// Values of any size, chunked automatically, as byte streams inside transactions (the
/// `sop-streaming` crate; feature `streaming`, on by default).
#[cfg(feature = "streaming")]
pub mod streaming {
    pub use sop_streaming::*;
}

/// Storage configuration types: erasure coding and replication.
pub mod storage {
    pub use sop_blobstore_ec::{ErasureConfig, LogDamage};
    pub use sop_registry::{Reinstated, ReplicationStatus};
}

/// The lower layers, for code that plugs its own repository under a tree.
pub mod engine {
    pub use sop_btree::{ItemValue, Node, NodeItem, NodeRepository, ValueStore};
    pub use sop_core::{Handle, codec};
}

// README.md's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
