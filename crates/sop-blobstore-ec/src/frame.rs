//! The frame: the unit of the log. Byte layout in ARCHITECTURE.md, "Log frames".
//!
//! ```text
//! 0   4  magic "SOPL"
//! 4   1  format version (1)
//! 5   1  kind: 1 segment header, 2 data, 3 record
//! 6   2  zero
//! 8   8  LSN (u64 LE): +1 for every frame of the log, across segments
//! 16  4  payload length (u32 LE)
//! 20  4  CRC32C of the payload (u32 LE)
//! 24  4  zero
//! 28  4  CRC32C of bytes 0..28 (u32 LE)
//! 32  n  payload, then zeros to the next multiple of the segment's alignment (8, or the
//!        stripe of an erasure-coded log)
//! ```

use sop_core::{Error, Result};

/// The first four bytes of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"SOPL";
/// The frame format this build writes and reads.
pub const FRAME_FORMAT_VERSION: u8 = 1;
/// Bytes in front of every payload.
pub const FRAME_HEADER_LEN: usize = 32;
/// Frames start at multiples of this at least (a segment may ask for more: its header says).
pub const FRAME_ALIGN: u64 = 8;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The first frame of every segment: its number, and the fence after a failed sync.
    SegmentHeader = 1,
    /// Pieces (node versions, deltas, values) that a record will point at.
    Data = 2,
    /// A record of the layer above (a commit): replayed on open.
    Record = 3,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<FrameKind> {
        match b {
            1 => Some(FrameKind::SegmentHeader),
            2 => Some(FrameKind::Data),
            3 => Some(FrameKind::Record),
            _ => None,
        }
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame holds.
    pub kind: FrameKind,
    /// Its log sequence number.
    pub lsn: u64,
    /// Payload bytes.
    pub len: u32,
    /// CRC32C of the payload.
    pub crc: u32,
}

impl FrameHeader {
    /// The 32 header bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4] = FRAME_FORMAT_VERSION;
        b[5] = self.kind as u8;
        b[8..16].copy_from_slice(&self.lsn.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..24].copy_from_slice(&self.crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads a header; `None` when the bytes are not one (zeros, garbage, a torn write).
    #[must_use]
    pub fn decode(b: &[u8]) -> Option<FrameHeader> {
        let b = b.get(..FRAME_HEADER_LEN)?;
        if b[0..4] != FRAME_MAGIC || b[4] != FRAME_FORMAT_VERSION || b[6..8] != [0, 0] {
            return None;
        }
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if word(28) != crc32c::crc32c(&b[0..28]) || word(24) != 0 {
            return None;
        }
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&b[8..16]);
        Some(FrameHeader {
            kind: FrameKind::from_byte(b[5])?,
            lsn: u64::from_le_bytes(lsn),
            len: word(16),
            crc: word(20),
        })
    }

    /// Bytes the whole frame takes in a segment aligned to `align`, padding included.
    #[must_use]
    pub fn frame_len(&self, align: u64) -> u64 {
        frame_len(self.len as usize, align)
    }
}

/// Bytes a frame with a payload of `payload` bytes takes, padded to `align`.
#[must_use]
pub const fn frame_len(payload: usize, align: u64) -> u64 {
    (FRAME_HEADER_LEN as u64 + payload as u64).next_multiple_of(align)
}

/// A whole frame: header, payload parts in order, padding to `align`.
///
/// # Errors
/// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) when the payload is 4 GiB or more.
pub fn build(kind: FrameKind, lsn: u64, parts: &[&[u8]], align: u64) -> Result<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len32 = u32::try_from(len).map_err(|_| {
        Error::Usage(sop_core::UsageError::InvalidConfig {
            what: "log frame",
            reason: format!(
                "{len} bytes do not fit in one frame (4 GiB at most); store big values as chunks"
            ),
        })
    })?;
    let mut crc = 0u32;
    for p in parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    let total = usize::try_from(frame_len(len, align)).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(
        &FrameHeader {
            kind,
            lsn,
            len: len32,
            crc,
        }
        .encode(),
    );
    for p in parts {
        out.extend_from_slice(p);
    }
    out.resize(total, 0);
    Ok(out)
}

/// Checks a payload against its header.
#[must_use]
pub fn payload_ok(h: &FrameHeader, payload: &[u8]) -> bool {
    payload.len() == h.len as usize && crc32c::crc32c(payload) == h.crc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_header_round_trips_and_any_flipped_byte_is_refused() {
        let h = FrameHeader {
            kind: FrameKind::Record,
            lsn: 77,
            len: 5,
            crc: crc32c::crc32c(b"hello"),
        };
        let b = h.encode();
        assert_eq!(FrameHeader::decode(&b), Some(h));
        for i in 0..FRAME_HEADER_LEN {
            for bit in 0..8 {
                let mut c = b;
                c[i] ^= 1 << bit;
                assert_eq!(FrameHeader::decode(&c), None, "byte {i} bit {bit}");
            }
        }
        assert_eq!(FrameHeader::decode(&[0; 32]), None);
        let f = build(FrameKind::Record, 77, &[b"he", b"llo"], FRAME_ALIGN).unwrap();
        assert_eq!(f.len() as u64, frame_len(5, FRAME_ALIGN));
        assert_eq!(f.len() % 8, 0);
        assert!(payload_ok(&h, &f[32..37]));
    }
}
