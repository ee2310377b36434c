//! Encoded nodes read without their key and value types: parsing, consolidating deltas and
//! re-encoding happen on byte slices, so the storage layer (verification, compaction) can walk
//! and rewrite nodes it cannot decode. See ARCHITECTURE.md, "Node pieces".

use sop_core::{Error, Result, Uuid};

use crate::node::{ItemShape, NodeShape};

/// First byte of a full node piece (format 3).
pub const NODE_FORMAT_VERSION: u8 = 3;
/// First byte of a node delta piece.
pub const DELTA_FORMAT_VERSION: u8 = 4;
/// Item value kinds in an encoded item.
pub(crate) const VALUE_INLINE: u8 = 0;
pub(crate) const VALUE_EXTERNAL: u8 = 1;
/// Delta operation kinds.
pub(crate) const OP_COPY: u8 = 0;
pub(crate) const OP_INSERT: u8 = 1;

/// A forward reader over encoded bytes whose every short read is a typed corruption error.
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub at: usize,
    pub what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, at: 0, what }
    }

    pub fn bad(&self, detail: impl Into<String>) -> Error {
        Error::Corruption(sop_core::CorruptionError::Damaged {
            what: self.what,
            location: format!("byte {}", self.at),
            detail: detail.into(),
        })
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| self.bad(format!("needs {n} more bytes, the piece ends first")))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn uuid(&mut self) -> Result<Uuid> {
        let b = self.take(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(Uuid::from_bytes(a))
    }

    /// A count of things of at least `min_size` bytes each: refused when the rest of the
    /// bytes cannot hold that many (no allocation from a corrupt count).
    pub fn count(&mut self, min_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size.max(1)) > self.bytes.len() - self.at {
            return Err(self.bad(format!("count {n} cannot fit in the rest of the piece")));
        }
        Ok(n)
    }

    pub fn done(&self) -> Result<()> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.bad(format!(
                "{} bytes left over after the piece",
                self.bytes.len() - self.at
            )))
        }
    }
}

/// One item of an encoded node: its fields, and its whole encoding (copied as is when a delta is
/// consolidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawItem<'a> {
    /// The item's id.
    pub id: Uuid,
    /// The item's version.
    pub version: u32,
    /// The key's encoding.
    pub key: &'a [u8],
    /// The value's encoding when it is in the node.
    pub inline: Option<&'a [u8]>,
    /// Where the value is when it is not.
    pub external: Option<Uuid>,
    /// The whole encoded item.
    pub bytes: &'a [u8],
}

/// Smallest encoded item: id, version, value kind, key length, empty key, 16-byte location or
/// value length.
pub(crate) const MIN_ITEM: usize = 16 + 4 + 1 + 4 + 4;

impl<'a> RawItem<'a> {
    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self> {
        let start = r.at;
        let id = r.uuid()?;
        let version = r.u32()?;
        let kind = r.u8()?;
        let key_len = r.u32()? as usize;
        let key = r.take(key_len)?;
        let (inline, external) = match kind {
            VALUE_INLINE => {
                let n = r.u32()? as usize;
                (Some(r.take(n)?), None)
            }
            VALUE_EXTERNAL => (None, Some(r.uuid()?)),
            k => return Err(r.bad(format!("unknown value kind {k}"))),
        };
        Ok(RawItem {
            id,
            version,
            key,
            inline,
            external,
            bytes: &r.bytes[start..r.at],
        })
    }

    /// The item's type-free shape.
    #[must_use]
    pub fn shape(&self) -> ItemShape {
        ItemShape {
            id: self.id,
            version: self.version,
            external: self.external,
        }
    }
}

/// An encoded node without its types: what verification and compaction work on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawNode<'a> {
    /// The node's logical id.
    pub id: Uuid,
    /// The children's logical ids.
    pub children: Vec<Uuid>,
    /// The items, in key order.
    pub items: Vec<RawItem<'a>>,
}

