//! B-tree node bytes: typed decodes of several key/value types and the type-free shape. Any
//! input gives a value or an error, never a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sop_btree::{NODE_FORMAT_VERSION, Node, NodeShape};

fuzz_target!(|data: &[u8]| {
    // As found on disk, and behind the current and the first format version bytes so the
    // fuzzer does not spend its time discovering them.
    for version in [None, Some(NODE_FORMAT_VERSION), Some(1)] {
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.extend(version);
        bytes.extend_from_slice(data);
        let _ = Node::<String, Vec<u8>>::decode(&bytes);
        let _ = Node::<u64, (u32, String)>::decode(&bytes);
        let _ = Node::<Vec<u8>, Option<i64>>::decode(&bytes);
        let _ = NodeShape::decode(&bytes);
    }
});
