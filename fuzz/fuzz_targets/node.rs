//! Node pieces: full nodes (typed decodes of several key/value types, the type-free parse and
//! shape, re-encoding) and deltas (over typed and type-free bases). Any input gives a value or
//! an error, never a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_btree::{DELTA_FORMAT_VERSION, NODE_FORMAT_VERSION, Node, NodeShape, PieceKind, RawNode};

/// A base for deltas: a small valid node.
fn base() -> Node<String, Vec<u8>> {
    Node::from_parts(
        sop_core::Uuid::from_bytes([1; 16]),
        (0..5u8)
            .map(|i| {
                std::sync::Arc::new(sop_btree::NodeItem {
                    id: sop_core::Uuid::from_bytes([i + 2; 16]),
                    key: format!("k{i}"),
                    value: sop_btree::ItemValue::Inline(vec![i; 3]),
                    version: u32::from(i),
                })
            })
            .collect(),
        (0..6u8)
            .map(|i| sop_core::Uuid::from_bytes([i + 40; 16]))
            .collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    // As found on disk, and behind each format byte so the fuzzer does not spend its time
    // discovering them.
    for version in [None, Some(NODE_FORMAT_VERSION), Some(DELTA_FORMAT_VERSION)] {
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.extend(version);
        bytes.extend_from_slice(data);
        let _ = Node::<String, Vec<u8>>::decode(&bytes);
        let _ = Node::<u64, (u32, String)>::decode(&bytes);
        let _ = Node::<Vec<u8>, Option<i64>>::decode(&bytes);
        let _ = NodeShape::decode(&bytes);
        let _ = PieceKind::of(&bytes);
        if let Ok(raw) = RawNode::parse(&bytes) {
            // A parse that succeeds re-encodes to the same bytes.
            assert_eq!(raw.encode(), bytes);
        }
        let b = base();
        let _ = Node::apply_delta(&b, &bytes);
        let full = b.encode().unwrap_or_default();
        if let Ok(raw) = RawNode::parse(&full) {
            let _ = raw.apply(&bytes).map(|n| n.encode());
        }
    }
});