/// What a stored node piece is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceKind {
    /// A whole node.
    Full,
    /// Changes to apply to another piece.
    Delta {
        /// The node the delta gives.
        id: Uuid,
        /// The piece it applies to (a location id).
        base: Uuid,
        /// How many deltas the chain holds down to its full image, this one included.
        depth: u8,
    },
}

impl PieceKind {
    /// What `bytes` hold, from their first byte (and a delta's header).
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) for an unknown kind or a short header.
    pub fn of(bytes: &[u8]) -> Result<PieceKind> {
        let mut r = Reader::new(bytes, "node piece");
        match r.u8()? {
            NODE_FORMAT_VERSION => Ok(PieceKind::Full),
            DELTA_FORMAT_VERSION => Ok(PieceKind::Delta {
                id: r.uuid()?,
                base: r.uuid()?,
                depth: r.u8()?,
            }),
            v => Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                what: "node piece",
                location: "byte 0".into(),
                detail: format!(
                    "format {v}; this build reads full nodes (format {NODE_FORMAT_VERSION}) and deltas (format {DELTA_FORMAT_VERSION})"
                ),
            })),
        }
    }
}

impl<'a> RawNode<'a> {
    /// Parses a full node piece.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) for another format, a short or over-long piece, or bad counts;
    /// never a panic, whatever the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "b-tree node");
        let v = r.u8()?;
        if v != NODE_FORMAT_VERSION {
            return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                what: "b-tree node",
                location: "byte 0".into(),
                detail: format!(
                    "format {v}, a full node is format {NODE_FORMAT_VERSION} (a delta needs its base)"
                ),
            }));
        }
        let id = r.uuid()?;
        let nc = r.count(16)?;
        let mut children = Vec::with_capacity(nc);
        for _ in 0..nc {
            children.push(r.uuid()?);
        }
        let ni = r.count(MIN_ITEM)?;
        let mut items = Vec::with_capacity(ni);
        for _ in 0..ni {
            items.push(RawItem::read(&mut r)?);
        }
        r.done()?;
        Ok(RawNode {
            id,
            children,
            items,
        })
    }

    /// The full piece for this node.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        self.encode_moved(&|_| None)
    }

    /// The full piece for this node with some out-of-node values moved: an item whose value
    /// location `ext` maps to a new one is written with the new one (compaction moves values
    /// without knowing their types).
    #[must_use]
    pub fn encode_moved(&self, ext: &dyn Fn(Uuid) -> Option<Uuid>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encode_len());
        out.push(NODE_FORMAT_VERSION);
        out.extend_from_slice(self.id.as_bytes());
        put_len(&mut out, self.children.len());
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
        }
        put_len(&mut out, self.items.len());
        for i in &self.items {
            match i.external.and_then(ext) {
                // The location is the item's last 16 bytes.
                Some(moved) if i.bytes.len() >= 16 => {
                    out.extend_from_slice(&i.bytes[..i.bytes.len() - 16]);
                    out.extend_from_slice(moved.as_bytes());
                }
                _ => out.extend_from_slice(i.bytes),
            }
        }
        out
    }

    fn encode_len(&self) -> usize {
        1 + 16
            + 4
            + 16 * self.children.len()
            + 4
            + self.items.iter().map(|i| i.bytes.len()).sum::<usize>()
    }

    /// The node's type-free shape.
    #[must_use]
    pub fn shape(&self) -> NodeShape {
        NodeShape {
            id: self.id,
            children: self.children.clone(),
            items: self.items.iter().map(RawItem::shape).collect(),
        }
    }

    /// This node with `delta` applied: the node the delta describes.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) for a malformed delta or copies outside this node.
    pub fn apply(&self, delta: &'a [u8]) -> Result<RawNode<'a>> {
        let d = crate::delta::RawDelta::parse(delta)?;
        Ok(RawNode {
            id: d.id,
            children: crate::delta::apply_ops(&self.children, &d.child_ops, "child ids")?,
            items: crate::delta::apply_ops(&self.items, &d.item_ops, "items")?,
        })
    }
}

/// Appends a length as u32 LE. Lengths over 4 GiB cannot be stored (a piece is at most 4 GiB).
pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}
