//! The tree's view of storage inside a transaction: nodes resolved logical id → handle (as of
//! the transaction's snapshot) → piece chain in the log, through the transaction's own copies
//! and the process-wide L1 cache of decoded nodes.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sop_btree::{Node, NodeRepository, PieceKind, ValueStore};
use sop_core::{Error, Loc, Result, Uuid, codec};

use crate::engine::Engine;
use crate::state::{Read, StoreShared};

/// Format version of a value piece (the codec's encoding of the value).
pub const VALUE_FORMAT_VERSION: u8 = 1;

/// An L2 read; a cache failure is a miss (storage is the truth), logged.
async fn cache_get(engine: &Engine, key: &str, slide: Option<Duration>) -> Option<Vec<u8>> {
    engine.cache.get(key, slide).await.unwrap_or_else(|e| {
        tracing::warn!(key, error = %e, "L2 cache read failed; reading storage");
        None
    })
}

/// An L2 write; a cache failure only costs a later miss, logged.
async fn cache_set(engine: &Engine, key: &str, value: Vec<u8>, ttl: Duration) {
    if let Err(e) = engine.cache.set(key, value, ttl).await {
        tracing::warn!(key, error = %e, "L2 cache write failed");
    }
}

/// Key and value types a transactional tree can hold.
pub trait Data: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> Data for T {}

/// A decoded node version and its chain's cost.
pub(crate) struct Cached<K, V> {
    pub node: Arc<Node<K, V>>,
    pub depth: u8,
    pub full_len: u32,
}

impl<K: Data, V: Data> Cached<K, V> {
    /// What L1 holds for it.
    pub fn entry(&self) -> crate::l1::Entry {
        crate::l1::Entry::held(
            Arc::clone(&self.node) as Arc<dyn std::any::Any + Send + Sync>,
            self.depth,
            self.full_len,
        )
    }
}

/// What a node not yet in the transaction needs to be fetched: the snapshot, and the handle
/// kept for a leaf read before beyond the keep budget (without keeping the leaf).
struct Miss {
    snap: u64,
    seen: Option<sop_core::Handle>,
}

/// The [`NodeRepository`] and [`ValueStore`] of a tree inside a transaction.
pub struct TxRepo<K, V, C> {
    pub(crate) shared: Arc<StoreShared<K, V, C>>,
}

