//! A byte-stream writer into one value: buffers up to one chunk, writes chunk-aligned ranges.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use sop_btree::KeyComparator;
use sop_core::{Result, Uuid};
use sop_txn::Data;

use crate::chunks::Chunks;

/// The state of a writer: what `poll_*` drive (the async calls own it while they run).
pub(crate) struct WriterCore<K, C> {
    chunks: Chunks<K, C>,
    key: K,
    /// Where the next byte goes.
    pos: u64,
    /// Bytes written but not yet stored: they end at `pos`.
    buf: Vec<u8>,
    chunk_size: usize,
    /// This writer's hold on the commit while `buf` holds bytes.
    id: Uuid,
}

impl<K, C> WriterCore<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn buf_at(&self) -> u64 {
        self.pos - self.buf.len() as u64
    }

    /// How many more bytes the buffer takes before it must be stored: up to the next multiple
    /// of the chunk size, so a value written from its start is stored a whole chunk at a time
    /// and its chunks are rewritten whole (never read first).
    fn room(&self) -> usize {
        let cs = self.chunk_size as u64;
        let boundary = (self.buf_at() / cs + 1) * cs;
        usize::try_from(boundary - self.pos).unwrap_or(usize::MAX)
    }

    /// Takes what fits of `data` into the buffer; how much.
    fn accept(&mut self, data: &[u8]) -> Result<usize> {
        self.chunks.check_end(self.pos, data.len())?;
        let n = self.room().min(data.len());
        if n > 0 && self.buf.is_empty() {
            // A commit now would keep only what is stored: it waits for the writer.
            self.chunks.store.hold_commit(
                self.id,
                "a stream writer holds bytes it has not stored; finish it \
                 (StreamWriter::finish or AsyncWriteExt::shutdown) before committing",
            );
        }
        self.buf.extend_from_slice(&data[..n]);
        self.pos += n as u64;
        Ok(n)
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let at = self.buf_at();
        // The buffer stays until stored: a writer dropped mid-way (or after a failure) still
        // holds it, and poisons the transaction.
        self.chunks
            .write_at(&self.key, at, &self.buf, self.chunk_size)
            .await?;
        self.buf.clear();
        self.chunks.store.release_commit(self.id);
        Ok(())
    }

    async fn write(&mut self, mut data: &[u8]) -> Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let n = self.accept(data)?;
            data = &data[n..];
            if self.room() == 0 {
                self.flush().await?;
            }
        }
        Ok(total)
    }

    async fn seek(&mut self, to: io::SeekFrom) -> Result<u64> {
        self.flush().await?;
        let len = self.chunks.len(&self.key).await?.unwrap_or(0);
        self.pos = resolve(to, self.pos, len)
            .map_err(|reason| self.chunks.bad_arg("seek position", reason))?;
        // Room is measured from where the buffer starts: a fresh chunk boundary.
        Ok(self.pos)
    }
}

/// A position a seek asks for, or why it cannot be one.
pub(crate) fn resolve(to: io::SeekFrom, pos: u64, len: u64) -> std::result::Result<u64, String> {
    let (base, delta) = match to {
        io::SeekFrom::Start(n) if n <= crate::chunks::MAX_VALUE_LEN => return Ok(n),
        io::SeekFrom::Start(n) => {
            return Err(format!(
                "{n} is past the longest value ({} bytes)",
                crate::chunks::MAX_VALUE_LEN
            ));
        }
        io::SeekFrom::End(d) => (len, d),
        io::SeekFrom::Current(d) => (pos, d),
    };
    base.checked_add_signed(delta)
        .filter(|p| *p <= crate::chunks::MAX_VALUE_LEN)
        .ok_or_else(|| {
            format!("{base} {delta:+} is before the start of the value or past the longest value")
        })
}

type Job<K, C, T> = Pin<Box<dyn Future<Output = (Box<WriterCore<K, C>>, Result<T>)> + Send>>;

enum State<K, C> {
    Idle(Box<WriterCore<K, C>>),
    Flushing(Job<K, C, ()>),
    Seeking(Job<K, C, u64>),
    /// A seek asked for and not yet started (`start_seek`).
    SeekAsked(Box<WriterCore<K, C>>, io::SeekFrom),
    Finished,
    Gone,
}

/// A byte-stream writer into one value of a [`StreamingStore`](crate::StreamingStore): async
/// calls ([`StreamWriter::write`], [`StreamWriter::seek`], [`StreamWriter::finish`]) and
/// `tokio::io::{AsyncWrite, AsyncSeek}`.
///
/// It keeps at most one chunk of bytes and stores them a chunk-aligned range at a time, so a
/// value written from its start becomes whole chunks and memory stays bounded whatever its
/// size. Finish it ([`StreamWriter::finish`], or `shutdown` through `AsyncWriteExt`): a writer
/// dropped with bytes it has not stored marks the store unusable for the transaction, whose
/// commit then fails rather than keep part of what was written.
pub struct StreamWriter<K, C> {
    state: State<K, C>,
}

impl<K, C> std::fmt::Debug for StreamWriter<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter").finish_non_exhaustive()
    }
}

