//! Transactions of sop-rs: many B-trees changed in one ACID transaction, committed with two-phase
//! commit onto the registry and the blob store, and recovered after a crash.
//!
//! An [`Engine`] holds what a database's transactions share; [`Engine::begin`] starts a
//! [`Transaction`]; [`Transaction::new_btree`] / [`Transaction::open_btree`] give [`Store`]s
//! (B-trees inside the transaction); [`Transaction::commit`] validates and makes it all durable
//! in one atomic step; [`run`] retries on conflicts. See ARCHITECTURE.md for the protocol.
//!
//! Metadata (handles, store infos, the replay point) is reached only through the narrow
//! [`sop_core::meta::Metadata`] trait: this crate knows no registry file or folder, and its own
//! tests run on [`sop_core::meta::MemMetadata`] and [`sop_core::meta::FaultyMetadata`].
//!
//! It is not: the `Database` entry point (`sop-database` builds the engine from a folder), or a
//! lock server (`sop-coord`).

mod catalog;
mod commit;
mod compact;
mod engine;
mod l1;
mod maint;
mod options;
mod plan;
mod record;
mod repo;
mod retry;
mod state;
mod store;
mod store_read;
mod table;
#[doc(hidden)]
pub mod testing;
mod transaction;

pub use commit::PREPARED_HOLD;
pub use compact::{COMPACT_BELOW, CompactionReport};
pub use engine::{Engine, EngineParts, GATE_TTL, Gate, Lease, RecoveryReport};
pub use maint::{HARD_CHAIN, SOFT_CHAIN};
pub use options::{DEFAULT_MAX_TIME, MAX_TIME_CAP, TxMode, TxOptions};
pub use record::{
    CHECKPOINT_FORMAT_VERSION, CheckpointRecord, CommitRecord, RECORD_FORMAT_VERSION, TableChanges,
};
pub use repo::{Data, TxRepo, VALUE_FORMAT_VERSION};
pub use retry::{backoff, is_retryable, run};
/// How a transaction ended or why it cannot go on (defined in `sop-core`, which every layer
/// shares: conflicts come up through the tree's repository).
pub use sop_core::TransactionError;
pub use store::Store;
pub use store_read::{StoreCursor, StoreRange};
pub use table::TableDefinition;
pub use transaction::Transaction;
