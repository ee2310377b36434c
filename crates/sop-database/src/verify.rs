//! `Database::verify`: checks a whole database folder without knowing the stores' key and value
//! types, and repairs what can be repaired safely.
//!
//! It checkpoints first (so the registry holds every commit), reads every registry block, walks
//! every tree from its root through the type-free node shape (each node version's piece chain
//! resolved from the log), reads every out-of-node value (checksums), compares counts, reads
//! every frame of every log segment, and reports how much of each segment is still referenced.
//! It needs the folder to itself, which a standalone `Database` guarantees (clustered databases
//! are refused).
//!
//! It never deletes anything a handle, a log record or the checkpoint refers to: the only
//! repairs are the removal of temporary files and the completion of an interrupted store
//! removal (recognised by its marker). Space that nothing refers to any more is reclaimed by
//! compaction, not by verification.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sop_core::{Error, Handle, Loc, Result, Uuid};

use crate::{Database, TxMode};

/// What [`Database::verify`] found and did.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// One entry per store.
    pub stores: Vec<StoreCheck>,
    /// One entry per log segment.
    pub segments: Vec<SegmentCheck>,
    /// What is wrong and was not repaired, each naming the store, node, segment or file.
    pub problems: Vec<String>,
    /// What the repair did.
    pub repaired: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing is wrong (after the repair, when one was asked).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One store, as [`Database::verify`] walked it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreCheck {
    /// The store.
    pub name: String,
    /// The item count its store file records.
    pub count: u64,
    /// Items found walking the tree.
    pub items: u64,
    /// Nodes reached from the root.
    pub nodes: usize,
    /// Levels (1 for a root that is a leaf).
    pub depth: usize,
    /// Pieces holding the nodes (full images and deltas).
    pub node_pieces: usize,
    /// Values kept outside their nodes.
    pub values: usize,
    /// Whether the keys are in order: checked for stores whose keys and values are strings
    /// (what the `sop` command makes); `None` when the types are not known here.
    pub keys_ordered: Option<bool>,
}

/// One log segment, as [`Database::verify`] read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentCheck {
    /// The segment number.
    pub number: u32,
    /// Bytes in its file.
    pub bytes: u64,
    /// Frames read (all of them intact).
    pub frames: usize,
    /// Bytes of pieces that a tree still refers to.
    pub live: u64,
}

