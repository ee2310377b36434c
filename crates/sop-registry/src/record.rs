//! The registry's on-disk block and handle record.
//!
//! ```text
//! block (4096 bytes)
//! 0        format version (1); 0 only in a never-written, all-zero block
//! 1        flags: bit 0 = overflow (a handle that hashes here lives in a later segment)
//! 2..4     reserved, 0
//! 4..4034  62 handle records of 65 bytes
//! 4034..4084 zero
//! 4084..4092 write sequence (u64 LE): 1 more than the image it replaced, and at least the
//!          time of the write in microseconds since the Unix epoch (so a table removed and
//!          made again starts above every image of the old one); 0 in blocks written before
//!          it existed. Clustered recovery skips a journal image older than the block
//! 4092..4096 CRC32C (LE) of bytes 0..4092
//!
//! handle record (65 bytes; all zero = empty slot)
//! 0..16   logical id        16..32 physical id A     32..48 physical id B
//! 48      flags: bit 0 = B is active, bit 1 = deleted
//! 49..57  version (u64 LE)  57..65 work-in-progress stamp, Unix ms (i64 LE)
//! ```

use sop_core::{Handle, Uuid};

/// Bytes of a registry block.
pub const BLOCK_SIZE: usize = 4096;
/// Bytes of a handle record.
pub const RECORD_SIZE: usize = 65;
/// Handle records per block.
pub const SLOTS_PER_BLOCK: usize = 62;
/// Format version of a block.
pub const BLOCK_FORMAT_VERSION: u8 = 1;

const HEADER: usize = 4;
const CRC_AT: usize = BLOCK_SIZE - 4;
const SEQ_AT: usize = CRC_AT - 8;
const FLAG_OVERFLOW: u8 = 1;

/// A block, decoded and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub slots: Vec<Option<Handle>>,
    pub overflow: bool,
    /// Clustered mode: how many times the block was written (see the module doc).
    pub seq: u64,
}

impl Block {
    pub fn empty() -> Self {
        Block {
            slots: vec![None; SLOTS_PER_BLOCK],
            overflow: false,
            seq: 0,
        }
    }

    /// Decodes a block, or says what is wrong with it.
    pub fn decode(bytes: &[u8; BLOCK_SIZE]) -> Result<Self, String> {
        if bytes.iter().all(|b| *b == 0) {
            return Ok(Block::empty());
        }
        let stored = u32::from_le_bytes([
            bytes[CRC_AT],
            bytes[CRC_AT + 1],
            bytes[CRC_AT + 2],
            bytes[CRC_AT + 3],
        ]);
        let actual = crc32c::crc32c(&bytes[..CRC_AT]);
        if stored != actual {
            return Err(format!("checksum {actual:#010x}, stored {stored:#010x}"));
        }
        if bytes[0] != BLOCK_FORMAT_VERSION {
            return Err(format!(
                "format version {}, this build reads {BLOCK_FORMAT_VERSION}",
                bytes[0]
            ));
        }
        let slots = bytes[HEADER..HEADER + SLOTS_PER_BLOCK * RECORD_SIZE]
            .chunks_exact(RECORD_SIZE)
            .map(decode_record)
            .collect();
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[SEQ_AT..CRC_AT]);
        Ok(Block {
            slots,
            overflow: bytes[1] & FLAG_OVERFLOW != 0,
            seq: u64::from_le_bytes(seq),
        })
    }

    pub fn encode(&self) -> [u8; BLOCK_SIZE] {
        let mut out = [0u8; BLOCK_SIZE];
        out[0] = BLOCK_FORMAT_VERSION;
        out[1] = if self.overflow { FLAG_OVERFLOW } else { 0 };
        for (slot, chunk) in self
            .slots
            .iter()
            .zip(out[HEADER..HEADER + SLOTS_PER_BLOCK * RECORD_SIZE].chunks_exact_mut(RECORD_SIZE))
        {
            if let Some(h) = slot {
                encode_record(h, chunk);
            }
        }
        out[SEQ_AT..CRC_AT].copy_from_slice(&self.seq.to_le_bytes());
        let crc = crc32c::crc32c(&out[..CRC_AT]);
        out[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn find(&self, id: Uuid) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.is_some_and(|h| h.logical_id == id))
    }

    /// The first free slot, probing from the id's preferred slot.
    pub fn free_slot(&self, id: Uuid) -> Option<usize> {
        let start = usize::try_from(id.high_low().1 % SLOTS_PER_BLOCK as u64).unwrap_or(0);
        (0..SLOTS_PER_BLOCK)
            .map(|i| (start + i) % SLOTS_PER_BLOCK)
            .find(|i| self.slots[*i].is_none())
    }
}

fn uuid_at(b: &[u8], at: usize) -> Uuid {
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes(id)
}

fn decode_record(b: &[u8]) -> Option<Handle> {
    let logical_id = uuid_at(b, 0);
    if logical_id.is_nil() {
        return None;
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[49..57]);
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[57..65]);
    Some(Handle {
        logical_id,
        physical_a: uuid_at(b, 16),
        physical_b: uuid_at(b, 32),
        active_is_b: b[48] & 1 != 0,
        deleted: b[48] & 2 != 0,
        version: u64::from_le_bytes(v),
        work_in_progress_ms: i64::from_le_bytes(w),
    })
}

fn encode_record(h: &Handle, out: &mut [u8]) {
    out[0..16].copy_from_slice(h.logical_id.as_bytes());
    out[16..32].copy_from_slice(h.physical_a.as_bytes());
    out[32..48].copy_from_slice(h.physical_b.as_bytes());
    out[48] = u8::from(h.active_is_b) | (u8::from(h.deleted) << 1);
    out[49..57].copy_from_slice(&h.version.to_le_bytes());
    out[57..65].copy_from_slice(&h.work_in_progress_ms.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn handle(seed: u8) -> Handle {
        let mut h = Handle::new(Uuid::new_v4());
        h.physical_b = Uuid::from_bytes([seed; 16]);
        h.active_is_b = seed.is_multiple_of(2);
        h.deleted = seed.is_multiple_of(3);
        h.version = u64::from(seed) << 40;
        h.work_in_progress_ms = -i64::from(seed);
        h
    }

    #[test]
    fn blocks_round_trip_and_empty_is_zero() {
        assert_eq!(Block::decode(&[0; BLOCK_SIZE]).unwrap(), Block::empty());
        let mut b = Block::empty();
        b.overflow = true;
        for i in (0..SLOTS_PER_BLOCK).step_by(3) {
            b.slots[i] = Some(handle(i as u8));
        }
        let bytes = b.encode();
        assert_eq!(Block::decode(&bytes).unwrap(), b);
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_is_detected(bit in 0..BLOCK_SIZE * 8) {
            let mut b = Block::empty();
            b.slots[7] = Some(handle(7));
            let mut bytes = b.encode();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Block::decode(&bytes).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(seed: u64, fill in any::<u8>()) {
            let mut bytes = [fill; BLOCK_SIZE];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            let _ = Block::decode(&bytes);
        }
    }
}
