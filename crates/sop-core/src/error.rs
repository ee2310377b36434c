//! The error type shared by the lower crates of sop-rs.

use std::io;
use std::path::PathBuf;

use crate::Uuid;

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// Whether this is an I/O error of a failing drive (see [`crate::vfs::is_drive_failure`]).
    #[must_use]
    pub fn is_drive_failure(&self) -> bool {
        matches!(self, Error::Io { source, .. } if crate::vfs::is_drive_failure(source))
    }
}

/// What the codec reported (its own error, kept opaque: the codec is an implementation detail
/// and its types are not part of sop-rs's API).
#[derive(Debug)]
pub struct CodecError(Box<dyn std::error::Error + Send + Sync>);

impl CodecError {
    /// Wraps the codec's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        CodecError(Box::new(e))
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Which kind of failure an [`Error`] is: what the caller can do about it.
///
/// ```
/// use sop_core::{Error, ErrorKind};
///
/// let e = Error::Conflict { store: "accounts".into(), detail: "item 7 changed".into() };
/// assert_eq!(e.kind(), ErrorKind::Transaction);
/// assert!(e.is_retryable()); // run the transaction again
/// let e = Error::StoreNotFound { name: "acounts".into() };
/// assert_eq!(e.kind(), ErrorKind::Usage); // fix the call
/// assert!(!e.is_retryable());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The call was wrong for the state or the input (options, types, sizes, a cursor on no
    /// item, an ended transaction, a folder in use): fix the call.
    Usage,
    /// The transaction did not commit because of others (a conflict, a busy lock, its time
    /// ran out) or a failed change: run it again ([`Error::is_retryable`] says when that can
    /// succeed as is).
    Transaction,
    /// Stored bytes are damaged or missing: restore, repair (`sop verify --repair`) or accept
    /// the loss the error names.
    Corruption,
    /// The storage failed (an I/O error, too many drives lost): check the drives; what was
    /// committed before is intact.
    Storage,
    /// The coordination service (Redis) failed: check it; retrying later can succeed.
    Coordination,
}

impl Error {
    /// Which kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidId { .. }
            | Error::SlotLengthOutOfRange { .. }
            | Error::InvalidStoreName { .. }
            | Error::InvalidOptions { .. }
            | Error::NoCurrentItem { .. }
            | Error::KeyChanged { .. }
            | Error::Encode { .. }
            | Error::StoreExists { .. }
            | Error::StoreNotFound { .. }
            | Error::InvalidConfig { .. }
            | Error::TransactionState { .. }
            | Error::TypeMismatch { .. }
            | Error::ValueTooLarge { .. }
            | Error::InUse { .. } => ErrorKind::Usage,
            Error::Conflict { .. }
            | Error::VersionMismatch { .. }
            | Error::LockBusy { .. }
            | Error::Timeout { .. }
            | Error::Poisoned { .. } => ErrorKind::Transaction,
            Error::NodeNotFound { .. }
            | Error::ValueNotFound { .. }
            | Error::Decode { .. }
            | Error::Corruption { .. }
            | Error::Invariant { .. }
            | Error::HandleSlotInUse { .. }
            | Error::HandleExists { .. }
            | Error::HandleNotFound { .. }
            | Error::BlobNotFound { .. }
            | Error::TooManyShardsLost { .. } => ErrorKind::Corruption,
            Error::NoReplicaLeft { .. } | Error::TooManyDrivesFailed { .. } | Error::Io { .. } => {
                ErrorKind::Storage
            }
            Error::Coordination { .. } => ErrorKind::Coordination,
        }
    }

    /// Whether running the transaction again, unchanged, may succeed (a conflict, a busy
    /// lock, a version that moved).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Conflict { .. } | Error::VersionMismatch { .. } | Error::LockBusy { .. }
        )
    }
}

