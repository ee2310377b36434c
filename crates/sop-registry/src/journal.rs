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

/// The journal file and what has been applied in place since it was last emptied.
pub(crate) struct Journal {
    /// `registry.journal`.
    pub file: Box<dyn sop_core::vfs::FileHandle>,
    /// Where the next batch's frame goes (the journal is append-only between checkpoints).
    pub end: u64,
    /// Applied in place but not synced: synced at the next checkpoint, which then empties the
    /// journal. Until then the journal holds every batch since the last checkpoint, so a crash
    /// loses nothing.
    pub unsynced: Unsynced,
}

/// What a checkpoint must sync.
#[derive(Default)]
pub(crate) struct Unsynced {
    /// Segment files written (table, segment number).
    pub segments: std::collections::BTreeSet<(String, u32)>,
    /// Small files replaced.
    pub files: std::collections::BTreeSet<std::path::PathBuf>,
    /// Folders whose entries changed (new files, renames, removals).
    pub dirs: std::collections::BTreeSet<std::path::PathBuf>,
}

impl Unsynced {
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.files.is_empty() && self.dirs.is_empty()
    }
}