impl<K: Data, V: Data, C: Send + Sync + 'static> TxRepo<K, V, C> {
    fn conflict(&self, detail: String) -> Error {
        Error::Transaction(sop_core::TransactionError::Conflict {
            store: self.shared.name.clone(),
            detail,
        })
    }

    /// Clustered mode: checks that every committed node this transaction read is still
    /// current when another commit happened since the last check, so a reader never mixes
    /// nodes of two states (another process's commit replaces handles in place).
    fn revalidate(&self) -> Result<()> {
        let engine = &self.shared.engine;
        loop {
            let now = engine.epoch();
            if self.shared.state.lock().epoch == now {
                return Ok(());
            }
            if let Some(id) = self.shared.changed_node()? {
                return Err(self.conflict(format!(
                    "node {id} changed while this transaction was reading"
                )));
            }
            if engine.epoch() == now {
                self.shared.state.lock().epoch = now;
                return Ok(());
            }
        }
    }

    /// The committed node `id` as this transaction sees it (`miss`: what [`TxRepo::lookup`]
    /// found out about it under the same lock).
    async fn fetch(&self, id: Uuid, miss: Miss) -> Result<Read<K, V>> {
        let engine = &self.shared.engine;
        let name = &self.shared.name;
        let handle = if engine.catalog.versioned() {
            let Miss { snap, seen } = miss;
            match seen {
                // A leaf read before beyond the keep budget: its handle as of the snapshot,
                // without asking the catalog again.
                Some(h) => Some(h),
                None => engine.catalog.handle(name, id, snap)?,
            }
        } else {
            // One hand-over to tokio for the lot (the calls inside may wait for another
            // process's batch; nested `blocking` calls then cost nothing).
            sop_blobstore_ec::blocking(|| {
                loop {
                    self.revalidate()?;
                    let before = engine.epoch();
                    let h = engine.catalog.handle(name, id, u64::MAX)?;
                    if engine.epoch() == before {
                        break Ok::<_, Error>(h);
                    }
                }
            })?
        };
        let handle = handle.ok_or_else(|| {
            if engine.catalog.versioned() {
                Error::Corruption(sop_core::CorruptionError::NodeNotFound {
                    store: name.clone(),
                    id,
                })
            } else {
                self.conflict(format!(
                    "node {id} is gone: the tree changed while this transaction read it"
                ))
            }
        })?;
        let loc = Loc::parse(handle.active_id(), "node handle")?;
        let c = self.node_at(loc, 0).await?;
        if c.node.id != id {
            return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                what: "b-tree node",
                location: format!("store {name:?} {loc}"),
                detail: format!("holds node {}, its handle says {id}", c.node.id),
            }));
        }
        Ok(Read {
            node: Arc::clone(&c.node),
            handle,
            depth: c.depth,
            full_len: c.full_len,
        })
    }

    /// The node stored at `loc`: from L1, else its piece (the log; L2 first in clustered
    /// mode), following a delta to its base. Only the version asked for goes into L1 (the bases
    /// under it are older versions, mostly superseded).
    async fn node_at(&self, loc: Loc, hops: u8) -> Result<Cached<K, V>> {
        let engine = &self.shared.engine;
        let pid = loc.to_uuid();
        if let Some((node, depth, full_len)) = engine.l1.get::<Node<K, V>>(pid) {
            return Ok(Cached {
                node,
                depth,
                full_len,
            });
        }
        let bytes = if engine.catalog.versioned() {
            // Standalone: L1 holds decoded nodes; a second, in-process copy of their bytes
            // would only take memory from it.
            engine.read_piece(loc)?
        } else {
            let cache_cfg = self.shared.state.lock().info.cache;
            let key = format!("N{pid}");
            let slide = cache_cfg.node_sliding.then_some(cache_cfg.node);
            match cache_get(engine, &key, slide).await {
                Some(b) if b.len() == loc.len as usize && crc32c_ok(&b, loc.crc) => b,
                _ => {
                    let b = engine.read_piece(loc)?;
                    cache_set(engine, &key, b.clone(), cache_cfg.node).await;
                    b
                }
            }
        };
        let cached = match PieceKind::of(&bytes)? {
            PieceKind::Full => Cached {
                node: Arc::new(Node::<K, V>::decode(&bytes)?),
                depth: 0,
                full_len: loc.len,
            },
            PieceKind::Delta { base, depth, .. } => {
                if hops > crate::maint::HARD_CHAIN {
                    return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                        what: "node delta",
                        location: loc.to_string(),
                        detail: "the delta chain is too long (a loop?)".into(),
                    }));
                }
                let base = Loc::parse(base, "node delta base")?;
                let b = Box::pin(self.node_at(base, hops + 1)).await?;
                Cached {
                    node: Arc::new(Node::apply_delta(&b.node, &bytes)?),
                    depth,
                    full_len: b.full_len.saturating_add(loc.len),
                }
            }
        };
        if hops == 0 {
            engine.l1.insert(pid, cached.entry());
        }
        Ok(cached)
    }

    /// The committed node `id` as this transaction reads it, kept in its snapshot map (`keep`,
    /// or inner nodes, or leaves within the engine's byte budget) or, for a leaf beyond the
    /// budget in standalone mode, through its handle only: the handle keeps the version the
    /// commit validates (see `plan.rs`), and a re-read goes to L1 without the catalog. So a
    /// scan holds a bounded number of nodes, in write transactions too; clustered mode keeps
    /// every node (its readers re-check them when another process commits).
    async fn read(&self, id: Uuid, keep: bool) -> Result<Arc<Node<K, V>>> {
        self.shared.tx()?.check_open()?;
        let miss = match self.lookup(id)? {
            Ok(n) => return Ok(n),
            Err(miss) => miss,
        };
        let read = self.fetch(id, miss).await?;
        let engine = &self.shared.engine;
        let mut st = self.shared.state.lock();
        if !keep && read.node.is_leaf() && engine.catalog.versioned() {
            if st.kept_bytes >= engine.keep_leaf_bytes() {
                st.seen.insert(id, read.handle);
                return Ok(read.node);
            }
            st.kept_bytes += u64::from(read.full_len);
        }
        st.seen.remove(&id);
        let entry = st.snapshot.entry(id).or_insert(read);
        Ok(Arc::clone(&entry.node))
    }

    /// The node `id` as this transaction has it (changed or read before), or what fetching it
    /// needs: one lock of the store's state for both.
    fn lookup(&self, id: Uuid) -> Result<Result<Arc<Node<K, V>>, Miss>> {
        let st = self.shared.state.lock();
        if let Some(broken) = &st.broken {
            return Err(Error::Transaction(sop_core::TransactionError::Poisoned {
                store: self.shared.name.clone(),
                cause: broken.clone(),
            }));
        }
        if let Some(n) = st.changed.get(&id) {
            return Ok(Ok(Arc::clone(n)));
        }
        if st.removed.contains(&id) {
            return Err(Error::Corruption(sop_core::CorruptionError::NodeNotFound {
                store: self.shared.name.clone(),
                id,
            }));
        }
        Ok(match st.snapshot.get(&id) {
            Some(r) => Ok(Arc::clone(&r.node)),
            None => Err(Miss {
                snap: st.snap,
                seen: st.seen.get(&id).copied(),
            }),
        })
    }

    fn bump(&self) {
        self.shared
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    // The store checked this before the tree started its change (so a refused write poisons
    // nothing); checked again per node write because the transaction can end from another task
    // while a change awaits I/O, and no node may change after that.
    fn writable(&self) -> Result<()> {
        self.shared.tx()?.check_writable()
    }

    /// A value's bytes from where it is stored (L2 first when globally cached).
    async fn value_at(&self, loc: Loc, cached: Option<sop_core::StoreCacheConfig>) -> Result<V> {
        let engine = &self.shared.engine;
        let key = format!("V{}", loc.to_uuid());
        if let Some(cfg) = cached
            && let Some(bytes) = cache_get(
                engine,
                &key,
                cfg.value_data_sliding.then_some(cfg.value_data),
            )
            .await
            && crc32c_ok(&bytes, loc.crc)
            && let Ok(v) = codec::decode_versioned(&bytes, VALUE_FORMAT_VERSION, "value")
        {
            return Ok(v);
        }
        let bytes = engine.read_piece(loc)?;
        let v = codec::decode_versioned(&bytes, VALUE_FORMAT_VERSION, "value")?;
        if let Some(cfg) = cached {
            cache_set(engine, &key, bytes, cfg.value_data).await;
        }
        Ok(v)
    }
}