/// The result type of sop-rs's lower crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the context the caller cannot reconstruct: the store, the id, the file
/// and offset.
///
/// Messages are lowercase without a trailing period. Where a lower-level error caused this one it
/// is chained through [`std::error::Error::source`], not repeated in the message, so reporters
/// that walk the chain (`anyhow`'s `{:#}`) print it once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A text that should be an id is not one.
    #[error("invalid id {input:?}: {reason}")]
    InvalidId {
        /// The text (its first 64 characters).
        input: String,
        /// Why it does not parse.
        reason: String,
    },

    /// A store's slot length is outside the range a node can hold.
    #[error("slot length {got} is out of range {min}..={max}")]
    SlotLengthOutOfRange {
        /// The slot length asked for.
        got: usize,
        /// The smallest allowed.
        min: usize,
        /// The largest allowed.
        max: usize,
    },

    /// A store name cannot be used (it becomes a folder name on disk).
    #[error("invalid store name {name:?}: {reason}")]
    InvalidStoreName {
        /// The name given (its first 200 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Store options that contradict each other or the stored ones.
    #[error("invalid options for store {store:?}: {reason}")]
    InvalidOptions {
        /// The store.
        store: String,
        /// What is wrong.
        reason: String,
    },

    /// A call that works on the cursor's item found the cursor on no item.
    #[error(
        "{operation} needs a current item but the cursor is on none: position it with find, first or last"
    )]
    NoCurrentItem {
        /// The call that needed the item.
        operation: &'static str,
    },

    /// A key given to replace the current item's key does not compare equal to it.
    #[error(
        "{operation} was given a key that does not compare equal to the current key; that would break the order, so remove and add instead"
    )]
    KeyChanged {
        /// The call that refused the key.
        operation: &'static str,
    },

    /// A node the tree refers to is not in its repository.
    #[error("node {id} of store {store:?} is not in the node repository")]
    NodeNotFound {
        /// The store.
        store: String,
        /// The node's logical id.
        id: Uuid,
    },

    /// A value kept outside its node is not in the value store.
    #[error("value {id} of store {store:?} is not in the value store")]
    ValueNotFound {
        /// The store.
        store: String,
        /// The value's blob id.
        id: Uuid,
    },

    /// A value could not be encoded.
    #[error("cannot encode {what}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: CodecError,
    },

    /// Bytes could not be decoded into the type asked for.
    #[error("cannot decode {what}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: CodecError,
    },

    /// Bytes read back are not what was written: a checksum, a length or a version is wrong.
    #[error("corrupt {what} at {location}: {detail}")]
    Corruption {
        /// The structure (registry block, node, blob frame...).
        what: &'static str,
        /// The file and offset, or the id.
        location: String,
        /// What check failed.
        detail: String,
    },

    /// A B-tree's structure is not what its invariants require.
    #[error("b-tree invariant broken in store {store:?}: {detail}")]
    Invariant {
        /// The store.
        store: String,
        /// The broken rule and where.
        detail: String,
    },

    /// An earlier call failed part-way through a change: the in-memory tree may be half-changed,
    /// so it refuses every further call.
    #[error(
        "store {store:?} refuses further calls: an earlier change failed part-way ({cause}); roll the transaction back"
    )]
    Poisoned {
        /// The store.
        store: String,
        /// The message of the error that poisoned it.
        cause: String,
    },

    /// A handle's inactive physical slot is already claimed by another change in progress.
    #[error("handle {logical_id} already has a change in progress in its inactive slot")]
    HandleSlotInUse {
        /// The handle's logical id.
        logical_id: Uuid,
    },

    /// A handle to add is already in the registry table.
    #[error("handle {id} already exists in registry table {table:?}")]
    HandleExists {
        /// The registry table.
        table: String,
        /// The logical id.
        id: Uuid,
    },

    /// A handle to update or remove is not in the registry table.
    #[error("handle {id} is not in registry table {table:?}")]
    HandleNotFound {
        /// The registry table.
        table: String,
        /// The logical id.
        id: Uuid,
    },

    /// A store to create already exists.
    #[error("store {name:?} already exists")]
    StoreExists {
        /// The store.
        name: String,
    },

    /// A store is not in the store repository.
    #[error("store {name:?} does not exist")]
    StoreNotFound {
        /// The store.
        name: String,
    },

    /// Both replicas of replicated metadata are unusable.
    #[error("no usable replica left: {detail}")]
    NoReplicaLeft {
        /// What failed on each side.
        detail: String,
    },

    /// No blob with this id is in the table.
    #[error("blob {id} is not in table {table:?}")]
    BlobNotFound {
        /// The blob table.
        table: String,
        /// The blob id.
        id: Uuid,
    },

    /// Too few intact shards are left to rebuild an erasure-coded blob.
    #[error(
        "blob {id} of table {table:?} cannot be rebuilt: {usable} intact shards, {needed} needed ({detail})"
    )]
    TooManyShardsLost {
        /// The blob table.
        table: String,
        /// The blob id.
        id: Uuid,
        /// Intact shards found.
        usable: usize,
        /// Shards needed (the data shard count).
        needed: usize,
        /// What was wrong with the others.
        detail: String,
    },

    /// More drives failed during a write than the parity tolerates; nothing of it is left visible.
    #[error(
        "write to table {table:?} failed on {failed} drives, parity tolerates {tolerated}: {detail}"
    )]
    TooManyDrivesFailed {
        /// The blob table.
        table: String,
        /// Drives that failed.
        failed: usize,
        /// Drives the parity tolerates.
        tolerated: usize,
        /// The first failures.
        detail: String,
    },

    /// A storage configuration that cannot work.
    #[error("invalid {what} configuration: {reason}")]
    InvalidConfig {
        /// Which configuration.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// Another transaction committed a change this one conflicts with: it changed an item this
    /// one read or wrote, or (at the registry) a node this one read or wrote. Retry the
    /// transaction (see the retry helper of the transaction layer).
    #[error("transaction conflict in store {store:?}: {detail}")]
    Conflict {
        /// The store, or `""` when the conflict is not about one store.
        store: String,
        /// What changed under the transaction.
        detail: String,
    },

    /// A registry handle's version is not what the writer expected: another writer got there
    /// first (the storage-anchored fence behind every commit).
    #[error("handle {id} of registry table {table:?} has version {found}, expected {expected}")]
    VersionMismatch {
        /// The registry table.
        table: String,
        /// The logical id.
        id: Uuid,
        /// The version the writer read.
        expected: u64,
        /// The version on disk (0 when the handle is gone).
        found: u64,
    },

    /// A lock another transaction holds could not be had before the deadline.
    #[error("lock on {key} is held by another transaction (waited {waited_ms} ms)")]
    LockBusy {
        /// The lock key.
        key: String,
        /// How long this transaction waited.
        waited_ms: u64,
    },

    /// The transaction ran past its deadline (the earlier of the caller's and its `max_time`).
    #[error("transaction {id} ran past its deadline of {max_ms} ms while {during}")]
    Timeout {
        /// The transaction id.
        id: Uuid,
        /// The deadline, in ms from its start.
        max_ms: u64,
        /// What it was doing.
        during: &'static str,
    },

    /// The transaction has committed or rolled back, or was begun in a mode that does not allow
    /// the call.
    #[error("transaction {id}: {reason}")]
    TransactionState {
        /// The transaction id.
        id: Uuid,
        /// What is wrong.
        reason: String,
    },

    /// A store opened with key/value types (or a comparator) other than those it was created
    /// with.
    #[error(
        "store {store:?} holds {holds}, it was opened as {asked}; open it with the types it was \
         created with (its store info records them)"
    )]
    TypeMismatch {
        /// The store.
        store: String,
        /// What the caller asked for.
        asked: String,
        /// What the store holds.
        holds: String,
    },

    /// A value (or a node of inline values) is bigger than what can be read back.
    #[error(
        "store {store:?}: {what} of {size} bytes is over the limit of {max} bytes; store big \
         values in a streaming store (chunked) or out of their nodes (value_in_node(false)), \
         and keep each value under the limit"
    )]
    ValueTooLarge {
        /// The store.
        store: String,
        /// What was too big ("a value", "a node").
        what: &'static str,
        /// Its encoded size.
        size: u64,
        /// The limit.
        max: u64,
    },

    /// A standalone database folder is already open in another process (or another `Database`
    /// in this one).
    #[error(
        "database folder {path} is in use by another process, or by an earlier Database of \
         this process whose transactions, store handles or engine clones are still alive (drop \
         them first: they could still write); standalone mode allows one process per folder: \
         close the other one, or use clustered mode (Redis) to share a store between processes"
    )]
    InUse {
        /// The database folder.
        path: PathBuf,
    },

    /// The coordination service (Redis) could not be used.
    #[error(
        "redis at {endpoint} failed during {op}: {detail}; check that redis-server is running \
         and reachable from this host, and the URL, password and database number"
    )]
    Coordination {
        /// Where it was expected (the URL without its password).
        endpoint: String,
        /// What was being done.
        op: &'static str,
        /// The client's error.
        detail: String,
    },

    /// A file-system call failed.
    #[error("cannot {op} {path}")]
    Io {
        /// The operation (open, read, write, sync, rename, remove, list).
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}
