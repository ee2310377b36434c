//! Committed handles and store infos as transactions see them.
//!
//! Standalone (*versioned*): the registry on disk holds the state as of the last checkpoint;
//! every commit since is in the log and in an in-memory *overlay* that keeps, per logical id
//! and per store, the versions published by commits (LSN, state). A transaction reads as of its
//! snapshot LSN: the newest version at or before it, else the registry. A checkpoint writes the
//! newest durable versions into the registry in one atomic batch (with the replay position),
//! keeping in the overlay whatever an older open snapshot still needs (its pre-image), and
//! drops the rest.
//!
//! Clustered (*direct*): other processes commit into the shared registry, so reads go to the
//! registry and store files every time and there is no overlay. Such a read may wait (at most
//! 2 s) for another process to finish applying a batch, so it runs through `blocking`: on a
//! multi-threaded runtime tokio first moves the worker's other tasks elsewhere.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use sop_blobstore_ec::{LogPos, SegmentLog, blocking};
use sop_core::meta::{HandleChange, MetaBatch, Metadata};
use sop_core::{Error, Handle, Result, StoreInfo, Uuid};

use crate::record::{CheckpointRecord, CommitRecord};

/// Versions of one thing, oldest first: (LSN that published it, state; `None` = absent). An
/// LSN of 0 is a pre-image: the state before every other entry.
type Versions<T> = Vec<(u64, Option<T>)>;

fn at<T: Clone>(list: &Versions<T>, snap: u64) -> Option<Option<T>> {
    list.iter()
        .rev()
        .find(|(l, _)| *l <= snap)
        .map(|(_, v)| v.clone())
}

#[derive(Default)]
struct Overlay {
    handles: HashMap<String, HashMap<Uuid, Versions<Handle>>>,
    // Shared: a transaction opening a store takes an `Arc`, not a copy of its strings.
    stores: HashMap<String, Versions<Arc<StoreInfo>>>,
}

/// How many registry handles the standalone catalog keeps in memory.
const BASE_HANDLES: usize = 1 << 20;

pub(crate) struct Catalog {
    pub meta: Arc<dyn Metadata>,
    versioned: bool,
    overlay: RwLock<Overlay>,
    /// The LSN of the last commit published: a new snapshot sees everything up to it.
    published: AtomicU64,
    /// Open snapshots (LSN → how many).
    // A sorted vector, not a map: a read transaction registers and leaves without allocating
    // (a handful of distinct snapshots are open at once).
    readers: Mutex<Vec<(u64, usize)>>,
    /// The LSN the registry holds everything up to, and where a replay would start; one
    /// checkpoint at a time.
    checkpointed: Mutex<(u64, Option<LogPos>)>,
    /// Store infos read from their files since the last checkpoint (files change only there).
    base_stores: Mutex<HashMap<String, Option<Arc<StoreInfo>>>>,
    /// Standalone: handles read from the registry, by logical id (unique across stores). The
    /// registry changes only at checkpoints, which update this cache with what they wrote, so
    /// an entry is never stale; a commit's validation then reads no registry block.
    base: quick_cache::sync::Cache<Uuid, Option<Handle>>,
    /// Taken to fill the caches and by a checkpoint to update them: with the registry's
    /// generation (bumped when a batch's blocks become visible) it keeps a read that raced a
    /// checkpoint from caching what the checkpoint just replaced.
    fill: Mutex<()>,
    /// Fences of the log already applied (void commits dropped from the overlay).
    fences_seen: AtomicU64,
}

