//! The commit record (what one commit changed, appended to the log as its commit point) and the
//! checkpoint record (where a replay starts). Byte layouts in ARCHITECTURE.md, "Commit record".

use serde::{Deserialize, Serialize};
use sop_blobstore_ec::LogPos;
use sop_core::codec::{self, seal, unseal};
use sop_core::{Error, Handle, Result, StoreInfo, Uuid, validate_store_name};

/// Format version of a commit record's payload (its first byte).
pub const RECORD_FORMAT_VERSION: u8 = 2;
/// Format version of the checkpoint record.
pub const CHECKPOINT_FORMAT_VERSION: u8 = 1;

/// One commit: the final state of every handle and store it changed. Replaying a record is
/// idempotent: it sets states, it does not add deltas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The transaction.
    pub tid: Uuid,
    /// When it committed (Unix ms).
    pub at_ms: i64,
    /// Handle changes, per registry table (= store).
    pub tables: Vec<TableChanges>,
    /// Store infos written (created, or count changed).
    pub stores: Vec<StoreInfo>,
}

/// A commit record of format 1.
#[derive(Deserialize)]
struct CommitRecordV1 {
    tid: Uuid,
    at_ms: i64,
    tables: Vec<TableChanges>,
    stores: Vec<sop_core::StoreInfoV1>,
}

/// The handle changes of one table in a [`CommitRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChanges {
    /// The table (the store's name).
    pub table: String,
    /// Handles added or changed, in their new state.
    pub put: Vec<Handle>,
    /// Logical ids removed.
    pub removed: Vec<Uuid>,
}

impl CommitRecord {
    /// The record's bytes: a format-version byte, then the codec encoding.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::encode_versioned(RECORD_FORMAT_VERSION, self)
    }

    /// Reads a record, checking its table and store names.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) / decode errors for anything but a well-formed record.
    pub fn decode(bytes: &[u8]) -> Result<CommitRecord> {
        let r: CommitRecord = if bytes.first() == Some(&1) {
            // Format 1: store infos without their types (logs of earlier versions).
            let v1: CommitRecordV1 = codec::decode_versioned(bytes, 1, "commit record")?;
            CommitRecord {
                tid: v1.tid,
                at_ms: v1.at_ms,
                tables: v1.tables,
                stores: v1.stores.into_iter().map(StoreInfo::from).collect(),
            }
        } else {
            codec::decode_versioned(bytes, RECORD_FORMAT_VERSION, "commit record")?
        };
        for t in &r.tables {
            validate_store_name(&t.table)?;
        }
        for s in &r.stores {
            validate_store_name(&s.name)?;
        }
        Ok(r)
    }
}

/// Where a replay starts: every commit up to `lsn` is in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The last LSN whose changes the registry holds.
    pub lsn: u64,
    /// The segment of the first frame after it.
    pub segment: u32,
    /// Its offset.
    pub offset: u64,
    /// Its LSN.
    pub next_lsn: u64,
}

impl CheckpointRecord {
    /// The replay position it names.
    #[must_use]
    pub fn position(&self) -> LogPos {
        LogPos {
            segment: self.segment,
            offset: self.offset,
            lsn: self.next_lsn,
        }
    }

    /// The file's bytes (a sealed frame).
    ///
    /// # Errors
    /// Encoding errors.
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(seal(CHECKPOINT_FORMAT_VERSION, &codec::encode(self)?))
    }

    /// Reads the file.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) naming `location` for a damaged file.
    pub fn decode(bytes: &[u8], location: &dyn std::fmt::Display) -> Result<CheckpointRecord> {
        let payload = unseal(
            bytes,
            CHECKPOINT_FORMAT_VERSION,
            "checkpoint record",
            location,
        )?;
        let r: CheckpointRecord = codec::decode(payload, "checkpoint record")?;
        if r.segment == 0 || r.next_lsn <= r.lsn {
            return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                what: "checkpoint record",
                location: location.to_string(),
                detail: format!("impossible position {r:?}"),
            }));
        }
        Ok(r)
    }
}
