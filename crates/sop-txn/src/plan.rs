//! What a store contributes to a commit, type-erased so one commit can span stores of any key
//! and value types: its out-of-node values and node versions as pieces (a changed node as a
//! delta over the version it was read at, when that is small), and its handle changes.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use sop_btree::{BTree, ItemValue, KeyComparator, Node, NodeRepository, ValueStore};
use sop_coord::BoxFuture;
use sop_core::{Error, Handle, Loc, Result, StoreInfo, Uuid, codec};

use crate::TxMode;
use crate::maint::HARD_CHAIN;
use crate::repo::{Cached, Data, TxRepo, VALUE_FORMAT_VERSION};
use crate::state::{StoreShared, StoreState};

/// A node version to write.
pub(crate) struct NodeWrite {
    pub lid: Uuid,
    /// The version it replaces (`None`: a new node).
    pub expected: Option<u64>,
    /// Its piece: a full node or a delta.
    pub bytes: Vec<u8>,
    /// The decoded node for the L1 cache.
    pub l1: crate::l1::Entry,
    /// Deltas in its chain once written (0: a full piece).
    pub depth: u8,
    /// For a delta: the node whose piece it applies to and that piece. The commit point
    /// checks that the piece is still that node's newest (a background rewrite moves pieces
    /// without changing content or version).
    pub base: Option<(Uuid, Uuid)>,
}

/// One store's part of a commit.
#[derive(Default)]
pub(crate) struct StorePlan {
    pub name: String,
    /// Lock keys: committed nodes this commit changes or removes.
    pub lock_keys: Vec<String>,
    /// Committed nodes read but not changed: (logical id, version).
    pub checks: Vec<(Uuid, u64)>,
    /// Changed and new nodes.
    pub nodes: Vec<NodeWrite>,
    /// Removed nodes: (logical id, expected stored version).
    pub removes: Vec<(Uuid, u64)>,
    pub count_delta: i64,
    /// The store's info when this transaction creates it.
    pub created: Option<StoreInfo>,
    /// Bytes of values written by this plan.
    pub value_bytes: u64,
    /// Pieces this commit supersedes (of changed and removed nodes): once it is durable, no
    /// new transaction reads them, so their decoded copies leave the L1 cache rather than
    /// crowd out the nodes that are read.
    pub superseded: Vec<Uuid>,
}

impl StorePlan {
    pub fn has_writes(&self) -> bool {
        self.created.is_some()
            || !self.nodes.is_empty()
            || !self.removes.is_empty()
            || self.count_delta != 0
    }

    /// The new handles, once the node pieces are written at `locs` (in `nodes` order).
    pub fn handles(&self, locs: &[Loc]) -> (Vec<(Handle, Option<u64>)>, Vec<Uuid>) {
        let puts = self
            .nodes
            .iter()
            .zip(locs)
            .map(|(n, loc)| {
                let h = Handle {
                    logical_id: n.lid,
                    physical_a: loc.to_uuid(),
                    physical_b: Uuid::NIL,
                    active_is_b: false,
                    version: n.expected.map_or(1, |v| v + 1),
                    work_in_progress_ms: 0,
                    deleted: false,
                };
                (h, n.expected)
            })
            .collect();
        let removed = self.removes.iter().map(|(id, _)| *id).collect();
        (puts, removed)
    }
}

/// A store inside a transaction, as the commit sees it.
pub(crate) trait StoreTx: Send + Sync {
    fn name(&self) -> &str;
    /// Itself, to open a second handle on it with its concrete types.
    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;

    /// The store's info as the transaction sees it.
    fn info(&self) -> Arc<StoreInfo>;
    /// What to write: out-of-node values are written to the log here (their locations go into
    /// the nodes), node versions are encoded.
    fn plan(&self, mode: TxMode) -> Result<StorePlan>;
    /// Whether a committed node this transaction read or changed has a newer version now.
    fn stale(&self) -> Result<bool>;
    /// Replays the transaction's item-level changes onto the current committed state, after
    /// checking that nothing it read changed at item level ([`TransactionError::Conflict`](sop_core::TransactionError::Conflict) otherwise).
    fn merge(self: Arc<Self>) -> BoxFuture<'static, Result<()>>;
}

