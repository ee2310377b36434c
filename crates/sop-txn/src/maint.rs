//! Maintenance: registry checkpoints, compaction, and the consolidation of long delta chains.
//!
//! Commits only ask for it; the work runs on a thread of the engine's own, so no committing
//! task waits for it and no async task blocks in its syncs. With
//! `EngineParts::background_maintenance` off it runs right after the commit that asked, on a
//! blocking thread the committing task waits for: the same work at the same points every run,
//! which is what the crash-point tests enumerate.
//!
//! Consolidation: a commit writes a changed node as a delta over the version it read, so one
//! item changed costs one item's bytes. A node whose chain reaches [`SOFT_CHAIN`] deltas is
//! written again here as one full piece, in a version-checked system commit (a node changed
//! meanwhile is left for its next commit to ask again). Readers never follow more than
//! [`HARD_CHAIN`] deltas: a commit on a node that deep writes the full node itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak, mpsc};

use parking_lot::Mutex;
use sop_core::{Error, Handle, Loc, Result, Uuid, now_millis};

use crate::engine::Engine;
use crate::record::{CommitRecord, TableChanges};

/// A node whose chain has this many deltas is consolidated in the background.
pub const SOFT_CHAIN: u8 = 24;
/// Readers follow at most this many deltas; a commit on a node this deep writes it whole.
pub const HARD_CHAIN: u8 = 48;

/// Work a commit asks for.
pub(crate) enum Job {
    /// Write the registry up to the last durable commit, then compact.
    Checkpoint,
    /// Write these nodes (table, logical id) as full pieces.
    Consolidate(Vec<(String, Uuid)>),
    /// A reader ended while dead segments waited: remove those no reader needs now.
    RemoveDead,
}

/// The engine's maintenance thread.
#[derive(Default)]
pub(crate) struct Maintenance {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Maintenance {
    /// Starts the thread (it holds the engine weakly, so it never keeps it open).
    pub fn start(engine: &Arc<Engine>) -> Result<()> {
        let (tx, rx) = mpsc::channel::<Job>();
        let weak: Weak<Engine> = Arc::downgrade(engine);
        let handle = std::thread::Builder::new()
            .name("sop-maintenance".into())
            .spawn(move || run(&weak, &rx))
            .map_err(|e| {
                Error::Corruption(sop_core::CorruptionError::Invariant {
                    store: String::new(),
                    detail: format!("cannot start the maintenance thread: {e}"),
                })
            })?;
        *engine.maintenance.sender.lock() = Some(tx);
        *engine.maintenance.thread.lock() = Some(handle);
        Ok(())
    }

    /// Hands work to the thread; `false` when there is none (inline mode).
    fn send(&self, jobs: Vec<Job>) -> bool {
        match self.sender.lock().as_ref() {
            Some(tx) => {
                for j in jobs {
                    let _ = tx.send(j);
                }
                true
            }
            None => false,
        }
    }

    /// Stops the thread and waits for it (unless this is that thread: the last handle on the
    /// engine can be dropped by a job).
    pub fn stop(&self) {
        self.sender.lock().take();
        if let Some(t) = self.thread.lock().take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

/// Quiet time after which the thread checkpoints and compacts on its own, so the space of a
/// burst of commits comes back without waiting for the next burst.
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// What an idle round leaves for the next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Left {
    Nothing,
    /// It emptied segments: the next mark finds them dead.
    Emptied,
    /// Dead segments wait for an old reader (or a checkpoint).
    Waiting,
    /// It ran while a reader older than the newest commit was open: what only that reader
    /// could see was kept alive, so the round is worth running again once it has closed.
    Pinned,
}

fn run(engine: &Weak<Engine>, rx: &mpsc::Receiver<Job>) {
    // The commit count at the last idle round: one round per quiet spell, not one per second.
    let mut idle_seen = 0;
    // What the last idle round left: segments it emptied (found dead by the next mark) or
    // dead ones waiting for a reader.
    let mut left = Left::Nothing;
    loop {
        let first = match rx.recv_timeout(IDLE_AFTER) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                let Some(_lease) = engine.lease() else {
                    return;
                };
                let commits = engine.commits.load(std::sync::atomic::Ordering::Relaxed);
                let unpinned = left == Left::Pinned && !engine.old_reader_open();
                left = if commits != idle_seen || left == Left::Emptied || unpinned {
                    idle_seen = commits;
                    engine.idle_round()
                } else if left == Left::Waiting {
                    engine.remove_waiting()
                } else {
                    Left::Nothing
                };
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        // Everything queued meanwhile, merged: one checkpoint, one consolidation.
        let mut checkpoint = false;
        let mut remove = false;
        let mut nodes = Vec::new();
        for job in std::iter::once(first).chain(rx.try_iter()) {
            match job {
                Job::Checkpoint => checkpoint = true,
                Job::Consolidate(n) => nodes.extend(n),
                Job::RemoveDead => remove = true,
            }
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let Some(_lease) = engine.lease() else {
            return;
        };
        engine.run_jobs(checkpoint, &nodes);
        if remove && !checkpoint {
            // (A checkpoint's compaction removes them too.) What an idle round still has to
            // do (segments it emptied, a round under an old reader) stays due: a stream of
            // readers ending must not make the maintenance thread forget it.
            let r = engine.remove_waiting();
            if !matches!(left, Left::Emptied | Left::Pinned) {
                left = r;
            }
        }
    }
}

impl Engine {
    /// Asks for maintenance: to the thread, or done now on a blocking thread (inline mode).
    pub(crate) async fn maintain(self: &Arc<Self>, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let mut checkpoint = false;
        let mut nodes = Vec::new();
        for job in jobs {
            match job {
                Job::Checkpoint => checkpoint = true,
                Job::Consolidate(n) => nodes.extend(n),
                Job::RemoveDead => {}
            }
        }
        let mut queued = Vec::new();
        if checkpoint {
            queued.push(Job::Checkpoint);
        }
        if !nodes.is_empty() {
            queued.push(Job::Consolidate(nodes.clone()));
        }
        if self.maintenance.send(queued) {
            return;
        }
        let engine = Arc::clone(self);
        let work = move || engine.run_jobs(checkpoint, &nodes);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                if let Err(e) = h.spawn_blocking(work).await {
                    tracing::warn!(error = %e, "the maintenance task failed");
                }
            }
            Err(_) => work(),
        }
    }

