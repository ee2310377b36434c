//! Node deltas: a new version of a node written as edits to a stored piece (its own previous
//! version, or the node a split took its items from), so a commit that changes one item of a
//! 1,000-item node writes one item, not the node. See ARCHITECTURE.md, "Node pieces".
//!
//! A delta lists, for the children and for the items, a sequence of operations that builds the
//! new list from the base's: `Copy { from, count }` takes a run of the base's entries, `Insert`
//! adds a new one. Items are matched by id *and* version, so a changed item is an insert.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sop_core::{Error, IdMap, Result, Uuid};

use crate::node::{ItemValue, Node, NodeItem};
use crate::raw::{DELTA_FORMAT_VERSION, MIN_ITEM, OP_COPY, OP_INSERT, RawItem, Reader, put_len};

/// One edit of a delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op<T> {
    /// The base's entries `from..from + count`.
    Copy { from: u32, count: u32 },
    /// A new entry.
    Insert(T),
}

/// A parsed delta piece (type-free).
pub(crate) struct RawDelta<'a> {
    pub id: Uuid,
    pub child_ops: Vec<Op<Uuid>>,
    pub item_ops: Vec<Op<RawItem<'a>>>,
}

const DELTA_HEADER: usize = 1 + 16 + 16 + 1;

impl<'a> RawDelta<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "node delta");
        if r.u8()? != DELTA_FORMAT_VERSION {
            return Err(r.bad("not a node delta"));
        }
        let id = r.uuid()?;
        let _base = r.uuid()?;
        let _depth = r.u8()?;
        let n = r.count(5)?;
        let mut child_ops = Vec::with_capacity(n);
        for _ in 0..n {
            child_ops.push(match r.u8()? {
                OP_COPY => Op::Copy {
                    from: r.u32()?,
                    count: r.u32()?,
                },
                OP_INSERT => Op::Insert(r.uuid()?),
                k => return Err(r.bad(format!("unknown operation {k}"))),
            });
        }
        let n = r.count(9)?;
        let mut item_ops = Vec::with_capacity(n);
        for _ in 0..n {
            item_ops.push(match r.u8()? {
                OP_COPY => Op::Copy {
                    from: r.u32()?,
                    count: r.u32()?,
                },
                OP_INSERT => Op::Insert(RawItem::read(&mut r)?),
                k => return Err(r.bad(format!("unknown operation {k}"))),
            });
        }
        r.done()?;
        Ok(RawDelta {
            id,
            child_ops,
            item_ops,
        })
    }
}

/// Builds a list from `base` and `ops`.
pub(crate) fn apply_ops<T: Clone>(base: &[T], ops: &[Op<T>], what: &str) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(base.len() + 1);
    for op in ops {
        match op {
            Op::Copy { from, count } => {
                let range = (*from as usize)..(*from as usize).saturating_add(*count as usize);
                let run = base.get(range).ok_or_else(|| {
                    Error::Corruption(sop_core::CorruptionError::Damaged {
                        what: "node delta",
                        location: format!("copy of {what} {from}+{count}"),
                        detail: format!("the base has {} {what}", base.len()),
                    })
                })?;
                out.extend_from_slice(run);
            }
            Op::Insert(x) => out.push(x.clone()),
        }
    }
    Ok(out)
}

/// How far ahead in the base a cheap diff looks for the next entry (entries removed).
const LOOKAHEAD: usize = 4;

/// The ops that build `new` from `base`, matching entries by `key` (None: never matched).
/// `same(b, n)` is a cheap test that `n` is the base's entry `b` itself (for shared items,
/// the same allocation): runs of kept entries are copied by it without computing keys.
/// Walks both lists together first (a change touches few entries, and kept entries keep their
/// order); only when that finds many entries to insert does it index the base to find entries
/// that moved (the new half of a split).
fn diff<'t, T, K: std::hash::Hash + Eq>(
    base: &'t [T],
    new: &'t [T],
    same: impl Fn(&T, &T) -> bool,
    key: impl Fn(&T) -> Option<K>,
) -> Vec<Op<&'t T>> {
    let (ops, inserts) = diff_with(base, new, &same, &key, |k, next| {
        (next..(next + LOOKAHEAD).min(base.len())).find(|&j| key(&base[j]).as_ref() == Some(k))
    });
    if inserts <= 8 || inserts * 8 <= new.len() {
        return ops;
    }
    let index: IdMap<K, usize> = base
        .iter()
        .enumerate()
        .filter_map(|(i, x)| key(x).map(|k| (k, i)))
        .collect();
    diff_with(base, new, &same, &key, |k, _| index.get(k).copied()).0
}

