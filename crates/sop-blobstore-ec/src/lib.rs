//! The log of sop-rs: where node versions, node deltas, values and commit records live.
//!
//! [`SegmentLog`] appends checksummed frames to segment files and makes them durable with one
//! `fdatasync` per group of commits; pieces inside data frames are addressed by
//! [`sop_core::Loc`]; record frames are replayed on open from a checkpoint's position, with
//! damage reported (file, offset, LSN) and fenced off. [`EcFs`] is erasure coding as a file
//! layer: it stripes every file it holds across `k + m` drives, so the log survives `m` lost or
//! corrupt drives. Byte layouts: ARCHITECTURE.md, "The log" and "Erasure coding".
//!
//! It is not: aware of B-trees, handles or transactions (the records it stores are opaque), or
//! a cache. All I/O goes through [`sop_core::vfs::FileSystem`].

mod blocking;
mod ec;
mod ecfs;
pub mod frame;
mod log;
mod segment;

pub use blocking::{blocking, pause};
pub use ec::{ErasureConfig, reconstruct, split_encode};
pub use ecfs::{EC_RECORD, EC_UNIT, EcFs, EcScrub};
pub use log::{LogDamage, LogOptions, LogPos, ParsedSegment, Replay, SegmentLog, parse_segment};
pub use segment::{Fence, SegmentHeader, parse_segment_name, segment_name};
/// The errors of the storage: I/O, lost drives (defined in `sop-core`, which every layer
/// shares: they come up through the tree and the transaction).
pub use sop_core::{CorruptionError, StorageError};