impl<K, V, C> StoreTx for StoreShared<K, V, C>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    fn info(&self) -> Arc<StoreInfo> {
        let st = self.state.lock();
        let mut info = (*st.info).clone();
        info.count = st.count;
        Arc::new(info)
    }

    fn plan(&self, mode: TxMode) -> Result<StorePlan> {
        let mut st = self.state.lock();
        if let Some(cause) = &st.broken {
            return Err(Error::Transaction(sop_core::TransactionError::Poisoned {
                store: self.name.clone(),
                cause: cause.clone(),
            }));
        }
        if let Some(why) = st.holds.values().next() {
            return Err(Error::Usage(sop_core::UsageError::InvalidArgument {
                store: self.name.clone(),
                what: "commit",
                reason: why.clone(),
            }));
        }
        let mut plan = StorePlan {
            name: self.name.clone(),
            ..StorePlan::default()
        };
        plan.value_bytes = write_pending_values(&self.engine, &mut st)?;
        let written = &st.values_written;
        let substitute = |id: Uuid| written.get(&id).map_or(id, |l| l.to_uuid());
        // No value written: nothing to substitute, and no item needs reading to find out.
        let subst: Option<&dyn Fn(Uuid) -> Uuid> = if written.is_empty() {
            None
        } else {
            Some(&substitute)
        };
        let donors = donors(&st, &self.cmp);
        let mut bases = Vec::with_capacity(st.changed.len());
        for (lid, node) in &st.changed {
            let (base, expected) = match st.snapshot.get(lid) {
                Some(_) if !st.added.contains(lid) => {
                    plan.lock_keys.push(lock_key(*lid));
                    let v = st.snapshot.get(lid).map(|r| r.handle.version);
                    (Some(*lid), v)
                }
                Some(_) | None => {
                    let donor = node
                        .items
                        .first()
                        .and_then(|i| donors.get(&i.id))
                        .filter(|d| st.snapshot.contains_key(d))
                        .copied();
                    (donor, None)
                }
            };
            bases.push((*lid, node, base, expected));
        }
        let moved = self.moved_bases(&st, bases.iter().filter_map(|b| b.2))?;
        for (lid, node, base, expected) in bases {
            let base = base.and_then(|d| {
                st.snapshot.get(&d).map(|r| match moved.get(&d) {
                    // Rewritten in the background since it was read: same content, new piece.
                    Some(h) => Base {
                        lid: d,
                        node: &r.node,
                        loc: h.active_id(),
                        depth: 0,
                        full_len: Loc::from_uuid(h.active_id()).map_or(0, |l| l.len),
                    },
                    None => Base {
                        lid: d,
                        node: &r.node,
                        loc: r.handle.active_id(),
                        depth: r.depth,
                        full_len: r.full_len,
                    },
                })
            });
            if expected.is_some()
                && let Some(r) = st.snapshot.get(&lid)
            {
                plan.superseded.push(r.handle.active_id());
                if let Some(h) = moved.get(&lid) {
                    plan.superseded.push(h.active_id());
                }
            }
            let write = encode_node(lid, node, base, expected, subst)?;
            let full = u64::from(write.l1.full_len).max(write.bytes.len() as u64);
            if full > codec::MAX_VALUE_BYTES {
                // Readable now, but no full image of it could ever be read back.
                return Err(Error::Usage(sop_core::UsageError::ValueTooLarge {
                    store: self.name.clone(),
                    what: "a node (its inline keys and values together)",
                    size: full,
                    max: codec::MAX_VALUE_BYTES,
                }));
            }
            plan.nodes.push(write);
        }
        for lid in &st.removed {
            if let Some(r) = st.snapshot.get(lid) {
                plan.removes.push((*lid, r.handle.version));
                plan.superseded.push(r.handle.active_id());
                plan.lock_keys.push(lock_key(*lid));
            }
        }
        if mode != TxMode::NoCheck {
            for (lid, r) in &st.snapshot {
                if !st.changed.contains_key(lid) && !st.removed.contains(lid) {
                    plan.checks.push((*lid, r.handle.version));
                }
            }
            // Leaves read beyond the keep budget (handles only): validated the same way.
            for (lid, h) in &st.seen {
                if !st.changed.contains_key(lid) && !st.removed.contains(lid) {
                    plan.checks.push((*lid, h.version));
                }
            }
        }
        plan.count_delta = i64::try_from(st.count).unwrap_or(i64::MAX)
            - i64::try_from(st.info.count).unwrap_or(i64::MAX);
        if st.created {
            plan.created = Some((*st.info).clone());
        }
        plan.lock_keys.sort();
        Ok(plan)
    }

    fn stale(&self) -> Result<bool> {
        Ok(self.changed_node()?.is_some())
    }

    fn merge(self: Arc<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let r = merge(&self).await;
            if let Err(e) = &r {
                self.state.lock().broken = Some(e.to_string());
            }
            r
        })
    }
}

