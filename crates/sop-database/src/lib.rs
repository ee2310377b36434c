//! The `Database` entry point of sop-rs.
//!
//! [`Database::standalone`] opens (or creates) a database in a folder with no server at all:
//! locks and the L2 cache live in the process, and an operating-system lock keeps the folder to
//! one process. Clustered mode (many processes sharing a folder through Redis) comes with the
//! clustered issue and will offer the same API.
//!
//! Folder layout: `<db>/sop.lock` (the folder lock), `<db>/meta/` (registry, store files,
//! transaction logs: replicated when two folders are given), `<db>/blobs/` (node and value
//! blobs, or one folder per drive with erasure coding).

mod database;
mod verify;

pub use database::{ClusterOptions, Database, DatabaseOptions, StoreStats};
pub use sop_coord::RedisConfig;
pub use sop_txn::{
    DEFAULT_MAX_TIME, MAX_TIME_CAP, RecoveryReport, Store, Transaction, TxMode, TxOptions,
    is_retryable,
};
pub use verify::{StoreCheck, VerifyReport};
