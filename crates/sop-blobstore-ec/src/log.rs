//! The log: an append-only sequence of frames over segment files, made durable by one
//! `fdatasync` per group of appends. Node versions, deltas and values are *pieces* inside data
//! frames and stay where they were written, addressed by [`Loc`]; commit records are record
//! frames, replayed on open from the last checkpoint. See ARCHITECTURE.md, "The log".
//!
//! Durability: [`SegmentLog::wait_durable`] returns once the frame with that LSN and every one
//! before it is on disk. A background thread does the syncing: whoever waits asks for a sync;
//! the thread syncs everything appended so far, so commits that append while a sync runs share
//! the next one (group commit). No caller's thread ever blocks in `fdatasync`.
//!
//! Failures: a write error leaves the log where it was (the next frame overwrites the partial
//! one). A sync error *fences* the log: a new segment starts whose header says where the last
//! durable frame of the old one ends, so the frames after it are void for good (their waiters
//! get an error, and a reopen never replays them); if even that fails, the log refuses every
//! call until reopened (in doubt).
//!
//! It is not: aware of what records mean (the transaction layer's business), or shared between
//! processes for writing (each clustered process appends to segments it created).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};
use sop_core::vfs::{FileHandle, FileSystem};
use sop_core::{Error, Loc, Result};

use crate::blocking::blocking;
use crate::frame::{self, FRAME_ALIGN, FRAME_HEADER_LEN, FrameHeader, FrameKind, frame_len};
use crate::segment::{Fence, SegmentHeader, Segments, header_frame_len};

/// How a log is laid out and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment is closed once appending would take it past this size (a single bigger frame
    /// gets a segment of its own). Default 16 MiB; at most 4 GiB.
    pub segment_bytes: u64,
    /// Zeros written ahead of the end, so a commit's `fdatasync` finds its blocks allocated
    /// and flushes no metadata. Default 1 MiB.
    pub prealloc_bytes: u64,
    /// Many processes share the folder (clustered mode): each creates segments of its own
    /// (numbered by exclusive creation) and nothing is replayed on open.
    pub shared: bool,
    /// Frames of new segments start at multiples of this: 8, or the stripe of an
    /// erasure-coded file layer (so no stripe holding a frame is ever written again).
    pub align: u64,
    /// Opened to read only: replayed as it is (a torn tail or damage is reported, never
    /// fenced or cut), no sync thread, every append refused; nothing is written.
    pub read_only: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 16 << 20,
            prealloc_bytes: 1 << 20,
            shared: false,
            align: FRAME_ALIGN,
            read_only: false,
        }
    }
}

/// A position in the log: the frame at `offset` of `segment` will have (or has) LSN `lsn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPos {
    /// The segment.
    pub segment: u32,
    /// The byte offset in it.
    pub offset: u64,
    /// The LSN of the frame there.
    pub lsn: u64,
}

/// What opening found wrong in the log: the first frame that could not be read, and whether
/// frames after it exist (then commits were lost: reported, never silently dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDamage {
    /// The segment file.
    pub file: PathBuf,
    /// Where the unreadable frame starts.
    pub offset: u64,
    /// The LSN that frame should have had: it and every later frame were not replayed.
    pub lsn: u64,
    /// What was found after it.
    pub detail: String,
}

/// What [`SegmentLog::open`] replayed.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    /// Every intact record frame from the start position, in order: (LSN, payload).
    pub records: Vec<(u64, Vec<u8>)>,
    /// Where the log goes on.
    pub end: LogPos,
    /// Damage that stopped the replay before the end of what is on disk.
    pub damage: Option<LogDamage>,
}

struct Writer {
    seg: u32,
    /// The alignment of the segment being written.
    align: u64,
    file: Arc<dyn FileHandle>,
    end: u64,
    alloc_end: u64,
    next_lsn: u64,
    next_seg: u32,
    poisoned: Option<String>,
    /// A file of zeros made durable ahead by the sync thread (`next.spare`), renamed into the
    /// next segment at a roll, so a roll costs no sync on the appending thread; its length.
    spare: Option<(Arc<dyn FileHandle>, u64)>,
    /// Rolls onto a spare so far, and how many of those renames a folder sync covers: the
    /// sync thread syncs the folder before it acknowledges frames of a renamed segment.
    renames: u64,
    renames_synced: u64,
}

/// The durability state everyone waits on.
#[derive(Clone, Debug, Default)]
struct SyncView {
    /// Every frame up to this LSN is durable.
    durable_lsn: u64,
    /// Where the frame after it goes.
    durable_pos: LogPos,
    /// LSN ranges (inclusive) made void by a fence: their commits failed.
    voids: Arc<Vec<(u64, u64)>>,
    /// Set when the log could not fence a failed sync: everything is in doubt until reopen.
    poisoned: Option<Arc<str>>,
}

impl SyncView {
    fn outcome(&self, lsn: u64, dir: &Path) -> Option<Result<()>> {
        if self.voids.iter().any(|(a, b)| (*a..=*b).contains(&lsn)) {
            return Some(Err(Error::Storage(sop_core::StorageError::Io {
                op: "sync",
                path: dir.to_path_buf(),
                source: std::io::Error::other(
                    "the log could not be made durable; the commit did not happen (retry it)",
                ),
            })));
        }
        if self.durable_lsn >= lsn {
            return Some(Ok(()));
        }
        self.poisoned.as_ref().map(|cause| {
            Err(Error::Transaction(sop_core::TransactionError::Poisoned {
                store: format!("log at {}", dir.display()),
                cause: cause.to_string(),
            }))
        })
    }
}

struct Ctl {
    requested: u64,
    stop: bool,
}

