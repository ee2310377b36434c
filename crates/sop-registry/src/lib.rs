//! The durable metadata of sop-rs: the registry (each node's logical id -> its [`Handle`]), the
//! store repository (each store's [`sop_core::StoreInfo`]), and active/passive replication of
//! both across two drives ([`ReplicatedFs`]).
//!
//! It is not: aware of B-trees or transactions. It stores handles and store infos durably and
//! atomically; the transaction layer decides what they mean. All I/O goes through
//! [`sop_core::vfs::FileSystem`].
//!
//! [`Handle`]: sop_core::Handle

pub mod formats;
mod journal;
mod meta;
mod record;
mod registry;
mod replicated;
mod stores;

pub use journal::JOURNAL_FORMAT_VERSION;
pub use meta::{REMOVED_DIR, REPLAY_POINT_FILE, RegistryMetadata, removal_marker};
pub use record::{BLOCK_FORMAT_VERSION, BLOCK_SIZE, RECORD_SIZE, SLOTS_PER_BLOCK};
pub use registry::{
    DEFAULT_CHECKPOINT_BYTES, MAX_HASH_MOD, MAX_SEGMENTS, MIN_HASH_MOD, Registry, RegistryBatch,
    RegistryOptions, TableScan,
};
pub use replicated::{REPLICATION_FORMAT_VERSION, Reinstated, ReplicatedFs, ReplicationStatus};
pub use stores::{STORE_FORMAT_VERSION, StoreRepository};
