//! Model-based tests: long random sequences of every mutating call and every cursor move, run
//! against the tree and against a `BTreeMap<K, Vec<item>>` model, compared after every step.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use proptest::prelude::*;
use sop_btree::MemBTree;
use sop_core::{Error, StoreOptions, Uuid};

use crate::support::{block_on, cases};

type Key = u16;
type Val = u32;

#[derive(Debug, Clone)]
enum Op {
    Add(Key),
    AddIfNotExist(Key),
    Upsert(Key),
    Update(Key),
    Remove(Key),
    Find(Key),
    FindWithId(Key, usize),
    First,
    Last,
    Next,
    Previous,
    UpdateCurrentKey {
        same: bool,
    },
    UpdateCurrentValue,
    UpdateCurrentItem,
    RemoveCurrent,
    Get(Key),
    ContainsKey(Key),
    Range {
        lo: Key,
        hi: Key,
        kind: u8,
        pattern: u64,
    },
}

fn op(keys: Key) -> impl Strategy<Value = Op> {
    let k = move || 0..keys;
    prop_oneof![
        6 => k().prop_map(Op::Add),
        2 => k().prop_map(Op::AddIfNotExist),
        2 => k().prop_map(Op::Upsert),
        2 => k().prop_map(Op::Update),
        4 => k().prop_map(Op::Remove),
        2 => k().prop_map(Op::Find),
        1 => (k(), 0..4usize).prop_map(|(k, j)| Op::FindWithId(k, j)),
        1 => Just(Op::First),
        1 => Just(Op::Last),
        3 => Just(Op::Next),
        3 => Just(Op::Previous),
        1 => any::<bool>().prop_map(|same| Op::UpdateCurrentKey { same }),
        1 => Just(Op::UpdateCurrentValue),
        1 => Just(Op::UpdateCurrentItem),
        2 => Just(Op::RemoveCurrent),
        1 => k().prop_map(Op::Get),
        1 => k().prop_map(Op::ContainsKey),
        1 => (k(), k(), 0..9u8, any::<u64>())
            .prop_map(|(lo, hi, kind, pattern)| Op::Range { lo, hi, kind, pattern }),
    ]
}

#[derive(Debug, Clone)]
struct Config {
    unique: bool,
    slot_length: usize,
    balancing: bool,
    value_in_node: bool,
}