struct Inner {
    segs: Segments,
    opts: LogOptions,
    writer: Mutex<Writer>,
    ctl: Mutex<Ctl>,
    ctl_cv: Condvar,
    view: Mutex<SyncView>,
    view_cv: Condvar,
    watch: tokio::sync::watch::Sender<SyncView>,
    group_syncs: AtomicU64,
    fences: AtomicU64,
}

/// The log of one folder. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct SegmentLog {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog")
            .field("dir", &self.inner.segs.dir)
            .finish_non_exhaustive()
    }
}

/// The name of the spare segment file made ahead (never a segment's name).
const SPARE_FILE: &str = "next.spare";

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl SegmentLog {
    /// Opens (or creates) the log in `dir`. Unless shared, replays it from `from` (the position
    /// a checkpoint recorded; `None`: from the very start, which must then be segment 1) and
    /// goes on after the last intact frame. Damage that hides later frames is reported in
    /// [`Replay::damage`], and the log then goes on in a new segment that fences the damaged
    /// part off, so nothing is appended over it.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) when the start position points at a missing segment or the log
    /// does not start where it must; I/O errors.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: impl Into<PathBuf>,
        opts: LogOptions,
        from: Option<LogPos>,
    ) -> Result<(SegmentLog, Replay)> {
        let dir = dir.into();
        if opts.align < FRAME_ALIGN
            || !opts.align.is_multiple_of(FRAME_ALIGN)
            || opts.align > 1 << 20
        {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "log",
                reason: format!(
                    "frame alignment {} must be a multiple of 8 up to 1 MiB",
                    opts.align
                ),
            }));
        }
        if opts.segment_bytes > u64::from(u32::MAX) || opts.segment_bytes < 4096 {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "log",
                reason: format!(
                    "segment size {} is out of range 4096..=4 GiB",
                    opts.segment_bytes
                ),
            }));
        }
        if opts.read_only {
            return Self::open_read_only(fs, dir, opts, from);
        }
        if !fs.exists(&dir).map_err(Error::io("stat", &dir))? {
            fs.create_dir_all(&dir)
                .map_err(Error::io("create folder", &dir))?;
            if let Some(parent) = dir.parent() {
                fs.sync_dir(parent)
                    .map_err(Error::io("sync folder", parent))?;
            }
        }
        let segs = Segments::new(Arc::clone(&fs), dir.clone());
        // A spare left by the last run is zeros nothing refers to.
        let spare = dir.join(SPARE_FILE);
        sop_core::vfs::remove_file_if_present(fs.as_ref(), &spare)
            .map_err(Error::io("remove", &spare))?;
        let list = segs.list()?;
        let (writer, replay) = if opts.shared || list.is_empty() {
            let next = list.last().map_or(1, |n| n + 1);
            (Self::create_first(&segs, &opts, next)?, Replay::default())
        } else {
            let (replay, max_seen) = scan(&segs, from)?;
            (
                Self::resume(&segs, &opts, &list, &replay, max_seen)?,
                replay,
            )
        };
        let durable = LogPos {
            segment: writer.seg,
            offset: writer.end,
            lsn: writer.next_lsn,
        };
        let view = SyncView {
            durable_lsn: writer.next_lsn - 1,
            durable_pos: durable,
            ..SyncView::default()
        };
        let inner = Inner::assemble(segs, opts, writer, view);
        let worker = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("sop-log-sync".into())
            .spawn(move || worker.run_syncer())
            .map_err(Error::io("start the log's sync thread", &dir))?;
        Ok((
            SegmentLog {
                inner,
                thread: Some(thread),
            },
            replay,
        ))
    }

    /// The log as it is on disk, to read: replayed from `from`, appends refused (no sync
    /// thread: nothing is ever waited for).
    fn open_read_only(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        opts: LogOptions,
        from: Option<LogPos>,
    ) -> Result<(SegmentLog, Replay)> {
        let segs = Segments::new(Arc::clone(&fs), dir.clone());
        let list = if fs.exists(&dir).map_err(Error::io("stat", &dir))? {
            segs.list()?
        } else {
            Vec::new()
        };
        let Some(&last) = list.last() else {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "read-only open",
                reason: format!(
                    "{} holds no log segment: not a database, or one never opened to write",
                    dir.display()
                ),
            }));
        };
        let (replay, _) = scan(&segs, from)?;
        let path = segs.path(last);
        let file: Arc<dyn FileHandle> =
            Arc::from(fs.open(&path, false).map_err(Error::io("open", &path))?);
        let writer = Writer {
            seg: last,
            align: opts.align,
            file,
            end: replay.end.offset,
            alloc_end: replay.end.offset,
            next_lsn: replay.end.lsn,
            next_seg: last + 1,
            poisoned: Some("the log was opened read-only".into()),
            spare: None,
            renames: 0,
            renames_synced: 0,
        };
        let view = SyncView {
            durable_lsn: writer.next_lsn - 1,
            durable_pos: replay.end,
            ..SyncView::default()
        };
        let inner = Inner::assemble(segs, opts, writer, view);
        Ok((
            SegmentLog {
                inner,
                thread: None,
            },
            replay,
        ))
    }

    /// A new segment `n` to start writing in (a new log, or a clustered process's own).
    fn create_first(segs: &Segments, opts: &LogOptions, n: u32) -> Result<Writer> {
        let mut n = n;
        loop {
            match new_segment(segs, opts, n, 1, None) {
                Ok((file, end)) => {
                    return Ok(Writer {
                        seg: n,
                        align: opts.align,
                        file,
                        end,
                        alloc_end: end + opts.prealloc_bytes,
                        next_lsn: 2,
                        next_seg: n + 1,
                        poisoned: None,
                        spare: None,
                        renames: 0,
                        renames_synced: 0,
                    });
                }
                // Another process took this number: the next one.
                Err(Error::Storage(sop_core::StorageError::Io { source, .. }))
                    if opts.shared && source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Goes on after a replay: at its end, or in a fence segment after damage.
    fn resume(
        segs: &Segments,
        opts: &LogOptions,
        list: &[u32],
        replay: &Replay,
        max_seen: u64,
    ) -> Result<Writer> {
        let end = replay.end;
        // Segments after the end whose header was never completed (a roll cut short) hold
        // nothing that was acknowledged: they go, so numbering stays contiguous.
        if replay.damage.is_none() {
            for &n in list.iter().filter(|n| **n > end.segment) {
                if segs.header(n)?.is_none() {
                    let p = segs.path(n);
                    segs.fs.remove_file(&p).map_err(Error::io("remove", &p))?;
                }
            }
        }
        let max = segs.list()?.last().copied().unwrap_or(end.segment);
        let file = segs.file(end.segment)?;
        let path = segs.path(end.segment);
        let size = file.size().map_err(Error::io("stat", &path))?;
        // What was replayed is made durable before anything is built on it (a process crash
        // can leave it in the page cache only).
        file.sync_data().map_err(Error::io("sync", &path))?;
        if replay.damage.is_none() && end.offset < size {
            // A torn tail (frames cut by a crash, never acknowledged): zeros over it, so the
            // segment holds frames then zeros, as a sound one does.
            let mut at = end.offset;
            while at < size {
                let k = usize::try_from(size - at)
                    .unwrap_or(ZEROS.len())
                    .min(ZEROS.len());
                file.write_at(&ZEROS[..k], at)
                    .map_err(Error::io("write", &path))?;
                at += k as u64;
            }
        }
        let align = segs.header(end.segment)?.map_or(opts.align, |h| h.align);
        let mut w = Writer {
            seg: end.segment,
            align,
            file,
            end: end.offset,
            alloc_end: size,
            next_lsn: end.lsn,
            next_seg: max + 1,
            poisoned: None,
            spare: None,
            renames: 0,
            renames_synced: 0,
        };
        if replay.damage.is_some() {
            w.next_lsn = max_seen.max(end.lsn) + 1;
            let fence = Fence {
                segment: end.segment,
                end: end.offset,
                last_lsn: end.lsn - 1,
            };
            roll(segs, opts, &mut w, Some(fence), 0)?;
        }
        Ok(w)
    }

    /// Appends `pieces` (node versions, deltas, values) in data frames and returns where each
    /// is, and the LSN of the last frame written. Nothing is durable until a later
    /// [`SegmentLog::wait_durable`] covers that LSN.
    ///
    /// # Errors
    /// I/O errors (nothing written is referenced then), [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned) after a failed
    /// fence, [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) for a piece of 4 GiB or more.
    pub fn append_pieces(&self, pieces: &[&[u8]]) -> Result<(Vec<Loc>, u64)> {
        let mut locs = Vec::with_capacity(pieces.len());
        let mut last = 0;
        // Frames of at most a quarter segment each, so a big commit fills segments evenly.
        let cap = usize::try_from(self.inner.opts.segment_bytes / 4).unwrap_or(usize::MAX);
        let mut start = 0;
        while start < pieces.len() {
            let mut end = start + 1;
            let mut bytes = pieces[start].len();
            while end < pieces.len() && bytes + pieces[end].len() <= cap {
                bytes += pieces[end].len();
                end += 1;
            }
            let group = &pieces[start..end];
            let (lsn, seg, off) = self.inner.append(FrameKind::Data, group)?;
            let mut at = off + FRAME_HEADER_LEN as u64;
            for p in group {
                locs.push(Loc {
                    segment: seg,
                    offset: u32::try_from(at).map_err(|_| too_big(at))?,
                    len: u32::try_from(p.len()).map_err(|_| too_big(p.len() as u64))?,
                    crc: crc32c::crc32c(p),
                });
                at += p.len() as u64;
            }
            last = lsn;
            start = end;
        }
        Ok((locs, last))
    }

    /// Appends a record frame (a commit) and returns its LSN.
    ///
    /// # Errors
    /// As [`SegmentLog::append_pieces`].
    pub fn append_record(&self, payload: &[u8]) -> Result<u64> {
        Ok(self.inner.append(FrameKind::Record, &[payload])?.0)
    }

    /// The piece at `loc`, checked against its checksum.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) naming the segment file and offset when the bytes are short or do
    /// not match, or the segment is missing; I/O errors.
    pub fn read(&self, loc: Loc) -> Result<Vec<u8>> {
        let segs = &self.inner.segs;
        let bad = |detail: &str| {
            Error::Corruption(sop_core::CorruptionError::Damaged {
                what: "log piece",
                location: format!("{} offset {}", segs.path(loc.segment).display(), loc.offset),
                detail: detail.into(),
            })
        };
        let bytes = segs
            .read_exact(loc.segment, u64::from(loc.offset), loc.len as usize)?
            .ok_or_else(|| bad("the segment file ends before the piece (truncated)"))?;
        if crc32c::crc32c(&bytes) != loc.crc {
            return Err(bad("checksum mismatch"));
        }
        Ok(bytes)
    }

    /// Waits until the frame `lsn` and everything before it is durable.
    ///
    /// # Errors
    /// An I/O error when a failed sync voided the frame (it will never be replayed: not
    /// committed); [`TransactionError::Poisoned`](sop_core::TransactionError::Poisoned) when the log could not fence the failure (in doubt).
    pub async fn wait_durable(&self, lsn: u64) -> Result<()> {
        let mut rx = self.inner.watch.subscribe();
        self.inner.request(lsn);
        loop {
            if let Some(r) = rx.borrow_and_update().outcome(lsn, &self.inner.segs.dir) {
                return r;
            }
            if rx.changed().await.is_err() {
                return Err(self.inner.closed());
            }
        }
    }

    /// [`SegmentLog::wait_durable`] for a thread with no async runtime.
    ///
    /// # Errors
    /// As [`SegmentLog::wait_durable`].
    pub fn wait_durable_blocking(&self, lsn: u64) -> Result<()> {
        self.inner.request(lsn);
        let mut v = self.inner.view.lock();
        loop {
            if let Some(r) = v.outcome(lsn, &self.inner.segs.dir) {
                return r;
            }
            self.inner.view_cv.wait(&mut v);
        }
    }

    /// Makes everything appended so far durable (blocking).
    ///
    /// # Errors
    /// As [`SegmentLog::wait_durable`].
    pub fn flush(&self) -> Result<()> {
        let last = self.inner.writer.lock().next_lsn - 1;
        self.wait_durable_blocking(last)
    }

    /// The last durable LSN and the position after it (where a checkpoint starts a replay).
    #[must_use]
    pub fn durable(&self) -> (u64, LogPos) {
        let v = self.inner.view.lock();
        (v.durable_lsn, v.durable_pos)
    }

    /// LSN ranges (inclusive) a failed sync made void, and how many fences there were.
    #[must_use]
    pub fn voids(&self) -> (u64, Vec<(u64, u64)>) {
        let v = self.inner.view.lock();
        (
            self.inner.fences.load(Ordering::Acquire),
            v.voids.as_ref().clone(),
        )
    }

    /// How many group syncs the log has done (each one `fdatasync`).
    #[must_use]
    pub fn group_syncs(&self) -> u64 {
        self.inner.group_syncs.load(Ordering::Relaxed)
    }

    /// The segment being written.
    #[must_use]
    pub fn current_segment(&self) -> u32 {
        self.inner.writer.lock().seg
    }

    /// The LSN the next frame will get.
    #[must_use]
    pub fn next_lsn(&self) -> u64 {
        self.inner.writer.lock().next_lsn
    }

    /// The segment numbers on disk, ascending.
    ///
    /// # Errors
    /// I/O errors.
    pub fn segments(&self) -> Result<Vec<u32>> {
        self.inner.segs.list()
    }

    /// The file of segment `n`.
    #[must_use]
    pub fn path_of(&self, n: u32) -> PathBuf {
        self.inner.segs.path(n)
    }

    /// The log's folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.segs.dir
    }

    /// Bytes in segment `n`'s file.
    ///
    /// # Errors
    /// I/O errors; corruption when it is missing.
    pub fn segment_size(&self, n: u32) -> Result<u64> {
        let f = self.inner.segs.file(n)?;
        f.size().map_err(Error::io("stat", self.inner.segs.path(n)))
    }

    /// Removes segment `n` (space reclamation: nothing may point into it any more). The
    /// segment being written is never removed.
    ///
    /// # Errors
    /// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) for the segment being written; I/O errors.
    pub fn remove_segment(&self, n: u32) -> Result<()> {
        if self.inner.writer.lock().seg == n {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "log",
                reason: format!("segment {n} is being written"),
            }));
        }
        self.inner.segs.forget(n);
        let p = self.inner.segs.path(n);
        sop_core::vfs::remove_file_if_present(self.inner.segs.fs.as_ref(), &p)
            .map_err(Error::io("remove", &p))
    }

    /// Makes the removals of segments durable (one folder sync).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync_folder(&self) -> Result<()> {
        let d = &self.inner.segs.dir;
        self.inner
            .segs
            .fs
            .sync_dir(d)
            .map_err(Error::io("sync folder", d))
    }

    /// Whether segment `n` holds only zeros from `offset` to its end (what follows the last
    /// frame of a sound segment).
    ///
    /// # Errors
    /// I/O errors.
    pub fn zeros_from(&self, n: u32, offset: u64) -> Result<bool> {
        let segs = &self.inner.segs;
        let f = segs.file(n)?;
        let size = f.size().map_err(Error::io("stat", segs.path(n)))?;
        let mut at = offset;
        let mut buf = vec![0u8; 1 << 20];
        while at < size {
            let len = usize::try_from(size - at)
                .unwrap_or(buf.len())
                .min(buf.len());
            let got = f
                .read_at(&mut buf[..len], at)
                .map_err(Error::io("read", segs.path(n)))?;
            if got == 0 {
                break;
            }
            if buf[..got].iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += got as u64;
        }
        Ok(true)
    }

    /// Segment `n`'s header, `None` when it has none (a creation cut short).
    ///
    /// # Errors
    /// I/O errors.
    pub fn header(&self, n: u32) -> Result<Option<SegmentHeader>> {
        self.inner.segs.header(n)
    }

    /// Every frame of segment `n` that can be read from its start: (offset, header, payload).
    /// For verification and compaction.
    ///
    /// # Errors
    /// I/O errors.
    pub fn frames(&self, n: u32) -> Result<Vec<(u64, FrameHeader, Vec<u8>)>> {
        let segs = &self.inner.segs;
        let f = segs.file(n)?;
        let size = f.size().map_err(Error::io("stat", segs.path(n)))?;
        let mut out = Vec::new();
        let align = segs.header(n)?.map_or(FRAME_ALIGN, |h| h.align);
        let mut off = 0u64;
        let mut prev: Option<u64> = None;
        while let Some((h, payload)) = read_frame(segs, n, off, size)? {
            if prev.is_some_and(|p| h.lsn != p + 1) {
                break;
            }
            prev = Some(h.lsn);
            let len = h.frame_len(align);
            out.push((off, h, payload));
            off += len;
        }
        Ok(out)
    }
}

