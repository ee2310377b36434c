//! Stored bytes that are damaged or missing.

use super::CodecError;
use crate::Uuid;
/// Stored bytes are damaged or missing: a checksum, a length or a version is wrong, or
/// something referred to is not there. What was not damaged is still readable; restore,
/// repair (`sop verify --repair`, which never deletes what anything refers to) or accept the
/// loss the error names (file and offset, or id). Raised by the layer that read the bytes:
/// `sop-blobstore-ec` (log segments, erasure-coded blobs), `sop-registry` (registry blocks,
/// handles), `sop-btree` (nodes, tree invariants), `sop-txn` (commit records).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionError {
    /// Bytes read back are not what was written: a checksum, a length or a version is wrong.
    #[error("corrupt {what} at {location}: {detail}")]
    Damaged {
        /// The structure (registry block, node, blob frame...).
        what: &'static str,
        /// The file and offset, or the id.
        location: String,
        /// What check failed.
        detail: String,
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

    /// A B-tree's structure is not what its invariants require.
    #[error("b-tree invariant broken in store {store:?}: {detail}")]
    Invariant {
        /// The store.
        store: String,
        /// The broken rule and where.
        detail: String,
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
}
