//! Where blob files go, and the shard header.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sop_core::vfs::FileSystem;
use sop_core::{Error, Result, Uuid, validate_store_name};

/// Format version of a plain blob file (a sealed frame, see `sop_core::codec::seal`).
pub const BLOB_FORMAT_VERSION: u8 = 1;
/// Format version of a shard file's header.
pub const SHARD_FORMAT_VERSION: u8 = 1;
/// Bytes of a shard header.
pub const SHARD_HEADER_LEN: usize = 24;

/// The folder of a blob: `<base>/<table>/<byte 0 hex>/<byte 1 hex>`.
pub(crate) fn blob_dir(base: &Path, table: &str, id: Uuid) -> PathBuf {
    let b = id.as_bytes();
    base.join(table)
        .join(format!("{:02x}", b[0]))
        .join(format!("{:02x}", b[1]))
}

/// Table names become folder names: the same rule as store names.
pub(crate) fn check_table(table: &str) -> Result<()> {
    validate_store_name(table)
}

/// Writes files in a batch. Durable (`synced`): each to a temporary name, synced, renamed, then
/// each distinct folder synced once. Deferred: each straight to its name, no sync; the caller
/// makes them durable with one file-system barrier (`FileSystem::sync_fs`) before anything
/// refers to them, and removes them if it crashes first.
pub(crate) fn write_batch(
    fs: &dyn FileSystem,
    files: &[(PathBuf, Vec<u8>)],
    synced: bool,
) -> Result<()> {
    let mut dirs = BTreeSet::new();
    for (path, bytes) in files {
        let dir = path.parent().unwrap_or(Path::new("."));
        if dirs.insert(dir.to_path_buf()) {
            fs.create_dir_all(dir)
                .map_err(Error::io("create folder", dir))?;
        }
        let written = if synced {
            sop_core::vfs::replace_file(fs, path, bytes)
        } else {
            sop_core::vfs::overwrite_file(fs, path, bytes)
        };
        written.map_err(Error::io("write", path))?;
    }
    if synced {
        for dir in &dirs {
            fs.sync_dir(dir).map_err(Error::io("sync folder", dir))?;
        }
    }
    Ok(())
}

/// Removes a file; one that is not there is fine.
pub(crate) fn remove_if_present(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    sop_core::vfs::remove_file_if_present(fs, path).map_err(Error::io("remove", path))
}

/// A shard file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShardHeader {
    pub index: u8,
    pub data: u8,
    pub parity: u8,
    pub blob_len: u64,
    pub shard_len: u32,
    pub crc: u32,
}

impl ShardHeader {
    /// ```text
    /// 0  version   1  index   2  data shards   3  parity shards
    /// 4..12  blob length (u64 LE)   12..16  shard length (u32 LE)
    /// 16..20 CRC32C of the shard bytes   20..24 CRC32C of bytes 0..20
    /// ```
    pub fn encode(&self) -> [u8; SHARD_HEADER_LEN] {
        let mut h = [0u8; SHARD_HEADER_LEN];
        h[0] = SHARD_FORMAT_VERSION;
        h[1] = self.index;
        h[2] = self.data;
        h[3] = self.parity;
        h[4..12].copy_from_slice(&self.blob_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.shard_len.to_le_bytes());
        h[16..20].copy_from_slice(&self.crc.to_le_bytes());
        let hcrc = crc32c::crc32c(&h[..20]);
        h[20..24].copy_from_slice(&hcrc.to_le_bytes());
        h
    }

    /// Parses and checks a shard file: header checksum, version, lengths and shard checksum.
    /// Returns the header and the shard bytes, or what is wrong.
    pub fn decode(file: &[u8]) -> std::result::Result<(ShardHeader, &[u8]), String> {
        let Some(h) = file.get(..SHARD_HEADER_LEN) else {
            return Err(format!("{} bytes, shorter than a shard header", file.len()));
        };
        let word = |r: std::ops::Range<usize>| {
            h.get(r)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_le_bytes)
        };
        if word(20..24) != crc32c::crc32c(&h[..20]) {
            return Err("header checksum mismatch".into());
        }
        if h[0] != SHARD_FORMAT_VERSION {
            return Err(format!("shard format version {}", h[0]));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&h[4..12]);
        let header = ShardHeader {
            index: h[1],
            data: h[2],
            parity: h[3],
            blob_len: u64::from_le_bytes(len8),
            shard_len: word(12..16),
            crc: word(16..20),
        };
        let body = &file[SHARD_HEADER_LEN..];
        if body.len() != header.shard_len as usize {
            return Err(format!(
                "{} shard bytes, header says {}",
                body.len(),
                header.shard_len
            ));
        }
        if crc32c::crc32c(body) != header.crc {
            return Err("shard checksum mismatch".into());
        }
        Ok((header, body))
    }
}

/// Removes a table's folder under `base` and syncs `base`; a missing folder is fine.
pub(crate) fn remove_table_dir(fs: &dyn FileSystem, base: &Path, table: &str) -> Result<()> {
    check_table(table)?;
    let dir = base.join(table);
    sop_core::vfs::remove_dir_all_if_present(fs, &dir).map_err(Error::io("remove", &dir))?;
    if fs.exists(base).map_err(Error::io("stat", base))? {
        fs.sync_dir(base).map_err(Error::io("sync folder", base))?;
    }
    Ok(())
}

/// What is in a table's folder under one drive or base: the blob ids whose file names parse
/// (`<id>` for plain blobs, `<id>.<shard>` for shards) and the leftover temporary files of
/// writes a crash interrupted (`*.tmp`, never referenced).
pub(crate) fn scan_table_dir(
    fs: &dyn FileSystem,
    base: &Path,
    table: &str,
    ids: &mut BTreeSet<Uuid>,
    temporary: &mut Vec<PathBuf>,
) {
    let root = base.join(table);
    let Ok(level1) = fs.list_dir(&root) else {
        return;
    };
    for a in level1 {
        let Ok(level2) = fs.list_dir(&root.join(&a)) else {
            continue;
        };
        for b in level2 {
            let dir = root.join(&a).join(&b);
            let Ok(names) = fs.list_dir(&dir) else {
                continue;
            };
            for n in names {
                if n.ends_with(".tmp") {
                    temporary.push(dir.join(&n));
                } else if let Ok(id) = n.split('.').next().unwrap_or_default().parse::<Uuid>() {
                    ids.insert(id);
                }
            }
        }
    }
}

/// Removes the `*.tmp` files among `paths` (anything else is left alone).
pub(crate) fn remove_temporary(fs: &dyn FileSystem, paths: &[PathBuf]) -> Result<()> {
    for p in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
    {
        remove_if_present(fs, p)?;
    }
    Ok(())
}
