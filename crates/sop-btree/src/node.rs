//! What a node holds, and how it is encoded.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sop_core::{Result, Uuid, codec};

/// The format version byte in front of every encoded node.
pub const NODE_FORMAT_VERSION: u8 = 1;

/// Where an item's value is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemValue<V> {
    /// Inside the node, next to its key.
    Inline(V),
    /// In the value store under this blob id. Every write of the value uses a new blob id, so a
    /// committed value is never overwritten in place.
    External(Uuid),
}

/// One item in a node: a key, its value (or where the value is), and an identity that
/// distinguishes items with equal keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeItem<K, V> {
    /// The item's id: fixed for the item's life, unique in the store.
    pub id: Uuid,
    /// The key.
    pub key: K,
    /// The value, or where to find it.
    pub value: ItemValue<V>,
    /// Bumped on every change of the item's key or value, so a transaction can tell whether an
    /// item it read was changed by another (wraps around).
    pub version: u32,
}

/// A B-tree node.
///
/// A leaf has no children. An internal node with `n` items has `n + 1` children: child `i` holds
/// the keys between item `i - 1` and item `i`. Nodes do not know their parent: cursors carry the
/// path from the root, so a split never has to rewrite the children it moves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node<K, V> {
    /// The node's logical id: stable for the node's life.
    pub id: Uuid,
    /// The items, in key order.
    pub items: Vec<NodeItem<K, V>>,
    /// The children's logical ids: empty for a leaf, `items.len() + 1` otherwise.
    pub children: Vec<Uuid>,
}

impl<K, V> Node<K, V> {
    /// An empty leaf.
    #[must_use]
    pub fn new(id: Uuid) -> Self {
        Node {
            id,
            items: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Whether the node has no children.
    #[must_use]
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

impl<K: Serialize, V: Serialize> Node<K, V> {
    /// The node's bytes: the format version, then the codec's encoding of the node.
    ///
    /// # Errors
    /// When a key or value cannot be encoded.
    pub fn encode(&self) -> Result<Vec<u8>> {
        codec::encode_versioned(NODE_FORMAT_VERSION, self)
    }
}

impl<K: DeserializeOwned, V: DeserializeOwned> Node<K, V> {
    /// Reads what [`Node::encode`] wrote.
    ///
    /// # Errors
    /// A typed decode or corruption error; never a panic, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        codec::decode_versioned(bytes, NODE_FORMAT_VERSION, "b-tree node")
    }
}

/// An item as the tree hands it out: id, key and value, all owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item<K, V> {
    /// The item's id.
    pub id: Uuid,
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
}
