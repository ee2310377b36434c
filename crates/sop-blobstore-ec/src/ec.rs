//! Reed-Solomon erasure coding of blobs across drives.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use sop_core::vfs::{FileSystem, read_file};
use sop_core::{Error, Result, Uuid};

use crate::BlobStore;
use crate::layout::{
    ShardHeader, blob_dir, check_table, remove_if_present, remove_table_dir, write_batch,
};

/// How one table's blobs are coded: `data_shards + parity_shards` shards, one per drive, in the
/// order of `drives`. Any `data_shards` intact shards rebuild a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureConfig {
    /// Data shards (at least 1).
    pub data_shards: u8,
    /// Parity shards (at least 1): how many drives may be lost.
    pub parity_shards: u8,
    /// One base folder per shard, each on its own drive; `data_shards + parity_shards` of them.
    pub drives: Vec<PathBuf>,
    /// Whether reads rewrite the shards they found missing or corrupt.
    pub repair: bool,
}

impl ErasureConfig {
    /// Checks the shape.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] saying what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidConfig {
                what: "erasure coding",
                reason,
            })
        };
        let n = usize::from(self.data_shards) + usize::from(self.parity_shards);
        if self.data_shards == 0 || self.parity_shards == 0 {
            return bad("data and parity shard counts must both be at least 1".into());
        }
        if n > 255 {
            return bad(format!("{n} shards, at most 255"));
        }
        if self.drives.len() != n {
            return bad(format!(
                "{}+{} shards need {n} drive folders, {} given",
                self.data_shards,
                self.parity_shards,
                self.drives.len()
            ));
        }
        let distinct: BTreeSet<_> = self.drives.iter().collect();
        if distinct.len() != n {
            return bad("drive folders must be distinct".into());
        }
        Ok(())
    }

    fn k(&self) -> usize {
        usize::from(self.data_shards)
    }
    fn m(&self) -> usize {
        usize::from(self.parity_shards)
    }
}

/// What [`EcBlobStore::scrub`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Blobs looked at.
    pub blobs: usize,
    /// Blobs whose every shard was intact.
    pub healthy: usize,
    /// Blobs with missing or corrupt shards that were rewritten.
    pub repaired: Vec<Uuid>,
    /// Blobs with missing or corrupt shards that can be rebuilt, left as they are (no repair
    /// asked).
    pub damaged: Vec<Uuid>,
    /// Blobs that could not be rebuilt, and why.
    pub unrecoverable: Vec<(Uuid, String)>,
}

/// Blobs split into shards across drives with Reed-Solomon coding (`reed-solomon-simd`).
///
/// Shard `i` of blob `id` is `<drive i>/<table>/ab/cd/<id>.<i>`: a 24-byte header (version,
/// index, shard counts, blob length, shard length, CRC32C of the shard, CRC32C of the header)
/// and the shard. Reads succeed with up to `parity_shards` shards missing or corrupt; writes
/// succeed while at most `parity_shards` drives fail, and otherwise leave nothing readable.
#[derive(Debug)]
pub struct EcBlobStore {
    fs: Arc<dyn FileSystem>,
    default: ErasureConfig,
    tables: HashMap<String, ErasureConfig>,
}

/// The shards of one blob as read, with what was wrong with the others.
struct Shards {
    shards: Vec<Option<Vec<u8>>>,
    blob_len: Option<u64>,
    problems: Vec<String>,
    all_missing: bool,
}

impl EcBlobStore {
    /// A store coding every table with `default`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the configuration does not validate.
    pub fn new(fs: Arc<dyn FileSystem>, default: ErasureConfig) -> Result<Self> {
        default.validate()?;
        Ok(EcBlobStore {
            fs,
            default,
            tables: HashMap::new(),
        })
    }

    /// Codes `table` with its own configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the configuration does not validate.
    pub fn with_table(mut self, table: &str, config: ErasureConfig) -> Result<Self> {
        check_table(table)?;
        config.validate()?;
        self.tables.insert(table.into(), config);
        Ok(self)
    }

    /// The configuration used for `table`.
    #[must_use]
    pub fn config(&self, table: &str) -> &ErasureConfig {
        self.tables.get(table).unwrap_or(&self.default)
    }

    /// The file of shard `index` of a blob.
    #[must_use]
    pub fn shard_path(&self, table: &str, id: Uuid, index: usize) -> PathBuf {
        let cfg = self.config(table);
        let drive = cfg.drives.get(index).cloned().unwrap_or_default();
        blob_dir(&drive, table, id).join(format!("{id}.{index}"))
    }

