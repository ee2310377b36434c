//! Segment files: names, headers, fences, and the open-file cache.
//!
//! A segment is `<dir>/<number, 10 digits>.seg`. Its first frame is a segment header (frame
//! kind 1) whose payload is
//!
//! ```text
//! 0   4  segment number (u32 LE)
//! 4   4  alignment of its frames (u32 LE): 8, or an erasure-coded log's stripe
//! 8   1  1 when a fence follows, else 0
//! 9   4  fence: the segment that ends early (u32 LE)
//! 13  8  fence: where its frames end (u64 LE)
//! 21  8  fence: the LSN of its last good frame (u64 LE)
//! ```
//!
//! A fence is written when a sync failed: the frames after the last durable one are void
//! (their commits were reported as failed), and the log goes on in this new segment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use sop_core::vfs::{FileHandle, FileSystem};
use sop_core::{Error, Result};

use crate::frame::{FRAME_HEADER_LEN, FrameHeader, FrameKind, frame_len};

/// Bytes of a segment header payload.
pub(crate) const SEGMENT_HEADER_PAYLOAD: usize = 29;

/// Bytes the segment header frame takes in a segment aligned to `align`.
pub(crate) const fn header_frame_len(align: u64) -> u64 {
    frame_len(SEGMENT_HEADER_PAYLOAD, align)
}
/// At most this many segment files are kept open for reading.
const OPEN_FILES: usize = 64;

/// Where a segment's frames end early, and the log goes on in the segment holding the fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The segment that ends early.
    pub segment: u32,
    /// Where its valid frames end.
    pub end: u64,
    /// The LSN of its last valid frame.
    pub last_lsn: u64,
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The header frame's LSN.
    pub lsn: u64,
    /// The segment's number.
    pub number: u32,
    /// Its frames start at multiples of this.
    pub align: u64,
    /// The fence it carries, if any.
    pub fence: Option<Fence>,
}

impl SegmentHeader {
    pub(crate) fn payload(
        number: u32,
        align: u64,
        fence: Option<Fence>,
    ) -> [u8; SEGMENT_HEADER_PAYLOAD] {
        let mut b = [0u8; SEGMENT_HEADER_PAYLOAD];
        b[0..4].copy_from_slice(&number.to_le_bytes());
        b[4..8].copy_from_slice(&u32::try_from(align).unwrap_or(u32::MAX).to_le_bytes());
        if let Some(f) = fence {
            b[8] = 1;
            b[9..13].copy_from_slice(&f.segment.to_le_bytes());
            b[13..21].copy_from_slice(&f.end.to_le_bytes());
            b[21..29].copy_from_slice(&f.last_lsn.to_le_bytes());
        }
        b
    }

    /// Bytes its header frame takes.
    #[must_use]
    pub fn frame_len(&self) -> u64 {
        header_frame_len(self.align)
    }

    /// Decodes a segment header frame from the first bytes of a segment; `None` when they are
    /// not one (a segment whose creation was cut short).
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<SegmentHeader> {
        let h = FrameHeader::decode(bytes)?;
        if h.kind != FrameKind::SegmentHeader || h.len as usize != SEGMENT_HEADER_PAYLOAD {
            return None;
        }
        let p = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + SEGMENT_HEADER_PAYLOAD)?;
        if !crate::frame::payload_ok(&h, p) {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&p[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let align = u64::from(u32_at(4));
        if align < crate::frame::FRAME_ALIGN || !align.is_multiple_of(crate::frame::FRAME_ALIGN) {
            return None;
        }
        let fence = match p[8] {
            0 => None,
            1 => Some(Fence {
                segment: u32_at(9),
                end: u64_at(13),
                last_lsn: u64_at(21),
            }),
            _ => return None,
        };
        Some(SegmentHeader {
            lsn: h.lsn,
            number: u32_at(0),
            align,
            fence,
        })
    }
}

/// The file name of segment `n`.
#[must_use]
pub fn segment_name(n: u32) -> String {
    format!("{n:010}.seg")
}

/// The segment number in a file name, if it is a segment's.
#[must_use]
pub fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|n| *n > 0)
}

/// Segment files of one folder: paths, listing, and a bounded cache of open files for reads.
pub(crate) struct Segments {
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
    open: RwLock<HashMap<u32, Arc<dyn FileHandle>>>,
}

impl Segments {
    pub fn new(fs: Arc<dyn FileSystem>, dir: PathBuf) -> Self {
        Segments {
            fs,
            dir,
            open: RwLock::new(HashMap::new()),
        }
    }

    pub fn path(&self, n: u32) -> PathBuf {
        self.dir.join(segment_name(n))
    }

    /// The segment numbers present, ascending.
    pub fn list(&self) -> Result<Vec<u32>> {
        let names = match self.fs.list_dir(&self.dir) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &self.dir)(e)),
        };
        let mut out: Vec<u32> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The open file of segment `n` for reading; a missing segment is corruption naming it
    /// (something points into it).
    pub fn file(&self, n: u32) -> Result<Arc<dyn FileHandle>> {
        if let Some(f) = self.open.read().get(&n) {
            return Ok(Arc::clone(f));
        }
        let path = self.path(n);
        let f: Arc<dyn FileHandle> = match self.fs.open(&path, false) {
            Ok(f) => Arc::from(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                    what: "log segment",
                    location: path.display().to_string(),
                    detail: "the segment file is missing".into(),
                }));
            }
            Err(e) => return Err(Error::io("open", path)(e)),
        };
        let mut open = self.open.write();
        if open.len() >= OPEN_FILES {
            // Bounded: thousands of segments never hold thousands of descriptors.
            open.clear();
        }
        open.insert(n, Arc::clone(&f));
        Ok(f)
    }

    /// Adds a file this process has open anyway (the one being written).
    pub fn remember(&self, n: u32, f: Arc<dyn FileHandle>) {
        let mut open = self.open.write();
        if open.len() >= OPEN_FILES {
            open.clear();
        }
        open.insert(n, f);
    }

    pub fn forget(&self, n: u32) {
        self.open.write().remove(&n);
    }

    /// The header of segment `n`, `None` when it has none (cut short) or does not exist.
    pub fn header(&self, n: u32) -> Result<Option<SegmentHeader>> {
        let f = match self.fs.open(&self.path(n), false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", self.path(n))(e)),
        };
        let mut b = [0u8; FRAME_HEADER_LEN + SEGMENT_HEADER_PAYLOAD];
        let got = f
            .read_at(&mut b, 0)
            .map_err(Error::io("read", self.path(n)))?;
        Ok(SegmentHeader::decode(&b[..got]).filter(|h| h.number == n))
    }

    /// Reads exactly `len` bytes at `offset` of segment `n`; `None` when the file is shorter.
    pub fn read_exact(&self, n: u32, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
        let f = self.file(n)?;
        let mut buf = vec![0u8; len];
        let got = f
            .read_at(&mut buf, offset)
            .map_err(Error::io("read", self.path(n)))?;
        Ok((got == len).then_some(buf))
    }
}