/// Writes the values still pending (SOP's "medium" values) to the log, each under the id the
/// tree gave it; returns their bytes.
fn write_pending_values<K, V: Data>(
    engine: &crate::engine::Engine,
    st: &mut StoreState<K, V>,
) -> Result<u64> {
    if st.values_pending.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(st.values_pending.len());
    let mut bytes = Vec::with_capacity(st.values_pending.len());
    for (id, v) in &st.values_pending {
        ids.push(*id);
        bytes.push(codec::encode_versioned(VALUE_FORMAT_VERSION, v)?);
    }
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let (locs, _) = engine.log.append_pieces(&refs)?;
    for (id, loc) in ids.into_iter().zip(locs) {
        st.values_written.insert(id, loc);
    }
    st.values_pending.clear();
    Ok(bytes.iter().map(|b| b.len() as u64).sum())
}

/// For nodes this transaction created: the committed node each of their items came from
/// (a split's new half is written as a delta over the node it was split from).
fn donors<K, V, C: KeyComparator<K>>(st: &StoreState<K, V>, cmp: &C) -> HashMap<Uuid, Uuid> {
    use std::cmp::Ordering;
    let mut out = HashMap::new();
    // Only the first item of each new node is looked up, by key, in the snapshot nodes this
    // transaction changed or removed (a split moved it out of one of them): a few items of each
    // are read, not all (reading every item of hundreds of cold 1,000-item leaves was most of a
    // 1,000-key batch's planning). An item whose key this transaction changed is not found; its
    // node is then written whole, which is only bigger.
    let wanted: Vec<&Arc<sop_btree::NodeItem<K, V>>> = st
        .added
        .iter()
        .filter_map(|lid| st.changed.get(lid)?.items.first())
        .collect();
    if wanted.is_empty() {
        return out;
    }
    for (lid, r) in &st.snapshot {
        if !(st.changed.contains_key(lid) || st.removed.contains(lid)) {
            continue;
        }
        let items = &r.node.items;
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            continue;
        };
        for w in &wanted {
            if cmp.compare(&w.key, &first.key) == Ordering::Less
                || cmp.compare(&w.key, &last.key) == Ordering::Greater
            {
                continue;
            }
            // Equal keys (a non-unique store) sit side by side: the run is checked by id.
            let mut i = r.node.lower_bound(cmp, &w.key);
            while let Some(it) = items.get(i) {
                if cmp.compare(&it.key, &w.key) != Ordering::Equal {
                    break;
                }
                if it.id == w.id {
                    out.insert(w.id, *lid);
                    break;
                }
                i += 1;
            }
        }
    }
    out
}

/// A stored node version a new one can be written as a delta over.
struct Base<'a, K, V> {
    lid: Uuid,
    node: &'a Arc<Node<K, V>>,
    loc: Uuid,
    depth: u8,
    full_len: u32,
}