    fn encode(cfg: &ErasureConfig, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        split_encode(cfg.k(), cfg.m(), bytes)
    }

    fn shard_file(
        cfg: &ErasureConfig,
        index: usize,
        blob_len: u64,
        shard: &[u8],
    ) -> Result<Vec<u8>> {
        let header = ShardHeader {
            index: u8::try_from(index).map_err(|_| rs_error("shard index over 255"))?,
            data: cfg.data_shards,
            parity: cfg.parity_shards,
            blob_len,
            shard_len: u32::try_from(shard.len()).map_err(|_| rs_error("shard over 4 GiB"))?,
            crc: crc32c::crc32c(shard),
        };
        let mut file = header.encode().to_vec();
        file.extend_from_slice(shard);
        Ok(file)
    }

    /// Reads shards: the data shards only when `all` is false and they are intact, else all.
    fn read_shards(&self, table: &str, id: Uuid, all: bool) -> Shards {
        let cfg = self.config(table);
        let n = cfg.k() + cfg.m();
        let mut out = Shards {
            shards: vec![None; n],
            blob_len: None,
            problems: Vec::new(),
            all_missing: true,
        };
        for i in 0..n {
            if !all && i == cfg.k() && out.shards.iter().take(cfg.k()).all(Option::is_some) {
                break;
            }
            let path = self.shard_path(table, id, i);
            let file = match read_file(self.fs.as_ref(), &path) {
                Ok(f) => f,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        out.all_missing = false;
                    }
                    out.problems.push(format!("shard {i}: {e}"));
                    continue;
                }
            };
            out.all_missing = false;
            match ShardHeader::decode(&file) {
                Ok((h, body))
                    if usize::from(h.index) == i
                        && h.data == cfg.data_shards
                        && h.parity == cfg.parity_shards
                        && out.blob_len.is_none_or(|len| len == h.blob_len) =>
                {
                    out.blob_len = Some(h.blob_len);
                    out.shards[i] = Some(body.to_vec());
                }
                Ok((h, _)) => out.problems.push(format!(
                    "shard {i}: header says index {} of {}+{}, blob length {}",
                    h.index, h.data, h.parity, h.blob_len
                )),
                Err(why) => out.problems.push(format!("shard {i}: {why}")),
            }
        }
        out
    }

    /// Fills in the missing shards of `s` (data and parity). Needs at least `k` intact ones.
    fn rebuild(cfg: &ErasureConfig, table: &str, id: Uuid, s: &mut Shards) -> Result<()> {
        let (k, m) = (cfg.k(), cfg.m());
        let usable = s.shards.iter().filter(|x| x.is_some()).count();
        if usable < k {
            return Err(Error::TooManyShardsLost {
                table: table.into(),
                id,
                usable,
                needed: k,
                detail: s.problems.join("; "),
            });
        }
        reconstruct(k, m, &mut s.shards)
    }

    /// Rewrites the shards at `indexes` from a rebuilt set.
    fn rewrite(&self, table: &str, id: Uuid, s: &Shards, indexes: &[usize]) -> Result<()> {
        let cfg = self.config(table);
        let blob_len = s.blob_len.unwrap_or(0);
        for &i in indexes {
            if let Some(Some(shard)) = s.shards.get(i) {
                let file = Self::shard_file(cfg, i, blob_len, shard)?;
                write_batch(
                    self.fs.as_ref(),
                    &[(self.shard_path(table, id, i), file)],
                    true,
                )?;
            }
        }
        Ok(())
    }

    fn listing(&self, table: &str) -> Result<crate::BlobListing> {
        check_table(table)?;
        let mut out = crate::BlobListing::default();
        for drive in &self.config(table).drives {
            crate::layout::scan_table_dir(
                self.fs.as_ref(),
                drive,
                table,
                &mut out.ids,
                &mut out.temporary,
            );
        }
        Ok(out)
    }

    /// Reads every shard of every blob of `table` on every drive; with `repair`, rebuilds and
    /// rewrites missing or corrupt shards while enough are left.
    ///
    /// # Errors
    /// [`Error::InvalidStoreName`]; problems with single blobs go into the report.
    pub fn scrub(&self, table: &str, repair: bool) -> Result<ScrubReport> {
        let cfg = self.config(table);
        let ids = self.listing(table)?.ids;
        let mut report = ScrubReport::default();
        for id in ids {
            report.blobs += 1;
            let mut s = self.read_shards(table, id, true);
            let bad: Vec<usize> = (0..s.shards.len())
                .filter(|i| s.shards[*i].is_none())
                .collect();
            if bad.is_empty() {
                report.healthy += 1;
                continue;
            }
            if !repair {
                match Self::rebuild(cfg, table, id, &mut s) {
                    Ok(()) => report.damaged.push(id),
                    Err(e) => report.unrecoverable.push((id, e.to_string())),
                }
                continue;
            }
            let fixed = Self::rebuild(cfg, table, id, &mut s)
                .and_then(|()| self.rewrite(table, id, &s, &bad));
            match fixed {
                Ok(()) => report.repaired.push(id),
                Err(e) => report.unrecoverable.push((id, e.to_string())),
            }
        }
        Ok(report)
    }
}

