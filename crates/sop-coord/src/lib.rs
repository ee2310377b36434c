//! Coordination for sop-rs: who may change what, and the shared (L2) cache.
//!
//! Two narrow traits, [`Locker`] and [`Cache`], with in-memory implementations for standalone
//! mode ([`MemLocker`], [`MemCache`]) and a Redis implementation for clustered mode ([`Redis`],
//! the only code of sop-rs that names `fred`). [`FolderLock`] is the
//! operating-system lock that keeps a standalone database folder to one process.
//!
//! Locks and cache entries are leases: durable truth is always on storage, and a commit is
//! fenced by version checks in the registry, not by a lock alone.
//!
//! It is not: a transaction manager (that is `sop-txn`), or aware of B-trees.

mod cache;
mod folder;
mod lock;
mod redis;

pub use cache::{Cache, MemCache};
pub use folder::FolderLock;
pub use lock::{Locker, MemLocker};
pub use redis::{Redis, RedisConfig};
/// The errors of the coordination service (defined in `sop-core`, which every layer shares).
pub use sop_core::CoordinationError;

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the traits can be used as `Arc<dyn Locker>` / `Arc<dyn Cache>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
