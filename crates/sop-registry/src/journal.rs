//! The registry's redo journal: the new images of every block a batch changes, synced before any
//! block is overwritten in place.
//!
//! A crash before the journal is synced leaves every block untouched (the torn journal fails its
//! checksum and is dropped). A crash after leaves a valid journal, and the next open writes all
//! its images again, completing the batch, including any block torn by the crash. So a batch is
//! all-or-nothing and no block is ever left half-written.
//!
//! File `registry.journal`: empty when idle, else a sealed frame (version 1, length, CRC32C)
//! around the codec encoding of `Vec<JournalEntry>`.

use serde::{Deserialize, Serialize};

/// Format version of the journal frame.
pub const JOURNAL_FORMAT_VERSION: u8 = 1;

/// One block's new image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub table: String,
    pub segment: u32,
    pub block: u64,
    pub image: Vec<u8>,
}
