//! How a transaction ended, or why it cannot go on (raised by `sop-txn`).

use crate::Uuid;

/// The transaction did not commit (a conflict, a busy lock, its time ran out), cannot go on
/// (it ended, or a change failed part-way), or was used after it ended. Raised by `sop-txn`
/// (and the registry's version fence, `sop-registry`). [`TransactionError::is_retryable`]
/// says when running it again, unchanged, can succeed (`sop::Database::run` does that).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
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
}
