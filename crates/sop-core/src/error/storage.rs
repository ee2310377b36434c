//! The storage failed.

use std::io;
use std::path::PathBuf;

/// The storage failed: an I/O error, both replicas of replicated metadata unusable, more
/// drives failed than the parity tolerates. Check the drives; what was committed before is
/// intact. Raised by `sop-blobstore-ec` (log, erasure coding), `sop-registry` (registry,
/// replication) and the file layer (`sop-core::vfs`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
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

    /// Both replicas of replicated metadata are unusable.
    #[error("no usable replica left: {detail}")]
    NoReplicaLeft {
        /// What failed on each side.
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
}
