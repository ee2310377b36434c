//! The decoders of the registry's on-disk files, each callable on a byte slice. The registry
//! reads its files through them; the fuzz targets (`fuzz/`) and `sop verify` call them directly,
//! so what is fuzzed is exactly what runs.

use std::fmt::Display;

use sop_core::codec::{self, unseal};
use sop_core::{Error, Handle, Result, StoreInfo, validate_store_name};

use crate::journal::{JOURNAL_FORMAT_VERSION, JournalEntry};
use crate::record::{BLOCK_SIZE, Block};
use crate::stores::STORE_FORMAT_VERSION;

/// Format version of `registry.conf`.
pub(crate) const CONF_FORMAT_VERSION: u8 = 1;

/// The handles of one registry block (`BLOCK_SIZE` bytes); an all-zero block is empty.
///
/// # Errors
/// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) naming `location` for a wrong size, checksum or version.
pub fn block(bytes: &[u8], location: &dyn Display) -> Result<Vec<Handle>> {
    let bad = |detail: String| {
        Error::Corruption(sop_core::CorruptionError::Damaged {
            what: "registry block",
            location: location.to_string(),
            detail,
        })
    };
    let bytes: &[u8; BLOCK_SIZE] = bytes
        .try_into()
        .map_err(|_| bad(format!("{} bytes, a block is {BLOCK_SIZE}", bytes.len())))?;
    let b = Block::decode(bytes).map_err(bad)?;
    Ok(b.slots.into_iter().flatten().collect())
}

/// The steps of a journal, `None` when its frame fails the checksum (torn before its sync
/// finished: nothing was applied from it, so it is dropped). Every step is checked for what
/// applying it needs: a block image of exactly one block, a valid table name, a segment number
/// from 1, and file paths that stay under the registry folder.
///
/// # Errors
/// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) for a frame whose checksum holds but whose contents are malformed.
pub(crate) fn journal_entries(
    bytes: &[u8],
    location: &dyn Display,
) -> Result<Option<Vec<JournalEntry>>> {
    let Ok(payload) = unseal(bytes, JOURNAL_FORMAT_VERSION, "registry journal", location) else {
        return Ok(None);
    };
    let entries: Vec<JournalEntry> = codec::decode(payload, "registry journal")?;
    let bad = |detail: String| {
        Error::Corruption(sop_core::CorruptionError::Damaged {
            what: "registry journal",
            location: location.to_string(),
            detail,
        })
    };
    for e in &entries {
        match e {
            JournalEntry::Block {
                table,
                segment,
                image,
                ..
            } => {
                validate_store_name(table).map_err(|e| bad(e.to_string()))?;
                if *segment == 0 || image.len() != BLOCK_SIZE {
                    return Err(bad(format!(
                        "block of table {table}: segment {segment}, image of {} bytes",
                        image.len()
                    )));
                }
            }
            JournalEntry::PutFile { path, .. } | JournalEntry::RemoveFile { path } => {
                crate::registry::check_rel_path(path).map_err(|e| bad(e.to_string()))?;
            }
        }
    }
    Ok(Some(entries))
}

/// How many steps a journal holds (0 for a torn one); see `journal_entries`.
///
/// # Errors
/// As `journal_entries`.
pub fn journal(bytes: &[u8], location: &dyn Display) -> Result<usize> {
    Ok(journal_entries(bytes, location)?.map_or(0, |e| e.len()))
}

/// A store file (`stores/<name>.store`).
///
/// # Errors
/// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) or a decode error.
pub fn store_info(bytes: &[u8], location: &dyn Display) -> Result<StoreInfo> {
    if bytes.first() == Some(&1) {
        // Format 1: written before stores recorded their types.
        let payload = unseal(bytes, 1, "store info", location)?;
        let v1: sop_core::StoreInfoV1 = codec::decode(payload, "store info")?;
        return Ok(v1.into());
    }
    let payload = unseal(bytes, STORE_FORMAT_VERSION, "store info", location)?;
    codec::decode(payload, "store info")
}

/// `registry.conf`: the blocks per segment (hash mod) the registry was created with.
///
/// # Errors
/// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) or a decode error.
pub fn registry_conf(bytes: &[u8], location: &dyn Display) -> Result<u32> {
    let payload = unseal(bytes, CONF_FORMAT_VERSION, "registry config", location)?;
    codec::decode(payload, "registry config")
}

/// A replication `replication.status` file; returns its term.
///
/// # Errors
/// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) or a decode error.
pub fn replication_status(bytes: &[u8], location: &dyn Display) -> Result<u64> {
    Ok(crate::replicated::parse_status(bytes, location)?.term)
}

/// How many changes a `replication.delta` file holds (a torn last record ends it).
///
/// # Errors
/// A decode error for a record whose checksum holds but whose contents are malformed.
pub fn replication_delta(bytes: &[u8], location: &std::path::Path) -> Result<usize> {
    Ok(crate::replicated::parse_delta(bytes, location)?.len())
}
