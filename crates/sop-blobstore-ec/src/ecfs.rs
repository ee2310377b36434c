//! Erasure coding as a file layer: every file is striped over `k + m` drives with Reed-Solomon
//! parity, so the log on top survives `m` lost, failing or corrupt drives without knowing it.
//!
//! A file's bytes are cut into *stripes* of `k` units of [`EC_UNIT`] bytes; stripe `s` puts its
//! unit `j` on drive `j` (`j < k`) and its `m` parity units on drives `k..k+m`, each as one
//! 4,096-byte record at offset `s * 4096` of that drive's copy of the file:
//!
//! ```text
//! 0     4092  the unit's bytes (data or parity)
//! 4092  4     CRC32C of (stripe number u64 LE, drive index u8, the 4,092 bytes), u32 LE
//! ```
//!
//! A record whose checksum fails (bit rot, a torn write, a misplaced record) or that cannot be
//! read is an erasure; any `k` good records of a stripe rebuild it, and with `repair` the bad
//! ones are rewritten. A drive whose write or sync fails is marked failed and skipped until the
//! file system is opened again; more than `m` failed drives fail the call.
//!
//! Writes of whole stripes go straight down; a write covering part of a stripe reads the stripe
//! first (the log above aligns its frames to stripes, so it never rewrites a stripe that holds
//! a committed frame: no RAID write hole).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sop_core::vfs::{FileHandle, FileSystem};
use sop_core::{Error, Result};

use crate::ec::{ErasureConfig, reconstruct};

/// Bytes of file data in one record.
pub const EC_UNIT: usize = 4092;
/// Bytes of one record on a drive.
pub const EC_RECORD: usize = 4096;

/// What [`EcFs::scrub_file`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcScrub {
    /// Stripes read.
    pub stripes: u64,
    /// (stripe, drive) records that were missing or damaged.
    pub damaged: Vec<(u64, usize)>,
    /// Whether they were rewritten.
    pub repaired: bool,
    /// Stripes that could not be rebuilt (more than `m` records lost).
    pub unrecoverable: Vec<u64>,
}

struct Shared {
    inner: Arc<dyn FileSystem>,
    drives: Vec<PathBuf>,
    k: usize,
    m: usize,
    repair: bool,
    failed: Mutex<Vec<bool>>,
}

/// The erasure-coding file layer (see the module docs). Paths given to it are relative; drive
/// `i` holds its copy of `p` at `drives[i]/p`.
pub struct EcFs {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EcFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcFs")
            .field("drives", &self.shared.drives)
            .field("k", &self.shared.k)
            .field("m", &self.shared.m)
            .finish_non_exhaustive()
    }
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

fn record_crc(stripe: u64, drive: usize, unit: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(&stripe.to_le_bytes());
    c = crc32c::crc32c_append(c, &[u8::try_from(drive).unwrap_or(u8::MAX)]);
    crc32c::crc32c_append(c, unit)
}

fn seal_record(stripe: u64, drive: usize, unit: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(unit);
    out.extend_from_slice(&record_crc(stripe, drive, unit).to_le_bytes());
}

/// The unit in a record, if its checksum holds.
fn open_record(stripe: u64, drive: usize, rec: &[u8]) -> Option<&[u8]> {
    let (unit, crc) = rec.split_at_checked(EC_UNIT)?;
    let crc = u32::from_le_bytes(crc.try_into().ok()?);
    (record_crc(stripe, drive, unit) == crc).then_some(unit)
}

impl EcFs {
    /// An erasure-coded file layer over `inner` with `config`'s drives and shape.
    ///
    /// # Errors
    /// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) for a bad shape.
    pub fn new(inner: Arc<dyn FileSystem>, config: &ErasureConfig) -> Result<Self> {
        config.validate()?;
        let n = config.drives.len();
        Ok(EcFs {
            shared: Arc::new(Shared {
                inner,
                drives: config.drives.clone(),
                k: usize::from(config.data_shards),
                m: usize::from(config.parity_shards),
                repair: config.repair,
                failed: Mutex::new(vec![false; n]),
            }),
        })
    }

    /// Bytes of file data per stripe: what the log above aligns its frames to.
    #[must_use]
    pub fn stripe(&self) -> u64 {
        (self.shared.k * EC_UNIT) as u64
    }