impl Drop for SegmentLog {
    fn drop(&mut self) {
        self.inner.ctl.lock().stop = true;
        self.inner.ctl_cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Zeros nothing refers to: not left for `du` to count.
        if self.inner.writer.lock().spare.take().is_some() {
            let p = self.inner.segs.dir.join(SPARE_FILE);
            let _ = sop_core::vfs::remove_file_if_present(self.inner.segs.fs.as_ref(), &p);
        }
    }
}

/// The frames of a whole segment file held in memory, read the way a replay reads them (for
/// `sop verify`, the decoder tests and the fuzz targets).
#[derive(Debug)]
pub struct ParsedSegment<'a> {
    /// The segment's header.
    pub header: SegmentHeader,
    /// Every frame in order after the header: (offset, header, payload).
    pub frames: Vec<(u64, FrameHeader, &'a [u8])>,
    /// Where the readable frames end.
    pub end: u64,
    /// Whether everything after `end` is zeros (a sound segment), and every frame's padding.
    pub clean: bool,
}

/// Reads a segment file's bytes: its header, then frames while each is intact and has the next
/// LSN.
///
/// # Errors
/// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) when the bytes do not start with a segment header.
pub fn parse_segment(bytes: &[u8]) -> Result<ParsedSegment<'_>> {
    let header = SegmentHeader::decode(bytes).ok_or_else(|| {
        Error::Corruption(sop_core::CorruptionError::Damaged {
            what: "log segment",
            location: "byte 0".into(),
            detail: "no valid segment header".into(),
        })
    })?;
    let mut frames = Vec::new();
    let align = header.align;
    let mut off = header.frame_len();
    let mut expect = header.lsn + 1;
    let mut clean = usize::try_from(off).ok().is_some_and(|end| {
        bytes
            .get(FRAME_HEADER_LEN + crate::segment::SEGMENT_HEADER_PAYLOAD..end)
            .is_some_and(|p| p.iter().all(|b| *b == 0))
    });
    while let Ok(at) = usize::try_from(off) {
        let Some(h) = bytes.get(at..).and_then(FrameHeader::decode) else {
            break;
        };
        if h.lsn != expect || h.kind == FrameKind::SegmentHeader {
            break;
        }
        let start = at + FRAME_HEADER_LEN;
        let Some(payload) = bytes.get(start..start + h.len as usize) else {
            break;
        };
        if !frame::payload_ok(&h, payload) {
            break;
        }
        let end = usize::try_from(off + h.frame_len(align)).unwrap_or(usize::MAX);
        clean &= bytes
            .get(start + h.len as usize..end.min(bytes.len()))
            .is_some_and(|p| p.iter().all(|b| *b == 0));
        frames.push((off, h, payload));
        off += h.frame_len(align);
        expect += 1;
    }
    let rest = usize::try_from(off).map_or(&[][..], |o| bytes.get(o..).unwrap_or_default());
    clean &= rest.iter().all(|b| *b == 0);
    Ok(ParsedSegment {
        header,
        frames,
        end: off,
        clean,
    })
}