impl<K: Data, V: Data, C: Send + Sync> StoreShared<K, V, C> {
    /// The nodes among `lids` whose newest handle has the version this transaction read but
    /// another piece: a background rewrite (consolidation, compaction) moved them.
    fn moved_bases(
        &self,
        st: &StoreState<K, V>,
        lids: impl Iterator<Item = Uuid>,
    ) -> Result<HashMap<Uuid, Handle>> {
        if !self.engine.catalog.versioned() {
            return Ok(HashMap::new());
        }
        let lids: Vec<Uuid> = lids.collect();
        if lids.is_empty() {
            return Ok(HashMap::new());
        }
        let latest = self.engine.catalog.latest_handles(&self.name, &lids)?;
        Ok(lids
            .into_iter()
            .filter_map(|d| {
                let r = st.snapshot.get(&d)?;
                let h = latest.get(&d)?;
                (h.version == r.handle.version && h.active_id() != r.handle.active_id())
                    .then_some((d, *h))
            })
            .collect())
    }
}

/// One node's piece: a delta over `base` when that is much smaller than the node, else the
/// whole node. External value ids are written through `subst` (where they were stored).
fn encode_node<K: Data, V: Data>(
    lid: Uuid,
    node: &Arc<Node<K, V>>,
    base: Option<Base<'_, K, V>>,
    expected: Option<u64>,
    subst: Option<&dyn Fn(Uuid) -> Uuid>,
) -> Result<NodeWrite> {
    let same_id = |id: Uuid| id;
    let map: &dyn Fn(Uuid) -> Uuid = subst.unwrap_or(&same_id);
    let mut chosen = None;
    if let Some(b) = &base
        && b.depth < HARD_CHAIN
    {
        let delta = node.encode_delta(b.node, b.loc, b.depth, subst)?;
        if delta.len() * 4 <= b.full_len as usize {
            let full_len = b
                .full_len
                .saturating_add(u32::try_from(delta.len()).unwrap_or(u32::MAX));
            chosen = Some((delta, b.depth + 1, full_len, Some((b.lid, b.loc))));
        }
    }
    let (bytes, depth, full_len, delta_base) = match chosen {
        Some(c) => c,
        None => {
            let bytes = node.encode_with(map)?;
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            (bytes, 0, len, None)
        }
    };
    // The cached copy must hold the stored value locations, not the tree's ids for them.
    let stored = if subst.is_some()
        && node
            .items
            .iter()
            .any(|i| matches!(i.value, ItemValue::External(id) if map(id) != id))
    {
        let mut n = (**node).clone();
        for i in &mut n.items {
            if let ItemValue::External(id) = i.value
                && map(id) != id
            {
                Arc::make_mut(i).value = ItemValue::External(map(id));
            }
        }
        Arc::new(n)
    } else {
        Arc::clone(node)
    };
    Ok(NodeWrite {
        lid,
        expected,
        bytes,
        l1: Cached {
            node: stored,
            depth,
            full_len,
        }
        .entry(),
        depth,
        base: delta_base,
    })
}

/// The lock key of a node (logical ids are unique across stores).
pub(crate) fn lock_key(lid: Uuid) -> String {
    format!("N{lid}")
}

fn conflict(store: &str, detail: String) -> Error {
    Error::Transaction(sop_core::TransactionError::Conflict {
        store: store.into(),
        detail,
    })
}

/// The committed nodes a transaction read, as a read-only repository: the state it read from.
struct Snapshot<K, V> {
    name: String,
    nodes: std::collections::HashMap<Uuid, Arc<Node<K, V>>>,
}

impl<K: Data, V: Data> NodeRepository<K, V> for Snapshot<K, V> {
    async fn get(&self, id: Uuid) -> Result<Arc<Node<K, V>>> {
        // A node the transaction never read: its reads cannot be re-checked, so they count as
        // changed.
        self.nodes.get(&id).cloned().ok_or_else(|| {
            conflict(
                &self.name,
                format!("cannot re-check a read range: node {id} was not read"),
            )
        })
    }
    async fn checkout(&mut self, id: Uuid) -> Result<Node<K, V>> {
        Ok((*self.get(id).await?).clone())
    }
    fn add(&mut self, _: Node<K, V>) -> Result<()> {
        Err(conflict(&self.name, "snapshot is read-only".into()))
    }
    fn update(&mut self, _: Node<K, V>) -> Result<()> {
        Err(conflict(&self.name, "snapshot is read-only".into()))
    }
    fn remove(&mut self, _: Uuid) -> Result<()> {
        Err(conflict(&self.name, "snapshot is read-only".into()))
    }
}