fn crc32c_ok(bytes: &[u8], crc: u32) -> bool {
    crc32c::crc32c(bytes) == crc
}

impl<K: Data, V: Data, C: Send + Sync + 'static> NodeRepository<K, V> for TxRepo<K, V, C> {
    async fn get(&self, id: Uuid) -> Result<Arc<Node<K, V>>> {
        self.read(id, false).await
    }

    async fn checkout(&mut self, id: Uuid) -> Result<Node<K, V>> {
        self.writable()?;
        let taken = self.shared.state.lock().changed.remove(&id);
        if let Some(n) = taken {
            return Ok(Arc::try_unwrap(n).unwrap_or_else(|shared| (*shared).clone()));
        }
        // Kept whatever the budget: the commit writes a changed node as a delta over the
        // version read, and checks that version.
        let n = self.read(id, true).await?;
        Ok((*n).clone())
    }

    fn generation(&self) -> u64 {
        self.shared
            .generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn add(&mut self, node: Node<K, V>) -> Result<()> {
        self.writable()?;
        self.bump();
        let mut st = self.shared.state.lock();
        st.added.insert(node.id);
        st.changed.insert(node.id, Arc::new(node));
        Ok(())
    }

    fn update(&mut self, node: Node<K, V>) -> Result<()> {
        self.writable()?;
        self.bump();
        self.shared
            .state
            .lock()
            .changed
            .insert(node.id, Arc::new(node));
        Ok(())
    }

    fn remove(&mut self, id: Uuid) -> Result<()> {
        self.writable()?;
        self.bump();
        let mut st = self.shared.state.lock();
        st.changed.remove(&id);
        if !st.added.remove(&id) {
            st.removed.insert(id);
        }
        Ok(())
    }
}

/// Writes an out-of-node value now (SOP's "actively persisted"), so the commit of big values
/// is quick and the transaction keeps only where it went. It becomes durable with the commit
/// record that follows it in the log; if the transaction does not commit, nothing points at it
/// and compaction reclaims it.
pub(crate) fn write_ahead<K, V: Data, C>(
    shared: &StoreShared<K, V, C>,
    id: Uuid,
    value: &V,
) -> Result<()> {
    let bytes = codec::encode_versioned(VALUE_FORMAT_VERSION, value)?;
    let engine = &shared.engine;
    let (locs, _) = engine.log.append_pieces(&[&bytes])?;
    engine.note_appended(bytes.len() as u64);
    let loc = locs.first().copied().ok_or_else(|| {
        Error::Corruption(sop_core::CorruptionError::Invariant {
            store: shared.name.clone(),
            detail: "the log returned no location for a value".into(),
        })
    })?;
    shared.state.lock().values_written.insert(id, loc);
    Ok(())
}

impl<K: Data, V: Data, C: Send + Sync + 'static> ValueStore<V> for TxRepo<K, V, C> {
    async fn get_value(&self, id: Uuid) -> Result<V> {
        self.shared.tx()?.check_open()?;
        let (pending, written, cached) = {
            let st = self.shared.state.lock();
            (
                st.values_pending.get(&id).cloned(),
                st.values_written.get(&id).copied(),
                st.info.value_globally_cached.then_some(st.info.cache),
            )
        };
        if let Some(v) = pending {
            return Ok(v);
        }
        let loc = match written {
            Some(loc) => loc,
            None => Loc::parse(id, "value location")?,
        };
        self.value_at(loc, cached).await
    }

    async fn put_value(&mut self, id: Uuid, value: V) -> Result<()> {
        self.writable()?;
        let active = self.shared.state.lock().info.value_actively_persisted;
        if active {
            write_ahead(&self.shared, id, &value)?;
        } else {
            self.shared.state.lock().values_pending.insert(id, value);
        }
        Ok(())
    }

    async fn remove_value(&mut self, id: Uuid) -> Result<()> {
        self.writable()?;
        // A committed value is only forgotten: it stays readable by older snapshots and its
        // space is reclaimed by compaction once nothing can see it.
        self.shared.state.lock().values_pending.remove(&id);
        Ok(())
    }
}
