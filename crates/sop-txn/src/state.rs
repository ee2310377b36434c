//! What a transaction knows about one store it opened: the committed nodes it read, the nodes
//! and values it changed, the key ranges it read and the items it changed.

use std::ops::Bound;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use sop_btree::{Node, Put};
use sop_core::{Error, Handle, IdMap, IdSet, Loc, Result, StoreInfo, Uuid};

use crate::engine::Engine;
use crate::transaction::TxInner;

/// One item this transaction changed: what it was when first touched (`None`: added by this
/// transaction) and what it is now (`None`: removed).
#[derive(Clone, Debug)]
pub(crate) struct Touch<K, V> {
    pub orig: Option<(K, u32)>,
    /// The item now: its key and value, or the id of a value written ahead (a big value is
    /// never kept in memory for the replay).
    pub now: Option<(K, Put<V>)>,
}

/// A committed node as read: the node, the handle it was read through, and what its piece
/// chain costs (deltas below it, and about how big a full image of it is).
pub(crate) struct Read<K, V> {
    pub node: Arc<Node<K, V>>,
    pub handle: Handle,
    pub depth: u8,
    pub full_len: u32,
}

impl<K, V> Clone for Read<K, V> {
    fn clone(&self) -> Self {
        Read {
            node: Arc::clone(&self.node),
            handle: self.handle,
            depth: self.depth,
            full_len: self.full_len,
        }
    }
}

pub(crate) struct StoreState<K, V> {
    /// The committed store info the tree was opened (or last merged) on.
    pub info: Arc<StoreInfo>,
    /// Created by this transaction.
    pub created: bool,
    /// The snapshot (LSN) this store's committed nodes are read at.
    pub snap: u64,
    /// Committed nodes read, with the handle they were read through.
    pub snapshot: IdMap<Uuid, Read<K, V>>,
    /// Stored bytes of the leaves kept in `snapshot` under the engine's keep budget.
    pub kept_bytes: u64,
    /// Handles of leaves read but not kept in `snapshot` (beyond the keep budget): their
    /// versions are validated like the kept ones'. Never in `snapshot` too (`TxRepo::read`
    /// takes a node out of it when it keeps one).
    pub seen: IdMap<Uuid, Handle>,
    /// Nodes added or changed by this transaction, latest copy.
    pub changed: IdMap<Uuid, Arc<Node<K, V>>>,
    /// Logical ids created by this transaction.
    pub added: IdSet<Uuid>,
    /// Committed logical ids removed by this transaction.
    pub removed: IdSet<Uuid>,
    /// Out-of-node values to write at commit, by the id the tree gave them.
    pub values_pending: IdMap<Uuid, V>,
    /// Out-of-node values already written (actively persisted): the tree's id → where.
    pub values_written: IdMap<Uuid, Loc>,
    /// The tree's item count as this transaction sees it.
    pub count: u64,
    /// Key ranges read (inclusive bounds as recorded by the store handle).
    pub reads: Vec<(Bound<K>, Bound<K>)>,
    /// Items changed, in the order first touched.
    pub touched: Vec<Uuid>,
    pub touches: IdMap<Uuid, Touch<K, V>>,
    /// Clustered mode: the registry generation at which `snapshot` was last known current.
    pub epoch: u64,
    /// Set when a call failed part-way: the store must not be committed.
    pub broken: Option<String>,
    /// Holds on the commit by layers above, by holder id: while any is here, a commit fails
    /// (see `Store::hold_commit`).
    pub holds: IdMap<Uuid, String>,
}

impl<K, V> StoreState<K, V> {
    pub fn new(info: Arc<StoreInfo>, created: bool, snap: u64, epoch: u64) -> Self {
        let count = info.count;
        StoreState {
            info,
            created,
            snap,
            snapshot: IdMap::default(),
            kept_bytes: 0,
            seen: IdMap::default(),
            changed: IdMap::default(),
            added: IdSet::default(),
            removed: IdSet::default(),
            values_pending: IdMap::default(),
            values_written: IdMap::default(),
            count,
            reads: Vec::new(),
            touched: Vec::new(),
            touches: IdMap::default(),
            epoch,
            broken: None,
            holds: IdMap::default(),
        }
    }

