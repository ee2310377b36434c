//! The `Database` entry point of sop-rs.
//!
//! [`Database::standalone`] opens (or creates) a database in a folder with no server at all:
//! locks and the L2 cache live in the process, and an operating-system lock keeps the folder to
//! one process. [`Database::clustered`] shares a folder between many processes through Redis,
//! with the same API.
//!
//! Folder layout: `<db>/sop.lock` (the folder lock), `<db>/meta/` (the registry as of the last
//! checkpoint, store files, the checkpoint record: replicated when two folders are given),
//! `<db>/log/` (the log: commit records and every node version and value, in segment files;
//! striped over drives with erasure coding).

mod database;
mod handover;
mod verify;

pub use database::{
    ClusterOptions, DEFAULT_CHECKPOINT_BYTES, Database, DatabaseOptions, StoreStats,
};
pub use sop_coord::RedisConfig;
pub use sop_txn::{
    CompactionReport, DEFAULT_MAX_TIME, MAX_TIME_CAP, RecoveryReport, Store, Transaction, TxMode,
    TxOptions, is_retryable,
};
pub use verify::{StoreCheck, VerifyReport};