impl<K, C> StreamWriter<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    pub(crate) fn new(chunks: Chunks<K, C>, key: K, pos: u64, chunk_size: usize) -> Self {
        StreamWriter {
            state: State::Idle(Box::new(WriterCore {
                chunks,
                key,
                pos,
                buf: Vec::new(),
                chunk_size,
                id: Uuid::new_v4(),
            })),
        }
    }

    fn core(&mut self) -> Result<&mut WriterCore<K, C>> {
        match &mut self.state {
            State::Idle(core) => Ok(core),
            State::Finished => Err(misuse("the writer is finished")),
            _ => Err(misuse(
                "an AsyncWrite/AsyncSeek call of this writer was left unfinished (a future dropped \
                 mid-way); the writer cannot be used again",
            )),
        }
    }

    /// Writes all of `data` at the position (buffered up to a chunk); how many bytes (all).
    ///
    /// # Errors
    /// Conflicts, storage errors, a read-only transaction.
    pub async fn write(&mut self, data: &[u8]) -> Result<usize> {
        self.core()?.write(data).await
    }

    /// Stores the buffered bytes now.
    ///
    /// # Errors
    /// As [`StreamWriter::write`].
    pub async fn flush(&mut self) -> Result<()> {
        self.core()?.flush().await
    }

    /// Moves the position (buffered bytes are stored first); the new position. Past the end,
    /// the next write fills the gap with zeros.
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`](sop_core::UsageError::InvalidArgument) before the start; as
    /// [`StreamWriter::write`].
    pub async fn seek(&mut self, to: io::SeekFrom) -> Result<u64> {
        self.core()?.seek(to).await
    }

    /// The position the next byte is written at.
    #[must_use]
    pub fn position(&self) -> u64 {
        match &self.state {
            State::Idle(c) | State::SeekAsked(c, _) => c.pos,
            _ => 0,
        }
    }

    /// Stores what is buffered and ends the writer.
    ///
    /// # Errors
    /// As [`StreamWriter::write`].
    pub async fn finish(mut self) -> Result<()> {
        // Also completes a flush an `AsyncWrite` call left under way.
        std::future::poll_fn(|cx| self.poll_flush_inner(cx)).await?;
        if let State::Idle(_) | State::Finished = self.state {
            self.state = State::Finished;
            Ok(())
        } else {
            Err(misuse("a seek of this writer is under way"))
        }
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match std::mem::replace(&mut self.state, State::Gone) {
                State::Idle(core) if core.buf.is_empty() => {
                    self.state = State::Idle(core);
                    return Poll::Ready(Ok(()));
                }
                State::Idle(mut core) => {
                    self.state = State::Flushing(Box::pin(async move {
                        let r = core.flush().await;
                        (core, r)
                    }));
                }
                State::Flushing(mut job) => {
                    return match job.as_mut().poll(cx) {
                        Poll::Pending => {
                            self.state = State::Flushing(job);
                            Poll::Pending
                        }
                        Poll::Ready((core, r)) => {
                            self.state = State::Idle(core);
                            Poll::Ready(r)
                        }
                    };
                }
                State::Finished => {
                    self.state = State::Finished;
                    return Poll::Ready(Ok(()));
                }
                other => {
                    self.state = other;
                    return Poll::Ready(Err(misuse("a seek of this writer is under way")));
                }
            }
        }
    }
}

impl<K, C> Drop for WriterCore<K, C> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            self.chunks.store.release_commit(self.id);
        } else {
            self.chunks.store.poison(
                "a stream writer was dropped with bytes it had not stored; finish it \
                 (StreamWriter::finish or AsyncWriteExt::shutdown) before committing",
            );
        }
    }
}

fn misuse(reason: &str) -> sop_core::Error {
    crate::chunks::misuse("stream writer call", reason)
}

fn to_io(e: sop_core::Error) -> io::Error {
    io::Error::other(e)
}

impl<K, C> tokio::io::AsyncWrite for StreamWriter<K, C>
where
    K: Data + Unpin,
    C: KeyComparator<K> + Clone + Send + Sync + Unpin + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Idle(core) => {
                    if core.room() > 0 || data.is_empty() {
                        return Poll::Ready(core.accept(data).map_err(to_io));
                    }
                }
                State::Flushing(_) => {}
                State::Finished => {
                    return Poll::Ready(Err(to_io(misuse("the writer is shut down"))));
                }
                _ => return Poll::Ready(Err(to_io(misuse("a seek of this writer is under way")))),
            }
            ready!(this.poll_flush_inner(cx)).map_err(to_io)?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_inner(cx).map_err(to_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_inner(cx)).map_err(to_io)?;
        this.state = State::Finished;
        Poll::Ready(Ok(()))
    }
}

impl<K, C> tokio::io::AsyncSeek for StreamWriter<K, C>
where
    K: Data + Unpin,
    C: KeyComparator<K> + Clone + Send + Sync + Unpin + 'static,
{
    fn start_seek(self: Pin<&mut Self>, to: io::SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Gone) {
            State::Idle(core) => {
                this.state = State::SeekAsked(core, to);
                Ok(())
            }
            other => {
                this.state = other;
                Err(to_io(misuse(
                    "another operation of this writer is under way",
                )))
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, State::Gone) {
                State::SeekAsked(mut core, to) => {
                    this.state = State::Seeking(Box::pin(async move {
                        let r = core.seek(to).await;
                        (core, r)
                    }));
                }
                State::Seeking(mut job) => {
                    return match job.as_mut().poll(cx) {
                        Poll::Pending => {
                            this.state = State::Seeking(job);
                            Poll::Pending
                        }
                        Poll::Ready((core, r)) => {
                            this.state = State::Idle(core);
                            Poll::Ready(r.map_err(to_io))
                        }
                    };
                }
                State::Idle(core) => {
                    let pos = core.pos;
                    this.state = State::Idle(core);
                    return Poll::Ready(Ok(pos));
                }
                other => {
                    this.state = other;
                    return Poll::Ready(Err(to_io(misuse("no seek of this writer is under way"))));
                }
            }
        }
    }
}
