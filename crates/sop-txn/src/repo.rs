//! The tree's view of storage inside a transaction: nodes resolved logical id → handle → blob
//! through the transaction's own copies, the process-wide L1 cache of decoded nodes, then disk.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sop_btree::{Node, NodeRepository, ValueStore};
use sop_core::{Error, Handle, Result, Uuid, codec, now_millis};

use crate::engine::Engine;
use crate::state::StoreShared;
use crate::txlog::{self, TxLog};

/// Format version of a value blob (the codec's encoding of the value).
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

/// The [`NodeRepository`] and [`ValueStore`] of a tree inside a transaction.
pub struct TxRepo<K, V, C> {
    pub(crate) shared: Arc<StoreShared<K, V, C>>,
}

impl<K: Data, V: Data, C: Send + Sync + 'static> TxRepo<K, V, C> {
    fn conflict(&self, detail: String) -> Error {
        Error::Conflict {
            store: self.shared.name.clone(),
            detail,
        }
    }

    /// Checks that every committed node this transaction read is still current, when another
    /// commit happened since the last check: a reader must never mix nodes of two states.
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
            // Only a check no commit overlapped proves one state; else check again.
            if engine.epoch() == now {
                self.shared.state.lock().epoch = now;
                return Ok(());
            }
        }
    }

    /// A committed node, read through the registry, then L1 (decoded nodes), L2 (node bytes),
    /// then the blob store. Both caches are keyed by physical id, which names an immutable blob,
    /// so neither can serve a stale node.
    pub(crate) async fn fetch(&self, id: Uuid) -> Result<(Arc<Node<K, V>>, Handle)> {
        let engine = &self.shared.engine;
        let name = &self.shared.name;
        let handle = loop {
            self.revalidate()?;
            let before = engine.epoch();
            let handle = engine.registry.get_one(name, id)?;
            // The handle belongs to the state the snapshot was checked against only if no
            // commit landed in between.
            if engine.epoch() == before {
                break handle;
            }
        };
        let handle = handle.ok_or_else(|| {
            self.conflict(format!(
                "node {id} is gone: the tree changed while this transaction read it"
            ))
        })?;
        let pid = handle.active_id();
        if let Some(node) = engine.l1.get::<Node<K, V>>(pid) {
            return Ok((node, handle));
        }
        let cache_cfg = self.shared.state.lock().info.cache;
        let key = format!("N{pid}");
        let slide = cache_cfg.node_sliding.then_some(cache_cfg.node);
        let bytes = match cache_get(engine, &key, slide).await {
            Some(b) => b,
            None => {
                let b = match engine.blobs.get(name, pid) {
                    Err(Error::BlobNotFound { .. })
                        if engine
                            .registry
                            .get_one(name, id)?
                            .is_none_or(|now| now.active_id() != pid) =>
                    {
                        // A commit replaced the node (and removed its old blob) after this
                        // transaction read the handle: a stale read, not lost data.
                        return Err(self.conflict(format!(
                            "node {id} was replaced while this transaction read it"
                        )));
                    }
                    r => r?,
                };
                cache_set(engine, &key, b.clone(), cache_cfg.node).await;
                b
            }
        };
        let node = Arc::new(Node::<K, V>::decode(&bytes)?);
        if node.id != id {
            return Err(Error::Corruption {
                what: "b-tree node",
                location: format!("store {name:?} blob {pid}"),
                detail: format!("holds node {}, its handle says {id}", node.id),
            });
        }
        engine.l1.insert(pid, node.clone(), bytes.len());
        Ok((node, handle))
    }

    fn lookup(&self, id: Uuid) -> Result<Option<Arc<Node<K, V>>>> {
        let st = self.shared.state.lock();
        if let Some(broken) = &st.broken {
            return Err(Error::Poisoned {
                store: self.shared.name.clone(),
                cause: broken.clone(),
            });
        }
        if let Some(n) = st.changed.get(&id) {
            return Ok(Some(Arc::clone(n)));
        }
        if st.removed.contains(&id) {
            return Err(Error::NodeNotFound {
                store: self.shared.name.clone(),
                id,
            });
        }
        Ok(st.snapshot.get(&id).map(|(n, _)| Arc::clone(n)))
    }

    fn writable(&self) -> Result<()> {
        self.shared.tx()?.check_writable()
    }
}

