//! Hot paths below the transaction layer: encoding and decoding a full node (1000 items of
//! 24-byte keys and 150-byte values, SOP's default slot length), reading its type-free shape, and
//! a key search in a tree that is one cached node.
//!
//! Run with `cargo bench -p sop-btree --bench nodes` (or `cargo xtask bench --micro`).
#![allow(clippy::unwrap_used, reason = "fixed valid inputs")]

use criterion::{Criterion, Throughput, criterion_main};
use sop_btree::{ItemValue, MemBTree, Node, NodeItem, NodeShape};
use sop_core::{StoreOptions, Uuid};

fn key(i: u64) -> Vec<u8> {
    let mut k = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes().to_vec();
    k.resize(24, 7);
    k
}

fn node() -> Node<Vec<u8>, Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..1000).map(key).collect();
    keys.sort();
    Node::from_parts(
        Uuid::new_v4(),
        keys.into_iter()
            .map(|k| {
                std::sync::Arc::new(NodeItem {
                    id: Uuid::new_v4(),
                    key: k,
                    value: ItemValue::Inline(vec![42u8; 150]),
                    version: 1,
                })
            })
            .collect(),
        Vec::new(),
    )
}

fn codec(c: &mut Criterion) {
    let n = node();
    let bytes = n.encode().unwrap();
    let mut g = c.benchmark_group("node_1000_items");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| n.encode().unwrap()));
    g.bench_function("decode", |b| {
        b.iter(|| Node::<Vec<u8>, Vec<u8>>::decode(&bytes).unwrap())
    });
    g.bench_function("decode_shape", |b| {
        b.iter(|| NodeShape::decode(&bytes).unwrap())
    });
    g.finish();
}

fn search(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut t =
        MemBTree::<Vec<u8>, Vec<u8>>::in_memory(&StoreOptions::new("b").slot_length(1000)).unwrap();
    rt.block_on(async {
        for i in 0..1000 {
            t.add(key(i), vec![1u8; 150]).await.unwrap();
        }
    });
    let mut i = 0u64;
    c.bench_function("search_in_one_cached_node", |b| {
        b.iter(|| {
            i = (i + 7) % 1000;
            rt.block_on(t.get(&key(i))).unwrap()
        })
    });
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::codec, super::search);
}
use group::benches;
criterion_main!(benches);