fn too_big(n: u64) -> Error {
    Error::Usage(sop_core::UsageError::InvalidConfig {
        what: "log",
        reason: format!("offset or length {n} does not fit a segment (4 GiB at most)"),
    })
}

impl Inner {
    /// The shared state of a log writing (or, read-only, refusing to write) with `writer`,
    /// everything up to `view` durable.
    fn assemble(segs: Segments, opts: LogOptions, writer: Writer, view: SyncView) -> Arc<Inner> {
        let (watch, _) = tokio::sync::watch::channel(view.clone());
        Arc::new(Inner {
            segs,
            opts,
            writer: Mutex::new(writer),
            ctl: Mutex::new(Ctl {
                requested: 0,
                stop: false,
            }),
            ctl_cv: Condvar::new(),
            view: Mutex::new(view),
            view_cv: Condvar::new(),
            watch,
            group_syncs: AtomicU64::new(0),
            fences: AtomicU64::new(0),
        })
    }
    fn closed(&self) -> Error {
        Error::Transaction(sop_core::TransactionError::Poisoned {
            store: format!("log at {}", self.segs.dir.display()),
            cause: "the log was closed".into(),
        })
    }

    fn append(&self, kind: FrameKind, parts: &[&[u8]]) -> Result<(u64, u32, u64)> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut w = self.writer.lock();
        if let Some(cause) = &w.poisoned {
            return Err(Error::Transaction(sop_core::TransactionError::Poisoned {
                store: format!("log at {}", self.segs.dir.display()),
                cause: cause.clone(),
            }));
        }
        if w.end > header_frame_len(w.align)
            && w.end + frame_len(len, w.align) > self.opts.segment_bytes
        {
            let durable = self.view.lock().durable_lsn;
            // Usually no sync (a spare is ready); when there is one, tokio is told.
            if blocking(|| roll(&self.segs, &self.opts, &mut w, None, durable))? {
                self.publish_durable(w.next_lsn - 1, position(&w));
            }
        }
        let flen = frame_len(len, w.align);
        if w.end + flen > u64::from(u32::MAX) {
            return Err(too_big(w.end + flen));
        }
        let bytes = frame::build(kind, w.next_lsn, parts, w.align)?;
        let at = w.end;
        w.file
            .write_at(&bytes, at)
            .map_err(Error::io("write", self.segs.path(w.seg)))?;
        let lsn = w.next_lsn;
        w.end += flen;
        w.next_lsn += 1;
        Ok((lsn, w.seg, at))
    }

    fn request(&self, lsn: u64) {
        let mut c = self.ctl.lock();
        if lsn > c.requested {
            c.requested = lsn;
            self.ctl_cv.notify_one();
        }
    }

    fn publish(&self, f: impl FnOnce(&mut SyncView)) {
        let mut v = self.view.lock();
        f(&mut v);
        self.watch.send_replace(v.clone());
        self.view_cv.notify_all();
    }

    fn publish_durable(&self, lsn: u64, pos: LogPos) {
        self.publish(|v| {
            if lsn > v.durable_lsn {
                v.durable_lsn = lsn;
                v.durable_pos = pos;
            }
        });
    }

    fn run_syncer(&self) {
        loop {
            {
                let mut c = self.ctl.lock();
                loop {
                    if c.stop {
                        return;
                    }
                    let v = self.view.lock();
                    // A poisoned log syncs nothing more: its waiters have their answer.
                    if c.requested > v.durable_lsn && v.poisoned.is_none() {
                        break;
                    }
                    drop(v);
                    self.ctl_cv.wait(&mut c);
                }
            }
            self.sync_once();
        }
    }

    fn sync_once(&self) {
        let (target, pos, file, seg, poisoned, renames) = {
            let w = self.writer.lock();
            (
                w.next_lsn - 1,
                position(&w),
                Arc::clone(&w.file),
                w.seg,
                w.poisoned.clone(),
                (w.renames > w.renames_synced).then_some(w.renames),
            )
        };
        if let Some(cause) = poisoned {
            self.publish(|v| v.poisoned = Some(cause.into()));
            return;
        }
        let synced = file.sync_data().and_then(|()| match renames {
            // A segment renamed from the spare is found after a crash only once its folder
            // entry is durable.
            Some(_) => self.segs.fs.sync_dir(&self.segs.dir),
            None => Ok(()),
        });
        match synced {
            Ok(()) => {
                self.group_syncs.fetch_add(1, Ordering::Relaxed);
                if let Some(r) = renames {
                    let mut w = self.writer.lock();
                    w.renames_synced = w.renames_synced.max(r);
                }
                // Before the waiters go on, so a commit's file calls are always the same.
                self.preallocate();
                self.prepare_spare();
                self.publish_durable(target, pos);
            }
            Err(e) => {
                tracing::error!(segment = seg, error = %e, "log sync failed: fencing the unsynced frames off");
                self.fence(&e);
            }
        }
    }

    /// After a failed sync: void everything after the last durable frame by starting a new
    /// segment that says where the old one ends.
    fn fence(&self, cause: &std::io::Error) {
        let mut w = self.writer.lock();
        let (d_lsn, d_pos) = {
            let v = self.view.lock();
            (v.durable_lsn, v.durable_pos)
        };
        let max = w.next_lsn - 1;
        let fence = Fence {
            segment: d_pos.segment,
            end: d_pos.offset,
            last_lsn: d_lsn,
        };
        match roll(&self.segs, &self.opts, &mut w, Some(fence), d_lsn) {
            Ok(_) => {
                self.fences.fetch_add(1, Ordering::AcqRel);
                let header = w.next_lsn - 1;
                let pos = position(&w);
                drop(w);
                self.publish(|v| {
                    let mut voids = v.voids.as_ref().clone();
                    if max > d_lsn {
                        voids.push((d_lsn + 1, max));
                    }
                    v.voids = Arc::new(voids);
                    v.durable_lsn = header;
                    v.durable_pos = pos;
                });
            }
            Err(e) => {
                let msg = format!(
                    "a sync failed ({cause}) and the log could not be fenced ({e}); reopen the database"
                );
                w.poisoned = Some(msg.clone());
                drop(w);
                self.publish(|v| v.poisoned = Some(msg.into()));
            }
        }
    }

    /// Keeps zeros written ahead of the end of the segment being written.
    fn preallocate(&self) {
        let mut w = self.writer.lock();
        let want = (w.end + self.opts.prealloc_bytes).min(self.opts.segment_bytes);
        if w.alloc_end >= w.end + self.opts.prealloc_bytes / 2 || w.alloc_end >= want {
            return;
        }
        let mut at = w.alloc_end.max(w.end);
        while at < want {
            let n = usize::try_from(want - at)
                .unwrap_or(ZEROS.len())
                .min(ZEROS.len());
            if w.file.write_at(&ZEROS[..n], at).is_err() {
                // Only an optimisation: the next commit's sync then flushes the size.
                return;
            }
            at += n as u64;
        }
        w.alloc_end = want;
    }

    /// Once the segment being written is half full, makes the next one's file ahead: zeros,
    /// synced, its folder entry synced, under a name that is no segment's (`next.spare`). A
    /// roll then renames it and writes a header, and the sync thread's next sync covers both.
    /// Only an optimisation: on any error the roll creates the segment itself. Not in shared
    /// folders (segment numbers are claimed by exclusive creation there) nor without zeros
    /// ahead (erasure coding: zeros would cost parity).
    fn prepare_spare(&self) {
        if self.opts.shared || self.opts.prealloc_bytes == 0 {
            return;
        }
        {
            let w = self.writer.lock();
            if w.spare.is_some() || w.end < self.opts.segment_bytes / 2 {
                return;
            }
        }
        let path = self.segs.dir.join(SPARE_FILE);
        let len = self.opts.prealloc_bytes.min(self.opts.segment_bytes);
        let made = (|| -> std::io::Result<Arc<dyn FileHandle>> {
            sop_core::vfs::remove_file_if_present(self.segs.fs.as_ref(), &path)?;
            let file: Arc<dyn FileHandle> = Arc::from(self.segs.fs.create_new(&path)?);
            let mut at = 0;
            while at < len {
                let k = usize::try_from(len - at)
                    .unwrap_or(ZEROS.len())
                    .min(ZEROS.len());
                file.write_at(&ZEROS[..k], at)?;
                at += k as u64;
            }
            file.sync()?;
            self.segs.fs.sync_dir(&self.segs.dir)?;
            Ok(file)
        })();
        match made {
            Ok(file) => self.writer.lock().spare = Some((file, len)),
            Err(e) => {
                tracing::debug!(error = %e, "no spare log segment; the next roll creates one");
                let _ = sop_core::vfs::remove_file_if_present(self.segs.fs.as_ref(), &path);
            }
        }
    }
}