impl Catalog {
    /// Opens the catalog; returns where the log must replay from (standalone).
    pub fn open(
        meta: Arc<dyn Metadata>,
        versioned: bool,
    ) -> Result<(Catalog, Option<LogPos>, u64)> {
        let ck = if versioned {
            match meta.replay_point()? {
                Some(bytes) => Some(CheckpointRecord::decode(
                    &bytes,
                    &meta.replay_point_location(),
                )?),
                None => {
                    if !meta.store_names()?.is_empty() || !meta.tables()?.is_empty() {
                        return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                            what: "checkpoint record",
                            location: meta.replay_point_location(),
                            detail: "stores exist but the record of where to replay the log from is missing; restore the file or the database".into(),
                        }));
                    }
                    None
                }
            }
        } else {
            None
        };
        let lsn = ck.map_or(0, |c| c.lsn);
        Ok((
            Catalog {
                meta,
                versioned,
                overlay: RwLock::new(Overlay::default()),
                published: AtomicU64::new(lsn),
                readers: Mutex::new(Vec::new()),
                checkpointed: Mutex::new((lsn, ck.map(|c| c.position()))),
                base_stores: Mutex::new(HashMap::new()),
                base: quick_cache::sync::Cache::new(BASE_HANDLES),
                fill: Mutex::new(()),
                fences_seen: AtomicU64::new(0),
            },
            ck.map(|c| c.position()),
            lsn,
        ))
    }

    /// Whether reads are versioned (standalone) rather than direct (clustered).
    pub fn versioned(&self) -> bool {
        self.versioned
    }

    /// The LSN of the last published commit.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Publishes a commit (at the gate, or replaying on open): its states become the newest.
    pub fn publish(&self, lsn: u64, rec: &CommitRecord) {
        if self.versioned {
            let mut ov = self.overlay.write();
            for t in &rec.tables {
                let table = ov.handles.entry(t.table.clone()).or_default();
                for h in &t.put {
                    table.entry(h.logical_id).or_default().push((lsn, Some(*h)));
                }
                for id in &t.removed {
                    table.entry(*id).or_default().push((lsn, None));
                }
            }
            for s in &rec.stores {
                ov.stores
                    .entry(s.name.clone())
                    .or_default()
                    .push((lsn, Some(Arc::new(s.clone()))));
            }
        }
        self.published.fetch_max(lsn, Ordering::AcqRel);
    }

    /// Starts a read view at the newest published commit; end it with [`Catalog::end_read`].
    pub fn begin_read(&self, log: &SegmentLog) -> u64 {
        self.drop_voids(log);
        let mut r = self.readers.lock();
        let snap = self.published();
        match r.binary_search_by_key(&snap, |e| e.0) {
            Ok(i) => r[i].1 += 1,
            Err(i) => r.insert(i, (snap, 1)),
        }
        snap
    }

    /// Ends a read view.
    pub fn end_read(&self, snap: u64) {
        let mut r = self.readers.lock();
        if let Ok(i) = r.binary_search_by_key(&snap, |e| e.0) {
            r[i].1 -= 1;
            if r[i].1 == 0 {
                r.remove(i);
            }
        }
    }

    /// The oldest open snapshot (the newest published commit when none is open).
    pub fn oldest_reader(&self) -> u64 {
        let r = self.readers.lock();
        r.first().map_or_else(|| self.published(), |e| e.0)
    }

    /// Whether any snapshot reader is open (it may still read locations a rewrite moves).
    pub fn has_readers(&self) -> bool {
        !self.readers.lock().is_empty()
    }

    /// The handle of `lid` as of `snap`.
    pub fn handle(&self, table: &str, lid: Uuid, snap: u64) -> Result<Option<Handle>> {
        if self.versioned
            && let Some(v) = self
                .overlay
                .read()
                .handles
                .get(table)
                .and_then(|t| t.get(&lid))
                .and_then(|list| at(list, snap))
        {
            return Ok(v);
        }
        self.base_handle(table, lid)
    }

    /// A handle as the registry holds it (through the cache when versioned).
    fn base_handle(&self, table: &str, lid: Uuid) -> Result<Option<Handle>> {
        if !self.versioned {
            // Clustered: the read may wait for another process's batch (see `blocking`).
            return blocking(|| self.meta.handle(table, lid));
        }
        if let Some(h) = self.base.get(&lid) {
            return Ok(h);
        }
        let generation = self.meta.generation();
        let h = self.meta.handle(table, lid)?;
        let _f = self.fill.lock();
        if self.meta.generation() == generation {
            self.base.insert(lid, h);
        }
        Ok(h)
    }

    /// The newest handles of `lids` (present ones only), for validation at the gate.
    pub fn latest_handles(&self, table: &str, lids: &[Uuid]) -> Result<HashMap<Uuid, Handle>> {
        let mut out = HashMap::with_capacity(lids.len());
        let mut miss = Vec::new();
        if self.versioned {
            let ov = self.overlay.read();
            let t = ov.handles.get(table);
            for lid in lids {
                match t.and_then(|t| t.get(lid)).and_then(|l| l.last()) {
                    Some((_, Some(h))) => {
                        out.insert(*lid, *h);
                    }
                    Some((_, None)) => {}
                    None => miss.push(*lid),
                }
            }
        } else {
            miss.extend_from_slice(lids);
        }
        if !self.versioned {
            out.extend(blocking(|| self.meta.handles(table, &miss))?);
            return Ok(out);
        }
        let mut cold = Vec::new();
        for lid in miss {
            match self.base.get(&lid) {
                Some(Some(h)) => {
                    out.insert(lid, h);
                }
                Some(None) => {}
                None => cold.push(lid),
            }
        }
        if !cold.is_empty() {
            let generation = self.meta.generation();
            let found = self.meta.handles(table, &cold)?;
            let _f = self.fill.lock();
            let cache = self.meta.generation() == generation;
            for lid in cold {
                let h = found.get(&lid).copied();
                if cache {
                    self.base.insert(lid, h);
                }
                if let Some(h) = h {
                    out.insert(lid, h);
                }
            }
        }
        Ok(out)
    }

    fn base_store(&self, name: &str) -> Result<Option<Arc<StoreInfo>>> {
        if !self.versioned {
            return blocking(|| {
                self.meta.refresh()?;
                Ok(self.meta.store_info(name)?.map(Arc::new))
            });
        }
        if let Some(i) = self.base_stores.lock().get(name) {
            return Ok(i.clone());
        }
        let generation = self.meta.generation();
        let info = self.meta.store_info(name)?.map(Arc::new);
        let _f = self.fill.lock();
        if self.meta.generation() == generation {
            self.base_stores
                .lock()
                .insert(name.to_string(), info.clone());
        }
        Ok(info)
    }

    /// A store's info as of `snap`.
    pub fn store_info(&self, name: &str, snap: u64) -> Result<Option<Arc<StoreInfo>>> {
        if self.versioned
            && let Some(v) = self
                .overlay
                .read()
                .stores
                .get(name)
                .and_then(|l| at(l, snap))
        {
            return Ok(v);
        }
        self.base_store(name)
    }

    /// A store's newest info (at the gate).
    pub fn latest_store_info(&self, name: &str) -> Result<Option<Arc<StoreInfo>>> {
        self.store_info(name, u64::MAX)
    }

    /// The names of the stores as of `snap`, sorted.
    pub fn store_names(&self, snap: u64) -> Result<Vec<String>> {
        if !self.versioned {
            blocking(|| self.meta.refresh())?;
        }
        let mut names: BTreeSet<String> = self.meta.store_names()?.into_iter().collect();
        if self.versioned {
            for (name, list) in &self.overlay.read().stores {
                match at(list, snap) {
                    Some(Some(_)) => {
                        names.insert(name.clone());
                    }
                    Some(None) => {
                        names.remove(name);
                    }
                    None => {}
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Drops from the overlay the commits a failed log sync made void (their committers got
    /// an error), so nobody reads or validates against them.
    pub fn drop_voids(&self, log: &SegmentLog) {
        let (fences, voids) = log.voids();
        if fences == self.fences_seen.load(Ordering::Acquire) {
            return;
        }
        let void = |l: u64| voids.iter().any(|(a, b)| (*a..=*b).contains(&l));
        let mut ov = self.overlay.write();
        for t in ov.handles.values_mut() {
            t.retain(|_, list| {
                list.retain(|(l, _)| !void(*l));
                !list.is_empty()
            });
        }
        ov.stores.retain(|_, list| {
            list.retain(|(l, _)| !void(*l));
            !list.is_empty()
        });
        let mut p = self.published();
        while p > 0 && void(p) {
            p -= 1;
        }
        self.published.store(p, Ordering::Release);
        self.fences_seen.store(fences, Ordering::Release);
    }

    /// Writes every durable commit not yet in the registry into it, in one atomic batch with
    /// the new replay position, then forgets what no open snapshot needs. Standalone only.
    pub fn checkpoint(&self, log: &SegmentLog) -> Result<()> {
        if !self.versioned {
            return Ok(());
        }
        let mut done = self.checkpointed.lock();
        self.drop_voids(log);
        let (lsn, pos) = log.durable();
        let last = done.0;
        if lsn <= last {
            return Ok(());
        }
        let oldest = self.oldest_reader();
        let mut batch = MetaBatch::new();
        let mut written: Vec<(Uuid, Option<Handle>)> = Vec::new();
        {
            let mut ov = self.overlay.write();
            for (table, lids) in &mut ov.handles {
                for (lid, list) in lids.iter_mut() {
                    let Some(i) = list.iter().rposition(|(l, _)| *l <= lsn) else {
                        continue;
                    };
                    let (l, state) = list[i];
                    if l <= last {
                        continue;
                    }
                    if oldest < l && !list.iter().any(|(x, _)| *x <= oldest) {
                        // An open snapshot older than this change reads the registry for it:
                        // keep what the registry holds now before overwriting it.
                        let before = self.base_handle(table, *lid)?;
                        list.insert(0, (0, before));
                    }
                    written.push((*lid, state));
                    batch = match state {
                        Some(h) => batch.handle(table, HandleChange::Put(h)),
                        None => batch.handle(table, HandleChange::Delete(*lid)),
                    };
                }
            }
            for (name, list) in &mut ov.stores {
                let Some(i) = list.iter().rposition(|(l, _)| *l <= lsn) else {
                    continue;
                };
                let (l, state) = list[i].clone();
                if l <= last {
                    continue;
                }
                if oldest < l && !list.iter().any(|(x, _)| *x <= oldest) {
                    let before = self.meta.store_info(name)?.map(Arc::new);
                    list.insert(0, (0, before));
                }
                batch = match state {
                    Some(info) => batch.put_store((*info).clone()),
                    None => batch.remove_store(name),
                };
            }
        }
        let record = CheckpointRecord {
            lsn,
            segment: pos.segment,
            offset: pos.offset,
            next_lsn: pos.lsn,
        };
        batch = batch.replay_point(record.encode()?);
        self.meta.apply(&batch)?;
        self.meta.refresh()?;
        {
            let _f = self.fill.lock();
            for (lid, state) in written {
                self.base.insert(lid, state);
            }
            self.base_stores.lock().clear();
        }
        *done = (lsn, Some(pos));
        self.prune(self.oldest_reader(), lsn);
        Ok(())
    }

    /// Forgets versions no open snapshot can read, and entries the registry now holds.
    fn prune(&self, oldest: u64, checkpointed: u64) {
        fn trim<T>(list: &mut Versions<T>, oldest: u64, checkpointed: u64) -> bool {
            if let Some(i) = list.iter().rposition(|(l, _)| *l <= oldest) {
                list.drain(..i);
            }
            !(list.len() == 1 && list[0].0 <= checkpointed)
        }
        let mut ov = self.overlay.write();
        for t in ov.handles.values_mut() {
            t.retain(|_, list| trim(list, oldest, checkpointed));
        }
        ov.handles.retain(|_, t| !t.is_empty());
        ov.stores.retain(|_, list| trim(list, oldest, checkpointed));
    }

    /// The LSN the registry holds everything up to.
    pub fn checkpointed(&self) -> u64 {
        self.checkpointed.lock().0
    }

    /// The segment a replay would start in (`None`: from the very start of the log).
    pub fn replay_segment(&self) -> Option<u32> {
        self.checkpointed.lock().1.map(|p| p.segment)
    }

    /// Forgets a removed store entirely (after its files went).
    pub fn forget_store(&self, name: &str) {
        let mut ov = self.overlay.write();
        ov.handles.remove(name);
        ov.stores.remove(name);
        self.base_stores.lock().remove(name);
        // Its handles are gone from the registry: cached ones must not answer (rare: drop all).
        self.base.clear();
    }

    /// How many handle versions the overlay holds (for tests of reclamation).
    pub fn overlay_len(&self) -> usize {
        self.overlay
            .read()
            .handles
            .values()
            .map(|t| t.values().map(Vec::len).sum::<usize>())
            .sum()
    }
}
