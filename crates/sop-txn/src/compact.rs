//! Compaction: the space of superseded node versions, consolidated deltas, removed values and
//! writes of transactions that never committed comes back. See ARCHITECTURE.md, "Space".
//!
//! 1. *Mark*, at a snapshot `P`: walk every store's tree from its root through the log and
//!    count, per segment, the bytes of pieces the state at `P` refers to (each node's delta
//!    chain, each out-of-node value).
//! 2. Only *sealed* segments are considered: older than the one being written and than the
//!    one a replay starts in (so no commit record that a replay needs goes).
//! 3. A sealed segment nothing refers to at `P` is removed once the registry's checkpoint has
//!    passed `P` and no open snapshot is older than `P`: before that, a reader or a replay
//!    after a crash might still need it.
//! 4. A sealed segment with little still referred to (below the threshold) is emptied: every
//!    node with a piece in it is written again as one full piece, with its values that live
//!    there copied, in one commit that version-checks every node against the newest state
//!    (a node a transaction changed meanwhile is left for the next run). The next run finds
//!    the segment dead and step 3 removes it.
//!
//! It is not: run in clustered mode (other processes write segments this one cannot see the
//! references of).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use sop_core::{Error, Handle, Loc, Result, Uuid};

use crate::engine::Engine;

/// A sealed segment whose referenced bytes are below this fraction of its size is emptied.
pub const COMPACT_BELOW: f64 = 0.5;
/// At most this many referenced bytes are moved in one run.
const MOVE_BUDGET: u64 = 64 << 20;

/// What one compaction run found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompactionReport {
    /// Segments on disk when it started.
    pub segments: usize,
    /// Bytes of pieces the newest state refers to.
    pub live_bytes: u64,
    /// Bytes in segment files.
    pub file_bytes: u64,
    /// Nodes written again to empty segments.
    pub moved_nodes: usize,
    /// Bytes of pieces written for them.
    pub moved_bytes: u64,
    /// Segments removed.
    pub removed: Vec<u32>,
    /// Segments nothing refers to, waiting for the checkpoint or an old snapshot.
    pub waiting: Vec<u32>,
}

/// A node of the marked state: where its pieces and values are.
/// A node version as marking sees it (see `Engine::mark_of`).
pub(crate) struct NodeMark {
    chain: Vec<Loc>,
    children: Vec<Uuid>,
    values: Vec<Loc>,
}

/// Weighs a remembered mark by the ids it holds.
#[derive(Clone)]
pub(crate) struct MarkWeight;

impl quick_cache::Weighter<Loc, Arc<NodeMark>> for MarkWeight {
    fn weight(&self, _: &Loc, m: &Arc<NodeMark>) -> u64 {
        (1 + m.chain.len() + m.children.len() + m.values.len()) as u64
    }
}

/// Ids remembered for marking at most (about 16 bytes each).
pub(crate) const MARK_CACHE_IDS: u64 = 2 << 20;

struct Marked {
    table: String,
    handle: Handle,
    /// What its version refers to (shared with the mark cache, not copied per round).
    mark: Arc<NodeMark>,
}

impl Engine {
    /// Reclaims space (see the module docs of `compact.rs` / ARCHITECTURE.md "Space"): removes
    /// log segments nothing can read any more and empties those mostly superseded. Runs after
    /// checkpoints by itself; safe to call any time, while transactions run.
    ///
    /// # Errors
    /// [`CorruptionError::Damaged`](sop_core::CorruptionError::Damaged) when a tree cannot be walked, or a registry table has no store
    /// (its metadata is lost): compaction then removes nothing, since it cannot know what
    /// that table refers to. Storage errors.
    pub fn compact(&self) -> Result<CompactionReport> {
        self.compact_below(COMPACT_BELOW)
    }

    /// [`Engine::compact`] with another threshold (`1.0`: empty every sealed segment that has
    /// anything superseded; `0.0`: only remove dead ones).
    ///
    /// # Errors
    /// As [`Engine::compact`].
    pub fn compact_below(&self, threshold: f64) -> Result<CompactionReport> {
        let _lease = self.writer()?;
        if !self.catalog.versioned() {
            return Ok(CompactionReport::default());
        }
        let _one = self.compacting.lock();
        let mut report = CompactionReport::default();
        let snap = self.catalog.begin_read(&self.log);
        let marked = self.mark(snap);
        self.catalog.end_read(snap);
        let (nodes, live) = marked?;
        let segments = self.log.segments()?;
        report.segments = segments.len();
        report.live_bytes = live.values().sum();
        let limit = self
            .log
            .current_segment()
            .min(self.catalog.replay_segment().unwrap_or(0));
        let mut victims = Vec::new();
        for &n in &segments {
            let size = self.log.segment_size(n)?;
            report.file_bytes += size;
            if n >= limit {
                continue;
            }
            let used = live.get(&n).copied().unwrap_or(0);
            if used == 0 {
                self.dead.lock().entry(n).or_insert(snap);
            } else if (used as f64) < threshold * size as f64 {
                victims.push((used as f64 / size.max(1) as f64, n, used));
            }
        }
        victims.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut chosen = HashSet::new();
        let mut budget = 0u64;
        for (_, n, used) in victims {
            if budget + used > MOVE_BUDGET && !chosen.is_empty() {
                break;
            }
            budget += used;
            chosen.insert(n);
        }
        if !chosen.is_empty() {
            let (moved, bytes) = self.evacuate(&nodes, &chosen)?;
            report.moved_nodes = moved;
            report.moved_bytes = bytes;
        }
        self.remove_dead(&mut report)?;
        Ok(report)
    }

