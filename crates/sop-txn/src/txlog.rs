//! The transaction log: what to undo if a commit dies before its commit point, and what to
//! clean up after it.
//!
//! File `txlogs/<tid>.log` under the registry folder: a sealed frame (version 1, length,
//! CRC32C) around the codec encoding of [`TxLog`].
//!
//! - Before a commit writes any blob, it writes `Pending` (durably) listing every blob it is
//!   about to write.
//! - Its commit point, the registry batch, *replaces* the file with `Committed`, listing the
//!   blobs the commit made obsolete, in the same atomic step as the handle flips.
//! - After the cleanup the file is removed (no sync: redoing a cleanup is harmless).
//!
//! So on recovery: `Pending` means the commit never happened (delete its blobs), `Committed`
//! means it did (finish its cleanup), a torn file was a `Pending` whose sync never finished,
//! written before any blob (remove it).

use serde::{Deserialize, Serialize};
use sop_core::codec::{self, seal, unseal};
use sop_core::{Result, Uuid};

/// Format version of a transaction log file.
pub const TXLOG_FORMAT_VERSION: u8 = 1;
/// The folder of transaction logs, under the registry folder.
pub const TXLOG_DIR: &str = "txlogs";

/// A blob by table and id.
pub(crate) type BlobRef = (String, Uuid);

/// What a transaction log says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TxLog {
    /// Blobs written (or about to be) before the commit point.
    Pending {
        tid: Uuid,
        started_ms: i64,
        blobs: Vec<BlobRef>,
    },
    /// Committed; these blobs are obsolete.
    Committed {
        tid: Uuid,
        done_ms: i64,
        obsolete: Vec<BlobRef>,
    },
}

pub(crate) fn path_of(tid: Uuid) -> String {
    format!("{TXLOG_DIR}/{tid}.log")
}

pub(crate) fn encode(log: &TxLog) -> Result<Vec<u8>> {
    Ok(seal(TXLOG_FORMAT_VERSION, &codec::encode(log)?))
}

/// `None` for a torn or unreadable log.
pub(crate) fn decode(bytes: &[u8], path: &str) -> Option<TxLog> {
    let payload = unseal(bytes, TXLOG_FORMAT_VERSION, "transaction log", &path).ok()?;
    codec::decode(payload, "transaction log").ok()
}
