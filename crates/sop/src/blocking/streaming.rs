//! The streaming store in the blocking API: `std::io::{Read, Write, Seek}` over a value.

use std::io;
use std::sync::Arc;

use sop_btree::{KeyComparator, NaturalOrder};
use sop_core::{Result, StoreOptions};
use sop_txn::Data;

use super::{Rt, Transaction};

/// A [`sop_streaming::StreamingStore`] in a blocking [`Transaction`]: its calls, returning when
/// done; its writers and readers are `std::io` streams.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
/// use sop::blocking::{Database, StreamingStore};
///
/// let dir = tempfile::tempdir()?;
/// let db = Database::standalone(dir.path())?;
/// let tx = db.begin(sop::TxMode::ForWriting);
/// let files = StreamingStore::<String>::new(&tx, &StreamingStore::<String>::options("files"))?;
/// let mut w = files.writer(&"notes.txt".to_string())?;
/// w.write_all(b"hello, streaming world")?;
/// w.finish()?;
/// tx.commit()?;
///
/// let tx = db.begin(sop::TxMode::ForReading);
/// let files = StreamingStore::<String>::open(&tx, "files")?;
/// let mut r = files.reader(&"notes.txt".to_string())?.expect("stored");
/// r.seek(SeekFrom::Start(7))?;
/// let mut s = String::new();
/// r.read_to_string(&mut s)?;
/// assert_eq!(s, "streaming world");
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct StreamingStore<K, C = NaturalOrder> {
    inner: sop_streaming::StreamingStore<K, C>,
    rt: Arc<Rt>,
}

impl<K, C> std::fmt::Debug for StreamingStore<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<K: Data + Ord> StreamingStore<K, NaturalOrder> {
    /// Creates a streaming store (see [`sop_streaming::StreamingStore::new`]).
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::new`].
    pub fn new(tx: &Transaction, options: &StoreOptions) -> Result<Self> {
        Ok(Self::wrap(
            tx,
            sop_streaming::StreamingStore::new(&tx.tx, options)?,
        ))
    }

    /// Opens a streaming store.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::open`].
    pub fn open(tx: &Transaction, name: &str) -> Result<Self> {
        Ok(Self::wrap(
            tx,
            sop_streaming::StreamingStore::open(&tx.tx, name)?,
        ))
    }

    /// Opens a streaming store, creating it when missing.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::open_or_create`].
    pub fn open_or_create(tx: &Transaction, options: &StoreOptions) -> Result<Self> {
        Ok(Self::wrap(
            tx,
            sop_streaming::StreamingStore::open_or_create(&tx.tx, options)?,
        ))
    }
}

