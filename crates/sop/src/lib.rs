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

/// JSON stores for dynamic callers: `serde_json` keys and values, index specifications,
/// paging (the `sop-json` crate; feature `json`, on by default).
#[cfg(feature = "json")]
pub mod json {
    pub use sop_json::{
        Direction, IndexField, IndexSpec, Json, JsonItem, JsonOrder, JsonStore, PagingInfo,
        compare_values,
    };
}

/// The factory reset kit: a JSON "restore disk" of JSON stores, `sop export` / `sop restore`,
/// and [`Database::open_or_restore`](OpenOrRestore::open_or_restore) (feature `json`).
#[cfg(feature = "json")]
pub mod kit {
    pub use sop_json::kit::*;
}

#[cfg(feature = "json")]
pub use sop_json::kit::OpenOrRestore;

/// Transactional BM25 text search: add, re-add, delete, top-k, AND/OR (the `sop-search`
/// crate; feature `search`, on by default).
#[cfg(feature = "search")]
pub mod search {
    pub use sop_search::*;
}

/// The transactional IVF vector store: upsert, query with distance pruning, optimize into a
/// new version while reads and writes go on (the `sop-vector` crate; feature `vector`, on by
/// default).
#[cfg(feature = "vector")]
pub mod vector {
    pub use sop_vector::*;
}

/// The model registry: versioned models with JSON metadata and streamed artifacts (the
/// `sop-models` crate; feature `models`, on by default).
#[cfg(feature = "models")]
pub mod models {
    pub use sop_models::*;
}

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
