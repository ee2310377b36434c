//! A byte-stream reader of one value: one chunk in memory at a time.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use sop_btree::KeyComparator;
use sop_core::Result;
use sop_txn::Data;

use crate::chunks::{Chunks, idx};
use crate::key::ChunkKey;
use crate::writer::resolve;

pub(crate) struct ReaderCore<K, C> {
    chunks: Chunks<K, C>,
    key: K,
    pos: u64,
    /// The chunk last read and its bytes.
    cur: Option<(ChunkKey<K>, Vec<u8>)>,
}

impl<K, C> ReaderCore<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    /// The bytes at the position from the chunk in memory (empty when it does not hold it).
    fn buffered(&self) -> &[u8] {
        match &self.cur {
            Some((c, bytes)) if c.offset <= self.pos && self.pos < c.end() => {
                bytes.get(idx(self.pos - c.offset)..).unwrap_or_default()
            }
            _ => &[],
        }
    }

    fn take(&mut self, buf: &mut [u8]) -> usize {
        let src = self.buffered();
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        self.pos += n as u64;
        n
    }

    /// Loads the chunk holding the position; `false` at the end of the value.
    async fn fill(&mut self) -> Result<bool> {
        if !self.buffered().is_empty() {
            return Ok(true);
        }
        let prev = self.cur.take().map(|(c, _)| c);
        let Some(c) = self
            .chunks
            .holding(&self.key, self.pos, prev.as_ref())
            .await?
        else {
            return Ok(false);
        };
        let bytes = self.chunks.read(&c).await?;
        self.cur = Some((c, bytes));
        Ok(!self.buffered().is_empty())
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() || !self.fill().await? {
            return Ok(0);
        }
        Ok(self.take(buf))
    }

    async fn seek(&mut self, to: io::SeekFrom) -> Result<u64> {
        let len = self.chunks.len(&self.key).await?.unwrap_or(0);
        self.pos = resolve(to, self.pos, len)
            .map_err(|reason| self.chunks.bad_arg("seek position", reason))?;
        Ok(self.pos)
    }
}

type Job<K, C, T> = Pin<Box<dyn Future<Output = (Box<ReaderCore<K, C>>, Result<T>)> + Send>>;

enum State<K, C> {
    Idle(Box<ReaderCore<K, C>>),
    Filling(Job<K, C, bool>),
    SeekAsked(Box<ReaderCore<K, C>>, io::SeekFrom),
    Seeking(Job<K, C, u64>),
    Gone,
}

/// A byte-stream reader of one value of a [`StreamingStore`](crate::StreamingStore): async
/// calls ([`StreamReader::read`], [`StreamReader::seek`]) and
/// `tokio::io::{AsyncRead, AsyncSeek}`. It holds one chunk in memory at a time, and sees the
/// value as its transaction does (a chunk already in memory is not read again).
pub struct StreamReader<K, C> {
    state: State<K, C>,
}

impl<K, C> std::fmt::Debug for StreamReader<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader").finish_non_exhaustive()
    }
}

fn misuse(reason: &str) -> sop_core::Error {
    crate::chunks::misuse("stream reader call", reason)
}

impl<K, C> StreamReader<K, C>
where
    K: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    pub(crate) fn new(chunks: Chunks<K, C>, key: K) -> Self {
        StreamReader {
            state: State::Idle(Box::new(ReaderCore {
                chunks,
                key,
                pos: 0,
                cur: None,
            })),
        }
    }

    fn core(&mut self) -> Result<&mut ReaderCore<K, C>> {
        match &mut self.state {
            State::Idle(c) => Ok(c),
            _ => Err(misuse(
                "an AsyncRead/AsyncSeek call of this reader was left unfinished; it cannot be \
                 used again",
            )),
        }
    }

    pub(crate) fn set_position(&mut self, pos: u64) {
        if let State::Idle(c) = &mut self.state {
            c.pos = pos;
        }
    }

    /// The position the next byte is read from.
    #[must_use]
    pub fn position(&self) -> u64 {
        match &self.state {
            State::Idle(c) | State::SeekAsked(c, _) => c.pos,
            _ => 0,
        }
    }

    /// Reads into `buf` from the position; how many bytes (0 at the end). One call returns
    /// bytes of one chunk at most.
    ///
    /// # Errors
    /// Conflicts and storage errors.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.core()?.read(buf).await
    }

    /// Moves the position; the new position (past the end, reads return 0).
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`](sop_core::UsageError::InvalidArgument) before the start.
    pub async fn seek(&mut self, to: io::SeekFrom) -> Result<u64> {
        self.core()?.seek(to).await
    }
}

impl<K, C> tokio::io::AsyncRead for StreamReader<K, C>
where
    K: Data + Unpin,
    C: KeyComparator<K> + Clone + Send + Sync + Unpin + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, State::Gone) {
                State::Idle(mut core) => {
                    if buf.remaining() == 0 {
                        this.state = State::Idle(core);
                        return Poll::Ready(Ok(()));
                    }
                    if !core.buffered().is_empty() {
                        let n = core.take(buf.initialize_unfilled());
                        buf.advance(n);
                        this.state = State::Idle(core);
                        return Poll::Ready(Ok(()));
                    }
                    this.state = State::Filling(Box::pin(async move {
                        let r = core.fill().await;
                        (core, r)
                    }));
                }
                State::Filling(mut job) => match job.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = State::Filling(job);
                        return Poll::Pending;
                    }
                    Poll::Ready((core, r)) => {
                        this.state = State::Idle(core);
                        match r {
                            Ok(true) => {}
                            // The end: nothing read.
                            Ok(false) => return Poll::Ready(Ok(())),
                            Err(e) => return Poll::Ready(Err(io::Error::other(e))),
                        }
                    }
                },
                other => {
                    this.state = other;
                    return Poll::Ready(Err(io::Error::other(misuse(
                        "a seek of this reader is under way",
                    ))));
                }
            }
        }
    }
}

impl<K, C> tokio::io::AsyncSeek for StreamReader<K, C>
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
                Err(io::Error::other(misuse(
                    "another operation of this reader is under way",
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
                            Poll::Ready(r.map_err(io::Error::other))
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
                    return Poll::Ready(Err(io::Error::other(misuse(
                        "no seek of this reader is under way",
                    ))));
                }
            }
        }
    }
}
