//! Model-based test: random transactions over three trees, each committed, rolled back or
//! dropped, with the database reopened at random points, always match a model that applies
//! only the committed transactions.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sop_core::{StoreOptions, ValueDataSize};
use sop_database::{Database, Store, TxMode};

fn cases() -> u32 {
    std::env::var("SOP_TXN_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 24 } else { 256 })
}

#[derive(Clone, Debug)]
enum Op {
    Add(u8, u16),
    Upsert(u8, u16),
    Update(u8, u16),
    Remove(u8),
    Get(u8),
    Scan(u8, u8),
    Walk(u8, u8),
}

#[derive(Clone, Copy, Debug)]
enum End {
    Commit,
    CommitThenReopen,
    Rollback,
    Drop,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..48;
    prop_oneof![
        4 => (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::Add(k, v)),
        2 => (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        2 => (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::Update(k, v)),
        3 => k.clone().prop_map(Op::Remove),
        1 => k.clone().prop_map(Op::Get),
        1 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::Scan(a.min(b), a.max(b))),
        1 => (k, 0u8..10).prop_map(|(a, n)| Op::Walk(a, n)),
    ]
}

fn txn() -> impl Strategy<Value = (Vec<(usize, Op)>, End)> {
    (
        prop::collection::vec((0usize..3, op()), 1..30),
        prop_oneof![
            5 => Just(End::Commit),
            2 => Just(End::CommitThenReopen),
            2 => Just(End::Rollback),
            1 => Just(End::Drop),
        ],
    )
}

/// Each tree's model: key → values in insertion order (unique trees hold at most one).
type Model = [BTreeMap<u8, Vec<u16>>; 3];

fn options(i: usize) -> StoreOptions {
    match i {
        0 => StoreOptions::new("t0").slot_length(4),
        1 => StoreOptions::with_value_size("t1", ValueDataSize::Medium).slot_length(6),
        _ => StoreOptions::with_value_size("t2", ValueDataSize::Big)
            .slot_length(5)
            .unique(false),
    }
}

async fn apply(t: &mut Store<u8, u16>, m: &mut BTreeMap<u8, Vec<u16>>, unique: bool, op: &Op) {
    match op {
        Op::Add(k, v) => {
            let added = t.add(*k, *v).await.unwrap();
            let e = m.entry(*k).or_default();
            assert_eq!(added, !unique || e.is_empty());
            if added {
                e.push(*v);
            }
        }
        Op::Upsert(k, v) => {
            let added = t.upsert(*k, *v).await.unwrap();
            let e = m.entry(*k).or_default();
            assert_eq!(added, e.is_empty());
            match e.first_mut() {
                Some(first) => *first = *v,
                None => e.push(*v),
            }
        }
        Op::Update(k, v) => {
            let done = t.update(k, *v).await.unwrap();
            let first = m.get_mut(k).and_then(|e| e.first_mut());
            assert_eq!(done, first.is_some());
            if let Some(f) = first {
                *f = *v;
            }
        }
        Op::Remove(k) => {
            let done = t.remove(k).await.unwrap();
            let e = m.entry(*k).or_default();
            assert_eq!(done, !e.is_empty());
            if done {
                e.remove(0);
            }
            if e.is_empty() {
                m.remove(k);
            }
        }
        Op::Get(k) => {
            let got = t.get(k).await.unwrap();
            assert_eq!(got, m.get(k).and_then(|e| e.first().copied()));
        }
        Op::Scan(a, b) => {
            let got: Vec<(u8, u16)> = t
                .range(*a..=*b)
                .collect()
                .await
                .unwrap()
                .into_iter()
                .map(|i| (i.key, i.value))
                .collect();
            let want: Vec<(u8, u16)> = m
                .range(*a..=*b)
                .flat_map(|(k, vs)| vs.iter().map(move |v| (*k, *v)))
                .collect();
            assert_eq!(got, want);
        }
        Op::Walk(a, n) => {
            let mut want = m
                .range(*a..)
                .flat_map(|(k, vs)| vs.iter().map(move |v| (*k, *v)));
            let mut on = t.find(a, true).await.unwrap() || t.current_key().is_some();
            for _ in 0..*n {
                let w = want.next();
                if !on {
                    assert_eq!(w, None);
                    break;
                }
                let k = *t.current_key().unwrap();
                let v = t.current_value().await.unwrap().unwrap();
                assert_eq!(Some((k, v)), w);
                on = t.next().await.unwrap();
            }
        }
    }
}

/// Checks contents, counts and invariants of every tree, and that the database verifies clean
/// (every node piece, value and segment intact and accounted for).
async fn check_all(db: &Database, model: &Model) {
    let tx = db.begin(TxMode::ForReading);
    for (i, m) in model.iter().enumerate() {
        let t = db.open_btree::<u8, u16>(&tx, &options(i).name).unwrap();
        let got: Vec<(u8, u16)> = t
            .range(..)
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|it| (it.key, it.value))
            .collect();
        let want: Vec<(u8, u16)> = m
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (*k, *v)))
            .collect();
        assert_eq!(got, want, "tree {i}");
        assert_eq!(t.count().unwrap(), want.len() as u64, "tree {i}");
        t.check().await.unwrap();
    }
    tx.commit().await.unwrap();
    crate::support::assert_verified(db, "model").await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn transactions_match_a_model_of_committed_ones(txns in prop::collection::vec(txn(), 1..14)) {
        let rt = crate::support::rt();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut db = Database::standalone(dir.path()).unwrap();
            let tx = db.begin(TxMode::ForWriting);
            for i in 0..3 {
                db.new_btree::<u8, u16>(&tx, &options(i)).unwrap();
            }
            tx.commit().await.unwrap();
            let mut model: Model = Default::default();
            for (ops, end) in &txns {
                let mut next = model.clone();
                let tx = db.begin(TxMode::ForWriting);
                let mut trees: Vec<Store<u8, u16>> = (0..3)
                    .map(|i| db.open_btree::<u8, u16>(&tx, &options(i).name).unwrap())
                    .collect();
                for (i, op) in ops {
                    apply(&mut trees[*i], &mut next[*i], *i != 2, op).await;
                }
                match end {
                    End::Commit | End::CommitThenReopen => {
                        tx.commit().await.unwrap();
                        model = next;
                    }
                    End::Rollback => tx.rollback().await.unwrap(),
                    End::Drop => drop((trees, tx)),
                }
                if matches!(end, End::CommitThenReopen) {
                    drop(db);
                    db = Database::standalone(dir.path()).unwrap();
                }
                check_all(&db, &model).await;
            }
            drop(db);
            let db = Database::standalone(dir.path()).unwrap();
            check_all(&db, &model).await;
        });
    }
}
