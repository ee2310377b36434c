//! What a node holds, and how it is encoded.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sop_core::{Error, Result, Uuid, codec};

use crate::raw::{NODE_FORMAT_VERSION, RawItem, RawNode, VALUE_EXTERNAL, VALUE_INLINE, put_len};

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
///
/// Items are shared (`Arc`): copying a node to change it, or building a node version from a
/// delta over another, copies pointers, not keys and values (a commit into a 1,000-item node
/// spent three quarters of its instructions cloning keys and values before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node<K, V> {
    /// The node's logical id: stable for the node's life.
    pub id: Uuid,
    /// The items, in key order.
    pub items: Vec<Arc<NodeItem<K, V>>>,
    /// The children's logical ids: empty for a leaf, `items.len() + 1` otherwise.
    pub children: Vec<Uuid>,
    /// The heads of the items' keys, once this version was searched often (see `index.rs`).
    pub(crate) index: crate::index::SearchIndex,
}

impl<K, V> Node<K, V> {
    /// The index of the first item whose key is not less than `key` by `cmp` (the search the
    /// tree itself uses, through the node's key heads once it has them).
    pub fn lower_bound<C: crate::KeyComparator<K>>(&self, cmp: &C, key: &K) -> usize {
        crate::path::lower_bound(cmp, self, key)
    }

    /// An empty leaf.
    #[must_use]
    pub fn new(id: Uuid) -> Self {
        Node::from_parts(id, Vec::new(), Vec::new())
    }

    /// A node of these items and children.
    #[must_use]
    pub fn from_parts(id: Uuid, items: Vec<Arc<NodeItem<K, V>>>, children: Vec<Uuid>) -> Self {
        Node {
            id,
            items,
            children,
            index: crate::index::SearchIndex::default(),
        }
    }

    /// Whether the node has no children.
    #[must_use]
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

impl<K: Serialize + 'static, V: Serialize + 'static> Node<K, V> {
    /// The node's full piece (format 3, see ARCHITECTURE.md "Node pieces"): its id, children,
    /// then each item with its key and in-node value encoded on their own, so the piece can be
    /// read without the key and value types ([`RawNode`]).
    ///
    /// # Errors
    /// When a key or value cannot be encoded.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.encode_with(&|id| id)
    }

    /// As [`Node::encode`], writing each out-of-node value's id through `ext` (the transaction
    /// layer swaps the ids it gave values for where it stored them).
    ///
    /// # Errors
    /// As [`Node::encode`].
    pub fn encode_with(&self, ext: &dyn Fn(Uuid) -> Uuid) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 + self.children.len() * 16 + self.items.len() * 48);
        out.push(NODE_FORMAT_VERSION);
        out.extend_from_slice(self.id.as_bytes());
        put_len(&mut out, self.children.len());
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
        }
        put_len(&mut out, self.items.len());
        for item in &self.items {
            encode_item(item, &mut out, ext)?;
        }
        Ok(out)
    }
}

/// Appends one encoded item: id, version, value kind, key (length-prefixed), then the in-node
/// value (length-prefixed) or the value's location.
pub(crate) fn encode_item<K: Serialize + 'static, V: Serialize + 'static>(
    item: &NodeItem<K, V>,
    out: &mut Vec<u8>,
    ext: &dyn Fn(Uuid) -> Uuid,
) -> Result<()> {
    out.extend_from_slice(item.id.as_bytes());
    out.extend_from_slice(&item.version.to_le_bytes());
    match &item.value {
        ItemValue::Inline(_) => out.push(VALUE_INLINE),
        ItemValue::External(_) => out.push(VALUE_EXTERNAL),
    }
    put_encoded(out, &item.key)?;
    match &item.value {
        ItemValue::Inline(v) => put_encoded(out, v)?,
        ItemValue::External(id) => out.extend_from_slice(ext(*id).as_bytes()),
    }
    Ok(())
}

/// Appends `value`'s codec encoding behind its length (u32 LE).
fn put_encoded<T: Serialize + std::any::Any>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    codec::encode_into_any(value, out)?;
    let len = u32::try_from(out.len() - at - 4).map_err(|_| {
        Error::Corruption(sop_core::CorruptionError::Damaged {
            what: "b-tree node",
            location: "encode".into(),
            detail: "a key or value of 4 GiB or more".into(),
        })
    })?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Decodes one item of a parsed piece.
pub(crate) fn decode_item<K: DeserializeOwned + 'static, V: DeserializeOwned + 'static>(
    raw: &RawItem<'_>,
) -> Result<NodeItem<K, V>> {
    let value = match (raw.inline, raw.external) {
        (Some(bytes), _) => ItemValue::Inline(codec::decode_any(bytes, "b-tree node value")?),
        (None, Some(id)) => ItemValue::External(id),
        (None, None) => {
            return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                what: "b-tree node",
                location: raw.id.to_string(),
                detail: "an item with no value".into(),
            }));
        }
    };
    Ok(NodeItem {
        id: raw.id,
        key: codec::decode_any(raw.key, "b-tree node key")?,
        value,
        version: raw.version,
    })
}

impl<K: DeserializeOwned + 'static, V: DeserializeOwned + 'static> Node<K, V> {
    /// Reads a full node piece ([`Node::encode`]'s bytes).
    ///
    /// # Errors
    /// A typed decode or corruption error; never a panic, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let raw = RawNode::parse(bytes)?;
        Self::from_raw(&raw)
    }

    /// Decodes the keys and values of a parsed node.
    ///
    /// # Errors
    /// A decode error for a key or value that is not a `K` or `V`.
    pub fn from_raw(raw: &RawNode<'_>) -> Result<Self> {
        let items = raw
            .items
            .iter()
            .map(|r| decode_item(r).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(Node {
            id: raw.id,
            items,
            children: raw.children.clone(),
            index: crate::index::SearchIndex::default(),
        })
    }
}

/// The part of a node that does not depend on the key and value types: enough to walk a tree,
/// count its items and find the values it references without knowing what it stores (`sop
/// verify` does).
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
    /// Where the value is, when it is not in the node.
    pub external: Option<Uuid>,
}

impl NodeShape {
    /// The shape of a full node piece.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) for anything but a well-formed full piece.
    pub fn decode(bytes: &[u8]) -> Result<NodeShape> {
        Ok(RawNode::parse(bytes)?.shape())
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