impl<K: Data, V: Data> ValueStore<V> for Snapshot<K, V> {
    async fn get_value(&self, id: Uuid) -> Result<V> {
        Err(conflict(&self.name, format!("snapshot has no value {id}")))
    }
    async fn put_value(&mut self, _: Uuid, _: V) -> Result<()> {
        Err(conflict(&self.name, "snapshot is read-only".into()))
    }
    async fn remove_value(&mut self, _: Uuid) -> Result<()> {
        Err(conflict(&self.name, "snapshot is read-only".into()))
    }
}

async fn versions<K, V, R, C>(
    tree: &mut BTree<K, V, R, C>,
    lo: &Bound<K>,
    hi: &Bound<K>,
) -> Result<Vec<(Uuid, u32)>>
where
    K: Data,
    V: Data,
    R: NodeRepository<K, V> + ValueStore<V>,
    C: KeyComparator<K>,
{
    let mut out = Vec::new();
    let mut r = tree.range((lo.clone(), hi.clone()));
    while let Some((id, _, version)) = r.next_version().await? {
        out.push((id, version));
    }
    Ok(out)
}

async fn merge<K, V, C>(shared: &Arc<StoreShared<K, V, C>>) -> Result<()>
where
    K: Data,
    V: Data,
    C: KeyComparator<K> + Clone + Send + Sync + 'static,
{
    let name = shared.name.clone();
    let engine = &shared.engine;
    // The newest committed state; the transaction's own snapshot (registered when it began)
    // is older, so it keeps whatever this one reads from being reclaimed.
    let snap = engine.catalog.begin_read(&engine.log);
    engine.catalog.end_read(snap);
    let fresh = engine
        .catalog
        .store_info(&name, snap)?
        .ok_or_else(|| conflict(&name, "the store was removed".into()))?;
    let (old_info, nodes, reads, touched, touches) = {
        let mut st = shared.state.lock();
        let nodes = st
            .snapshot
            .iter()
            .map(|(id, r)| (*id, Arc::clone(&r.node)))
            .collect();
        let out = (
            st.info.clone(),
            nodes,
            st.reads.clone(),
            st.touched.clone(),
            st.touches.clone(),
        );
        st.reset_nodes(fresh.clone(), snap, engine.epoch());
        out
    };
    let mut old = BTree::open(
        Snapshot {
            name: name.clone(),
            nodes,
        },
        old_info,
        shared.cmp.clone(),
    );
    let mut new = BTree::open(
        TxRepo {
            shared: Arc::clone(shared),
        },
        fresh,
        shared.cmp.clone(),
    );
    for (lo, hi) in &reads {
        let before = versions(&mut old, lo, hi).await?;
        let after = versions(&mut new, lo, hi).await?;
        if before != after {
            return Err(conflict(
                &name,
                "another transaction changed items in a key range this one read".into(),
            ));
        }
    }
    for id in touched {
        let Some(t) = touches.get(&id) else { continue };
        match (&t.orig, &t.now) {
            (None, None) => {}
            (None, Some((k, v))) => {
                if !new.add_stored_with_id(id, k.clone(), v.clone()).await? {
                    return Err(conflict(
                        &name,
                        "another transaction added an item with a key this one added".into(),
                    ));
                }
            }
            (Some((k0, version)), now) => {
                let found = new.find_with_id(k0, id).await?
                    && new.current_version().await?.map(|(_, v)| v) == Some(*version);
                if !found {
                    return Err(conflict(
                        &name,
                        format!(
                            "another transaction changed or removed item {id} this one changed"
                        ),
                    ));
                }
                match now {
                    None => new.remove_current_item().await?,
                    Some((k1, v1)) => new.update_current_item(k1.clone(), v1.clone()).await?,
                }
            }
        }
    }
    shared.state.lock().count = new.count();
    Ok(())
}