impl<K, C> StreamingStore<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn wrap(tx: &Transaction, inner: sop_streaming::StreamingStore<K, C>) -> Self {
        StreamingStore {
            inner,
            rt: Arc::clone(&tx.rt),
        }
    }

    /// SOP's streaming store options (see [`sop_streaming::StreamingStore::options`]).
    #[must_use]
    pub fn options(name: &str) -> StoreOptions {
        sop_streaming::StreamingStore::<K, C>::options(name)
    }

    /// Sets the chunk size this handle writes with.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::with_chunk_size`].
    pub fn with_chunk_size(self, bytes: usize) -> Result<Self> {
        Ok(StreamingStore {
            inner: self.inner.with_chunk_size(bytes)?,
            rt: self.rt,
        })
    }

    /// The async store underneath.
    pub fn as_async(&mut self) -> &mut sop_streaming::StreamingStore<K, C> {
        &mut self.inner
    }

    /// How many chunks the store holds (SOP's `Count()`).
    ///
    /// # Errors
    /// An ended transaction.
    pub fn count(&self) -> Result<u64> {
        self.inner.count()
    }

    /// The value's length (`None`: no value).
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::len`].
    pub fn len(&mut self, key: &K) -> Result<Option<u64>> {
        self.rt.block_on(self.inner.len(key))
    }

    /// The value's chunk count.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::chunk_count`].
    pub fn chunk_count(&mut self, key: &K) -> Result<u64> {
        self.rt.block_on(self.inner.chunk_count(key))
    }

    /// Whether a value is stored under `key`.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::contains`].
    pub fn contains(&mut self, key: &K) -> Result<bool> {
        self.rt.block_on(self.inner.contains(key))
    }

    /// The keys of all values.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::keys`].
    pub fn keys(&mut self) -> Result<Vec<K>> {
        self.rt.block_on(self.inner.keys())
    }

    /// Removes the value.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::remove`].
    pub fn remove(&mut self, key: &K) -> Result<bool> {
        self.rt.block_on(self.inner.remove(key))
    }

    /// Stores `bytes` as the whole value.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::put`].
    pub fn put(&mut self, key: &K, bytes: &[u8]) -> Result<()> {
        self.rt.block_on(self.inner.put(key, bytes))
    }

    /// The whole value in memory.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::get`].
    pub fn get(&mut self, key: &K) -> Result<Option<Vec<u8>>> {
        self.rt.block_on(self.inner.get(key))
    }

    /// Reads from `offset` into `buf`.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::read_at`].
    pub fn read_at(&mut self, key: &K, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.rt.block_on(self.inner.read_at(key, offset, buf))
    }

    /// Writes `data` at `offset`.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::write_at`].
    pub fn write_at(&mut self, key: &K, offset: u64, data: &[u8]) -> Result<()> {
        self.rt.block_on(self.inner.write_at(key, offset, data))
    }

    /// Appends `data`.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::append`].
    pub fn append(&mut self, key: &K, data: &[u8]) -> Result<()> {
        self.rt.block_on(self.inner.append(key, data))
    }

    /// Sets the value's length.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::truncate`].
    pub fn truncate(&mut self, key: &K, len: u64) -> Result<()> {
        self.rt.block_on(self.inner.truncate(key, len))
    }

    fn writer_of(&self, w: sop_streaming::StreamWriter<K, C>) -> StreamWriter<K, C> {
        StreamWriter {
            w: Some(w),
            rt: Arc::clone(&self.rt),
        }
    }

    /// A writer at the start of the value (see [`sop_streaming::StreamingStore::writer`]).
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::writer`].
    pub fn writer(&self, key: &K) -> Result<StreamWriter<K, C>> {
        let w = self.rt.block_on(self.inner.writer(key))?;
        Ok(self.writer_of(w))
    }

    /// A writer of a new content of the value.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::replace`].
    pub fn replace(&self, key: &K) -> Result<StreamWriter<K, C>> {
        let w = self.rt.block_on(self.inner.replace(key))?;
        Ok(self.writer_of(w))
    }

    /// A writer of a value that must not exist yet (`None` when it does).
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::create`].
    pub fn create(&self, key: &K) -> Result<Option<StreamWriter<K, C>>> {
        let w = self.rt.block_on(self.inner.create(key))?;
        Ok(w.map(|w| self.writer_of(w)))
    }

    /// A writer at the end of the value.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::appender`].
    pub fn appender(&self, key: &K) -> Result<StreamWriter<K, C>> {
        let w = self.rt.block_on(self.inner.appender(key))?;
        Ok(self.writer_of(w))
    }

    /// A reader of the value (`None`: no value).
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::reader`].
    pub fn reader(&self, key: &K) -> Result<Option<StreamReader<K, C>>> {
        let r = self.rt.block_on(self.inner.reader(key))?;
        Ok(r.map(|r| StreamReader {
            r,
            rt: Arc::clone(&self.rt),
        }))
    }

    /// Adds chunk `index` (SOP's `AddChunk`).
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::add_chunk`].
    pub fn add_chunk(&mut self, key: &K, index: u64, bytes: &[u8]) -> Result<bool> {
        self.rt.block_on(self.inner.add_chunk(key, index, bytes))
    }

    /// Replaces chunk `index` (SOP's `UpdateChunk`).
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::update_chunk`].
    pub fn update_chunk(&mut self, key: &K, index: u64, bytes: &[u8]) -> Result<bool> {
        self.rt.block_on(self.inner.update_chunk(key, index, bytes))
    }

    /// Removes chunk `index` (SOP's `RemoveChunk`).
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::remove_chunk`].
    pub fn remove_chunk(&mut self, key: &K, index: u64) -> Result<bool> {
        self.rt.block_on(self.inner.remove_chunk(key, index))
    }

    /// Chunk `index`'s key and bytes.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamingStore::get_chunk`].
    pub fn get_chunk(
        &mut self,
        key: &K,
        index: u64,
    ) -> Result<Option<(sop_streaming::ChunkKey<K>, Vec<u8>)>> {
        self.rt.block_on(self.inner.get_chunk(key, index))
    }
}

fn to_io(e: sop_core::Error) -> io::Error {
    io::Error::other(e)
}

/// A blocking writer into one value: `std::io::{Write, Seek}`. Dropped without
/// [`StreamWriter::finish`], it stores what it buffered as `BufWriter` does; if that fails,
/// the transaction's commit fails.
pub struct StreamWriter<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    w: Option<sop_streaming::StreamWriter<K, C>>,
    rt: Arc<Rt>,
}

impl<K, C> std::fmt::Debug for StreamWriter<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter").finish_non_exhaustive()
    }
}

impl<K, C> StreamWriter<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn inner(&mut self) -> io::Result<&mut sop_streaming::StreamWriter<K, C>> {
        self.w
            .as_mut()
            .ok_or_else(|| io::Error::other("the stream writer is finished"))
    }

    /// Stores what is buffered and ends the writer.
    ///
    /// # Errors
    /// As [`sop_streaming::StreamWriter::finish`].
    pub fn finish(mut self) -> Result<()> {
        match self.w.take() {
            Some(w) => self.rt.block_on(w.finish()),
            None => Ok(()),
        }
    }
}

impl<K, C> io::Write for StreamWriter<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let rt = Arc::clone(&self.rt);
        let w = self.inner()?;
        rt.block_on(w.write(buf)).map_err(to_io)
    }

    fn flush(&mut self) -> io::Result<()> {
        let rt = Arc::clone(&self.rt);
        let w = self.inner()?;
        rt.block_on(w.flush()).map_err(to_io)
    }
}

impl<K, C> io::Seek for StreamWriter<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let rt = Arc::clone(&self.rt);
        let w = self.inner()?;
        rt.block_on(w.seek(pos)).map_err(to_io)
    }
}

impl<K, C> Drop for StreamWriter<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if let Some(w) = self.w.take() {
            // Errors poison the transaction (the writer keeps what it could not store).
            let _ = self.rt.block_on(w.finish());
        }
    }
}

/// A blocking reader of one value: `std::io::{Read, Seek}`.
pub struct StreamReader<K, C> {
    r: sop_streaming::StreamReader<K, C>,
    rt: Arc<Rt>,
}

impl<K, C> std::fmt::Debug for StreamReader<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader").finish_non_exhaustive()
    }
}

impl<K, C> io::Read for StreamReader<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rt.block_on(self.r.read(buf)).map_err(to_io)
    }
}

impl<K, C> io::Seek for StreamReader<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.rt.block_on(self.r.seek(pos)).map_err(to_io)
    }
}