    /// A round of its own when commits have paused: checkpoint (when anything was appended)
    /// and compact. Says what is left for the next quiet second.
    fn idle_round(&self) -> Left {
        // Readers open now keep what they can see alive through this round's mark.
        let pinned = self.old_reader_open();
        if self.appended_since_checkpoint()
            && let Err(e) = self.checkpoint()
        {
            tracing::warn!(error = %e, "idle checkpoint failed; the next one catches up");
            return Left::Nothing;
        }
        match self.compact() {
            Ok(r) if r.moved_nodes > 0 => Left::Emptied,
            Ok(r) if !r.waiting.is_empty() => Left::Waiting,
            Ok(_) if pinned => Left::Pinned,
            Ok(_) => Left::Nothing,
            Err(e) => {
                tracing::warn!(error = %e, "idle compaction failed; the next one catches up");
                Left::Nothing
            }
        }
    }

    /// Whether a transaction reading an older state than the newest commit is open.
    fn old_reader_open(&self) -> bool {
        self.catalog.oldest_reader() < self.catalog.published()
    }

    /// Removes the dead segments no reader or replay needs any more (cheap: no tree walk).
    fn remove_waiting(&self) -> Left {
        match self.remove_dead_segments() {
            Ok(r) if r.waiting.is_empty() => Left::Nothing,
            Ok(_) => Left::Waiting,
            Err(e) => {
                tracing::warn!(error = %e, "removing dead segments failed; the next compaction retries");
                Left::Nothing
            }
        }
    }

    /// A transaction's snapshot was released: when dead segments wait for old readers, the
    /// maintenance thread looks again now rather than at its next idle round, so space comes
    /// back as soon as the last reader that could see it closes.
    pub(crate) fn reader_ended(&self) {
        // Only when a dead segment's time has come (the checkpoint and every open snapshot
        // passed the point it was found dead at): a job per ending reader woke the maintenance
        // thread once per read transaction while any segment waited.
        let Some(first) = self.dead.lock().values().min().copied() else {
            return;
        };
        if self.catalog.checkpointed() >= first && self.catalog.oldest_reader() >= first {
            self.maintenance.send(vec![Job::RemoveDead]);
        }
    }

    fn run_jobs(&self, checkpoint: bool, nodes: &[(String, Uuid)]) {
        if !nodes.is_empty()
            && let Err(e) = self.consolidate(nodes)
        {
            tracing::warn!(error = %e, "consolidating delta chains failed; the next commit asks again");
        }
        if checkpoint {
            // Segments found dead wait for a checkpoint past the point they were found at (a
            // replay from an older one could need them); one more checkpoint right away, not a
            // round later, lets them go as soon as their last reader closes.
            let r = self
                .checkpoint()
                .and_then(|()| self.compact())
                .and_then(|rep| {
                    if rep.waiting.is_empty() {
                        return Ok(());
                    }
                    self.checkpoint()?;
                    self.remove_dead_segments().map(|_| ())
                });
            if let Err(e) = r {
                tracing::warn!(error = %e, "checkpoint or compaction failed; the next one (or the next open) catches up");
            }
        }
    }

