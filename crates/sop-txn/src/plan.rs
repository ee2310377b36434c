//! What a store contributes to a commit, type-erased so one commit can span stores of any key
//! and value types.

use std::any::Any;
use std::ops::Bound;
use std::sync::Arc;

use sop_btree::{BTree, KeyComparator, Node, NodeRepository, ValueStore};
use sop_coord::BoxFuture;
use sop_core::{Error, Handle, Result, StoreInfo, Uuid, codec, now_millis};

use crate::TxMode;
use crate::repo::{Data, TxRepo, VALUE_FORMAT_VERSION};
use crate::state::StoreShared;

/// One store's part of a commit.
#[derive(Default)]
pub(crate) struct StorePlan {
    pub name: String,
    /// Lock keys: committed nodes this commit changes or removes.
    pub lock_keys: Vec<String>,
    /// Committed nodes read but not changed: (logical id, version).
    pub checks: Vec<(Uuid, u64)>,
    /// Changed nodes: new handle, expected stored version.
    pub updates: Vec<(Handle, u64)>,
    /// New nodes.
    pub adds: Vec<Handle>,
    /// Removed nodes: (logical id, expected stored version).
    pub removes: Vec<(Uuid, u64)>,
    /// New node and value blobs to write before the commit point.
    pub blobs: Vec<(Uuid, Vec<u8>)>,
    /// Decoded new nodes for the L1 cache, by physical id.
    pub l1: Vec<(Uuid, Arc<dyn Any + Send + Sync>, usize)>,
    /// Blobs obsolete once committed.
    pub obsolete: Vec<Uuid>,
    /// Value blobs removed whatever the outcome.
    pub dead: Vec<Uuid>,
    pub count_delta: i64,
    /// The store's info when this transaction creates it.
    pub created: Option<StoreInfo>,
}

impl StorePlan {
    pub fn has_writes(&self) -> bool {
        self.created.is_some()
            || !self.updates.is_empty()
            || !self.adds.is_empty()
            || !self.removes.is_empty()
            || !self.blobs.is_empty()
            || !self.obsolete.is_empty()
            || self.count_delta != 0
    }
}

/// A store inside a transaction, as the commit sees it.
pub(crate) trait StoreTx: Send + Sync {
    fn name(&self) -> &str;
    /// What to write, with fresh physical ids.
    fn plan(&self, mode: TxMode) -> Result<StorePlan>;
    /// Whether a committed node this transaction read or changed has a newer version now.
    fn stale(&self) -> Result<bool>;
    /// Replays the transaction's item-level changes onto the current committed state, after
    /// checking that nothing it read changed at item level ([`Error::Conflict`] otherwise).
    fn merge(self: Arc<Self>) -> BoxFuture<'static, Result<()>>;
    /// Blobs to remove when the transaction does not commit.
    fn rollback_blobs(&self) -> Vec<(String, Uuid)>;
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

    fn plan(&self, mode: TxMode) -> Result<StorePlan> {
        let st = self.state.lock();
        if let Some(cause) = &st.broken {
            return Err(Error::Poisoned {
                store: self.name.clone(),
                cause: cause.clone(),
            });
        }
        let now = now_millis();
        let mut plan = StorePlan {
            name: self.name.clone(),
            ..StorePlan::default()
        };
        for (lid, node) in &st.changed {
            let bytes = node.encode()?;
            let pid = if st.added.contains(lid) {
                let pid = Uuid::new_v4();
                let mut h = Handle::new(*lid);
                h.physical_a = pid;
                plan.adds.push(h);
                pid
            } else {
                let Some((_, old)) = st.snapshot.get(lid) else {
                    return Err(Error::Invariant {
                        store: self.name.clone(),
                        detail: format!("node {lid} was changed but never read"),
                    });
                };
                let mut h = *old;
                h.clear_inactive();
                let pid = h.allocate(now)?;
                h.flip();
                h.clear_inactive();
                plan.updates.push((h, old.version));
                plan.obsolete.push(old.active_id());
                plan.lock_keys.push(lock_key(*lid));
                pid
            };
            plan.l1.push((pid, node.clone(), bytes.len()));
            plan.blobs.push((pid, bytes));
        }
        for lid in &st.removed {
            if let Some((_, old)) = st.snapshot.get(lid) {
                plan.removes.push((*lid, old.version));
                plan.obsolete.push(old.active_id());
                plan.lock_keys.push(lock_key(*lid));
            }
        }
        if mode != TxMode::NoCheck {
            for (lid, (_, h)) in &st.snapshot {
                if !st.changed.contains_key(lid) && !st.removed.contains(lid) {
                    plan.checks.push((*lid, h.version));
                }
            }
        }
        for (id, v) in &st.values_pending {
            plan.blobs
                .push((*id, codec::encode_versioned(VALUE_FORMAT_VERSION, v)?));
        }
        plan.obsolete.extend(st.values_obsolete.iter().copied());
        plan.dead.extend(st.values_dead.iter().copied());
        plan.count_delta = i64::try_from(st.count).unwrap_or(i64::MAX)
            - i64::try_from(st.info.count).unwrap_or(i64::MAX);
        if st.created {
            plan.created = Some(st.info.clone());
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

    fn rollback_blobs(&self) -> Vec<(String, Uuid)> {
        let st = self.state.lock();
        st.values_written
            .iter()
            .chain(st.values_dead.iter())
            .map(|id| (self.name.clone(), *id))
            .collect()
    }
}

/// The lock key of a node (logical ids are unique across stores).
pub(crate) fn lock_key(lid: Uuid) -> String {
    format!("N{lid}")
}

fn conflict(store: &str, detail: String) -> Error {
    Error::Conflict {
        store: store.into(),
        detail,
    }
}

/// The committed nodes a transaction read, as a read-only repository: the state it read from.
struct Snapshot<K, V> {
    name: String,
    nodes: std::collections::HashMap<Uuid, Arc<Node<K, V>>>,
}

impl<K: Data, V: Data> NodeRepository<K, V> for Snapshot<K, V> {
    async fn get(&mut self, id: Uuid) -> Result<Arc<Node<K, V>>> {
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
    async fn get_value(&mut self, id: Uuid) -> Result<V> {
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
    let fresh = engine
        .store_info(&name)?
        .ok_or_else(|| conflict(&name, "the store was removed".into()))?;
    let (old_info, nodes, reads, touched, touches) = {
        let mut st = shared.state.lock();
        let nodes = st
            .snapshot
            .iter()
            .map(|(id, (n, _))| (*id, Arc::clone(n)))
            .collect();
        let out = (
            st.info.clone(),
            nodes,
            st.reads.clone(),
            st.touched.clone(),
            st.touches.clone(),
        );
        st.reset_nodes(fresh.clone(), engine.epoch());
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
                if !new.add_with_id(id, k.clone(), v.clone()).await? {
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