fn position(w: &Writer) -> LogPos {
    LogPos {
        segment: w.seg,
        offset: w.end,
        lsn: w.next_lsn,
    }
}

/// Creates segment `n` with its header frame (LSN `lsn`) and zeros ahead, durable (file and
/// folder synced). A file left by a failed attempt is removed.
fn new_segment(
    segs: &Segments,
    opts: &LogOptions,
    n: u32,
    lsn: u64,
    fence: Option<Fence>,
) -> Result<(Arc<dyn FileHandle>, u64)> {
    let path = segs.path(n);
    let file: Arc<dyn FileHandle> = Arc::from(
        segs.fs
            .create_new(&path)
            .map_err(Error::io("create", &path))?,
    );
    let first = header_frame_len(opts.align);
    let r = (|| {
        let header = frame::build(
            FrameKind::SegmentHeader,
            lsn,
            &[&SegmentHeader::payload(n, opts.align, fence)],
            opts.align,
        )?;
        file.write_at(&header, 0)
            .map_err(Error::io("write", &path))?;
        let mut at = first;
        let until = (first + opts.prealloc_bytes).min(opts.segment_bytes);
        while at < until {
            let k = usize::try_from(until - at)
                .unwrap_or(ZEROS.len())
                .min(ZEROS.len());
            file.write_at(&ZEROS[..k], at)
                .map_err(Error::io("write", &path))?;
            at += k as u64;
        }
        file.sync().map_err(Error::io("sync", &path))?;
        segs.fs
            .sync_dir(&segs.dir)
            .map_err(Error::io("sync folder", &segs.dir))
    })();
    if let Err(e) = r {
        let _ = segs.fs.remove_file(&path);
        return Err(e);
    }
    segs.remember(n, Arc::clone(&file));
    Ok((file, first))
}

