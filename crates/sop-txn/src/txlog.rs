//! The transaction log: what to undo if a commit dies before its commit point, and what to
//! clean up after it.
//!
//! File `txlogs/<tid>.log` under the registry folder: a sequence of sealed frames (version 1,
//! length, CRC32C), each around the codec encoding of one [`TxLog`] record.
//!
//! - Before a transaction writes any blob it appends a `Pending` record (synced) listing the
//!   blobs it is about to write: one per actively persisted value as it is written, and one for
//!   all the nodes and values of a commit attempt.
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

/// How many intact records a transaction log file holds (the decoder recovery uses; public for
/// the fuzz targets and `sop verify`).
#[must_use]
pub fn txlog_records(bytes: &[u8]) -> usize {
    decode_all(bytes, "txlog").len()
}

/// The intact records of a log, in order; a torn last record (its sync never finished, so
/// nothing it lists was written) ends the list.
pub(crate) fn decode_all(bytes: &[u8], path: &str) -> Vec<TxLog> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(end) = codec::sealed_frame_end(bytes, at) else {
            break;
        };
        let Ok(payload) = unseal(
            &bytes[at..end],
            TXLOG_FORMAT_VERSION,
            "transaction log",
            &path,
        ) else {
            break;
        };
        let Ok(record) = codec::decode(payload, "transaction log") else {
            break;
        };
        out.push(record);
        at = end;
    }
    out
}
