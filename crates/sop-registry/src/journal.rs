//! The registry's redo journal: the new images of every block a batch changes, synced before any
//! block is overwritten in place.
//!
//! A crash before the journal is synced leaves every block untouched (the torn journal fails its
//! checksum and is dropped). A crash after leaves a valid journal, and the next open writes all
//! its images again, completing the batch, including any block torn by the crash. So a batch is
//! all-or-nothing and no block is ever left half-written.
//!
//! File `registry.journal`: empty when idle, else a sealed frame (version 1, length, CRC32C)
//! around the codec encoding of `Vec<JournalEntry>`. Besides block images, a batch can replace or
//! remove small files under the registry folder (store info, transaction logs), so a commit's
//! handle flips, count changes and log state change in one atomic step.

use serde::{Deserialize, Serialize};

/// Format version of the journal frame.
pub const JOURNAL_FORMAT_VERSION: u8 = 1;

/// One step of a batch, as redone after a crash. Every step is idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum JournalEntry {
    /// A registry block's new image.
    Block {
        table: String,
        segment: u32,
        block: u64,
        image: Vec<u8>,
    },
    /// A small file under the registry folder replaced whole (store info, transaction log).
    PutFile { path: String, bytes: Vec<u8> },
    /// A small file under the registry folder removed.
    RemoveFile { path: String },
}