/// Moves the writer to a new segment; returns whether the new segment is durable already.
/// Without a fence the old segment is made durable first (a sync, unless the sync thread
/// already covered its last frame: `durable_lsn`), so no acknowledged frame ever depends on a
/// segment whose tail may be lost; with one, the frames after the fence are void anyway.
///
/// With a spare ready (and no fence), the spare is renamed into the segment and its header
/// written, with no sync: the new segment is not durable, and the sync thread syncs it and its
/// folder before it acknowledges any frame in it. A crash before that leaves a segment whose
/// header is missing or whose frames are unacknowledged, as a roll cut short does.
fn roll(
    segs: &Segments,
    opts: &LogOptions,
    w: &mut Writer,
    fence: Option<Fence>,
    durable_lsn: u64,
) -> Result<bool> {
    if fence.is_none() && durable_lsn < w.next_lsn - 1 {
        w.file
            .sync_data()
            .map_err(Error::io("sync", segs.path(w.seg)))?;
    }
    let n = w.next_seg;
    let lsn = w.next_lsn;
    if fence.is_none()
        && let Some((spare, len)) = w.spare.take()
    {
        match use_spare(segs, opts, &spare, n, lsn) {
            Ok(end) => {
                w.seg = n;
                w.align = opts.align;
                w.file = spare;
                w.end = end;
                w.alloc_end = len.max(end);
                w.next_lsn = lsn + 1;
                w.next_seg = n + 1;
                w.renames += 1;
                return Ok(false);
            }
            Err(e) => {
                tracing::debug!(error = %e, "the spare log segment could not be used; creating one");
            }
        }
    }
    let mut n = n;
    let (file, end) = loop {
        match new_segment(segs, opts, n, lsn, fence) {
            Ok(made) => break made,
            // Shared folder: another process took this number first; the next one.
            Err(Error::Storage(sop_core::StorageError::Io { source, .. }))
                if opts.shared && source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                n += 1;
            }
            Err(e) => return Err(e),
        }
    };
    w.seg = n;
    w.align = opts.align;
    w.file = file;
    w.end = end;
    w.alloc_end = (end + opts.prealloc_bytes).min(opts.segment_bytes);
    w.next_lsn = lsn + 1;
    w.next_seg = n + 1;
    Ok(true)
}

