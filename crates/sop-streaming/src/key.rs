//! The key of one chunk: the value's key, the chunk's index, and (riding along, ignored by the
//! order) where the chunk sits in the value and how long it is.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use sop_btree::KeyComparator;

/// One chunk's key: SOP's `StreamingDataKey{Key, ChunkIndex}`, ordered by `(key, index)`.
///
/// `offset` and `len` ride inside the key (SOP's metadata-carrying keys, ignored by the order),
/// so a value's length, its chunk count and the chunk holding any byte offset are found from
/// keys alone, without reading a chunk. A value's chunks are numbered `0..n` without gaps and
/// lie end to end: chunk `i + 1` starts where chunk `i` ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkKey<K> {
    /// The value's key.
    pub key: K,
    /// The chunk's index in the value, from 0.
    pub index: u64,
    /// The value's byte offset where the chunk starts.
    pub offset: u64,
    /// The chunk's length in bytes.
    pub len: u64,
}

impl<K> ChunkKey<K> {
    /// The byte offset just past the chunk.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }

    pub(crate) fn probe(key: K, index: u64) -> Self {
        ChunkKey {
            key,
            index,
            offset: 0,
            len: 0,
        }
    }
}

/// The order of chunk keys: the value keys' order `C`, then the chunk index.
#[derive(Clone, Debug, Default)]
pub struct ChunkOrder<C>(pub C);

impl<K, C: KeyComparator<K>> KeyComparator<ChunkKey<K>> for ChunkOrder<C> {
    fn compare(&self, a: &ChunkKey<K>, b: &ChunkKey<K>) -> Ordering {
        self.0.compare(&a.key, &b.key).then(a.index.cmp(&b.index))
    }

    fn name(&self) -> Cow<'static, str> {
        format!("sop-streaming chunks of {}", self.0.name()).into()
    }
}