/// One pass: `find(key, next)` says where in the base an entry is. Returns the ops and how many
/// are inserts.
fn diff_with<'t, T, K>(
    base: &'t [T],
    new: &'t [T],
    same: &impl Fn(&T, &T) -> bool,
    key: &impl Fn(&T) -> Option<K>,
    find: impl Fn(&K, usize) -> Option<usize>,
) -> (Vec<Op<&'t T>>, usize) {
    let mut ops: Vec<Op<&T>> = Vec::new();
    let mut next = 0usize;
    let mut inserts = 0;
    let mut i = 0usize;
    while i < new.len() {
        // The common case: a run of entries kept in place since the last change.
        let run = base
            .get(next..)
            .unwrap_or_default()
            .iter()
            .zip(&new[i..])
            .take_while(|(b, n)| same(b, n))
            .count();
        if run > 0 {
            push_copy(&mut ops, next, run);
            next += run;
            i += run;
            continue;
        }
        let x = &new[i];
        i += 1;
        match key(x).and_then(|k| find(&k, next)) {
            Some(j) => {
                next = j + 1;
                push_copy(&mut ops, j, 1);
            }
            None => {
                inserts += 1;
                ops.push(Op::Insert(x));
            }
        }
    }
    (ops, inserts)
}

/// Appends a copy of `count` base entries from `from`, extending the last copy when it ends there.
fn push_copy<T>(ops: &mut Vec<Op<T>>, from: usize, count: usize) {
    let from = u32::try_from(from).unwrap_or(u32::MAX);
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    if let Some(Op::Copy { from: f, count: c }) = ops.last_mut()
        && f.checked_add(*c) == Some(from)
    {
        *c = c.saturating_add(count);
        return;
    }
    ops.push(Op::Copy { from, count });
}

impl<K: Serialize + 'static, V: Serialize + 'static> Node<K, V> {
    /// This node written as a delta over `base`, stored at `base_loc` with `depth` deltas below
    /// it already (0 for a full image). External value ids go through `ext` (see
    /// [`Node::encode_with`]); `None` when no id changes, which spares reading every kept
    /// item (cold in memory in a big tree: the most expensive part of a small commit's
    /// delta). Items of `base` are matched by id and version.
    ///
    /// # Errors
    /// When a new key or value cannot be encoded.
    pub fn encode_delta(
        &self,
        base: &Node<K, V>,
        base_loc: Uuid,
        depth: u8,
        ext: Option<&dyn Fn(Uuid) -> Uuid>,
    ) -> Result<Vec<u8>> {
        let same_id = |id: Uuid| id;
        let map: &dyn Fn(Uuid) -> Uuid = ext.unwrap_or(&same_id);
        let child_ops = diff(&base.children, &self.children, |a, b| a == b, |c| Some(*c));
        // An item whose value moved to a new location is a new item for the delta.
        let moved = |i: &NodeItem<K, V>| {
            ext.is_some() && matches!(i.value, ItemValue::External(id) if map(id) != id)
        };
        let item_ops = diff(
            &base.items,
            &self.items,
            |b: &Arc<NodeItem<K, V>>, n: &Arc<NodeItem<K, V>>| Arc::ptr_eq(b, n) && !moved(n),
            |i: &Arc<NodeItem<K, V>>| (!moved(i)).then_some((i.id, i.version)),
        );
        let mut out = Vec::with_capacity(DELTA_HEADER + 64);
        out.push(DELTA_FORMAT_VERSION);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(base_loc.as_bytes());
        out.push(depth.saturating_add(1));
        put_len(&mut out, child_ops.len());
        for op in child_ops {
            match op {
                Op::Copy { from, count } => put_copy(&mut out, from, count),
                Op::Insert(id) => {
                    out.push(OP_INSERT);
                    out.extend_from_slice(id.as_bytes());
                }
            }
        }
        put_len(&mut out, item_ops.len());
        for op in item_ops {
            match op {
                Op::Copy { from, count } => put_copy(&mut out, from, count),
                Op::Insert(item) => {
                    out.push(OP_INSERT);
                    crate::node::encode_item(item, &mut out, map)?;
                }
            }
        }
        Ok(out)
    }
}

fn put_copy(out: &mut Vec<u8>, from: u32, count: u32) {
    out.push(OP_COPY);
    out.extend_from_slice(&from.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
}

impl<K: Clone + DeserializeOwned + 'static, V: Clone + DeserializeOwned + 'static> Node<K, V> {
    /// The node `delta` describes, built on `base` (the node stored at the delta's base).
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) for a malformed delta or one that copies outside `base`; a decode
    /// error for a bad key or value.
    pub fn apply_delta(base: &Node<K, V>, delta: &[u8]) -> Result<Node<K, V>> {
        let d = RawDelta::parse(delta)?;
        let children = apply_ops(&base.children, &d.child_ops, "child ids")?;
        let mut items = Vec::with_capacity(base.items.len() + 1);
        for op in &d.item_ops {
            match op {
                Op::Copy { from, count } => {
                    let range = (*from as usize)..(*from as usize).saturating_add(*count as usize);
                    let run = base.items.get(range).ok_or_else(|| {
                        Error::Corruption(sop_core::CorruptionError::Damaged {
                            what: "node delta",
                            location: format!("copy of items {from}+{count}"),
                            detail: format!("the base has {} items", base.items.len()),
                        })
                    })?;
                    items.extend_from_slice(run);
                }
                Op::Insert(raw) => items.push(Arc::new(crate::node::decode_item(raw)?)),
            }
        }
        Ok(Node {
            id: d.id,
            items,
            children,
            index: crate::index::SearchIndex::default(),
        })
    }
}

/// Smallest encoded delta operation (a copy).
const _: () = assert!(MIN_ITEM > 9);
