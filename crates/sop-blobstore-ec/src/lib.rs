//! The blob store of sop-rs: where node and value bytes live, by blob id.
//!
//! [`PlainBlobStore`] keeps one checksummed file per blob. [`EcBlobStore`] splits each blob into
//! data and parity shards with Reed-Solomon coding, one shard file per drive, so reads survive up
//! to `parity` lost or corrupt drives and can rewrite what was lost. Both are durable when `put`
//! returns: temporary file, fsync, rename, folder fsync.
//!
//! Files are spread over two levels of folders named after the id's first two bytes
//! (`<table>/ab/cd/<id>`), 65,536 leaf folders per table, so no folder gets millions of files.
//!
//! It is not: a cache, or aware of B-trees or transactions. All I/O goes through
//! [`sop_core::vfs::FileSystem`].

mod ec;
mod ecfs;
pub mod frame;
mod layout;
mod log;
mod plain;
mod segment;

pub use ec::{EcBlobStore, ErasureConfig, ScrubReport, reconstruct, split_encode};
pub use ecfs::{EC_RECORD, EC_UNIT, EcFs, EcScrub};
pub use layout::{BLOB_FORMAT_VERSION, SHARD_FORMAT_VERSION, SHARD_HEADER_LEN};
pub use log::{LogDamage, LogOptions, LogPos, ParsedSegment, Replay, SegmentLog, parse_segment};
pub use plain::PlainBlobStore;
pub use segment::{Fence, SegmentHeader, parse_segment_name, segment_name};

use sop_core::{Result, Uuid};

/// Blobs by table and id. Ids are never reused: a changed value or node gets a new id.
pub trait BlobStore: Send + Sync {
    /// Stores the blobs durably (all synced when it returns).
    ///
    /// # Errors
    /// I/O errors; for erasure coding, [`sop_core::Error::TooManyDrivesFailed`] when more drives
    /// fail than the parity tolerates, in which case none of the batch is left readable.
    fn put(&self, table: &str, blobs: &[(Uuid, &[u8])]) -> Result<()>;

    /// Writes the blobs without syncing them: they become durable at the next
    /// [`barrier`](BlobStore::barrier). For a commit that writes many blobs and wants one sync
    /// barrier per drive instead of one sync per blob; nothing may refer to them before the
    /// barrier returns, and whoever wrote them removes them if it crashes first.
    ///
    /// # Errors
    /// As [`BlobStore::put`].
    fn put_deferred(&self, table: &str, blobs: &[(Uuid, &[u8])]) -> Result<()>;

    /// Makes every blob written so far durable: one file-system barrier per drive.
    ///
    /// # Errors
    /// I/O errors; for erasure coding, [`sop_core::Error::TooManyDrivesFailed`] when more
    /// drives fail than the parity tolerates.
    fn barrier(&self) -> Result<()>;

    /// The blob's bytes, checked.
    ///
    /// # Errors
    /// [`sop_core::Error::BlobNotFound`], [`sop_core::Error::Corruption`] (plain) or
    /// [`sop_core::Error::TooManyShardsLost`] (erasure coding), I/O errors.
    fn get(&self, table: &str, id: Uuid) -> Result<Vec<u8>>;

    /// Removes the blobs; ids that are not there are skipped.
    ///
    /// # Errors
    /// I/O errors other than not-found.
    fn remove(&self, table: &str, ids: &[Uuid]) -> Result<()>;

    /// Removes a whole table (every blob of a removed store). A missing table is fine.
    ///
    /// # Errors
    /// I/O errors.
    fn remove_table(&self, table: &str) -> Result<()>;

    /// What is on disk for a table: the ids of its blobs and leftover temporary files. For
    /// verification and orphan clean-up, which run while nothing writes.
    ///
    /// # Errors
    /// [`sop_core::Error::InvalidStoreName`] for a bad table name.
    fn list(&self, table: &str) -> Result<BlobListing>;

    /// Reads every blob of the table and checks every checksum (each shard, with erasure
    /// coding). With `repair`, rewrites what can be rebuilt (missing or corrupt shards).
    ///
    /// # Errors
    /// [`sop_core::Error::InvalidStoreName`] for a bad table name.
    fn scrub(&self, table: &str, repair: bool) -> Result<ScrubReport>;

    /// Removes temporary files that [`BlobStore::list`] reported.
    ///
    /// # Errors
    /// I/O errors other than not-found.
    fn remove_temporary(&self, paths: &[std::path::PathBuf]) -> Result<()>;
}

/// What [`BlobStore::list`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobListing {
    /// Blobs present (with erasure coding: with at least one shard file).
    pub ids: std::collections::BTreeSet<Uuid>,
    /// Temporary files left by interrupted writes.
    pub temporary: Vec<std::path::PathBuf>,
}

/// Checks one erasure-coded shard file with the decoder reads use (header checksum, version,
/// lengths, shard checksum) and returns the shard's index, or what is wrong. Public for the fuzz
/// targets and `sop verify`.
///
/// # Errors
/// A description of the first problem found.
pub fn check_shard_file(file: &[u8]) -> std::result::Result<u8, String> {
    layout::ShardHeader::decode(file).map(|(h, _)| h.index)
}

/// Checks one plain blob file (a sealed frame) and returns its payload length.
///
/// # Errors
/// [`sop_core::Error::Corruption`] naming `location`.
pub fn check_plain_blob(file: &[u8], location: &dyn std::fmt::Display) -> sop_core::Result<usize> {
    sop_core::codec::unseal(file, BLOB_FORMAT_VERSION, "blob", location).map(<[u8]>::len)
}
