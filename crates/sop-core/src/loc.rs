//! Where a stored piece (a node version or a value) is: the physical id of storage v2.

use std::fmt;

use crate::{Error, Result, Uuid};

/// The location of one immutable *piece* (a node version, a node delta or an out-of-node value)
/// in the log's segment files: segment number, offset, length and the piece's CRC32C.
///
/// A `Loc` is what a handle's physical slot holds. It fits the 16 bytes of a [`Uuid`], so
/// handles, caches keyed by physical id and node items that point at values keep their shape:
/// [`Loc::to_uuid`] writes the four fields big-endian (so ids sort by segment, then offset) and
/// [`Loc::from_uuid`] reads them back. Segment numbers start at 1, so no `Loc` is
/// [`Uuid::NIL`]. A piece is never overwritten while anything can read it: a change writes a
/// new piece at a new `Loc`.
///
/// What `offset` means is the segment store's business: the byte offset of the piece in a plain
/// segment file; the shard offset of the piece's frame in an erasure-coded one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Loc {
    /// The segment number (1, 2, ...).
    pub segment: u32,
    /// Where the piece starts.
    pub offset: u32,
    /// The piece's length in bytes.
    pub len: u32,
    /// CRC32C of the piece's bytes: a read that returns other bytes is corruption.
    pub crc: u32,
}

impl Loc {
    /// The location as a 16-byte id (the four fields, big-endian).
    #[must_use]
    pub fn to_uuid(self) -> Uuid {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.segment.to_be_bytes());
        b[4..8].copy_from_slice(&self.offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.len.to_be_bytes());
        b[12..16].copy_from_slice(&self.crc.to_be_bytes());
        Uuid::from_bytes(b)
    }

    /// Reads a location back from [`Loc::to_uuid`]'s id; `None` for [`Uuid::NIL`] and for ids
    /// whose segment number is 0.
    #[must_use]
    pub fn from_uuid(id: Uuid) -> Option<Loc> {
        let b = id.as_bytes();
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let loc = Loc {
            segment: word(0),
            offset: word(4),
            len: word(8),
            crc: word(12),
        };
        (loc.segment != 0).then_some(loc)
    }

    /// [`Loc::from_uuid`], or [`CorruptionError::Damaged`](crate::CorruptionError::Damaged) naming `what` for an id that is no location.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](crate::CorruptionError::Damaged) when `id` holds no location.
    pub fn parse(id: Uuid, what: &'static str) -> Result<Loc> {
        Loc::from_uuid(id).ok_or_else(|| {
            Error::Corruption(crate::CorruptionError::Damaged {
                what,
                location: id.to_string(),
                detail: "not a piece location (segment 0)".into(),
            })
        })
    }

    /// The offset just past the piece.
    #[must_use]
    pub fn end(self) -> u64 {
        u64::from(self.offset) + u64::from(self.len)
    }
}

impl fmt::Debug for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Loc(segment {} offset {} len {} crc {:08x})",
            self.segment, self.offset, self.len, self.crc
        )
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "segment {} offset {} ({} bytes)",
            self.segment, self.offset, self.len
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_through_an_id_and_sorts_by_segment_then_offset() {
        let a = Loc {
            segment: 1,
            offset: 4096,
            len: 300,
            crc: 0xdead_beef,
        };
        let b = Loc {
            segment: 2,
            offset: 8,
            len: 1,
            crc: 0,
        };
        assert_eq!(Loc::from_uuid(a.to_uuid()), Some(a));
        assert!(a.to_uuid() < b.to_uuid());
        assert_eq!(Loc::from_uuid(Uuid::NIL), None);
        assert!(Loc::parse(Uuid::NIL, "node").is_err());
        assert_eq!(a.end(), 4396);
    }
}
