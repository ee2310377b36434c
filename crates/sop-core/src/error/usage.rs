//! Calls that are wrong for the state or the input: fix the call.

use std::path::PathBuf;

use super::CodecError;
/// The call was wrong for the input or the state (options, names, types, sizes, a folder in
/// use): fix the call; running it again unchanged fails the same way.
///
/// Raised by every layer that checks its input: store options and names (`sop-core`),
/// database and storage configuration (`sop-database`, `sop-blobstore-ec`, `sop-registry`),
/// types and value sizes (`sop-txn`), the folder lock (`sop-coord`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
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

    /// A storage configuration that cannot work.
    #[error("invalid {what} configuration: {reason}")]
    InvalidConfig {
        /// Which configuration.
        what: &'static str,
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

    /// An argument a store call cannot take: a chunk index that would leave a gap, a chunk
    /// size of 0, a key of the wrong shape for the store's index, a bad page request.
    #[error("store {store:?}: invalid {what}: {reason}")]
    InvalidArgument {
        /// The store.
        store: String,
        /// Which argument.
        what: &'static str,
        /// What is wrong, and what to pass instead.
        reason: String,
    },

    /// A document given as input (a JSON restore kit, an index specification) is malformed
    /// or inconsistent: where, and what is wrong.
    #[error("{what}: line {line}, column {column}, field {field}: {reason}")]
    InvalidDocument {
        /// Which document ("restore kit", "index specification").
        what: &'static str,
        /// The line (from 1; 0 when unknown).
        line: usize,
        /// The column (from 1; 0 when unknown).
        column: usize,
        /// The field's path in the document (`stores[2].items[7].key`).
        field: String,
        /// What is wrong, and what to write instead.
        reason: String,
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
}