fn config(unique: bool) -> impl Strategy<Value = Config> {
    (
        prop_oneof![4 => 2usize..=16, 1 => Just(1000usize)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(slot_length, balancing, value_in_node)| Config {
            unique,
            slot_length,
            balancing,
            value_in_node,
        })
}

/// The model: keys to their items (id, value) in insertion order, and the cursor as
/// (key, index among equal keys).
#[derive(Default)]
struct Model {
    map: BTreeMap<Key, Vec<(Uuid, Val)>>,
    cursor: Option<(Key, usize)>,
}

impl Model {
    fn flat(&self) -> Vec<(Key, Uuid, Val)> {
        self.map
            .iter()
            .flat_map(|(k, v)| v.iter().map(move |(id, val)| (*k, *id, *val)))
            .collect()
    }
    fn count(&self) -> usize {
        self.map.values().map(Vec::len).sum()
    }
    fn successor_key(&self, k: Key) -> Option<(Key, usize)> {
        self.map
            .range((Bound::Excluded(k), Bound::Unbounded))
            .next()
            .map(|(k, _)| (*k, 0))
    }
    /// `find` semantics: on the first equal item, or on the next greater key.
    fn find(&mut self, k: Key) -> bool {
        if self.map.contains_key(&k) {
            self.cursor = Some((k, 0));
            true
        } else {
            self.cursor = self.successor_key(k);
            false
        }
    }
    fn next(&self, (k, j): (Key, usize)) -> Option<(Key, usize)> {
        if j + 1 < self.map[&k].len() {
            Some((k, j + 1))
        } else {
            self.successor_key(k)
        }
    }
    fn previous(&self, (k, j): (Key, usize)) -> Option<(Key, usize)> {
        if j > 0 {
            Some((k, j - 1))
        } else {
            self.map
                .range(..k)
                .next_back()
                .map(|(k, v)| (*k, v.len() - 1))
        }
    }
    fn remove_at(&mut self, (k, j): (Key, usize)) {
        let items = self.map.get_mut(&k).expect("cursor key in model");
        items.remove(j);
        if items.is_empty() {
            self.map.remove(&k);
        }
    }
}

fn bounds(lo: Key, hi: Key, kind: u8) -> (Bound<Key>, Bound<Key>) {
    let b = |k, which| match which {
        0 => Bound::Included(k),
        1 => Bound::Excluded(k),
        _ => Bound::Unbounded,
    };
    (b(lo, kind % 3), b(hi, kind / 3))
}

struct Run {
    tree: MemBTree<Key, Val>,
    model: Model,
    unique: bool,
    next_value: Val,
}

impl Run {
    fn fresh_value(&mut self) -> Val {
        self.next_value += 1;
        self.next_value
    }

    async fn current_id(&mut self) -> Uuid {
        self.tree
            .current_item()
            .await
            .unwrap()
            .expect("cursor on an item")
            .id
    }

    /// After an add that returned true, records the new item (the cursor is on it).
    async fn record_added(&mut self, k: Key, v: Val) {
        let item = self
            .tree
            .current_item()
            .await
            .unwrap()
            .expect("cursor on the new item");
        assert_eq!(
            (item.key, item.value),
            (k, v),
            "cursor not on the added item"
        );
        let items = self.model.map.entry(k).or_default();
        items.push((item.id, v));
        self.model.cursor = Some((k, items.len() - 1));
    }

    async fn apply(&mut self, op: &Op) {
        let t = &mut self.tree;
        match *op {
            Op::Add(k) => {
                let v = self.fresh_value();
                let exists = self.model.map.contains_key(&k);
                let added = self.tree.add(k, v).await.unwrap();
                assert_eq!(added, !(self.unique && exists));
                if added {
                    self.record_added(k, v).await;
                } else {
                    self.model.cursor = Some((k, 0));
                }
            }
            Op::AddIfNotExist(k) => {
                let v = self.fresh_value();
                let exists = self.model.map.contains_key(&k);
                let added = self.tree.add_if_not_exist(k, v).await.unwrap();
                assert_eq!(added, !exists);
                if added {
                    self.record_added(k, v).await;
                } else {
                    self.model.cursor = Some((k, 0));
                }
            }
            Op::Upsert(k) => {
                let v = self.fresh_value();
                let exists = self.model.map.contains_key(&k);
                let added = self.tree.upsert(k, v).await.unwrap();
                assert_eq!(added, !exists);
                if added {
                    self.record_added(k, v).await;
                } else {
                    self.model.map.get_mut(&k).unwrap()[0].1 = v;
                    self.model.cursor = Some((k, 0));
                }
            }
            Op::Update(k) => {
                let v = self.fresh_value();
                let updated = self.tree.update(&k, v).await.unwrap();
                assert_eq!(updated, self.model.find(k));
                if updated {
                    self.model.map.get_mut(&k).unwrap()[0].1 = v;
                }
            }
            Op::Remove(k) => {
                let removed = self.tree.remove(&k).await.unwrap();
                assert_eq!(removed, self.model.find(k));
                if removed {
                    self.model.remove_at((k, 0));
                    self.model.cursor = None;
                }
            }
            Op::Find(k) => {
                let first = k % 2 == 0;
                assert_eq!(t.find(&k, first).await.unwrap(), self.model.find(k));
            }
            Op::FindWithId(k, j) => {
                let target = self.model.map.get(&k).and_then(|v| v.get(j)).map(|x| x.0);
                let found = t
                    .find_with_id(&k, target.unwrap_or_else(Uuid::new_v4))
                    .await
                    .unwrap();
                assert_eq!(found, target.is_some());
                self.model.cursor = if found {
                    Some((k, j))
                } else {
                    self.model.successor_key(k)
                };
            }
            Op::First => {
                assert_eq!(t.first().await.unwrap(), !self.model.map.is_empty());
                self.model.cursor = self.model.map.keys().next().map(|k| (*k, 0));
            }
            Op::Last => {
                assert_eq!(t.last().await.unwrap(), !self.model.map.is_empty());
                self.model.cursor = self
                    .model
                    .map
                    .iter()
                    .next_back()
                    .map(|(k, v)| (*k, v.len() - 1));
            }
            Op::Next => {
                let moved = t.next().await.unwrap();
                self.model.cursor = self.model.cursor.and_then(|c| self.model.next(c));
                assert_eq!(moved, self.model.cursor.is_some());
            }
            Op::Previous => {
                let moved = t.previous().await.unwrap();
                self.model.cursor = self.model.cursor.and_then(|c| self.model.previous(c));
                assert_eq!(moved, self.model.cursor.is_some());
            }
            Op::UpdateCurrentKey { same } => {
                let Some((k, _)) = self.model.cursor else {
                    let err = t.update_current_key(0).await.unwrap_err();
                    assert!(
                        matches!(
                            err,
                            Error::Cursor(sop_core::CursorError::NoCurrentItem { .. })
                        ),
                        "{err}"
                    );
                    return;
                };
                if same {
                    t.update_current_key(k).await.unwrap();
                } else {
                    let err = t.update_current_key(k.wrapping_add(1)).await.unwrap_err();
                    assert!(
                        matches!(err, Error::Cursor(sop_core::CursorError::KeyChanged { .. })),
                        "{err}"
                    );
                }
            }
            Op::UpdateCurrentValue | Op::UpdateCurrentItem => {
                let v = self.fresh_value();
                let Some((k, j)) = self.model.cursor else {
                    let err = self.tree.update_current_value(v).await.unwrap_err();
                    assert!(
                        matches!(
                            err,
                            Error::Cursor(sop_core::CursorError::NoCurrentItem { .. })
                        ),
                        "{err}"
                    );
                    return;
                };
                if matches!(op, Op::UpdateCurrentValue) {
                    self.tree.update_current_value(v).await.unwrap();
                } else {
                    self.tree.update_current_item(k, v).await.unwrap();
                }
                self.model.map.get_mut(&k).unwrap()[j].1 = v;
            }
            Op::RemoveCurrent => match self.model.cursor.take() {
                None => {
                    let err = t.remove_current_item().await.unwrap_err();
                    assert!(
                        matches!(
                            err,
                            Error::Cursor(sop_core::CursorError::NoCurrentItem { .. })
                        ),
                        "{err}"
                    );
                }
                Some(c) => {
                    t.remove_current_item().await.unwrap();
                    self.model.remove_at(c);
                }
            },
            Op::Get(k) => {
                let want = self.model.map.get(&k).map(|v| v[0].1);
                // A point read leaves the cursor where it was.
                assert_eq!(t.get(&k).await.unwrap(), want);
            }
            Op::ContainsKey(k) => {
                let want = self.model.map.contains_key(&k);
                assert_eq!(t.contains_key(&k).await.unwrap(), want);
            }
            Op::Range {
                lo,
                hi,
                kind,
                pattern,
            } => {
                let (start, end) = bounds(lo, hi, kind);
                let want: Vec<_> = self
                    .model
                    .flat()
                    .into_iter()
                    .filter(|(k, ..)| (start, end).contains(k))
                    .collect();
                // Take from the front or the back as the pattern's bits say; the two ends
                // must meet exactly once, whatever the order.
                let (mut front, mut back) = (Vec::new(), Vec::new());
                let mut range = t.range((start, end));
                for step in 0.. {
                    let from_front = (pattern >> (step % 64)) & 1 == 0;
                    let got = if from_front {
                        range.next().await
                    } else {
                        range.next_back().await
                    };
                    match got.unwrap() {
                        Some(it) if from_front => front.push((it.key, it.id, it.value)),
                        Some(it) => back.push((it.key, it.id, it.value)),
                        None => break,
                    }
                }
                assert!(range.next().await.unwrap().is_none());
                assert!(range.next_back().await.unwrap().is_none());
                back.reverse();
                front.extend(back);
                assert_eq!(front, want, "range {start:?}..{end:?}");
            }
        }
    }

    /// Compares everything observable with the model, and checks the tree's invariants.
    async fn verify(&mut self) {
        let stats = self.tree.check().await.unwrap();
        assert_eq!(stats.items as usize, self.model.count());
        assert_eq!(self.tree.count() as usize, self.model.count());
        let want = self.model.flat();
        let forward: Vec<_> = self
            .tree
            .range(..)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|it| (it.key, it.id, it.value))
            .collect();
        assert_eq!(forward, want, "forward contents");
        let mut backward = Vec::new();
        let mut r = self.tree.range(..);
        while let Some(it) = r.next_back().await.unwrap() {
            backward.push((it.key, it.id, it.value));
        }
        backward.reverse();
        assert_eq!(backward, want, "backward contents");
        match self.model.cursor {
            None => assert_eq!(self.tree.current_key(), None, "cursor should be on no item"),
            Some((k, j)) => {
                assert_eq!(self.tree.current_key(), Some(&k));
                let want_id = self.model.map[&k][j].0;
                assert_eq!(
                    self.current_id().await,
                    want_id,
                    "cursor on the wrong duplicate"
                );
            }
        }
    }
}

fn run(cfg: &Config, ops: &[Op]) {
    block_on(async {
        let opts = StoreOptions::new("model")
            .slot_length(cfg.slot_length)
            .unique(cfg.unique)
            .leaf_load_balancing(cfg.balancing)
            .value_in_node(cfg.value_in_node);
        let mut run = Run {
            tree: MemBTree::in_memory(&opts).unwrap(),
            model: Model::default(),
            unique: cfg.unique,
            next_value: 0,
        };
        for op in ops {
            run.apply(op).await;
            run.verify().await;
        }
        // Values kept outside nodes: none leaked, none lost.
        if !cfg.value_in_node {
            assert_eq!(run.tree.repository().value_count(), run.model.count());
        }
    });
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop_oneof![Just(12 as Key), Just(64), Just(1000)]
        .prop_flat_map(|keys| proptest::collection::vec(op(keys), 1..300))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn unique_tree_matches_btreemap(cfg in config(true), ops in ops()) {
        run(&cfg, &ops);
    }

    #[test]
    fn non_unique_tree_matches_btreemap_of_vecs(cfg in config(false), ops in ops()) {
        run(&cfg, &ops);
    }
}
