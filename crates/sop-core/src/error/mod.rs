//! The error type of sop-rs: one [`Error`] whose variants each hold the error of one concern,
//! as redb's `Error` holds its `StorageError`, `TransactionError`, ...
//!
//! The concern types are defined here, in the crate every layer shares, because errors cross
//! the trait seams in both directions: a tree's node repository (in `sop-txn`) raises
//! transaction conflicts through `sop-btree`, and the log's I/O errors (in `sop-blobstore-ec`)
//! come up through the repository and the tree. Each is re-exported by the crate that raises
//! it (`sop_btree::CursorError`, `sop_txn::TransactionError`, `sop_coord::CoordinationError`,
//! `sop_blobstore_ec::StorageError`...) and all of them by the facade `sop`.

mod coordination;
mod corruption;
mod cursor;
mod storage;
mod transaction;
mod usage;

use std::io;
use std::path::PathBuf;

pub use coordination::CoordinationError;
pub use corruption::CorruptionError;
pub use cursor::CursorError;
pub use storage::StorageError;
pub use transaction::TransactionError;
pub use usage::UsageError;

/// What went wrong, by concern: match the variant for what to do, then the inner error for the
/// details (the store, the id, the file and offset).
///
/// Messages are lowercase without a trailing period and say what to do. Where a lower-level
/// error caused this one it is chained through [`std::error::Error::source`], not repeated in
/// the message, so reporters that walk the chain (`anyhow`'s `{:#}`) print it once.
///
/// ```
/// use sop_core::{Error, ErrorKind, TransactionError, UsageError};
///
/// let e: Error = TransactionError::Conflict { store: "accounts".into(), detail: "item 7 changed".into() }.into();
/// assert!(matches!(e, Error::Transaction(TransactionError::Conflict { .. })));
/// assert!(e.is_retryable()); // run the transaction again
/// let e: Error = UsageError::StoreNotFound { name: "acounts".into() }.into();
/// assert_eq!(e.kind(), ErrorKind::Usage); // fix the call
/// assert!(!e.is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call was wrong for the input or the state: fix the call.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// A tree's cursor was used wrongly: position it first, or keep the key's order.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The transaction did not commit, cannot go on, or has ended.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// Stored bytes are damaged or missing.
    #[error(transparent)]
    Corruption(#[from] CorruptionError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The coordination service (Redis) failed.
    #[error(transparent)]
    Coordination(#[from] CoordinationError),
}

/// The result type of sop-rs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which kind of failure an [`Error`] is: what the caller can do about it. Mostly the
/// variant of [`Error`]; a transaction used after it ended is [`ErrorKind::Usage`].
///
/// ```
/// use sop_core::{Error, ErrorKind, TransactionError};
///
/// let e: Error = TransactionError::Timeout { id: sop_core::Uuid::NIL, max_ms: 15_000, during: "commit" }.into();
/// assert_eq!(e.kind(), ErrorKind::Transaction);
/// assert!(!e.is_retryable()); // give it more time, or make it smaller
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
            Error::Usage(_) | Error::Cursor(_) => ErrorKind::Usage,
            Error::Transaction(t) => t.kind(),
            Error::Corruption(_) => ErrorKind::Corruption,
            Error::Storage(_) => ErrorKind::Storage,
            Error::Coordination(_) => ErrorKind::Coordination,
        }
    }

    /// Whether running the transaction again, unchanged, may succeed (a conflict, a busy
    /// lock, a version that moved).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Transaction(t) if t.is_retryable())
    }

    /// An I/O error ([`StorageError::Io`]) for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }.into()
    }

    /// Whether this is an I/O error of a failing drive (see [`crate::vfs::is_drive_failure`]).
    #[must_use]
    pub fn is_drive_failure(&self) -> bool {
        matches!(self, Error::Storage(StorageError::Io { source, .. }) if crate::vfs::is_drive_failure(source))
    }
}

impl TransactionError {
    /// Which kind of failure this is: [`ErrorKind::Transaction`], except a transaction used
    /// after it ended ([`TransactionError::TransactionState`]: [`ErrorKind::Usage`]).
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransactionError::TransactionState { .. } => ErrorKind::Usage,
            _ => ErrorKind::Transaction,
        }
    }

    /// Whether running the transaction again, unchanged, may succeed (a conflict, a busy
    /// lock, a version that moved).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TransactionError::Conflict { .. }
                | TransactionError::VersionMismatch { .. }
                | TransactionError::LockBusy { .. }
        )
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
