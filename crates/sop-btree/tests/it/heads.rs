//! Searches through nodes' key heads (built once a node version was searched often): random
//! changes interleaved with bursts of reads, which build heads on every node, keep matching a
//! `BTreeMap`, for every key type whose natural order has heads; non-unique keys too.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sop_btree::MemBTree;
use sop_core::StoreOptions;

#[derive(Clone, Debug)]
enum Op {
    Upsert(u16, u32),
    Remove(u16),
    /// Reads every key in `0..n` (enough searches to build heads everywhere).
    Burst(u16),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            6 => (0u16..600, any::<u32>()).prop_map(|(k, v)| Op::Upsert(k, v)),
            3 => (0u16..600).prop_map(Op::Remove),
            1 => (1u16..600).prop_map(Op::Burst),
        ],
        1..200,
    )
}

/// Runs `ops` on a tree keyed by `key(k)`, checking every read against the model.
async fn check<K: Ord + Clone + Send + Sync + std::fmt::Debug + 'static>(
    slot: usize,
    ops: &[Op],
    key: impl Fn(u16) -> K,
) {
    let mut t = MemBTree::<K, u32>::in_memory(&StoreOptions::new("h").slot_length(slot)).unwrap();
    let mut m: BTreeMap<K, u32> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Upsert(k, v) => {
                t.upsert(key(*k), *v).await.unwrap();
                m.insert(key(*k), *v);
            }
            Op::Remove(k) => {
                assert_eq!(
                    t.remove(&key(*k)).await.unwrap(),
                    m.remove(&key(*k)).is_some()
                );
            }
            Op::Burst(n) => {
                for _ in 0..2 {
                    for k in 0..*n {
                        assert_eq!(t.get(&key(k)).await.unwrap(), m.get(&key(k)).copied());
                    }
                }
            }
        }
    }
    let all = t.range(..).collect().await.unwrap();
    let got: Vec<(K, u32)> = all.into_iter().map(|i| (i.key, i.value)).collect();
    let want: Vec<(K, u32)> = m.into_iter().collect();
    assert_eq!(got, want);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 12 } else { 200 }))]

    #[test]
    fn searches_through_heads_match_the_model(ops in ops(), slot in prop::sample::select(vec![4usize, 16, 100, 1000])) {
        rt().block_on(async {
            // Byte strings sharing long prefixes: equal heads, decided by whole keys.
            check(slot, &ops, |k| {
                let mut v = vec![7u8; 8];
                v.extend_from_slice(&k.to_be_bytes());
                v
            })
            .await;
            // Short byte strings: zero padding against real zero bytes.
            check(slot, &ops, |k| k.to_be_bytes().iter().copied().filter(|b| *b != 1).collect::<Vec<u8>>()).await;
            check(slot, &ops, |k| format!("k{k}")).await;
            check(slot, &ops, |k| i64::from(k) - 300).await;
            check(slot, &ops, |k| u128::from(k) << 70).await;
        });
    }
}