    /// Forgets the node-level view (for a merge onto fresh committed state), keeping the
    /// item-level record (reads and touches) that the merge replays.
    pub fn reset_nodes(&mut self, info: Arc<StoreInfo>, snap: u64, epoch: u64) {
        self.count = info.count;
        self.info = info;
        self.snap = snap;
        self.snapshot.clear();
        self.seen.clear();
        self.kept_bytes = 0;
        self.changed.clear();
        self.added.clear();
        self.removed.clear();
        // Values written ahead stay where they are (the replayed items keep their ids); values
        // still pending are put again by the replay.
        self.values_pending.clear();
        self.epoch = epoch;
    }

    /// Records that the item `id` is about to change (first touch keeps its original state).
    pub fn touch_before(&mut self, id: Uuid, key: &K, version: u32)
    where
        K: Clone,
    {
        if !self.touches.contains_key(&id) {
            self.touched.push(id);
            self.touches.insert(
                id,
                Touch {
                    orig: Some((key.clone(), version)),
                    now: None,
                },
            );
        }
    }

    /// Records the item's state after a change (`None`: removed).
    pub fn touch_after(&mut self, id: Uuid, now: Option<(K, Put<V>)>) {
        match self.touches.get_mut(&id) {
            Some(t) => t.now = now,
            None => {
                self.touched.push(id);
                self.touches.insert(id, Touch { orig: None, now });
            }
        }
    }
}

/// One store inside one transaction, shared by the user's handle (through the tree's
/// repository) and the commit.
pub(crate) struct StoreShared<K, V, C> {
    /// Weak: the transaction owns its stores, and a transaction whose handles are all dropped
    /// must drop (and roll back) even while a store handle lives on.
    pub tx: Weak<TxInner>,
    pub tid: Uuid,
    pub engine: Arc<Engine>,
    pub name: String,
    pub cmp: C,
    /// Whether reads are recorded for validation: not for a read-only transaction on a
    /// snapshot (standalone), which validates nothing.
    pub record_reads: bool,
    /// Whether out-of-node values are written ahead (fixed for the store's life: read once
    /// here, not under the state lock on every add).
    pub writes_ahead: bool,
    pub state: Mutex<StoreState<K, V>>,
    /// Bumped by every node change through any handle on this store: readers holding paths
    /// (cursors, ranges, other handles) then find their place again by key.
    pub generation: std::sync::atomic::AtomicU64,
}

impl<K, V, C> StoreShared<K, V, C> {
    /// The first committed node this transaction read whose version in the registry is no
    /// longer the one it read, if any.
    pub fn changed_node(&self) -> Result<Option<Uuid>> {
        let read: Vec<(Uuid, u64)> = {
            let st = self.state.lock();
            st.snapshot
                .iter()
                .map(|(id, r)| (*id, r.handle.version))
                .chain(st.seen.iter().map(|(id, h)| (*id, h.version)))
                .collect()
        };
        if read.is_empty() {
            return Ok(None);
        }
        let lids: Vec<Uuid> = read.iter().map(|(id, _)| *id).collect();
        let current = self.engine.catalog.latest_handles(&self.name, &lids)?;
        Ok(read
            .into_iter()
            .find(|(id, v)| current.get(id).map(|h| h.version) != Some(*v))
            .map(|(id, _)| id))
    }

    /// The transaction, while it is alive.
    pub fn tx(&self) -> Result<Arc<TxInner>> {
        self.tx.upgrade().ok_or_else(|| {
            Error::Transaction(sop_core::TransactionError::TransactionState {
                id: self.tid,
                reason: "it was dropped (and rolled back); begin a new one".into(),
            })
        })
    }
}