/// Renames the spare into segment `n` and writes its header (LSN `lsn`); no sync. On failure
/// no segment `n` is left behind.
fn use_spare(
    segs: &Segments,
    opts: &LogOptions,
    spare: &Arc<dyn FileHandle>,
    n: u32,
    lsn: u64,
) -> Result<u64> {
    let from = segs.dir.join(SPARE_FILE);
    let path = segs.path(n);
    segs.fs
        .rename(&from, &path)
        .map_err(Error::io("rename", &from))?;
    let r = frame::build(
        FrameKind::SegmentHeader,
        lsn,
        &[&SegmentHeader::payload(n, opts.align, None)],
        opts.align,
    )
    .and_then(|header| {
        spare
            .write_at(&header, 0)
            .map_err(Error::io("write", &path))
    });
    if let Err(e) = r {
        let _ = segs.fs.remove_file(&path);
        return Err(e);
    }
    segs.remember(n, Arc::clone(spare));
    Ok(header_frame_len(opts.align))
}

/// Reads the frame at `off` of segment `n`, if a whole, intact one is there.
fn read_frame(
    segs: &Segments,
    n: u32,
    off: u64,
    size: u64,
) -> Result<Option<(FrameHeader, Vec<u8>)>> {
    if off + FRAME_HEADER_LEN as u64 > size {
        return Ok(None);
    }
    let Some(hb) = segs.read_exact(n, off, FRAME_HEADER_LEN)? else {
        return Ok(None);
    };
    let Some(h) = FrameHeader::decode(&hb) else {
        return Ok(None);
    };
    if off + FRAME_HEADER_LEN as u64 + u64::from(h.len) > size {
        return Ok(None);
    }
    let Some(payload) = segs.read_exact(n, off + FRAME_HEADER_LEN as u64, h.len as usize)? else {
        return Ok(None);
    };
    Ok(frame::payload_ok(&h, &payload).then_some((h, payload)))
}