    /// Drives marked failed since the layer was built.
    #[must_use]
    pub fn failed_drives(&self) -> Vec<usize> {
        self.shared
            .failed
            .lock()
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.then_some(i))
            .collect()
    }

    /// Reads every record of every stripe of `path` on every drive, checks it, and with
    /// `repair` rewrites the missing and damaged ones that can be rebuilt.
    ///
    /// # Errors
    /// I/O errors other than those of single records (which are findings).
    pub fn scrub_file(&self, path: &Path, repair: bool) -> Result<EcScrub> {
        // Repairing recreates a drive's copy that is missing altogether.
        let file = EcFile::open(&self.shared, path, repair)
            .map_err(Error::io("open", path.to_path_buf()))?;
        let stripes = file.stripes();
        let mut out = EcScrub {
            stripes,
            ..EcScrub::default()
        };
        for s in 0..stripes {
            let recs = file.read_records(s);
            let bad: Vec<usize> = (0..recs.len()).filter(|i| recs[*i].is_none()).collect();
            if bad.is_empty() {
                continue;
            }
            out.damaged.extend(bad.iter().map(|d| (s, *d)));
            if bad.len() > self.shared.m {
                out.unrecoverable.push(s);
                continue;
            }
            if repair {
                let mut units = recs;
                reconstruct(self.shared.k, self.shared.m, &mut units)?;
                for d in bad {
                    if let Some(unit) = &units[d] {
                        file.write_record(s, d, unit)
                            .map_err(Error::io("write", self.shared.at(d, path)))?;
                    }
                }
                out.repaired = true;
            }
        }
        if repair && out.repaired {
            file.sync_all(false)
                .map_err(Error::io("sync", path.to_path_buf()))?;
        }
        Ok(out)
    }
}

impl Shared {
    fn at(&self, drive: usize, rel: &Path) -> PathBuf {
        self.drives[drive].join(rel)
    }

    fn is_failed(&self, drive: usize) -> bool {
        self.failed.lock()[drive]
    }

    /// Marks a drive failed; an error when more than `m` are.
    fn fail(&self, drive: usize, e: &io::Error) -> io::Result<()> {
        let mut f = self.failed.lock();
        if !f[drive] {
            tracing::error!(drive = %self.drives[drive].display(), error = %e, "erasure-coded drive failed; going on with parity");
        }
        f[drive] = true;
        let n = f.iter().filter(|x| **x).count();
        if n > self.m {
            return Err(other(format!(
                "{n} of {} drives failed, parity covers {}: {e}",
                self.drives.len(),
                self.m
            )));
        }
        Ok(())
    }

