//! Streaming values of any size in sop-rs: SOP's streaming data store, with the chunking
//! automatic.
//!
//! A [`StreamingStore`] keeps each value as chunks `(key, chunk index)` of one B-tree inside
//! ordinary transactions, so a 4 GiB video, a dataset or model weights commit (or roll back)
//! with everything else the transaction does. Values are read and written as byte streams
//! ([`StreamWriter`], [`StreamReader`]: `tokio::io::{AsyncWrite, AsyncRead, AsyncSeek}`) or by
//! range; memory stays at a few chunks whatever the size. SOP's chunk-level calls and JSON
//! framing ([`Encoder`], [`Decoder`]) are kept for parity.
//!
//! This crate uses only the public transaction and tree API (`sop-txn`): it knows nothing of
//! registries or blob files.

mod chunk_api;
mod chunks;
mod json;
mod key;
mod reader;
mod store;
mod writer;

pub use chunks::MAX_VALUE_LEN;
pub use json::{Decoder, Encoder};
pub use key::{ChunkKey, ChunkOrder};
pub use reader::StreamReader;
pub use store::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_SLOT_LENGTH, StreamingStore};
pub use writer::StreamWriter;