    /// Removes the segments an earlier compaction found dead whose time has come (the
    /// checkpoint and every open snapshot passed the point they were found dead at), without
    /// walking any tree.
    ///
    /// # Errors
    /// Storage errors.
    pub fn remove_dead_segments(&self) -> Result<CompactionReport> {
        let _lease = self.writer()?;
        let _one = self.compacting.lock();
        let mut report = CompactionReport::default();
        self.remove_dead(&mut report)?;
        Ok(report)
    }

    /// What marking needs of the node version at `loc`: its pieces, children and values. A
    /// location names immutable bytes, so it is read and resolved once and then remembered
    /// (a mark used to read every piece of every tree each round: under a burst of commits it
    /// fell behind and the space of superseded versions piled up).
    fn mark_of(&self, loc: Loc) -> Result<Arc<NodeMark>> {
        if let Some(m) = self.marks.get(&loc) {
            return Ok(m);
        }
        let (shape, chain) = self.node_shape(loc)?;
        let values = shape
            .items
            .iter()
            .filter_map(|i| i.external)
            .map(|v| Loc::parse(v, "value location"))
            .collect::<Result<Vec<Loc>>>()?;
        let m = Arc::new(NodeMark {
            chain,
            children: shape.children,
            values,
        });
        self.marks.insert(loc, Arc::clone(&m));
        Ok(m)
    }

    /// Walks every store at `snap`: the nodes, and referenced bytes per segment.
    fn mark(&self, snap: u64) -> Result<(Vec<Marked>, BTreeMap<u32, u64>)> {
        let names = self.catalog.store_names(snap)?;
        for table in self.catalog.meta.tables()? {
            if !names.contains(&table) && self.catalog.store_info(&table, snap)?.is_none() {
                return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                    what: "store metadata",
                    location: table,
                    detail: "a registry table has no store info; compaction removes nothing until it is restored (or the removal finished: sop verify --repair)".into(),
                }));
            }
        }
        let mut nodes = Vec::new();
        let mut counted: HashSet<Loc> = HashSet::new();
        let mut live: BTreeMap<u32, u64> = BTreeMap::new();
        let mut count = |loc: Loc, live: &mut BTreeMap<u32, u64>| {
            if counted.insert(loc) {
                *live.entry(loc.segment).or_default() += u64::from(loc.len);
            }
        };
        for name in names {
            let Some(info) = self.catalog.store_info(&name, snap)? else {
                continue;
            };
            let mut stack = vec![info.root_id];
            while let Some(lid) = stack.pop() {
                let Some(handle) = self.catalog.handle(&name, lid, snap)? else {
                    if info.count == 0 && lid == info.root_id {
                        continue;
                    }
                    return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                        what: "b-tree node",
                        location: format!("store {name:?} node {lid}"),
                        detail: "no handle: compaction cannot tell what the tree refers to".into(),
                    }));
                };
                let loc = Loc::parse(handle.active_id(), "node handle")?;
                let mark = self.mark_of(loc)?;
                for p in &mark.chain {
                    count(*p, &mut live);
                }
                for v in &mark.values {
                    count(*v, &mut live);
                }
                stack.extend(mark.children.iter().copied());
                nodes.push(Marked {
                    table: name.clone(),
                    handle,
                    mark,
                });
            }
        }
        Ok((nodes, live))
    }

    /// Writes every node with a piece or value in `victims` again, in one version-checked
    /// commit. Returns the nodes moved and the bytes written.
    fn evacuate(&self, nodes: &[Marked], victims: &HashSet<u32>) -> Result<(usize, u64)> {
        let hit = |l: &Loc| victims.contains(&l.segment);
        let movers: Vec<&Marked> = nodes
            .iter()
            .filter(|n| n.mark.chain.iter().any(hit) || n.mark.values.iter().any(hit))
            .collect();
        if movers.is_empty() {
            return Ok((0, 0));
        }
        // Values first: the nodes that point at them are written with their new places.
        let old_values: Vec<Loc> = movers
            .iter()
            .flat_map(|n| n.mark.values.iter().copied().filter(|l| hit(l)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut value_bytes = Vec::with_capacity(old_values.len());
        for l in &old_values {
            value_bytes.push(self.log.read(*l)?);
        }
        let mut moved: HashMap<Uuid, Uuid> = HashMap::new();
        let mut written = 0u64;
        if !old_values.is_empty() {
            let refs: Vec<&[u8]> = value_bytes.iter().map(Vec::as_slice).collect();
            let (locs, _) = self.log.append_pieces(&refs)?;
            for (old, new) in old_values.iter().zip(locs) {
                moved.insert(old.to_uuid(), new.to_uuid());
                written += u64::from(new.len);
            }
        }
        let todo: Vec<(String, Handle)> =
            movers.iter().map(|n| (n.table.clone(), n.handle)).collect();
        let (count, bytes) = self.rewrite(&todo, &moved)?;
        Ok((count, written + bytes))
    }

    /// Removes the dead segments no checkpoint and no open snapshot can need any more.
    fn remove_dead(&self, report: &mut CompactionReport) -> Result<()> {
        let checkpointed = self.catalog.checkpointed();
        let oldest = self.catalog.oldest_reader();
        let ready: Vec<u32> = self
            .dead
            .lock()
            .iter()
            .filter(|(_, p)| checkpointed >= **p && oldest >= **p)
            .map(|(n, _)| *n)
            .collect();
        report.waiting = self
            .dead
            .lock()
            .keys()
            .filter(|n| !ready.contains(n))
            .copied()
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        for n in &ready {
            self.log.remove_segment(*n)?;
            self.dead.lock().remove(n);
        }
        self.log.sync_folder()?;
        tracing::debug!(segments = ?ready, took = ?started.elapsed(), "compaction removed segments");
        report.removed = ready;
        Ok(())
    }
}
