//! A folder moving between standalone and clustered mode.
//!
//! Standalone commits live in the log until a checkpoint writes them to the registry, and a
//! replay point (`meta/checkpoint`) says where the log must be replayed from. Clustered commits
//! go to the registry directly, through per-process journals (`meta/journals/`), and each
//! process writes log segments of its own, whose frames do not follow the standalone log.
//! So:
//!
//! - a clustered open of a folder last used standalone (a replay point, no marker) first opens
//!   it standalone and closes it (its log replayed, checkpointed), then writes the marker
//!   `meta/clustered` (synced); clustered processes never replay the log;
//! - a standalone open of a folder with the marker *adopts* it: every registry journal a
//!   clustered process left is finished, a new log segment is started after every existing one,
//!   a replay point naming it is written, and only then is the marker removed. The replay point
//!   is never used with clustered segments after it.

use std::path::Path;

use sop_blobstore_ec::SegmentLog;
use sop_core::meta::MetaBatch;
use sop_core::vfs::{FileSystem, remove_file_if_present, write_file_atomic};
use sop_core::{Error, Result};
use sop_registry::{REPLAY_POINT_FILE, Registry, RegistryOptions};
use sop_txn::{CheckpointRecord, EngineParts};

/// The marker of a folder in clustered use, relative to the registry folder.
pub(crate) const CLUSTERED_MARKER: &str = "clustered";

/// Whether the registry folder `meta` is marked as in clustered use.
pub(crate) fn is_clustered(fs: &dyn FileSystem, meta: &Path) -> Result<bool> {
    let p = meta.join(CLUSTERED_MARKER);
    fs.exists(&p).map_err(Error::io("stat", &p))
}

/// Whether the registry folder `meta` has a replay point (it was last used standalone).
pub(crate) fn has_replay_point(fs: &dyn FileSystem, meta: &Path) -> Result<bool> {
    let p = meta.join(REPLAY_POINT_FILE);
    fs.exists(&p).map_err(Error::io("stat", &p))
}

/// Marks `meta` as in clustered use (synced, with its folder).
pub(crate) fn mark_clustered(fs: &dyn FileSystem, meta: &Path) -> Result<()> {
    if !fs.exists(meta).map_err(Error::io("stat", meta))? {
        fs.create_dir_all(meta)
            .map_err(Error::io("create folder", meta))?;
        // The new folder's own entry, or a power cut could lose the registry inside it.
        if let Some(parent) = meta.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent)
                .map_err(Error::io("sync folder", parent))?;
        }
    }
    let p = meta.join(CLUSTERED_MARKER);
    write_file_atomic(fs, &p, b"sop-rs clustered\n").map_err(Error::io("write", &p))
}

/// Standalone open of a folder marked clustered: finishes the journals of clustered
/// processes, starts the log in a segment of its own and writes a replay point there, then
/// removes the marker. The caller holds the folder alone (the exclusive folder lock).
pub(crate) fn adopt(
    fs: &dyn FileSystem,
    meta_fs: std::sync::Arc<dyn FileSystem>,
    meta: &Path,
    parts: &EngineParts,
) -> Result<()> {
    // Opening the registry shared finishes every journal whose process is gone (all are).
    drop(Registry::open(
        meta_fs,
        meta,
        RegistryOptions {
            hash_mod: None,
            shared: true,
            checkpoint_bytes: 0,
        },
    )?);
    let mut options = parts.log_options;
    options.shared = true;
    let (log, _) = SegmentLog::open(
        std::sync::Arc::clone(&parts.log_fs),
        parts.log_dir.clone(),
        options,
        None,
    )?;
    let (lsn, pos) = log.durable();
    drop(log);
    let record = CheckpointRecord {
        lsn,
        segment: pos.segment,
        offset: pos.offset,
        next_lsn: pos.lsn,
    };
    parts
        .meta
        .apply(&MetaBatch::new().replay_point(record.encode()?))?;
    let p = meta.join(CLUSTERED_MARKER);
    remove_file_if_present(fs, &p).map_err(Error::io("remove", &p))?;
    fs.sync_dir(meta).map_err(Error::io("sync folder", meta))
}