/// Splits `bytes` into `k` equal data shards (zero-padded, even-sized, at least 2 bytes, as
/// `reed-solomon-simd` requires) and appends `m` parity shards.
///
/// # Errors
/// [`Error::InvalidConfig`] when the coder refuses the shape.
pub fn split_encode(k: usize, m: usize, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let shard_len = bytes.len().div_ceil(k.max(1)).max(2).next_multiple_of(2);
    let mut shards: Vec<Vec<u8>> = (0..k)
        .map(|i| {
            let start = (i * shard_len).min(bytes.len());
            let end = ((i + 1) * shard_len).min(bytes.len());
            let mut s = bytes[start..end].to_vec();
            s.resize(shard_len, 0);
            s
        })
        .collect();
    let parity = reed_solomon_simd::encode(k, m, &shards).map_err(rs_error)?;
    shards.extend(parity);
    Ok(shards)
}

/// Fills in every missing shard (data and parity) of a `k + m` set from any `k` present ones.
///
/// # Errors
/// [`Error::InvalidConfig`] when fewer than `k` shards are present or sizes differ.
pub fn reconstruct(k: usize, m: usize, shards: &mut [Option<Vec<u8>>]) -> Result<()> {
    if shards.iter().take(k).any(Option::is_none) {
        let originals = shards
            .iter()
            .take(k)
            .enumerate()
            .filter_map(|(i, x)| x.as_ref().map(|x| (i, x)));
        let recovery = shards
            .iter()
            .skip(k)
            .enumerate()
            .filter_map(|(i, x)| x.as_ref().map(|x| (i, x)));
        let restored = reed_solomon_simd::decode(k, m, originals, recovery).map_err(rs_error)?;
        for (i, shard) in restored {
            if let Some(slot) = shards.get_mut(i) {
                *slot = Some(shard);
            }
        }
    }
    if shards.iter().skip(k).any(Option::is_none) {
        let data: Vec<&Vec<u8>> = shards.iter().take(k).flatten().collect();
        let parity = reed_solomon_simd::encode(k, m, data).map_err(rs_error)?;
        for (i, shard) in parity.into_iter().enumerate() {
            if let Some(slot @ None) = shards.get_mut(k + i) {
                *slot = Some(shard);
            }
        }
    }
    Ok(())
}

fn rs_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidConfig {
        what: "erasure coding",
        reason: e.to_string(),
    }
}

impl EcBlobStore {
    fn write(&self, table: &str, blobs: &[(Uuid, &[u8])], synced: bool) -> Result<()> {
        check_table(table)?;
        let cfg = self.config(table);
        let n = cfg.k() + cfg.m();
        let mut per_drive: Vec<Vec<(PathBuf, Vec<u8>)>> = vec![Vec::new(); n];
        for (id, bytes) in blobs {
            let shards = Self::encode(cfg, bytes)?;
            for (i, shard) in shards.iter().enumerate() {
                let file = Self::shard_file(cfg, i, bytes.len() as u64, shard)?;
                per_drive[i].push((self.shard_path(table, *id, i), file));
            }
        }
        // One writer per drive, in parallel: a batch costs one round of syncs per drive.
        let fs = self.fs.as_ref();
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let workers: Vec<_> = per_drive
                .iter()
                .map(|files| scope.spawn(move || write_batch(fs, files, synced)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(rs_error("a shard writer panicked")))
                })
                .collect()
        });
        let failures: Vec<String> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("drive {i}: {e}")))
            .collect();
        if failures.len() > cfg.m() {
            // Too few shards landed to rebuild: take back what did land, so no partial blob is
            // ever readable.
            for files in &per_drive {
                for (path, _) in files {
                    let _ = remove_if_present(fs, path);
                }
            }
            return Err(Error::TooManyDrivesFailed {
                table: table.into(),
                failed: failures.len(),
                tolerated: cfg.m(),
                detail: failures.join("; "),
            });
        }
        Ok(())
    }
}