/// Replays from `from`; returns what it read and the highest LSN seen anywhere (for a fence).
fn scan(segs: &Segments, from: Option<LogPos>) -> Result<(Replay, u64)> {
    let list = segs.list()?;
    let Some(&first) = list.first() else {
        return Ok((Replay::default(), 0));
    };
    let start = match from {
        Some(p) => p,
        None => match segs.header(first)? {
            Some(h) if first == 1 && h.lsn == 1 => LogPos {
                segment: 1,
                offset: 0,
                lsn: 1,
            },
            _ => {
                return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                    what: "log",
                    location: segs.dir.display().to_string(),
                    detail: format!(
                        "no checkpoint says where to replay from, and the log does not start at segment 1 (first is {first}); the registry's checkpoint record is missing"
                    ),
                }));
            }
        },
    };
    if !list.contains(&start.segment) {
        return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
            what: "log",
            location: segs.path(start.segment).display().to_string(),
            detail: "the checkpoint's replay position is in a segment that is missing".into(),
        }));
    }
    let later: Vec<(u32, Option<SegmentHeader>)> = list
        .iter()
        .filter(|n| **n >= start.segment)
        .map(|&n| segs.header(n).map(|h| (n, h)))
        .collect::<Result<_>>()?;
    let mut seg = start.segment;
    let mut off = start.offset;
    let mut expect = start.lsn;
    let mut records = Vec::new();
    loop {
        let bound = later
            .iter()
            .filter_map(|(_, h)| h.and_then(|h| h.fence))
            .filter(|f| f.segment == seg)
            .map(|f| f.end)
            .min();
        let file = segs.file(seg)?;
        let size = file
            .size()
            .map_err(Error::io("stat", segs.path(seg)))?
            .min(bound.unwrap_or(u64::MAX));
        let align = later
            .iter()
            .find(|(n, _)| *n == seg)
            .and_then(|(_, h)| h.map(|h| h.align))
            .unwrap_or(FRAME_ALIGN);
        while let Some((h, payload)) = read_frame(segs, seg, off, size)? {
            if h.lsn != expect {
                break;
            }
            match h.kind {
                FrameKind::Record => records.push((h.lsn, payload)),
                FrameKind::Data => {}
                FrameKind::SegmentHeader if off == 0 => {}
                FrameKind::SegmentHeader => break,
            }
            off += h.frame_len(align);
            expect += 1;
        }
        let fenced = later.iter().find_map(|(n, h)| {
            let h = (*h)?;
            let f = h.fence?;
            (*n > seg && f.segment == seg && f.end == off && f.last_lsn + 1 == expect)
                .then_some((*n, h))
        });
        let next = fenced.or_else(|| {
            later.iter().find_map(|(n, h)| {
                let h = (*h)?;
                (*n == seg + 1 && h.fence.is_none() && h.lsn == expect).then_some((*n, h))
            })
        });
        match next {
            Some((n, h)) => {
                seg = n;
                off = h.frame_len();
                expect = h.lsn + 1;
            }
            None => break,
        }
    }
    let end = LogPos {
        segment: seg,
        offset: off,
        lsn: expect,
    };
    let (damage, max_seen) = damage_after(segs, end, &later)?;
    Ok((
        Replay {
            records,
            end,
            damage,
        },
        max_seen,
    ))
}

/// Whether frames exist after where the replay stopped: later in its segment (a header with a
/// higher LSN at any 8-byte boundary), or in a later segment with a valid header.
fn damage_after(
    segs: &Segments,
    end: LogPos,
    later: &[(u32, Option<SegmentHeader>)],
) -> Result<(Option<LogDamage>, u64)> {
    let mut found = Vec::new();
    let mut max_seen = 0u64;
    for (n, h) in later {
        if let Some(h) = h
            && *n > end.segment
        {
            found.push(format!(
                "segment {} (LSN {})",
                segs.path(*n).display(),
                h.lsn
            ));
            max_seen = max_seen.max(h.lsn);
        }
    }
    let file = segs.file(end.segment)?;
    let size = file
        .size()
        .map_err(Error::io("stat", segs.path(end.segment)))?;
    let step = later
        .iter()
        .find(|(n, _)| *n == end.segment)
        .and_then(|(_, h)| h.map(|h| h.align))
        .unwrap_or(FRAME_ALIGN);
    let mut at = end.offset + step;
    let chunk = 1u64 << 20;
    let mut later_frames = 0u64;
    while at + FRAME_HEADER_LEN as u64 <= size {
        let len = usize::try_from((size - at).min(chunk + FRAME_HEADER_LEN as u64)).unwrap_or(0);
        let Some(buf) = segs.read_exact(end.segment, at, len)? else {
            break;
        };
        let mut i = 0usize;
        while i + FRAME_HEADER_LEN <= buf.len() && (i as u64) < chunk {
            if buf[i..i + 4] == frame::FRAME_MAGIC
                && let Some(h) = FrameHeader::decode(&buf[i..])
                && h.lsn >= end.lsn
                && h.lsn < end.lsn.saturating_add(1 << 40)
            {
                later_frames += 1;
                max_seen = max_seen.max(h.lsn);
            }
            i += usize::try_from(step).unwrap_or(8);
        }
        at += chunk;
    }
    if later_frames > 0 {
        found.push(format!("{later_frames} frame(s) later in the same segment"));
    }
    if found.is_empty() {
        return Ok((None, max_seen));
    }
    Ok((
        Some(LogDamage {
            file: segs.path(end.segment),
            offset: end.offset,
            lsn: end.lsn,
            detail: format!(
                "the frame there is damaged or missing, and frames follow it ({}): commits from LSN {} on were not replayed",
                found.join(", "),
                end.lsn
            ),
        }),
        max_seen,
    ))
}