impl Database {
    /// Checks the whole database: every registry block's checksum, every tree reachable from
    /// its root (each node version's pieces are there and intact, the node has the right id
    /// and child count, leaves are all at one depth), item counts against the store infos,
    /// every out-of-node value readable, every frame of every log segment intact, and nothing
    /// left over (registry tables of removed stores, handles no tree reaches, temporary files).
    ///
    /// With `repair`, fixes what is safe to fix: removes temporary files and finishes an
    /// interrupted store removal. It never removes anything that a handle, log record or the
    /// checkpoint refers to, and refuses to treat a table whose store metadata is missing as
    /// leftover (it says what to restore instead).
    ///
    /// # Errors
    /// [`UsageError::InvalidConfig`](sop_core::UsageError::InvalidConfig) for a clustered database; I/O errors that stop the walk.
    pub async fn verify(&self, repair: bool) -> Result<VerifyReport> {
        if self.is_clustered() {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "verify",
                reason: "verification needs the folder to itself: close every process and open it standalone".into(),
            }));
        }
        let engine = self.engine();
        if engine.is_read_only() {
            // Verification reads the registry as the checkpoint left it: read-only, it can
            // only vouch for a database whose log holds nothing after its checkpoint.
            if repair || self.recovery().replayed > 0 || self.recovery().damage.is_some() {
                return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                    what: "verify",
                    reason: "a read-only database can be verified (not repaired) only when its \
                             log holds nothing after the last checkpoint (as after a clean \
                             close); open it read-write to verify or repair it"
                        .into(),
                }));
            }
        } else {
            engine.log().flush()?;
            engine.checkpoint()?;
        }
        let registry = &self.registry;
        let mut report = VerifyReport::default();
        let mut live: BTreeMap<u32, u64> = BTreeMap::new();

        for name in registry.list_files("stores")? {
            if name.ends_with(".tmp") {
                let rel = format!("stores/{name}");
                let what = format!("temporary file {rel} left by an interrupted write");
                if repair {
                    registry.remove_file_lazy(&rel)?;
                    report.repaired.push(what);
                } else {
                    report.problems.push(what);
                }
            }
        }
        let markers: BTreeSet<String> = registry
            .list_files(sop_registry::REMOVED_DIR)?
            .into_iter()
            .collect();
        let stores = self.stores()?;
        for table in registry.tables()? {
            if stores.contains(&table) {
                continue;
            }
            if markers.contains(&table) {
                let what =
                    format!("registry table {table} of a store whose removal was interrupted");
                if repair {
                    registry.remove_table(&table)?;
                    registry.write(
                        &sop_registry::RegistryBatch::new()
                            .remove_file(&sop_registry::removal_marker(&table)),
                    )?;
                    report.repaired.push(what);
                } else {
                    report.problems.push(what);
                }
            } else {
                report.problems.push(format!(
                    "registry table {table} has no store file and no removal marker: its store metadata (meta/stores/{table}.store) is missing or damaged; not repaired (restore the file)"
                ));
            }
        }
        for name in &stores {
            let check = self
                .verify_store(name, &mut report.problems, &mut live)
                .await?;
            report.stores.push(check);
        }
        self.verify_segments(&live, repair, &mut report)?;
        Ok(report)
    }

    fn verify_segments(
        &self,
        live: &BTreeMap<u32, u64>,
        repair: bool,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let log = self.engine().log();
        let numbers = log.segments()?;
        // Where a fence (after a failed sync, or damage found on open) cut a segment short.
        let mut fenced: BTreeMap<u32, u64> = BTreeMap::new();
        for &n in &numbers {
            if let Some(f) = log.header(n)?.and_then(|h| h.fence) {
                fenced.insert(f.segment, f.end);
            }
        }
        for n in numbers {
            let path = log.path_of(n);
            if let Some(ec) = self.erasure() {
                let scrub = ec.scrub_file(&path, repair)?;
                if !scrub.damaged.is_empty() {
                    let what = format!(
                        "log segment {}: {} damaged or missing erasure-coded records (first: stripe {} on drive {})",
                        path.display(),
                        scrub.damaged.len(),
                        scrub.damaged[0].0,
                        scrub.damaged[0].1
                    );
                    if scrub.unrecoverable.is_empty() && scrub.repaired {
                        report
                            .repaired
                            .push(format!("{what}: rebuilt and rewritten"));
                    } else if scrub.unrecoverable.is_empty() {
                        report
                            .problems
                            .push(format!("{what} (rebuildable: run with repair)"));
                    } else {
                        report.problems.push(format!(
                            "{what}; {} stripes cannot be rebuilt",
                            scrub.unrecoverable.len()
                        ));
                    }
                }
            }
            let bytes = log.segment_size(n)?;
            let frames = log.frames(n)?;
            let align = log.header(n)?.map_or(8, |h| h.align);
            let end = frames
                .last()
                .map_or(0, |(off, h, _)| off + h.frame_len(align));
            match fenced.get(&n) {
                // What follows a fence was never acknowledged (or was lost to damage already
                // reported when the database was opened).
                Some(&cut) if end >= cut => {}
                Some(&cut) => report.problems.push(format!(
                    "log segment {}: the frame at offset {end} is damaged (the segment was fenced at {cut})",
                    path.display()
                )),
                None if !frames.is_empty() && end < bytes && !log.zeros_from(n, end)? => {
                    report.problems.push(format!(
                        "log segment {}: the frame at offset {end} is damaged; what follows it cannot be read",
                        path.display()
                    ));
                }
                None => {}
            }
            if frames.is_empty() {
                report.problems.push(format!(
                    "log segment {}: no readable header",
                    path.display()
                ));
            }
            report.segments.push(SegmentCheck {
                number: n,
                bytes,
                frames: frames.len(),
                live: live.get(&n).copied().unwrap_or(0),
            });
        }
        Ok(())
    }

    async fn verify_store(
        &self,
        name: &str,
        problems: &mut Vec<String>,
        live: &mut BTreeMap<u32, u64>,
    ) -> Result<StoreCheck> {
        let engine = self.engine();
        let info = self.store_info(name)?.ok_or_else(|| {
            Error::Usage(sop_core::UsageError::StoreNotFound { name: name.into() })
        })?;
        let mut check = StoreCheck {
            name: name.into(),
            count: info.count,
            ..StoreCheck::default()
        };
        let scan = self.registry.scan_table(name)?;
        for bad in scan.bad_blocks {
            problems.push(format!("store {name}: {bad}"));
        }
        let mut handles: HashMap<Uuid, Handle> = HashMap::with_capacity(scan.handles.len());
        for h in scan.handles {
            if handles.insert(h.logical_id, h).is_some() {
                problems.push(format!(
                    "store {name}: node {} has two handles in the registry",
                    h.logical_id
                ));
            }
        }
        let mut counted: BTreeSet<Loc> = BTreeSet::new();
        let mut reached: BTreeSet<Uuid> = BTreeSet::new();
        let mut leaf_depth: Option<usize> = None;
        let mut stack = vec![(info.root_id, 1usize, None::<Uuid>)];
        while let Some((id, level, parent)) = stack.pop() {
            let at = match parent {
                Some(p) => format!("store {name}: node {id} (child of {p})"),
                None => format!("store {name}: root node {id}"),
            };
            if !reached.insert(id) {
                problems.push(format!("{at}: reached twice"));
                continue;
            }
            let Some(handle) = handles.get(&id) else {
                // An empty tree has a root id but no root node yet.
                if parent.is_some() || info.count > 0 {
                    problems.push(format!("{at}: no handle in the registry"));
                }
                continue;
            };
            let shape = match Loc::parse(handle.active_id(), "node handle")
                .and_then(|loc| engine.node_shape(loc))
            {
                Ok((shape, pieces)) => {
                    for p in pieces {
                        if counted.insert(p) {
                            check.node_pieces += 1;
                            *live.entry(p.segment).or_default() += u64::from(p.len);
                        }
                    }
                    shape
                }
                Err(e) => {
                    problems.push(format!("{at}: {e}"));
                    continue;
                }
            };
            check.nodes += 1;
            check.depth = check.depth.max(level);
            if shape.id != id {
                problems.push(format!("{at}: the node says it is {}", shape.id));
            }
            check.items += shape.items.len() as u64;
            for item in &shape.items {
                let Some(v) = item.external else { continue };
                check.values += 1;
                match Loc::parse(v, "value location").and_then(|l| engine.log().read(l).map(|_| l))
                {
                    Ok(l) => {
                        if counted.insert(l) {
                            *live.entry(l.segment).or_default() += u64::from(l.len);
                        }
                    }
                    Err(e) => problems.push(format!("{at}: value of item {}: {e}", item.id)),
                }
            }
            if shape.children.is_empty() {
                if *leaf_depth.get_or_insert(level) != level {
                    problems.push(format!(
                        "{at}: a leaf at level {level}, others at {}",
                        leaf_depth.unwrap_or(0)
                    ));
                }
            } else if shape.children.len() != shape.items.len() + 1 {
                problems.push(format!(
                    "{at}: {} children for {} items",
                    shape.children.len(),
                    shape.items.len()
                ));
            }
            for c in shape.children.iter().rev() {
                stack.push((*c, level + 1, Some(id)));
            }
        }
        if check.items != info.count {
            problems.push(format!(
                "store {name}: {} items in the tree, the store info says {}",
                check.items, info.count
            ));
        }
        let unreachable = handles.keys().filter(|id| !reached.contains(id)).count();
        if unreachable > 0 {
            problems.push(format!(
                "store {name}: {unreachable} registry handles no tree node reaches (not removed: a handle is never deleted by verification)"
            ));
        }
        check.keys_ordered = self.string_keys_ordered(name, &info).await;
        if check.keys_ordered == Some(false) {
            problems.push(format!("store {name}: keys out of order"));
        }
        Ok(check)
    }

    /// For a store of string keys and values (what the CLI makes): whether `BTree::check`
    /// passes. `None` when its nodes are not strings.
    async fn string_keys_ordered(&self, name: &str, info: &sop_core::StoreInfo) -> Option<bool> {
        let root = self.engine().handle(name, info.root_id).ok()??;
        let loc = Loc::parse(root.active_id(), "node handle").ok()?;
        let full = self.engine().consolidated(loc).ok()?;
        sop_btree::Node::<String, String>::decode(&full).ok()?;
        let tx = self.begin(TxMode::ForReading);
        let t = self.open_btree::<String, String>(&tx, name).ok()?;
        let ok = match t.check().await {
            Ok(_) => Some(true),
            Err(Error::Corruption(sop_core::CorruptionError::Invariant { .. })) => Some(false),
            Err(_) => None,
        };
        drop(t);
        let _ = tx.rollback().await;
        ok
    }
}
