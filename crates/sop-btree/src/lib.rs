//! The B-tree algorithm of sop-rs.
//!
//! A [`BTree`] works on nodes it gets from a [`NodeRepository`] and on values kept outside
//! nodes in a [`ValueStore`]; it knows nothing of disks, caches or transactions. The same code
//! runs over [`MemRepository`] (the in-memory tree, [`MemBTree`]) and over a transaction's
//! repository in the database.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use sop_btree::MemBTree;
//! use sop_core::StoreOptions;
//!
//! let mut tree = MemBTree::<u32, String>::in_memory(&StoreOptions::new("demo").slot_length(4))?;
//! for k in [5, 1, 3] {
//!     tree.add(k, format!("v{k}")).await?;
//! }
//! assert_eq!(tree.get(&3).await?, Some("v3".to_string()));
//! let keys: Vec<u32> = tree.range(2..).collect().await?.into_iter().map(|it| it.key).collect();
//! assert_eq!(keys, [3, 5]);
//! # Ok::<(), sop_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! Reads that do not move the tree's own cursor (`get`, `contains_key`, `range`, `cursor`)
//! take `&self`; changes take `&mut self`. It is not transactional or persistent by itself.

mod check;
mod compare;
mod cursor;
mod delta;
mod index;
mod insert;
mod item_ref;
mod mem;
mod node;
mod path;
mod range;
mod raw;
mod remove;
mod repo;
mod tree;

pub use check::TreeStats;
pub use compare::{FnComparator, KeyComparator, NaturalOrder};
pub use cursor::Cursor;
pub use item_ref::ItemRef;
pub use mem::MemRepository;
pub use node::{Item, ItemShape, ItemValue, Node, NodeItem, NodeShape};
pub use range::Range;
pub use raw::{DELTA_FORMAT_VERSION, NODE_FORMAT_VERSION, PieceKind, RawItem, RawNode};
pub use repo::{NodeRepository, ValueStore};
/// The errors a tree's cursor raises (defined in `sop-core`, which every layer shares).
pub use sop_core::CursorError;
pub use tree::{BTree, MemBTree, Put, Upserted};