impl BlobStore for EcBlobStore {
    fn put(&self, table: &str, blobs: &[(Uuid, &[u8])]) -> Result<()> {
        self.write(table, blobs, true)
    }

    fn put_deferred(&self, table: &str, blobs: &[(Uuid, &[u8])]) -> Result<()> {
        self.write(table, blobs, false)
    }

    fn list(&self, table: &str) -> Result<crate::BlobListing> {
        self.listing(table)
    }

    fn scrub(&self, table: &str, repair: bool) -> Result<ScrubReport> {
        EcBlobStore::scrub(self, table, repair)
    }

    fn remove_temporary(&self, paths: &[std::path::PathBuf]) -> Result<()> {
        crate::layout::remove_temporary(self.fs.as_ref(), paths)
    }

    fn remove_table(&self, table: &str) -> Result<()> {
        let cfg = self.config(table);
        for drive in &cfg.drives {
            remove_table_dir(self.fs.as_ref(), drive, table)?;
        }
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        let fs = self.fs.as_ref();
        let mut cfgs: Vec<&ErasureConfig> = self.tables.values().collect();
        cfgs.push(&self.default);
        let mut seen = std::collections::BTreeSet::new();
        for cfg in cfgs {
            let mut failed: Vec<String> = Vec::new();
            for drive in &cfg.drives {
                if !seen.insert(drive.clone()) || !fs.exists(drive).unwrap_or(false) {
                    continue;
                }
                if let Err(e) = fs.sync_fs(drive) {
                    failed.push(format!("{}: {e}", drive.display()));
                }
            }
            if failed.len() > cfg.m() {
                return Err(Error::TooManyDrivesFailed {
                    table: String::new(),
                    failed: failed.len(),
                    tolerated: cfg.m(),
                    detail: failed.join("; "),
                });
            }
        }
        Ok(())
    }

    fn get(&self, table: &str, id: Uuid) -> Result<Vec<u8>> {
        check_table(table)?;
        let cfg = self.config(table);
        let mut s = self.read_shards(table, id, false);
        if s.all_missing && s.shards.iter().all(Option::is_none) {
            return Err(Error::BlobNotFound {
                table: table.into(),
                id,
            });
        }
        let missing_data: Vec<usize> = (0..cfg.k()).filter(|i| s.shards[*i].is_none()).collect();
        if !missing_data.is_empty() {
            // Some data shard is gone: read the parity shards too and rebuild.
            s = self.read_shards(table, id, true);
            let bad: Vec<usize> = (0..s.shards.len())
                .filter(|i| s.shards[*i].is_none())
                .collect();
            Self::rebuild(cfg, table, id, &mut s)?;
            if cfg.repair {
                // A failed repair must not fail a read that succeeded.
                let _ = self.rewrite(table, id, &s, &bad);
            }
        }
        let len = usize::try_from(s.blob_len.unwrap_or(0)).map_err(rs_error)?;
        let mut out = Vec::with_capacity(
            len.min(s.shards.iter().take(cfg.k()).flatten().map(Vec::len).sum()),
        );
        for shard in s.shards.iter().take(cfg.k()).flatten() {
            out.extend_from_slice(shard);
        }
        if out.len() < len {
            return Err(Error::Corruption {
                what: "erasure-coded blob",
                location: format!("{table}/{id}"),
                detail: format!("shards hold {} bytes, header says {len}", out.len()),
            });
        }
        out.truncate(len);
        Ok(out)
    }

    fn remove(&self, table: &str, ids: &[Uuid]) -> Result<()> {
        check_table(table)?;
        let cfg = self.config(table);
        let mut failed_drives = BTreeSet::new();
        let mut first = None;
        for id in ids {
            for i in 0..cfg.k() + cfg.m() {
                if let Err(e) = remove_if_present(self.fs.as_ref(), &self.shard_path(table, *id, i))
                {
                    failed_drives.insert(i);
                    first.get_or_insert(e);
                }
            }
        }
        // A dead drive must not stop garbage collection: its shards are unreadable anyway.
        match first {
            Some(e) if failed_drives.len() > cfg.m() => Err(e),
            _ => Ok(()),
        }
    }
}