    /// Writes each node (table, logical id) whose newest version is a delta chain as one full
    /// piece; returns how many were written.
    ///
    /// # Errors
    /// Storage errors (nothing is lost: the chains stay readable).
    pub fn consolidate(&self, nodes: &[(String, Uuid)]) -> Result<usize> {
        let _lease = self.writer()?;
        let mut todo = Vec::new();
        let mut seen = HashSet::new();
        for (table, lid) in nodes {
            if !seen.insert(*lid) {
                continue;
            }
            let Some(h) = self.catalog.handle(table, *lid, u64::MAX)? else {
                continue;
            };
            // Asked for by every commit that deepened the chain: one already consolidated (its
            // newest delta sits on a fresh full piece) is not rewritten again. Under a burst of
            // commits that was most of the bytes written (the same 175 KB leaves, round after
            // round).
            // The depth is in L1 (the commit that asked cached the version); else in the
            // head piece's header.
            let depth = match self.l1.depth(h.active_id()) {
                Some(d) => d,
                None => {
                    let head = Loc::parse(h.active_id(), "node handle")?;
                    match sop_btree::PieceKind::of(&self.log.read(head)?)? {
                        sop_btree::PieceKind::Delta { depth, .. } => depth,
                        sop_btree::PieceKind::Full => 0,
                    }
                }
            };
            if depth >= SOFT_CHAIN {
                todo.push((table.clone(), h));
            }
        }
        let (n, _) = self.rewrite(&todo, &HashMap::new())?;
        Ok(n)
    }

    /// Writes the newest version of each node again as one full piece (values in `moved` at
    /// their new places), in one system commit that checks each node's version at the gate;
    /// a node committed meanwhile is skipped. Returns the nodes written and the bytes appended.
    pub(crate) fn rewrite(
        &self,
        nodes: &[(String, Handle)],
        moved: &HashMap<Uuid, Uuid>,
    ) -> Result<(usize, u64)> {
        if nodes.is_empty() {
            return Ok((0, 0));
        }
        let mut pieces = Vec::with_capacity(nodes.len());
        for (_, h) in nodes {
            let head = Loc::parse(h.active_id(), "node handle")?;
            let chain = self.node_chain(head)?;
            pieces.push(consolidate(&chain, moved)?);
        }
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let (locs, _) = self.log.append_pieces(&refs)?;
        let mut written: u64 = refs.iter().map(|p| p.len() as u64).sum();
        let mut count = 0;
        let lsn = {
            let _gate = self.local_gate.lock();
            if self.reserved_by_other(Uuid::NIL) {
                // A prepared transaction's deltas must still find their bases at its phase 2:
                // the rewrite waits for a later round (the pieces appended are unreachable).
                return Ok((0, 0));
            }
            self.catalog.drop_voids(&self.log);
            // A reader open now reads the old pieces (its snapshot is older than this commit).
            let keep_old = self.catalog.has_readers();
            let mut by_table: BTreeMap<&str, Vec<Handle>> = BTreeMap::new();
            for ((table, old), loc) in nodes.iter().zip(&locs) {
                let latest = self.catalog.latest_handles(table, &[old.logical_id])?;
                // Changed or moved since it was read: left alone.
                if latest.get(&old.logical_id) != Some(old) {
                    continue;
                }
                // Same content, new piece: the version stays, so no transaction that read the
                // node has to merge; a delta over the old piece is refused at the gate and
                // planned again over the new one.
                let mut h = *old;
                h.physical_a = loc.to_uuid();
                h.physical_b = Uuid::NIL;
                h.active_is_b = false;
                by_table.entry(table).or_default().push(h);
                // Same content: the node decoded for the old piece serves the new one (not when
                // values moved: the decoded items still say where they were).
                if moved.is_empty() {
                    self.l1
                        .alias(old.active_id(), loc.to_uuid(), loc.len, keep_old);
                }
                count += 1;
            }
            if by_table.is_empty() {
                return Ok((0, written));
            }
            let record = CommitRecord {
                tid: Uuid::new_v4(),
                at_ms: now_millis(),
                tables: by_table
                    .into_iter()
                    .map(|(t, put)| TableChanges {
                        table: t.to_string(),
                        put,
                        removed: Vec::new(),
                    })
                    .collect(),
                stores: Vec::new(),
            };
            let bytes = record.encode()?;
            written += bytes.len() as u64;
            let lsn = self.log.append_record(&bytes)?;
            self.catalog.publish(lsn, &record);
            lsn
        };
        self.log.wait_durable_blocking(lsn)?;
        self.note_appended(written);
        Ok((count, written))
    }
}

/// A node's chain as one full piece, with the values in `moved` at their new places.
fn consolidate(chain: &[(Loc, Vec<u8>)], moved: &HashMap<Uuid, Uuid>) -> Result<Vec<u8>> {
    let Some((_, full)) = chain.last() else {
        return Err(Error::Corruption(sop_core::CorruptionError::Invariant {
            store: String::new(),
            detail: "an empty piece chain".into(),
        }));
    };
    let mut raw = sop_btree::RawNode::parse(full)?;
    for (_, delta) in chain.iter().rev().skip(1) {
        raw = raw.apply(delta)?;
    }
    Ok(raw.encode_moved(&|id| moved.get(&id).copied()))
}
