//! Streamed values (sop-streaming): a store of byte values of any size, and file-like
//! readers and writers over one value.

use std::io::SeekFrom;
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sop::StoreOptions;
use sop::streaming::{StreamReader, StreamWriter, StreamingStore};

use crate::db::NativeTransaction;
use crate::errors::invalid;
use crate::rt::{detached, locked, locked_open};

type Store = StreamingStore<String>;

/// A store of streamed byte values (Python: `sop.streaming.StreamingStore`).
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeStreams {
    store: Arc<Mutex<Store>>,
}

impl NativeStreams {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut Store) -> sop::Result<T> + Send,
    ) -> PyResult<T> {
        locked(py, &self.store, f)
    }
}

#[pymethods]
impl NativeTransaction {
    /// Opens (creating when missing) the streaming store `name`; `chunk_size` in bytes (0:
    /// the default, 20 MiB).
    #[pyo3(signature = (name, chunk_size=0))]
    fn open_streaming(
        &self,
        py: Python<'_>,
        name: &str,
        chunk_size: usize,
    ) -> PyResult<NativeStreams> {
        let (tx, name) = (self.tx.clone(), name.to_string());
        let s = detached(py, move |_| {
            let s = Store::open_or_create(
                &tx,
                &StoreOptions::with_value_size(&name, sop::ValueDataSize::Big),
            )?;
            if chunk_size > 0 {
                s.with_chunk_size(chunk_size)
            } else {
                Ok(s)
            }
        })?;
        Ok(NativeStreams {
            store: Arc::new(Mutex::new(s)),
        })
    }
}

fn bytes(py: Python<'_>, b: &[u8]) -> Py<PyBytes> {
    PyBytes::new(py, b).unbind()
}

#[pymethods]
impl NativeStreams {
    /// Stores `data` as the whole value of `key`.
    fn put(&self, py: Python<'_>, key: String, data: Vec<u8>) -> PyResult<()> {
        self.with(py, async move |s| s.put(&key, &data).await)
    }

    /// The whole value of `key`, or `None`.
    fn get(&self, py: Python<'_>, key: String) -> PyResult<Option<Py<PyBytes>>> {
        let v = self.with(py, async move |s| s.get(&key).await)?;
        Ok(v.map(|v| bytes(py, &v)))
    }

    /// The length of `key`'s value, or `None`.
    fn size(&self, py: Python<'_>, key: String) -> PyResult<Option<u64>> {
        self.with(py, async move |s| s.len(&key).await)
    }

    /// Removes `key`'s value: `True` when it was there.
    fn remove(&self, py: Python<'_>, key: String) -> PyResult<bool> {
        self.with(py, async move |s| s.remove(&key).await)
    }

    /// The keys, in order.
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, async move |s| s.keys().await)
    }

    /// Up to `n` bytes of `key`'s value from `offset`.
    fn read_at(&self, py: Python<'_>, key: String, offset: u64, n: usize) -> PyResult<Py<PyBytes>> {
        let got = self.with(py, async |s| {
            // No bigger a buffer than what is there to read.
            let left = s.len(&key).await?.unwrap_or(0).saturating_sub(offset);
            let mut buf = vec![0u8; n.min(usize::try_from(left).unwrap_or(usize::MAX))];
            let mut got = 0;
            while got < buf.len() {
                let k = s
                    .read_at(&key, offset + got as u64, &mut buf[got..])
                    .await?;
                if k == 0 {
                    break;
                }
                got += k;
            }
            buf.truncate(got);
            Ok(buf)
        })?;
        Ok(bytes(py, &got))
    }

    /// Writes `data` into `key`'s value at `offset` (zero-filling a gap).
    fn write_at(&self, py: Python<'_>, key: String, offset: u64, data: Vec<u8>) -> PyResult<()> {
        self.with(py, async move |s| s.write_at(&key, offset, &data).await)
    }

    /// Cuts or zero-extends `key`'s value to `len` bytes.
    fn truncate(&self, py: Python<'_>, key: String, len: u64) -> PyResult<()> {
        self.with(py, async move |s| s.truncate(&key, len).await)
    }

    /// A writer of `key`'s value: mode "w" replaces it, "a" appends to it.
    fn writer(&self, py: Python<'_>, key: String, mode: &str) -> PyResult<NativeStreamWriter> {
        let append = match mode {
            "w" => false,
            "a" => true,
            _ => {
                return Err(invalid(format!(
                    "writer mode {mode:?} is not \"w\" or \"a\""
                )));
            }
        };
        let w = self.with(py, async move |s| {
            if append {
                s.appender(&key).await
            } else {
                s.replace(&key).await
            }
        })?;
        Ok(NativeStreamWriter {
            w: Arc::new(Mutex::new(Some(w))),
        })
    }

    /// A reader of `key`'s value, or `None` when there is none.
    fn reader(&self, py: Python<'_>, key: String) -> PyResult<Option<NativeStreamReader>> {
        let r = self.with(py, async move |s| s.reader(&key).await)?;
        Ok(r.map(|r| NativeStreamReader {
            r: Arc::new(Mutex::new(Some(r))),
        }))
    }
}

