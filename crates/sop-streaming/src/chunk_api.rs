//! SOP's chunk-level calls and JSON framing on a streaming store: chunks by index, the
//! encoder that adds one chunk per value and the decoder that reads values across chunks.

use sop_btree::KeyComparator;
use sop_core::Result;
use sop_txn::Data;

use crate::json::{Decoder, Encoder};
use crate::key::ChunkKey;
use crate::reader::StreamReader;
use crate::store::StreamingStore;

impl<K, C> StreamingStore<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    /// Adds chunk `index` with `bytes` (SOP's `AddChunk`): `false` when the chunk exists. The
    /// index must be the value's chunk count (chunks are numbered without gaps).
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`] for an index past the count; conflicts, storage errors.
    pub async fn add_chunk(&mut self, key: &K, index: u64, bytes: &[u8]) -> Result<bool> {
        let last = self.chunks.last(key).await?;
        let count = last.as_ref().map_or(0, |c| c.index + 1);
        if index < count {
            return Ok(false);
        }
        if index > count {
            return Err(self.chunks.bad_arg(
                "chunk index",
                format!("{index} would leave a gap: the value has {count} chunks; add chunk {count} next"),
            ));
        }
        let c = ChunkKey {
            key: key.clone(),
            index,
            offset: last.map_or(0, |c| c.end()),
            len: bytes.len() as u64,
        };
        self.chunks.set(c, bytes.to_vec()).await?;
        Ok(true)
    }

    /// Replaces chunk `index` with `bytes` (SOP's `UpdateChunk`): `false` when there is no such
    /// chunk. A new length moves the later chunks' offsets (their keys only).
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn update_chunk(&mut self, key: &K, index: u64, bytes: &[u8]) -> Result<bool> {
        let Some(c) = self.chunks.at(key, index).await? else {
            return Ok(false);
        };
        let moved = c.len != bytes.len() as u64;
        let new = ChunkKey {
            len: bytes.len() as u64,
            ..c
        };
        self.chunks.set(new, bytes.to_vec()).await?;
        if moved {
            self.chunks.reflow(key, index).await?;
        }
        Ok(true)
    }

    /// Removes chunk `index` (SOP's `RemoveChunk`): `false` when there is no such chunk. Later
    /// chunks move down one index (each is rewritten), so the chunks stay numbered without
    /// gaps.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn remove_chunk(&mut self, key: &K, index: u64) -> Result<bool> {
        let Some(c) = self.chunks.at(key, index).await? else {
            return Ok(false);
        };
        let last = self.chunks.need_last(key).await?;
        let mut offset = c.offset;
        for i in index + 1..=last.index {
            let next = self.chunks.need(key, i).await?;
            let bytes = self.chunks.read(&next).await?;
            let down = ChunkKey {
                key: key.clone(),
                index: i - 1,
                offset,
                len: next.len,
            };
            offset += next.len;
            self.chunks.set(down, bytes).await?;
        }
        self.chunks.remove_from(key, last.index).await?;
        Ok(true)
    }

    /// Whether chunk `index` exists (SOP's `FindChunk`).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn find_chunk(&mut self, key: &K, index: u64) -> Result<bool> {
        Ok(self.chunks.at(key, index).await?.is_some())
    }

    /// Chunk `index`'s key (offset and length) and bytes.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn get_chunk(
        &mut self,
        key: &K,
        index: u64,
    ) -> Result<Option<(ChunkKey<K>, Vec<u8>)>> {
        let Some(c) = self.chunks.at(key, index).await? else {
            return Ok(None);
        };
        let bytes = self.chunks.read(&c).await?;
        Ok(Some((c, bytes)))
    }

    /// The keys of the value's chunks (index, offset, length), in order, without reading them.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn chunk_keys(&mut self, key: &K) -> Result<Vec<ChunkKey<K>>> {
        let mut out = Vec::new();
        let store = &mut self.chunks.store;
        store.find(&ChunkKey::probe(key.clone(), 0), true).await?;
        while let Some(c) = store.current_key() {
            if !self.chunks.cmp.compare(&c.key, key).is_eq() {
                break;
            }
            out.push(c.clone());
            if !store.next().await? {
                break;
            }
        }
        Ok(out)
    }

    /// A JSON encoder adding one chunk per encoded value (SOP's `Add` + `Encoder`): `None`
    /// when the value exists.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn encoder(&self, key: &K) -> Result<Option<Encoder<K, C>>> {
        let mut chunks = self.handle()?;
        if chunks.at(key, 0).await?.is_some() {
            return Ok(None);
        }
        Ok(Some(Encoder::new(chunks, key.clone(), 0, 0)))
    }

    /// A JSON encoder that writes the value anew, one chunk per encoded value (SOP's
    /// `Update`/`Upsert` + `Encoder` + `Close`: the old chunks are gone).
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn update_encoder(&self, key: &K) -> Result<Encoder<K, C>> {
        let mut chunks = self.handle()?;
        chunks.remove_from(key, 0).await?;
        Ok(Encoder::new(chunks, key.clone(), 0, 0))
    }

    /// A JSON decoder over the value's bytes from chunk `from` (SOP's `FindChunk` +
    /// `GetCurrentValue`: resume from a chunk); `None` when there is no such chunk.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn decoder(&self, key: &K, from: u64) -> Result<Option<Decoder<K, C>>> {
        let mut chunks = self.handle()?;
        let Some(c) = chunks.at(key, from).await? else {
            return Ok(None);
        };
        let mut r = StreamReader::new(chunks, key.clone());
        r.set_position(c.offset);
        Ok(Some(Decoder::new(r)))
    }
}
