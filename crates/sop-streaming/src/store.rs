//! The streaming store: values of any size under typed keys, kept as chunks of one B-tree.

use sop_btree::{KeyComparator, NaturalOrder};
use sop_core::{Error, Result, StoreOptions, UsageError, ValueDataSize};
use sop_txn::{Data, Transaction};

use crate::chunks::{Chunks, idx};
use crate::key::{ChunkKey, ChunkOrder};
use crate::reader::StreamReader;
use crate::writer::StreamWriter;

/// The chunk size a handle writes with unless told otherwise: 20 MiB (SOP's advice: "decent
/// chunk size, e.g. 20MB").
pub const DEFAULT_CHUNK_SIZE: usize = 20 << 20;

/// The largest chunk size: 256 MiB (a chunk is one value of the store, read whole).
pub const MAX_CHUNK_SIZE: usize = 256 << 20;

/// The smallest slot length a streaming store accepts (SOP's `MinimumStreamingStoreSlotLength`).
pub const MIN_SLOT_LENGTH: usize = 50;

/// A store of values of any size ("blobs": videos, datasets, model weights) under keys of type
/// `K`, inside ordinary transactions: SOP's `StreamingDataStore`, with the chunking automatic.
///
/// A value is kept as chunks of at most the handle's chunk size ([`DEFAULT_CHUNK_SIZE`]),
/// items `(key, chunk index)` of one B-tree whose values are written to the log as they are
/// added (SOP's `BigData` preset), so a transaction holds only their ids whatever it writes,
/// and memory stays at a few chunks whatever the value's size. Read and write a value as a byte
/// stream ([`StreamingStore::writer`], [`StreamingStore::reader`]: `tokio::io::AsyncWrite`,
/// `AsyncRead` and `AsyncSeek`; the `sop` facade's blocking API gives `std::io` ones), or by
/// range ([`StreamingStore::write_at`], [`StreamingStore::read_at`],
/// [`StreamingStore::truncate`], [`StreamingStore::append`]): a partial update rewrites only the
/// chunks it covers. Length and chunk count come from keys alone. SOP's chunk-level calls
/// ([`StreamingStore::add_chunk`] ...) and its JSON framing ([`StreamingStore::encoder`],
/// [`StreamingStore::decoder`]) are kept.
///
/// Nothing is visible to others before the transaction commits, and a transaction that rolls
/// back (or a process killed during an upload) leaves no trace of its value: its chunks are
/// space the log reclaims.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use sop_streaming::StreamingStore;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let dir = tempfile::tempdir()?;
/// let db = sop_database::Database::standalone(dir.path())?;
/// let tx = db.begin(sop_txn::TxMode::ForWriting);
/// let mut videos = StreamingStore::<String>::new(&tx, &StreamingStore::<String>::options("videos"))?
///     .with_chunk_size(4)?;
/// let mut w = videos.writer(&"intro.mp4".to_string()).await?;
/// w.write_all(b"0123456789").await?;
/// w.shutdown().await?; // finishes the value (a writer dropped unfinished fails the commit)
/// assert_eq!(videos.len(&"intro.mp4".to_string()).await?, Some(10));
/// assert_eq!(videos.chunk_count(&"intro.mp4".to_string()).await?, 3);
/// tx.commit().await?;
///
/// let tx = db.begin(sop_txn::TxMode::ForReading);
/// let videos = StreamingStore::<String>::open(&tx, "videos")?;
/// let mut r = videos.reader(&"intro.mp4".to_string()).await?.expect("stored");
/// let mut back = Vec::new();
/// r.read_to_end(&mut back).await?;
/// assert_eq!(back, b"0123456789");
/// # Ok::<(), anyhow::Error>(())
/// # }).unwrap();
/// ```
pub struct StreamingStore<K, C = NaturalOrder> {
    tx: Transaction,
    pub(crate) chunks: Chunks<K, C>,
    chunk_size: usize,
}

impl<K, C> std::fmt::Debug for StreamingStore<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingStore")
            .field("name", &self.chunks.store.name())
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl<K: Data + Ord> StreamingStore<K, NaturalOrder> {
    /// Creates a streaming store in `tx` (see [`StreamingStore::options`]).
    ///
    /// # Errors
    /// Options a streaming store cannot use (slot length under [`MIN_SLOT_LENGTH`], values in
    /// nodes, non-unique keys), [`UsageError::StoreExists`], a read-only transaction.
    pub fn new(tx: &Transaction, options: &StoreOptions) -> Result<Self> {
        Self::new_with(tx, options, NaturalOrder)
    }

    /// Opens an existing streaming store.
    ///
    /// # Errors
    /// [`UsageError::StoreNotFound`], [`UsageError::TypeMismatch`] (not a streaming store of
    /// this key type).
    pub fn open(tx: &Transaction, name: &str) -> Result<Self> {
        Self::open_with(tx, name, NaturalOrder)
    }

    /// Opens the store, creating it with `options` when it does not exist.
    ///
    /// # Errors
    /// As [`StreamingStore::new`] and [`StreamingStore::open`].
    pub fn open_or_create(tx: &Transaction, options: &StoreOptions) -> Result<Self> {
        if tx.store_info(&options.name)?.is_some() {
            Self::open(tx, &options.name)
        } else {
            Self::new(tx, options)
        }
    }
}

