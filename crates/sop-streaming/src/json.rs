//! SOP's JSON framing of streamed values: each encoded value is one chunk (`json + "\n"`), and
//! a decoder streams values back across chunk boundaries.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sop_btree::KeyComparator;
use sop_core::{CodecError, Error, Result, UsageError};
use sop_txn::Data;

use crate::chunks::Chunks;
use crate::key::ChunkKey;
use crate::reader::StreamReader;

/// Encodes values as JSON into a streamed value, one chunk each (SOP's `Encoder.Encode`).
pub struct Encoder<K, C> {
    chunks: Chunks<K, C>,
    key: K,
    next: u64,
    offset: u64,
}

impl<K, C> std::fmt::Debug for Encoder<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<K, C> Encoder<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    pub(crate) fn new(chunks: Chunks<K, C>, key: K, next: u64, offset: u64) -> Self {
        Encoder {
            chunks,
            key,
            next,
            offset,
        }
    }

    /// Adds `value` as the next chunk: its JSON and a newline.
    ///
    /// # Errors
    /// [`UsageError::Encode`] when it does not serialize to JSON; conflicts, storage errors.
    pub async fn encode<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let mut bytes = serde_json::to_vec(value).map_err(|e| {
            Error::Usage(UsageError::Encode {
                what: "a value as JSON",
                source: CodecError::new(e),
            })
        })?;
        bytes.push(b'\n');
        let len = bytes.len() as u64;
        let c = ChunkKey {
            key: self.key.clone(),
            index: self.next,
            offset: self.offset,
            len,
        };
        self.chunks.set(c, bytes).await?;
        self.next += 1;
        self.offset += len;
        Ok(())
    }

    /// How many values (chunks) it has written.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.next
    }
}

/// Decodes the JSON values of a streamed value one by one, across chunk boundaries (SOP's
/// `json.Decoder` over `GetCurrentValue`).
pub struct Decoder<K, C> {
    reader: StreamReader<K, C>,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
}

impl<K, C> std::fmt::Debug for Decoder<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl<K, C> Decoder<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    pub(crate) fn new(reader: StreamReader<K, C>) -> Self {
        Decoder {
            reader,
            buf: Vec::new(),
            start: 0,
            eof: false,
        }
    }

    /// The next value (`None` at the end).
    ///
    /// # Errors
    /// [`CorruptionError::Decode`](sop_core::CorruptionError::Decode) for bytes that are not a
    /// JSON value of type `T` (or a value cut short); conflicts, storage errors.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        loop {
            let rest = &self.buf[self.start..];
            let skip = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
            self.start += skip;
            if self.start < self.buf.len() {
                let mut it =
                    serde_json::Deserializer::from_slice(&self.buf[self.start..]).into_iter::<T>();
                match it.next() {
                    // A value that ends where the bytes read so far end may go on (a number
                    // cut by a chunk boundary): read more before taking it.
                    Some(Ok(_)) if self.start + it.byte_offset() == self.buf.len() && !self.eof => {
                    }
                    Some(Ok(v)) => {
                        self.start += it.byte_offset();
                        return Ok(Some(v));
                    }
                    Some(Err(e)) if !e.is_eof() || self.eof => {
                        return Err(decode_error(e));
                    }
                    _ => {}
                }
            } else if self.eof {
                return Ok(None);
            }
            self.more().await?;
        }
    }

    async fn more(&mut self) -> Result<()> {
        self.buf.drain(..self.start);
        self.start = 0;
        let mut chunk = vec![0u8; 64 << 10];
        let n = self.reader.read(&mut chunk).await?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn decode_error(e: serde_json::Error) -> Error {
    Error::Corruption(sop_core::CorruptionError::Decode {
        what: "a JSON value of a streamed value",
        source: CodecError::new(e),
    })
}