impl<K: Data, V: Data, C: Send + Sync + 'static> NodeRepository<K, V> for TxRepo<K, V, C> {
    async fn get(&mut self, id: Uuid) -> Result<Arc<Node<K, V>>> {
        self.shared.tx()?.check_open()?;
        if let Some(n) = self.lookup(id)? {
            return Ok(n);
        }
        let (node, handle) = self.fetch(id).await?;
        let mut st = self.shared.state.lock();
        let entry = st.snapshot.entry(id).or_insert((node, handle));
        Ok(Arc::clone(&entry.0))
    }

    async fn checkout(&mut self, id: Uuid) -> Result<Node<K, V>> {
        self.writable()?;
        let taken = self.shared.state.lock().changed.remove(&id);
        if let Some(n) = taken {
            return Ok(Arc::try_unwrap(n).unwrap_or_else(|shared| (*shared).clone()));
        }
        let n = self.get(id).await?;
        Ok((*n).clone())
    }

    fn add(&mut self, node: Node<K, V>) -> Result<()> {
        self.writable()?;
        let mut st = self.shared.state.lock();
        st.added.insert(node.id);
        st.changed.insert(node.id, Arc::new(node));
        Ok(())
    }

    fn update(&mut self, node: Node<K, V>) -> Result<()> {
        self.writable()?;
        self.shared
            .state
            .lock()
            .changed
            .insert(node.id, Arc::new(node));
        Ok(())
    }

    fn remove(&mut self, id: Uuid) -> Result<()> {
        self.writable()?;
        let mut st = self.shared.state.lock();
        st.changed.remove(&id);
        if !st.added.remove(&id) {
            st.removed.insert(id);
        }
        Ok(())
    }
}

impl<K: Data, V: Data, C: Send + Sync + 'static> ValueStore<V> for TxRepo<K, V, C> {
    async fn get_value(&mut self, id: Uuid) -> Result<V> {
        self.shared.tx()?.check_open()?;
        let (pending, cached) = {
            let st = self.shared.state.lock();
            (
                st.values_pending.get(&id).cloned(),
                st.info.value_globally_cached.then_some(st.info.cache),
            )
        };
        if let Some(v) = pending {
            return Ok(v);
        }
        let engine = &self.shared.engine;
        let key = format!("V{id}");
        if let Some(cfg) = cached
            && let Some(bytes) = cache_get(
                engine,
                &key,
                cfg.value_data_sliding.then_some(cfg.value_data),
            )
            .await
            && let Ok(v) = codec::decode_versioned(&bytes, VALUE_FORMAT_VERSION, "value")
        {
            return Ok(v);
        }
        let bytes = match engine.blobs.get(&self.shared.name, id) {
            Err(Error::BlobNotFound { .. }) => {
                return Err(self.conflict(format!(
                    "value {id} is gone: another transaction replaced it"
                )));
            }
            r => r?,
        };
        let v = codec::decode_versioned(&bytes, VALUE_FORMAT_VERSION, "value")?;
        if let Some(cfg) = cached {
            cache_set(engine, &key, bytes, cfg.value_data).await;
        }
        Ok(v)
    }

    async fn put_value(&mut self, id: Uuid, value: V) -> Result<()> {
        self.writable()?;
        let active = self.shared.state.lock().info.value_actively_persisted;
        if active {
            // Written now, so the commit of big values is quick; made durable by the commit's
            // barrier, and removed if the transaction does not commit.
            let bytes = codec::encode_versioned(VALUE_FORMAT_VERSION, &value)?;
            // Logged first, so a crash before the commit cannot leave it behind unrecorded.
            let max_time = self.shared.tx()?.max_time;
            self.shared
                .engine
                .mark_live(self.shared.tid, max_time)
                .await?;
            let record = txlog::encode(&TxLog::Pending {
                tid: self.shared.tid,
                started_ms: now_millis(),
                blobs: vec![(self.shared.name.clone(), id)],
            })?;
            self.shared
                .engine
                .registry
                .append_file_durable(&txlog::path_of(self.shared.tid), &record)?;
            self.shared
                .engine
                .blobs
                .put_deferred(&self.shared.name, &[(id, &bytes)])?;
            self.shared.state.lock().values_written.push(id);
        } else {
            self.shared.state.lock().values_pending.insert(id, value);
        }
        Ok(())
    }

    async fn remove_value(&mut self, id: Uuid) -> Result<()> {
        self.writable()?;
        let mut st = self.shared.state.lock();
        if st.values_pending.remove(&id).is_none() {
            st.values_obsolete.push(id);
        }
        Ok(())
    }
}
