//! Cursor scenarios: metadata-carrying keys, comparators, duplicates, miss positioning, ranges
//! over large trees, and leaf load balancing.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use sop_btree::{FnComparator, MemBTree};
use sop_core::StoreOptions;

use crate::support::{block_on, cases};

/// A key that carries data the order ignores: only `id` orders it.
#[derive(Clone, Debug)]
struct Tagged {
    id: u32,
    meta: String,
}
impl PartialEq for Tagged {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
    }
}
impl Eq for Tagged {}
impl PartialOrd for Tagged {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Tagged {
    fn cmp(&self, o: &Self) -> Ordering {
        self.id.cmp(&o.id)
    }
}

fn tag(id: u32, meta: &str) -> Tagged {
    Tagged {
        id,
        meta: meta.into(),
    }
}

#[test]
fn update_current_key_replaces_metadata_without_moving_the_item() {
    block_on(async {
        let mut t = MemBTree::<Tagged, String>::in_memory(&StoreOptions::new("t").slot_length(4))?;
        for id in 0..50 {
            t.add(tag(id, "old"), format!("v{id}")).await?;
        }
        assert!(t.find(&tag(20, ""), true).await?);
        let before = t.current_item().await?.unwrap();
        t.update_current_key(tag(20, "new")).await?;

        // Same item, same value, new metadata, still between 19 and 21.
        let after = t.current_item().await?.unwrap();
        assert_eq!((after.id, after.value.as_str()), (before.id, "v20"));
        assert_eq!(after.key.meta, "new");
        assert!(t.previous().await?);
        assert_eq!(t.current_key().unwrap().id, 19);
        assert!(t.next().await? && t.next().await?);
        assert_eq!(t.current_key().unwrap().id, 21);

        // Persisted in the node, not only in the cursor.
        assert!(t.find(&tag(20, ""), true).await?);
        assert_eq!(t.current_key().unwrap().meta, "new");
        assert_eq!(t.count(), 50);
        t.check().await?;
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

#[test]
fn user_comparator_orders_keys_that_are_not_ord() {
    block_on(async {
        let by_total = FnComparator(|a: &f64, b: &f64| a.total_cmp(b));
        let mut t = MemBTree::in_memory_with(&StoreOptions::new("f").slot_length(3), by_total)?;
        let keys = [3.5, -1.0, 0.0, 2.25, -7.5, 1e9, f64::NEG_INFINITY];
        for k in keys {
            t.add(k, ()).await?;
        }
        let got: Vec<f64> = t
            .range(..)
            .collect()
            .await?
            .into_iter()
            .map(|i| i.key)
            .collect();
        let mut want = keys.to_vec();
        want.sort_by(f64::total_cmp);
        assert_eq!(got, want);
        assert!(t.contains_key(&2.25).await? && !t.contains_key(&2.0).await?);
        // Reversed order through a comparator.
        let rev = FnComparator(|a: &u32, b: &u32| b.cmp(a));
        let mut r = MemBTree::in_memory_with(&StoreOptions::new("r").slot_length(2), rev)?;
        for k in 0..20u32 {
            r.add(k, k).await?;
        }
        assert!(r.first().await?);
        assert_eq!(r.current_key(), Some(&19));
        r.check().await?;
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

#[test]
fn inconsistent_comparator_never_panics() {
    // Not a total order: the documented consequence is wrong answers and a failing check(),
    // never a panic or a hang.
    block_on(async {
        let odd =
            FnComparator(|a: &u32, b: &u32| if (a ^ b) & 1 == 0 { a.cmp(b) } else { b.cmp(a) });
        let mut t = MemBTree::in_memory_with(&StoreOptions::new("odd").slot_length(4), odd)?;
        for k in 0..500u32 {
            t.add(k.wrapping_mul(2_654_435_761) % 1000, k).await?;
        }
        for k in 0..500u32 {
            let _ = t.remove(&k).await?;
        }
        let _ = t.range(..).collect().await?;
        let _ = t.check().await;
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

#[test]
fn duplicates_keep_insertion_order_and_find_lands_on_the_first() {
    block_on(async {
        let opts = StoreOptions::new("d").slot_length(2).unique(false);
        let mut t = MemBTree::<u8, u32>::in_memory(&opts)?;
        // Interleave keys so duplicates spread over many nodes and levels.
        for i in 0..60u32 {
            t.add((i % 3) as u8, i).await?;
        }
        for key in 0..3u8 {
            assert!(t.find(&key, false).await?);
            let mut seen = vec![t.current_value().await?.unwrap()];
            while t.next().await? && t.current_key() == Some(&key) {
                seen.push(t.current_value().await?.unwrap());
            }
            let want: Vec<u32> = (0..60).filter(|i| i % 3 == u32::from(key)).collect();
            assert_eq!(seen, want, "key {key}");
        }
        // Backward over all items: duplicates in reverse insertion order.
        let mut back = Vec::new();
        let mut r = t.range(1..=1);
        while let Some(it) = r.next_back().await? {
            back.push(it.value);
        }
        let want: Vec<u32> = (0..60).rev().filter(|i| i % 3 == 1).collect();
        assert_eq!(back, want);
        t.check().await?;
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

#[test]
fn find_miss_leaves_the_cursor_on_the_next_greater_key() {
    block_on(async {
        let mut t = MemBTree::<u32, u32>::in_memory(&StoreOptions::new("m").slot_length(4))?;
        for k in (0..100).map(|k| k * 10) {
            t.add(k, k).await?;
        }
        for probe in [5, 15, 91, 989, 0, 990] {
            let hit = probe % 10 == 0;
            assert_eq!(t.find(&probe, true).await?, hit);
            let want = probe.div_ceil(10) * 10;
            assert_eq!(t.current_key(), Some(&want), "probe {probe}");
        }
        assert!(!t.find(&991, true).await?);
        assert_eq!(
            t.current_key(),
            None,
            "no greater key: the cursor is on none"
        );
        assert!(!t.next().await?, "next from no item stays on none");
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

#[test]
fn leaf_load_balancing_fills_nodes_better() {
    block_on(async {
        let mut fills = Vec::new();
        for balancing in [false, true] {
            let opts = StoreOptions::new("b")
                .slot_length(16)
                .leaf_load_balancing(balancing);
            let mut t = MemBTree::<u64, ()>::in_memory(&opts)?;
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t.add(x, ()).await?;
            }
            let stats = t.check().await?;
            fills.push(stats.fill_percent);
        }
        assert!(
            fills[1] > fills[0] + 5.0,
            "balancing should fill leaves better: without {:.1}%, with {:.1}%",
            fills[0],
            fills[1]
        );
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: (cases() / 50).max(8), ..ProptestConfig::default() })]

    /// Larger trees than the step-by-step model reaches: bulk load, remove a random subset,
    /// then compare ranges with every kind of bound.
    #[test]
    fn bulk_load_remove_and_ranges_match_btreemap(
        slot in prop_oneof![2usize..=16, Just(1000usize)],
        balancing: bool,
        keys in proptest::collection::vec(0u32..20_000, 1..4000),
        removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..3000),
        bounds in proptest::collection::vec((0u32..20_000, 0u32..20_000, 0u8..9), 1..8),
    ) {
        block_on(async {
            let opts = StoreOptions::new("bulk").slot_length(slot).leaf_load_balancing(balancing);
            let mut t = MemBTree::<u32, u32>::in_memory(&opts).unwrap();
            let mut m = BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                let v = i as u32;
                let fresh = !m.contains_key(k);
                m.entry(*k).or_insert(v);
                assert_eq!(t.add(*k, v).await.unwrap(), fresh);
            }
            t.check().await.unwrap();
            for ix in &removals {
                let k = keys[ix.index(keys.len())];
                assert_eq!(t.remove(&k).await.unwrap(), m.remove(&k).is_some());
            }
            let stats = t.check().await.unwrap();
            assert_eq!(stats.items as usize, m.len());
            for (lo, hi, kind) in bounds {
                let b = |k, w| match w { 0 => Bound::Included(k), 1 => Bound::Excluded(k), _ => Bound::Unbounded };
                let (s, e) = (b(lo, kind % 3), b(hi, kind / 3));
                if matches!((s, e), (Bound::Included(a) | Bound::Excluded(a), Bound::Included(z) | Bound::Excluded(z)) if a > z) {
                    continue;
                }
                let want: Vec<(u32, u32)> = m.range((s, e)).map(|(k, v)| (*k, *v)).collect();
                let got: Vec<(u32, u32)> = t.range((s, e)).collect().await.unwrap().into_iter().map(|i| (i.key, i.value)).collect();
                assert_eq!(got, want);
            }
        });
    }
}
