//! Independent cursors and lazy ranges: several at once over one tree, moving in any order,
//! each matching a walk of a `BTreeMap` (SOP's independent cursors, descending find).

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use sop_btree::MemBTree;
use sop_core::StoreOptions;

#[derive(Clone, Debug)]
enum Move {
    First,
    Last,
    Find(u16),
    FindDescending(u16),
    Next,
    Previous,
}

fn moves() -> impl Strategy<Value = Vec<(usize, Move)>> {
    let m = prop_oneof![
        1 => Just(Move::First),
        1 => Just(Move::Last),
        2 => (0u16..300).prop_map(Move::Find),
        2 => (0u16..300).prop_map(Move::FindDescending),
        4 => Just(Move::Next),
        4 => Just(Move::Previous),
    ];
    prop::collection::vec((0usize..3, m), 1..120)
}

/// Where a model cursor lands after a move (`None`: on no item).
fn model_move(map: &BTreeMap<u16, u32>, at: Option<u16>, m: &Move) -> Option<u16> {
    match m {
        Move::First => map.keys().next().copied(),
        Move::Last => map.keys().next_back().copied(),
        Move::Find(k) => map.range(k..).next().map(|(k, _)| *k),
        Move::FindDescending(k) => map.range(..=k).next_back().map(|(k, _)| *k),
        Move::Next => at.and_then(|a| {
            map.range((Bound::Excluded(a), Bound::Unbounded))
                .next()
                .map(|(k, _)| *k)
        }),
        Move::Previous => at.and_then(|a| map.range(..a).next_back().map(|(k, _)| *k)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn three_cursors_walk_independently(
        keys in prop::collection::btree_set(0u16..300, 0..250),
        slot in prop::sample::select(vec![4usize, 6, 16]),
        in_node in any::<bool>(),
        walk in moves(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let opts = StoreOptions::new("w").slot_length(slot).value_in_node(in_node);
            let mut tree = MemBTree::<u16, u32>::in_memory(&opts).unwrap();
            let map: BTreeMap<u16, u32> = keys.iter().map(|k| (*k, u32::from(*k) * 3)).collect();
            for (k, v) in &map {
                tree.add(*k, *v).await.unwrap();
            }
            let mut cursors = [tree.cursor(), tree.cursor(), tree.cursor()];
            let mut at: [Option<u16>; 3] = [None; 3];
            for (c, m) in &walk {
                let cur = &mut cursors[*c];
                let want = model_move(&map, at[*c], m);
                let found = match m {
                    Move::First => cur.first().await.unwrap(),
                    Move::Last => cur.last().await.unwrap(),
                    Move::Find(k) => cur.find(k).await.unwrap(),
                    Move::FindDescending(k) => cur.find_descending(k).await.unwrap(),
                    Move::Next => cur.next().await.unwrap(),
                    Move::Previous => cur.previous().await.unwrap(),
                };
                match m {
                    Move::Find(k) | Move::FindDescending(k) => {
                        prop_assert_eq!(found, map.contains_key(k));
                    }
                    _ => prop_assert_eq!(found, want.is_some()),
                }
                at[*c] = want;
                prop_assert_eq!(cur.key().copied(), want, "cursor {} after {:?}", c, m);
                let value = cur.value().await.unwrap();
                prop_assert_eq!(value, want.map(|k| map[&k]));
                // The same item without a copy (a value kept outside its node is loaded).
                let shared = cur.item_ref().await.unwrap().map(|it| (*it.key(), *it.value()));
                prop_assert_eq!(shared, want.map(|k| (k, map[&k])));
                if let Move::Find(k) | Move::FindDescending(k) = m {
                    // Point reads beside the cursors, without copying the value.
                    let got = tree.get_with(k, |v| *v).await.unwrap();
                    prop_assert_eq!(got, map.get(k).copied());
                    let got = tree.get_ref(k).await.unwrap();
                    prop_assert_eq!(got.as_ref().map(|it| (*it.key(), *it.value())), map.get_key_value(k).map(|(k, v)| (*k, *v)));
                    prop_assert_eq!(got.map(|it| it.to_item().value), map.get(k).copied());
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn ranges_from_both_ends_meet_exactly_once(
        keys in prop::collection::vec(0u16..60, 0..200),
        lo in 0u16..70,
        len in 0u16..70,
        pattern in prop::collection::vec(any::<bool>(), 0..300),
    ) {
        // Non-unique: equal keys must each come out once, wherever the ends meet.
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let opts = StoreOptions::new("r").slot_length(4).unique(false);
            let mut tree = MemBTree::<u16, u32>::in_memory(&opts).unwrap();
            let mut want = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let v = u32::try_from(i).unwrap();
                tree.add(*k, v).await.unwrap();
                want.push((*k, v));
            }
            want.sort_by_key(|(k, v)| (*k, *v));
            let hi = lo + len;
            want.retain(|(k, _)| (lo..hi).contains(k));
            let mut range = tree.range(lo..hi);
            let (mut front, mut back) = (Vec::new(), Vec::new());
            let mut steps = pattern.iter().copied().chain(std::iter::repeat(true));
            for i in 0.. {
                // Owned items and guards (no copy) alternate: both walk the same ends.
                let it = match (steps.next().unwrap_or(true), i % 2 == 0) {
                    (true, true) => range.next().await.unwrap().map(|it| front.push((it.key, it.value))),
                    (true, false) => range.next_ref().await.unwrap().map(|it| front.push((*it.key(), *it.value()))),
                    (false, true) => range.next_back().await.unwrap().map(|it| back.push((it.key, it.value))),
                    (false, false) => range.next_back_ref().await.unwrap().map(|it| back.push((*it.key(), *it.value()))),
                };
                if it.is_none() {
                    break;
                }
            }
            back.reverse();
            front.extend(back);
            prop_assert_eq!(front, want);
            Ok(())
        })?;
    }
}
