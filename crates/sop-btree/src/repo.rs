//! The two seams between the B-tree algorithm and whatever stores its nodes and values.

use std::future::Future;
use std::sync::Arc;

use sop_core::{Result, Uuid};

use crate::Node;

/// Where a tree's nodes live: in memory for tests and the in-memory tree, inside a transaction
/// for the database.
///
/// Reads hand out shared nodes. To change a node the tree first *checks it out*: the repository
/// hands over its copy (cloning only when someone else still shares it), and the tree gives it
/// back with [`update`](NodeRepository::update) or drops it with
/// [`remove`](NodeRepository::remove). `add`, `update` and `remove` only record the change; a
/// transactional repository writes at commit, so they do no I/O.
pub trait NodeRepository<K, V>: Send {
    /// The node with this logical id, to read. Takes `&self` so that any number of readers
    /// (cursors, ranges) can share one tree.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Arc<Node<K, V>>>> + Send;

    /// The node with this logical id, to change. The tree hands it back with `update` (or
    /// `remove`s it) before its current call returns, unless that call fails.
    fn checkout(&mut self, id: Uuid) -> impl Future<Output = Result<Node<K, V>>> + Send;

    /// Records a node the tree just created.
    ///
    /// # Errors
    /// When the repository cannot record it (a transaction that ended, say).
    fn add(&mut self, node: Node<K, V>) -> Result<()>;

    /// Records a changed node.
    ///
    /// # Errors
    /// As [`NodeRepository::add`].
    fn update(&mut self, node: Node<K, V>) -> Result<()>;

    /// Records that a node is gone (merged into a sibling, or pulled up into the root).
    ///
    /// # Errors
    /// As [`NodeRepository::add`].
    fn remove(&mut self, id: Uuid) -> Result<()>;

    /// A number that changes whenever a node of the tree changes through *another* handle on
    /// the same nodes (a second handle on one store in one transaction). Readers that hold
    /// paths into the tree (cursors, ranges) find their place again by key when it moves. A
    /// repository with one handle per tree keeps the default.
    fn generation(&self) -> u64 {
        0
    }
}

/// Where values kept outside their nodes live, by blob id.
///
/// The tree never writes twice under one blob id: an updated value gets a new id and the old one
/// is removed, so a transactional store can keep committed values intact until its commit.
pub trait ValueStore<V>: Send {
    /// The value stored under `id`.
    fn get_value(&self, id: Uuid) -> impl Future<Output = Result<V>> + Send;

    /// Stores `value` under the new id `id`.
    fn put_value(&mut self, id: Uuid, value: V) -> impl Future<Output = Result<()>> + Send;

    /// Forgets the value under `id`.
    fn remove_value(&mut self, id: Uuid) -> impl Future<Output = Result<()>> + Send;
}