    /// Runs `op` on every drive that is not failed, failing drives that error.
    fn each(&self, mut op: impl FnMut(usize) -> io::Result<()>) -> io::Result<()> {
        let mut last = None;
        let mut ok = 0;
        for d in 0..self.drives.len() {
            if self.is_failed(d) {
                continue;
            }
            match op(d) {
                Ok(()) => ok += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => last = Some(e),
                Err(e) => {
                    self.fail(d, &e)?;
                    last = Some(e);
                }
            }
        }
        match (ok, last) {
            (0, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

struct EcFile {
    shared: Arc<Shared>,
    rel: PathBuf,
    sides: Vec<Option<Box<dyn FileHandle>>>,
}

impl EcFile {
    fn open(shared: &Arc<Shared>, rel: &Path, create: bool) -> io::Result<EcFile> {
        let mut sides = Vec::with_capacity(shared.drives.len());
        let mut missing = 0;
        let mut last = None;
        for d in 0..shared.drives.len() {
            if shared.is_failed(d) {
                sides.push(None);
                missing += 1;
                continue;
            }
            match shared.inner.open(&shared.at(d, rel), create) {
                Ok(f) => sides.push(Some(f)),
                Err(e) => {
                    if create && e.kind() != io::ErrorKind::NotFound {
                        shared.fail(d, &e)?;
                    }
                    missing += 1;
                    sides.push(None);
                    last = Some(e);
                }
            }
        }
        if missing > shared.m {
            return Err(last.unwrap_or_else(|| other("no drive holds the file".into())));
        }
        Ok(EcFile {
            shared: Arc::clone(shared),
            rel: rel.to_path_buf(),
            sides,
        })
    }

    fn side(&self, d: usize) -> Option<&dyn FileHandle> {
        if self.shared.is_failed(d) {
            return None;
        }
        self.sides[d].as_deref()
    }

    /// Stripes on the drive that has the most.
    fn stripes(&self) -> u64 {
        (0..self.sides.len())
            .filter_map(|d| self.side(d).and_then(|f| f.size().ok()))
            .map(|s| s / EC_RECORD as u64)
            .max()
            .unwrap_or(0)
    }

    /// Every drive's unit of stripe `s`, `None` where it is missing or damaged. A stripe whose
    /// records are all zeros on at least `k` drives is a hole (a write past the end skipped
    /// it; a valid record is never all zeros, its checksum would have to be 0): zeros, and the
    /// drives that hold something else there are damaged.
    fn read_records(&self, s: u64) -> Vec<Option<Vec<u8>>> {
        let mut zero = vec![false; self.sides.len()];
        let mut units: Vec<Option<Vec<u8>>> = (0..self.sides.len())
            .map(|d| {
                let f = self.side(d)?;
                let mut rec = vec![0u8; EC_RECORD];
                let got = f.read_at(&mut rec, s * EC_RECORD as u64).ok()?;
                if got < EC_RECORD {
                    return None;
                }
                zero[d] = rec.iter().all(|b| *b == 0);
                open_record(s, d, &rec).map(<[u8]>::to_vec)
            })
            .collect();
        if zero.iter().filter(|z| **z).count() >= self.shared.k {
            for (d, u) in units.iter_mut().enumerate() {
                let zeros = zero[d] || u.as_ref().is_some_and(|u| u.iter().all(|b| *b == 0));
                *u = zeros.then(|| vec![0; EC_UNIT]);
            }
        }
        units
    }

    /// Whether some working drive's copy ends before stripe `s`.
    fn torn_at(&self, s: u64) -> bool {
        (0..self.sides.len()).any(|d| {
            self.side(d)
                .and_then(|f| f.size().ok())
                .is_some_and(|size| size < (s + 1) * EC_RECORD as u64)
        })
    }

    fn write_record(&self, s: u64, d: usize, unit: &[u8]) -> io::Result<()> {
        let Some(f) = self.side(d) else {
            return Ok(());
        };
        let mut rec = Vec::with_capacity(EC_RECORD);
        seal_record(s, d, unit, &mut rec);
        f.write_at(&rec, s * EC_RECORD as u64)
    }

    /// The data of stripe `s` (k units), rebuilt from parity when needed; `None` past the end.
    fn read_stripe(&self, s: u64, stripes: u64) -> io::Result<Option<Vec<u8>>> {
        if s >= stripes {
            return Ok(None);
        }
        let k = self.shared.k;
        let mut units = self.read_records(s);
        let bad: Vec<usize> = (0..units.len()).filter(|i| units[*i].is_none()).collect();
        if bad.len() > self.shared.m && self.torn_at(s) {
            // A stripe some drives never got: the tail of a write a crash cut short.
            return Ok(None);
        }
        if bad.iter().any(|d| *d < k) {
            reconstruct(k, self.shared.m, &mut units).map_err(|e| {
                other(format!(
                    "stripe {s} of {}: {} of {} records lost, parity covers {} ({e})",
                    self.rel.display(),
                    bad.len(),
                    units.len(),
                    self.shared.m
                ))
            })?;
        }
        if self.shared.repair && !bad.is_empty() && bad.len() <= self.shared.m {
            if !bad.iter().all(|d| units[*d].is_some()) {
                reconstruct(k, self.shared.m, &mut units).map_err(|e| other(e.to_string()))?;
            }
            for d in &bad {
                if let Some(u) = &units[*d] {
                    let _ = self.write_record(s, *d, u);
                }
            }
        }
        let mut data = Vec::with_capacity(k * EC_UNIT);
        for u in units.iter().take(k) {
            data.extend_from_slice(u.as_deref().unwrap_or(&[0; EC_UNIT]));
        }
        Ok(Some(data))
    }

    fn sync_all(&self, data_only: bool) -> io::Result<()> {
        self.shared.each(|d| match self.side(d) {
            Some(f) if data_only => f.sync_data(),
            Some(f) => f.sync(),
            None => Ok(()),
        })
    }
}

impl FileHandle for EcFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let stripe = (self.shared.k * EC_UNIT) as u64;
        let stripes = self.stripes();
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let s = at / stripe;
            let Some(data) = self.read_stripe(s, stripes)? else {
                break;
            };
            let from = usize::try_from(at - s * stripe).unwrap_or(0);
            let n = (data.len() - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[from..from + n]);
            done += n;
        }
        Ok(done)
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let k = self.shared.k;
        let m = self.shared.m;
        let stripe = (k * EC_UNIT) as u64;
        let first = offset / stripe;
        let last = (offset + data.len() as u64 - 1) / stripe;
        let stripes = self.stripes();
        let mut per_drive: Vec<Vec<u8>> = vec![Vec::new(); k + m];
        for s in first..=last {
            let start = s * stripe;
            let mut bytes = if offset <= start && offset + data.len() as u64 >= start + stripe {
                Vec::new()
            } else {
                self.read_stripe(s, stripes)?
                    .unwrap_or_else(|| vec![0; k * EC_UNIT])
            };
            if bytes.is_empty() {
                let from = usize::try_from(start - offset).unwrap_or(0);
                bytes.extend_from_slice(&data[from..from + k * EC_UNIT]);
            } else {
                let lo = offset.max(start);
                let hi = (offset + data.len() as u64).min(start + stripe);
                let src = usize::try_from(lo - offset).unwrap_or(0);
                let dst = usize::try_from(lo - start).unwrap_or(0);
                let n = usize::try_from(hi - lo).unwrap_or(0);
                bytes[dst..dst + n].copy_from_slice(&data[src..src + n]);
            }
            let units: Vec<&[u8]> = bytes.chunks(EC_UNIT).collect();
            let parity =
                reed_solomon_simd::encode(k, m, &units).map_err(|e| other(e.to_string()))?;
            for (d, unit) in units
                .iter()
                .copied()
                .chain(parity.iter().map(Vec::as_slice))
                .enumerate()
            {
                seal_record(s, d, unit, &mut per_drive[d]);
            }
        }
        let at = first * EC_RECORD as u64;
        self.shared.each(|d| match self.side(d) {
            Some(f) => f.write_at(&per_drive[d], at),
            None => Ok(()),
        })
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.stripes() * (self.shared.k * EC_UNIT) as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let stripe = (self.shared.k * EC_UNIT) as u64;
        let records = len.div_ceil(stripe) * EC_RECORD as u64;
        self.shared.each(|d| match self.side(d) {
            Some(f) => f.set_len(records),
            None => Ok(()),
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_all(false)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync_all(true)
    }
}

impl FileSystem for EcFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(EcFile::open(&self.shared, path, create)?))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        // Exclusive on the first drive that works; the others follow.
        let sh = &self.shared;
        let first = (0..sh.drives.len())
            .find(|d| !sh.is_failed(*d))
            .ok_or_else(|| other("every drive failed".into()))?;
        drop(sh.inner.create_new(&sh.at(first, path))?);
        self.open(path, true)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let sh = &self.shared;
        sh.each(|d| sh.inner.rename(&sh.at(d, from), &sh.at(d, to)))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let sh = &self.shared;
        sh.each(|d| sh.inner.remove_file(&sh.at(d, path)))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let sh = &self.shared;
        sh.each(|d| sh.inner.create_dir_all(&sh.at(d, path)))
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let sh = &self.shared;
        sh.each(|d| sh.inner.remove_dir_all(&sh.at(d, path)))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let sh = &self.shared;
        let mut names = std::collections::BTreeSet::new();
        sh.each(|d| {
            names.extend(sh.inner.list_dir(&sh.at(d, path))?);
            Ok(())
        })?;
        Ok(names.into_iter().collect())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let sh = &self.shared;
        sh.each(|d| sh.inner.sync_dir(&sh.at(d, path)))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let sh = &self.shared;
        let mut any = false;
        sh.each(|d| {
            any |= sh.inner.exists(&sh.at(d, path))?;
            Ok(())
        })?;
        Ok(any)
    }

    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        let sh = &self.shared;
        sh.each(|d| sh.inner.sync_fs(&sh.at(d, path)))
    }

    fn sync_count(&self) -> u64 {
        self.shared.inner.sync_count()
    }
}
