//! What a node holds, and how it is encoded.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sop_core::{Error, Result, Uuid, codec};

/// The format version byte in front of every node this build encodes.
pub const NODE_FORMAT_VERSION: u8 = 2;
/// The first format (keys interleaved with item ids), still read.
const NODE_FORMAT_V1: u8 = 1;

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
    /// The node's bytes: the format version, then its shape (ids, versions, where values
    /// are), then the keys, then the values held in the node; see [`NodeShape`].
    ///
    /// # Errors
    /// When a key or value cannot be encoded.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let values: Vec<&V> = self
            .items
            .iter()
            .filter_map(|i| match &i.value {
                ItemValue::Inline(v) => Some(v),
                ItemValue::External(_) => None,
            })
            .collect();
        codec::encode_versioned(
            NODE_FORMAT_VERSION,
            &NodeRef {
                id: &self.id,
                children: &self.children,
                items: Shapes(&self.items),
                keys: Keys(&self.items),
                values,
            },
        )
    }
}

impl<K: DeserializeOwned, V: DeserializeOwned> Node<K, V> {
    /// Reads what [`Node::encode`] wrote (and nodes of format version 1).
    ///
    /// # Errors
    /// A typed decode or corruption error; never a panic, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.first() == Some(&NODE_FORMAT_V1) {
            return codec::decode_versioned(bytes, NODE_FORMAT_V1, "b-tree node");
        }
        let (shape, used) = NodeShape::decode(bytes)?;
        let rest = bytes.get(used..).unwrap_or_default();
        let (keys, used): (Vec<K>, usize) = codec::decode_prefix(rest, "b-tree node keys")?;
        let rest = rest.get(used..).unwrap_or_default();
        let values: Vec<V> = codec::decode(rest, "b-tree node values")?;
        let inline = shape.items.iter().filter(|i| i.external.is_none()).count();
        if keys.len() != shape.items.len() || values.len() != inline {
            return Err(Error::Corruption {
                what: "b-tree node",
                location: shape.id.to_string(),
                detail: format!(
                    "{} items, {} keys, {} in-node values ({inline} expected)",
                    shape.items.len(),
                    keys.len(),
                    values.len()
                ),
            });
        }
        let mut values = values.into_iter();
        let mut items = Vec::with_capacity(keys.len());
        for (s, key) in shape.items.into_iter().zip(keys) {
            let value = match s.external {
                Some(blob) => ItemValue::External(blob),
                None => ItemValue::Inline(values.next().ok_or_else(|| Error::Corruption {
                    what: "b-tree node",
                    location: shape.id.to_string(),
                    detail: "fewer in-node values than items that hold one".into(),
                })?),
            };
            items.push(NodeItem {
                id: s.id,
                key,
                value,
                version: s.version,
            });
        }
        Ok(Node {
            id: shape.id,
            items,
            children: shape.children,
        })
    }
}

/// The part of an encoded node that does not depend on the key and value types: enough to walk
/// a tree, count its items and find the blobs it references without knowing what it stores
/// (`sop verify` does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeShape {
    /// The node's logical id.
    pub id: Uuid,
    /// The children's logical ids: empty for a leaf.
    pub children: Vec<Uuid>,
    /// The items, in key order, without their keys and in-node values.
    pub items: Vec<ItemShape>,
}

/// An item of a [`NodeShape`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemShape {
    /// The item's id.
    pub id: Uuid,
    /// The item's version.
    pub version: u32,
    /// The blob holding the value, when it is not in the node.
    pub external: Option<Uuid>,
}

impl NodeShape {
    /// Reads the shape at the front of an encoded node; returns it and where the keys start.
    ///
    /// # Errors
    /// [`Error::Corruption`] for another format version (version 1 nodes interleave keys and
    /// cannot be read without their types); a decode error for malformed bytes.
    pub fn decode(bytes: &[u8]) -> Result<(NodeShape, usize)> {
        match bytes.first() {
            Some(&NODE_FORMAT_VERSION) => {
                let (shape, used) = codec::decode_prefix(&bytes[1..], "b-tree node shape")?;
                Ok((shape, used + 1))
            }
            found => Err(Error::Corruption {
                what: "b-tree node",
                location: "byte 0".into(),
                detail: match found {
                    None => "empty input".into(),
                    Some(v) => format!(
                        "format version {v}; reading a node's shape needs version {NODE_FORMAT_VERSION}"
                    ),
                },
            }),
        }
    }
}

/// A node as [`Node::encode`] writes it, borrowed: the shape's fields, then keys, then values.
#[derive(Serialize)]
struct NodeRef<'a, K, V> {
    id: &'a Uuid,
    children: &'a [Uuid],
    items: Shapes<'a, K, V>,
    keys: Keys<'a, K, V>,
    values: Vec<&'a V>,
}

/// Serializes as `Vec<ItemShape>` without building one.
struct Shapes<'a, K, V>(&'a [NodeItem<K, V>]);

impl<K, V> Serialize for Shapes<'_, K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|i| ItemShape {
            id: i.id,
            version: i.version,
            external: match i.value {
                ItemValue::External(blob) => Some(blob),
                ItemValue::Inline(_) => None,
            },
        }))
    }
}

/// Serializes as `Vec<K>` of the items' keys.
struct Keys<'a, K, V>(&'a [NodeItem<K, V>]);

impl<K: Serialize, V> Serialize for Keys<'_, K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|i| &i.key))
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
