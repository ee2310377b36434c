//! sop-rs: B-trees of any `serde` key and value, built to become an embeddable, transactional,
//! replicated storage engine (a Rust re-creation of SOP, Scalable Objects Persistence).
//!
//! This crate is the facade applications depend on: it re-exports what users need from the
//! layered crates below it. Today that is the B-tree engine over an in-memory repository; the
//! on-disk registry, transactions and the `Database` entry point come next (see README.md's
//! feature table).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use sop::{MemBTree, StoreOptions};
//!
//! let mut users = MemBTree::<String, String>::in_memory(&StoreOptions::new("users"))?;
//! users.add("ada".into(), "Ada Lovelace".into()).await?;
//! assert_eq!(users.get(&"ada".to_string()).await?.as_deref(), Some("Ada Lovelace"));
//! # Ok::<(), sop::Error>(())
//! # }).unwrap();
//! ```

pub use sop_btree::{
    BTree, FnComparator, Item, KeyComparator, MemBTree, MemRepository, NaturalOrder, Range,
    TreeStats,
};
pub use sop_core::{Error, Result, StoreCacheConfig, StoreInfo, StoreOptions, Uuid, ValueDataSize};

/// The lower layers, for code that plugs its own repository under a tree.
pub mod engine {
    pub use sop_btree::{ItemValue, Node, NodeItem, NodeRepository, ValueStore};
    pub use sop_core::{Handle, codec};
}

// README.md's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
