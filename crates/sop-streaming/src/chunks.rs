//! The byte-level operations on one value's chunks, over one store handle: locate the chunk
//! holding an offset from keys alone, read, overwrite the chunks a range covers, append,
//! truncate. Every writer, reader and the store itself works through one of these.

use serde_bytes::ByteBuf;
use sop_btree::KeyComparator;
use sop_core::{CorruptionError, Error, Result, UsageError};
use sop_txn::{Data, Store};

use crate::key::{ChunkKey, ChunkOrder};

pub(crate) type Inner<K, C> = Store<ChunkKey<K>, ByteBuf, ChunkOrder<C>>;

/// The highest chunk index; `u64::MAX` is the probe past every chunk of a value.
const MAX_INDEX: u64 = u64::MAX - 1;

/// The longest a value may be: 2^63 - 1 bytes (offsets stay clear of overflow, and `i64`
/// seeks can reach every byte).
pub const MAX_VALUE_LEN: u64 = i64::MAX as u64;

/// A store handle and the value key order.
pub(crate) struct Chunks<K, C> {
    pub store: Inner<K, C>,
    pub cmp: C,
}

impl<K, C> Chunks<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    pub fn name(&self) -> &str {
        self.store.name()
    }

    pub fn same(&self, a: &K, b: &K) -> bool {
        self.cmp.compare(a, b).is_eq()
    }

    fn invariant(&self, detail: String) -> Error {
        Error::Corruption(CorruptionError::Invariant {
            store: self.name().to_string(),
            detail,
        })
    }

    pub fn bad_arg(&self, what: &'static str, reason: String) -> Error {
        Error::Usage(UsageError::InvalidArgument {
            store: self.name().to_string(),
            what,
            reason,
        })
    }

    /// The chunk `index` of `key`.
    pub async fn at(&mut self, key: &K, index: u64) -> Result<Option<ChunkKey<K>>> {
        if !self
            .store
            .find(&ChunkKey::probe(key.clone(), index), true)
            .await?
        {
            return Ok(None);
        }
        Ok(self.store.current_key().cloned())
    }

    /// The last chunk of `key` (`None`: no value).
    pub async fn last(&mut self, key: &K) -> Result<Option<ChunkKey<K>>> {
        self.store
            .find_descending(&ChunkKey::probe(key.clone(), u64::MAX))
            .await?;
        Ok(self
            .store
            .current_key()
            .filter(|c| self.same(&c.key, key))
            .cloned())
    }

    /// The value's length (`None`: no value).
    pub async fn len(&mut self, key: &K) -> Result<Option<u64>> {
        Ok(self.last(key).await?.map(|c| c.end()))
    }

    /// The chunk holding byte `offset` (`None` when the value ends at or before it): from keys
    /// alone, a guess from the first chunk's length then a binary search over indexes.
    pub async fn locate(&mut self, key: &K, offset: u64) -> Result<Option<ChunkKey<K>>> {
        let Some(last) = self.last(key).await? else {
            return Ok(None);
        };
        if offset >= last.end() {
            return Ok(None);
        }
        if offset >= last.offset {
            return Ok(Some(last));
        }
        let first = self.need(key, 0).await?;
        // Chunks of one size: the guess is right, one lookup.
        if let Some(guess) = offset.checked_div(first.len)
            && guess <= last.index
            && let Some(c) = self.at(key, guess).await?
            && c.offset <= offset
            && offset < c.end()
        {
            return Ok(Some(c));
        }
        // The largest index whose chunk starts at or before `offset`; the last chunk starts
        // after it.
        let (mut lo, mut hi) = (0, last.index - 1);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.need(key, mid).await?.offset <= offset {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.need(key, lo).await.map(Some)
    }

    /// The chunk holding byte `offset`, reading on from `prev`: when `prev` ends there, the next
    /// index (one lookup), else [`Chunks::locate`].
    pub async fn holding(
        &mut self,
        key: &K,
        offset: u64,
        prev: Option<&ChunkKey<K>>,
    ) -> Result<Option<ChunkKey<K>>> {
        if let Some(p) = prev.filter(|p| p.end() == offset)
            && let Some(c) = self.at(key, p.index + 1).await?
            && c.len > 0
        {
            return Ok(Some(c));
        }
        self.locate(key, offset).await
    }

    /// A chunk that must exist (the value's chunks are numbered without gaps).
    pub async fn need(&mut self, key: &K, index: u64) -> Result<ChunkKey<K>> {
        match self.at(key, index).await? {
            Some(c) => Ok(c),
            None => Err(self.invariant(format!(
                "chunk {index} of a streamed value is missing (its chunks must be numbered \
                 without gaps)"
            ))),
        }
    }

    /// The last chunk of a value that must exist.
    pub async fn need_last(&mut self, key: &K) -> Result<ChunkKey<K>> {
        match self.last(key).await? {
            Some(c) => Ok(c),
            None => Err(self.invariant("a streamed value vanished while it was changed".into())),
        }
    }

    /// Refuses a value length past [`MAX_VALUE_LEN`].
    pub fn check_end(&self, offset: u64, len: usize) -> Result<u64> {
        offset
            .checked_add(len as u64)
            .filter(|end| *end <= MAX_VALUE_LEN)
            .ok_or_else(|| {
                self.bad_arg(
                    "offset",
                    format!(
                        "{len} bytes at {offset} end past the longest value ({MAX_VALUE_LEN} bytes)"
                    ),
                )
            })
    }

    /// The bytes of chunk `c`.
    pub async fn read(&mut self, c: &ChunkKey<K>) -> Result<Vec<u8>> {
        let probe = ChunkKey::probe(c.key.clone(), c.index);
        match self.store.get(&probe).await? {
            Some(b) => Ok(b.into_vec()),
            None => Err(self.invariant(format!(
                "chunk {} of a streamed value vanished while it was read",
                c.index
            ))),
        }
    }

    /// Writes chunk `new` (an existing one is replaced in place, its key too).
    pub async fn set(&mut self, new: ChunkKey<K>, bytes: Vec<u8>) -> Result<()> {
        if bytes.len() as u64 != new.len {
            return Err(self.invariant(format!(
                "chunk {} of {} bytes written with a key saying {}",
                new.index,
                bytes.len(),
                new.len
            )));
        }
        let probe = ChunkKey::probe(new.key.clone(), new.index);
        if self.store.find(&probe, true).await? {
            self.store
                .update_current_item(new, ByteBuf::from(bytes))
                .await
        } else {
            if !self.store.add(new, ByteBuf::from(bytes)).await? {
                return Err(self.invariant("a chunk key is taken twice".into()));
            }
            Ok(())
        }
    }

    /// Makes `key` an empty value if it has none (one chunk of no bytes: a value that exists).
    pub async fn create(&mut self, key: &K) -> Result<bool> {
        if self.at(key, 0).await?.is_some() {
            return Ok(false);
        }
        self.set(
            ChunkKey {
                key: key.clone(),
                index: 0,
                offset: 0,
                len: 0,
            },
            Vec::new(),
        )
        .await?;
        Ok(true)
    }

    /// Removes chunks `index..` of `key`; how many.
    pub async fn remove_from(&mut self, key: &K, index: u64) -> Result<u64> {
        let mut n = 0;
        while let Some(last) = self.last(key).await?
            && last.index >= index
        {
            self.store
                .remove(&ChunkKey::probe(key.clone(), last.index))
                .await?;
            n += 1;
        }
        Ok(n)
    }

    /// Reads from `offset` into `buf`; how many bytes (0 at the end).
    pub async fn read_at(&mut self, key: &K, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        let mut prev = None;
        while done < buf.len() {
            let at = offset + done as u64;
            let Some(c) = self.holding(key, at, prev.as_ref()).await? else {
                break;
            };
            let bytes = self.read(&c).await?;
            let from = usize::try_from(at - c.offset).unwrap_or(usize::MAX);
            let src = bytes.get(from..).unwrap_or_default();
            let n = src.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&src[..n]);
            done += n;
            if n == 0 {
                break;
            }
            prev = Some(c);
        }
        Ok(done)
    }

    /// Writes `data` at `offset`: the chunks it overlaps are rewritten (read first only when
    /// partly covered), bytes past the end are appended, and a gap between the end and
    /// `offset` is filled with zeros (as a file does).
    pub async fn write_at(&mut self, key: &K, offset: u64, data: &[u8], cs: usize) -> Result<()> {
        self.check_end(offset, data.len())?;
        self.create(key).await?;
        let len = self.len(key).await?.unwrap_or(0);
        if offset > len {
            self.zeros(key, offset - len, cs).await?;
        }
        let end = offset + data.len() as u64;
        let mut pos = offset;
        let mut prev: Option<ChunkKey<K>> = None;
        while pos < end.min(len) {
            let Some(c) = self.holding(key, pos, prev.as_ref()).await? else {
                return Err(self.invariant(format!("no chunk holds byte {pos} of {len}")));
            };
            let n = end.min(c.end()) - pos;
            let src = &data[idx(pos - offset)..idx(pos - offset + n)];
            let bytes = if pos == c.offset && n == c.len {
                src.to_vec()
            } else {
                let mut b = self.read(&c).await?;
                let s = idx(pos - c.offset);
                b[s..s + src.len()].copy_from_slice(src);
                b
            };
            pos += n;
            self.set(c.clone(), bytes).await?;
            prev = Some(c);
        }
        if pos < end {
            self.append(key, &data[idx(pos - offset)..], cs).await?;
        }
        Ok(())
    }

    /// Appends `data`: the last chunk is filled up to `cs` bytes, then new chunks of `cs`.
    pub async fn append(&mut self, key: &K, mut data: &[u8], cs: usize) -> Result<()> {
        let last = self.last(key).await?;
        self.check_end(last.as_ref().map_or(0, ChunkKey::end), data.len())?;
        let (mut index, mut offset) = match last {
            None => (0, 0),
            Some(last) => {
                let room = (cs as u64).saturating_sub(last.len);
                if room > 0 && !data.is_empty() {
                    let take = idx(room).min(data.len());
                    let mut b = self.read(&last).await?;
                    b.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let grown = ChunkKey {
                        len: b.len() as u64,
                        ..last.clone()
                    };
                    self.set(grown, b).await?;
                    (last.index + 1, last.offset + last.len + take as u64)
                } else {
                    (last.index + 1, last.end())
                }
            }
        };
        while !data.is_empty() {
            if index > MAX_INDEX {
                return Err(self.bad_arg("chunk index", "the value has too many chunks".into()));
            }
            let take = cs.min(data.len());
            let c = ChunkKey {
                key: key.clone(),
                index,
                offset,
                len: take as u64,
            };
            self.set(c, data[..take].to_vec()).await?;
            data = &data[take..];
            index += 1;
            offset += take as u64;
        }
        Ok(())
    }

    /// Appends `n` zero bytes, a chunk at a time.
    pub async fn zeros(&mut self, key: &K, mut n: u64, cs: usize) -> Result<()> {
        let zero = vec![0u8; cs.min(idx(n))];
        while n > 0 {
            let take = idx(n).min(zero.len());
            self.append(key, &zero[..take], cs).await?;
            n -= take as u64;
        }
        Ok(())
    }

    /// Sets the value's length: cut (the chunk holding the new end shortened, later ones
    /// removed) or extended with zeros.
    pub async fn truncate(&mut self, key: &K, new_len: u64, cs: usize) -> Result<()> {
        self.check_end(new_len, 0)?;
        self.create(key).await?;
        let len = self.len(key).await?.unwrap_or(0);
        if new_len >= len {
            return self.zeros(key, new_len - len, cs).await;
        }
        let Some(c) = self.locate(key, new_len).await? else {
            return Err(self.invariant(format!("no chunk holds byte {new_len} of {len}")));
        };
        if new_len > c.offset || c.index == 0 {
            let keep = idx(new_len - c.offset);
            let mut b = if keep == 0 {
                Vec::new()
            } else {
                self.read(&c).await?
            };
            b.truncate(keep);
            self.remove_from(key, c.index + 1).await?;
            let cut = ChunkKey {
                len: keep as u64,
                ..c
            };
            self.set(cut, b).await
        } else {
            self.remove_from(key, c.index).await.map(|_| ())
        }
    }

    /// Moves the offsets of chunks after `index` so they lie end to end again (after a chunk
    /// changed length through the chunk-level calls). Only keys change: no chunk is read.
    pub async fn reflow(&mut self, key: &K, index: u64) -> Result<()> {
        let Some(last) = self.last(key).await? else {
            return Ok(());
        };
        let mut end = self.need(key, index).await?.end();
        for i in index + 1..=last.index {
            let c = self.need(key, i).await?;
            if c.offset != end {
                let moved = ChunkKey { offset: end, ..c };
                self.store.update_current_key(moved.clone()).await?;
                end = moved.end();
            } else {
                end = c.end();
            }
        }
        Ok(())
    }
}

/// A call a reader or writer cannot take in its state (finished, or an async call left
/// under way).
pub(crate) fn misuse(what: &'static str, reason: &str) -> Error {
    Error::Usage(UsageError::InvalidArgument {
        store: String::new(),
        what,
        reason: reason.into(),
    })
}

/// A length or offset inside one chunk or buffer (always below `usize::MAX` here).
pub(crate) fn idx(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
