//! Shared vocabulary of sop-rs.
//!
//! Every other crate of the workspace speaks in these types: [`Uuid`] for logical and physical
//! ids, [`Handle`] for a registry record, [`StoreInfo`] and [`StoreOptions`] for a B-tree store's
//! settings, [`Error`] for failures, and [`codec`] for every byte that is encoded or decoded.
//!
//! [`vfs`] is the file layer every other crate does its I/O through.
//!
//! It is not: a storage engine. Apart from the file layer it performs no I/O and holds no state.

pub mod codec;
mod error;
pub mod fasthash;
mod handle;
mod loc;
pub mod meta;
mod rofs;
mod simfs;
mod store;
mod uuid;
pub mod vfs;

pub use error::{
    CodecError, CoordinationError, CorruptionError, CursorError, Error, ErrorKind, Result,
    StorageError, TransactionError, UsageError,
};
pub use fasthash::{IdMap, IdSet};
pub use handle::Handle;
pub use loc::Loc;
pub use store::{
    DEFAULT_SLOT_LENGTH, MAX_SLOT_LENGTH, MIN_SLOT_LENGTH, StoreCacheConfig, StoreInfo,
    StoreInfoV1, StoreOptions, StoreTypes, ValueDataSize, validate_store_name,
};
pub use uuid::Uuid;

/// Milliseconds since the Unix epoch, the unit of every timestamp sop-rs stores.
///
/// A clock before 1970 reads as 0 rather than failing: timestamps only order events and expire
/// claims, and a wrong clock must not stop the engine.
#[must_use]
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