impl<K, C> StreamingStore<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    /// SOP's configuration of a streaming store (`ConfigureStore(name, true, 100, "",
    /// BigData, "")`): unique keys, slot length 100, values out of nodes, written as they are
    /// added, not cached.
    #[must_use]
    pub fn options(name: &str) -> StoreOptions {
        StoreOptions::with_value_size(name, ValueDataSize::Big)
            .slot_length(100)
            .unique(true)
    }

    /// As [`StreamingStore::new`], the values' keys ordered by `cmp`.
    ///
    /// # Errors
    /// As [`StreamingStore::new`].
    pub fn new_with(tx: &Transaction, options: &StoreOptions, cmp: C) -> Result<Self> {
        check_options(options)?;
        let store = tx.new_btree_with(options, ChunkOrder(cmp.clone()))?;
        Ok(Self::wrap(tx, store, cmp))
    }

    /// As [`StreamingStore::open`], the values' keys ordered by `cmp` (the order it was
    /// created with).
    ///
    /// # Errors
    /// As [`StreamingStore::open`].
    pub fn open_with(tx: &Transaction, name: &str, cmp: C) -> Result<Self> {
        let store = tx.open_btree_with(name, ChunkOrder(cmp.clone()))?;
        Ok(Self::wrap(tx, store, cmp))
    }

    fn wrap(tx: &Transaction, store: crate::chunks::Inner<K, C>, cmp: C) -> Self {
        StreamingStore {
            tx: tx.clone(),
            chunks: Chunks { store, cmp },
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// Sets the chunk size this handle (and the writers it makes) writes with, in bytes.
    /// Values already stored keep their chunks; a partial update rewrites them as they are.
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`] outside `1..=MAX_CHUNK_SIZE`.
    pub fn with_chunk_size(mut self, bytes: usize) -> Result<Self> {
        if bytes == 0 || bytes > MAX_CHUNK_SIZE {
            return Err(self.chunks.bad_arg(
                "chunk size",
                format!("{bytes} bytes; give 1 to {MAX_CHUNK_SIZE}"),
            ));
        }
        self.chunk_size = bytes;
        Ok(self)
    }

    /// The chunk size this handle writes with.
    #[must_use]
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The store's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.chunks.name()
    }

    /// The transaction this store is open in.
    #[must_use]
    pub fn transaction(&self) -> &Transaction {
        &self.tx
    }

    /// Another handle on the same store in the same transaction (its own cursor; changes
    /// shared).
    pub(crate) fn handle(&self) -> Result<Chunks<K, C>> {
        let cmp = self.chunks.cmp.clone();
        let store = self
            .tx
            .open_btree_with(self.name(), ChunkOrder(cmp.clone()))?;
        Ok(Chunks { store, cmp })
    }

    /// How many chunks the store holds over all values (SOP's `Count()` on a streaming store).
    ///
    /// # Errors
    /// An ended transaction.
    pub fn count(&self) -> Result<u64> {
        self.chunks.store.count()
    }

    /// The value's length in bytes (`None`: no value), from keys alone.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn len(&mut self, key: &K) -> Result<Option<u64>> {
        self.chunks.len(key).await
    }

    /// How many chunks the value has (0: no value), from keys alone.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn chunk_count(&mut self, key: &K) -> Result<u64> {
        Ok(self.chunks.last(key).await?.map_or(0, |c| c.index + 1))
    }

    /// Whether a value is stored under `key` (SOP's `FindOne`).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn contains(&mut self, key: &K) -> Result<bool> {
        Ok(self.chunks.at(key, 0).await?.is_some())
    }

    /// The keys of all values, in order.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn keys(&mut self) -> Result<Vec<K>> {
        let mut out = Vec::new();
        let store = &mut self.chunks.store;
        let mut more = store.first().await?;
        while more {
            let Some(k) = store.current_key().map(|c| c.key.clone()) else {
                break;
            };
            // Past every chunk of this value: the next key's first chunk, or the end.
            store
                .find(&ChunkKey::probe(k.clone(), u64::MAX), true)
                .await?;
            more = store.current_key().is_some();
            out.push(k);
        }
        Ok(out)
    }

    /// The keys of the values from `from` (included) to `to` (excluded), in order.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn keys_in(&mut self, from: &K, to: &K) -> Result<Vec<K>> {
        let mut out = Vec::new();
        let cmp = self.chunks.cmp.clone();
        let store = &mut self.chunks.store;
        store.find(&ChunkKey::probe(from.clone(), 0), true).await?;
        while let Some(k) = store.current_key().map(|c| c.key.clone()) {
            if !cmp.compare(&k, to).is_lt() {
                break;
            }
            store
                .find(&ChunkKey::probe(k.clone(), u64::MAX), true)
                .await?;
            out.push(k);
        }
        Ok(out)
    }

    /// Removes the value (all its chunks); `false` when there was none.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn remove(&mut self, key: &K) -> Result<bool> {
        Ok(self.chunks.remove_from(key, 0).await? > 0)
    }

    /// Stores `bytes` as the whole value under `key`, replacing any (for values that fit in
    /// memory; stream bigger ones through [`StreamingStore::replace`]).
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn put(&mut self, key: &K, bytes: &[u8]) -> Result<()> {
        self.chunks.truncate(key, 0, self.chunk_size).await?;
        self.chunks.append(key, bytes, self.chunk_size).await
    }

    /// The whole value in memory (`None`: no value). Stream big values with
    /// [`StreamingStore::reader`] instead.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn get(&mut self, key: &K) -> Result<Option<Vec<u8>>> {
        let Some(len) = self.chunks.len(key).await? else {
            return Ok(None);
        };
        let mut out = vec![0; idx(len)];
        let n = self.chunks.read_at(key, 0, &mut out).await?;
        out.truncate(n);
        Ok(Some(out))
    }

    /// Reads from byte `offset` of the value into `buf`; how many bytes were read (0 at or past
    /// the end, or when there is no value).
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn read_at(&mut self, key: &K, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.chunks.read_at(key, offset, buf).await
    }

    /// Writes `data` at byte `offset` of the value (made when missing): only the chunks the
    /// range covers are rewritten, and read first only when partly covered. Past the end, the
    /// gap is filled with zeros.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn write_at(&mut self, key: &K, offset: u64, data: &[u8]) -> Result<()> {
        self.chunks
            .write_at(key, offset, data, self.chunk_size)
            .await
    }

    /// Appends `data` to the value (made when missing).
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn append(&mut self, key: &K, data: &[u8]) -> Result<()> {
        self.chunks.create(key).await?;
        self.chunks.append(key, data, self.chunk_size).await
    }

    /// Sets the value's length (made when missing): cut, or extended with zeros.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn truncate(&mut self, key: &K, len: u64) -> Result<()> {
        self.chunks.truncate(key, len, self.chunk_size).await
    }

    /// A writer at the start of the value, made empty when missing; existing bytes are
    /// overwritten where it writes and kept elsewhere (as a file opened for writing without
    /// truncation). Call `shutdown` (async) or [`StreamWriter::finish`] when done: a writer
    /// dropped with bytes not yet written fails the transaction's commit.
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn writer(&self, key: &K) -> Result<StreamWriter<K, C>> {
        let mut chunks = self.handle()?;
        chunks.create(key).await?;
        Ok(StreamWriter::new(chunks, key.clone(), 0, self.chunk_size))
    }

    /// A writer for a new content of the value: the value is emptied (made when missing) and
    /// written from the start (SOP's `Upsert`/`Update` with an encoder, whose `Close` removed
    /// leftover chunks).
    ///
    /// # Errors
    /// As [`StreamingStore::writer`].
    pub async fn replace(&self, key: &K) -> Result<StreamWriter<K, C>> {
        let mut chunks = self.handle()?;
        chunks.truncate(key, 0, self.chunk_size).await?;
        Ok(StreamWriter::new(chunks, key.clone(), 0, self.chunk_size))
    }

    /// A writer for a value that must not exist yet (SOP's `Add`): `None` when it does.
    ///
    /// # Errors
    /// As [`StreamingStore::writer`].
    pub async fn create(&self, key: &K) -> Result<Option<StreamWriter<K, C>>> {
        let mut chunks = self.handle()?;
        if !chunks.create(key).await? {
            return Ok(None);
        }
        Ok(Some(StreamWriter::new(
            chunks,
            key.clone(),
            0,
            self.chunk_size,
        )))
    }

    /// A writer at the end of the value (made when missing).
    ///
    /// # Errors
    /// As [`StreamingStore::writer`].
    pub async fn appender(&self, key: &K) -> Result<StreamWriter<K, C>> {
        let mut chunks = self.handle()?;
        chunks.create(key).await?;
        let end = chunks.len(key).await?.unwrap_or(0);
        Ok(StreamWriter::new(chunks, key.clone(), end, self.chunk_size))
    }

    /// A reader at the start of the value (`None`: no value). It reads a chunk at a time.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn reader(&self, key: &K) -> Result<Option<StreamReader<K, C>>> {
        let mut chunks = self.handle()?;
        if chunks.at(key, 0).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(StreamReader::new(chunks, key.clone())))
    }
}

fn check_options(o: &StoreOptions) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::Usage(UsageError::InvalidOptions {
            store: o.name.clone(),
            reason,
        }))
    };
    if o.slot_length < MIN_SLOT_LENGTH {
        return bad(format!(
            "a streaming store needs a slot length of at least {MIN_SLOT_LENGTH}, got {}",
            o.slot_length
        ));
    }
    if o.value_in_node {
        return bad("a streaming store keeps chunks out of its nodes (value_in_node false)".into());
    }
    if !o.value_actively_persisted {
        return bad(
            "a streaming store writes chunks as they are added (value_actively_persisted true), \
             so memory stays bounded whatever a transaction writes; use StreamingStore::options"
                .into(),
        );
    }
    if !o.unique {
        return bad("a streaming store needs unique keys".into());
    }
    Ok(())
}