fn seek_from(offset: i64, whence: i32) -> PyResult<SeekFrom> {
    match whence {
        0 => u64::try_from(offset)
            .map(SeekFrom::Start)
            .map_err(|_| invalid(format!("negative seek position {offset}"))),
        1 => Ok(SeekFrom::Current(offset)),
        2 => Ok(SeekFrom::End(offset)),
        _ => Err(invalid(format!("whence {whence} is not 0, 1 or 2"))),
    }
}

/// Writes one streamed value (Python: the raw file under `StreamingStore.open(key, "wb")`).
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeStreamWriter {
    w: Arc<Mutex<Option<StreamWriter<String, sop::NaturalOrder>>>>,
}

impl NativeStreamWriter {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut StreamWriter<String, sop::NaturalOrder>) -> sop::Result<T> + Send,
    ) -> PyResult<T> {
        locked_open(py, &self.w, "writer", f)
    }
}

#[pymethods]
impl NativeStreamWriter {
    /// Writes `data` at the position: how many bytes (all of them).
    fn write(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<usize> {
        self.with(py, async move |w| {
            let mut done = 0;
            while done < data.len() {
                done += w.write(&data[done..]).await?;
            }
            Ok(done)
        })
    }

    /// Moves the position (whence 0 start, 1 current, 2 end): the new position.
    #[pyo3(signature = (offset, whence=0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> PyResult<u64> {
        let to = seek_from(offset, whence)?;
        self.with(py, async move |w| w.seek(to).await)
    }

    /// The position.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, async move |w| Ok(w.position()))
    }

    /// Stores the bytes written so far.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, async move |w| w.flush().await)
    }

    /// Stores the rest and ends the writer (the transaction can commit after this).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let w = self.w.clone();
        detached(py, move |rt| match w.lock().take() {
            Some(w) => rt.block_on(w.finish()),
            None => Ok(()),
        })
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.w.lock().is_none()
    }
}

/// Reads one streamed value (Python: the raw file under `StreamingStore.open(key, "rb")`).
#[pyclass(module = "sop._sop", frozen)]
pub struct NativeStreamReader {
    r: Arc<Mutex<Option<StreamReader<String, sop::NaturalOrder>>>>,
}

impl NativeStreamReader {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut StreamReader<String, sop::NaturalOrder>) -> sop::Result<T> + Send,
    ) -> PyResult<T> {
        locked_open(py, &self.r, "reader", f)
    }
}

#[pymethods]
impl NativeStreamReader {
    /// Up to `n` bytes from the position, at most 64 MiB a call (a raw stream's short read:
    /// the buffered file object above asks again); empty at the end.
    fn read(&self, py: Python<'_>, n: usize) -> PyResult<Py<PyBytes>> {
        let mut buf = vec![0u8; n.min(64 << 20)];
        let got = self.with(py, async |r| {
            let mut got = 0;
            while got < buf.len() {
                let k = r.read(&mut buf[got..]).await?;
                if k == 0 {
                    break;
                }
                got += k;
            }
            Ok(got)
        })?;
        Ok(bytes(py, &buf[..got]))
    }

    /// Moves the position (whence 0 start, 1 current, 2 end): the new position.
    #[pyo3(signature = (offset, whence=0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> PyResult<u64> {
        let to = seek_from(offset, whence)?;
        self.with(py, async move |r| r.seek(to).await)
    }

    /// The position.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, async move |r| Ok(r.position()))
    }

    /// Ends the reader.
    fn close(&self, py: Python<'_>) {
        let r = self.r.clone();
        py.detach(move || drop(r.lock().take()));
    }
}
