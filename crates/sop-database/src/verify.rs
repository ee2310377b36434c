//! `Database::verify`: checks a whole database folder without knowing the stores' key and value
//! types, and repairs what can be repaired safely.
//!
//! It reads every registry block, walks every tree from its root through the type-free node
//! shape (`NodeShape`), reads every node and out-of-node value (checksums), compares counts, and
//! lists what is on disk to find blobs nothing refers to. It needs the folder to itself, which a
//! standalone `Database` guarantees (clustered databases are refused: another process may be
//! between writing its blobs and its commit point).

use std::collections::{BTreeSet, HashMap};

use sop_btree::NodeShape;
use sop_core::{Error, Handle, Result, Uuid};
use sop_registry::RegistryBatch;

use crate::{Database, TxMode};

/// What [`Database::verify`] found and did.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// One entry per store.
    pub stores: Vec<StoreCheck>,
    /// What is wrong and was not repaired, each naming the store, node, blob or file.
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
    /// Values in their own blobs.
    pub values: usize,
    /// Blobs on disk for the store (nodes, values and anything left over).
    pub blobs: usize,
    /// Whether the keys are in order: checked for stores whose keys and values are strings
    /// (what the `sop` command makes); `None` when the types are not known here.
    pub keys_ordered: Option<bool>,
}

/// A finding, with the repair that fixes it, if there is a safe one.
enum Fix {
    None,
    RemoveBlobs(String, Vec<Uuid>),
    RemoveHandles(String, Vec<Uuid>),
    RemoveTable(String),
    RemoveTemporary(std::path::PathBuf),
    RemoveRegistryFile(String),
    Repaired,
}

#[derive(Default)]
struct Findings(Vec<(String, Fix)>);

impl Findings {
    fn problem(&mut self, what: String) {
        self.0.push((what, Fix::None));
    }
    fn fixable(&mut self, what: String, fix: Fix) {
        self.0.push((what, fix));
    }
}

impl Database {
    /// Checks the whole database: every registry block's checksum, every tree reachable from
    /// its root (each node's blob is there and intact, decodes, has the right id and child
    /// count, leaves all at one depth), item counts against the store files, every out-of-node
    /// value readable, every erasure-coded shard, and nothing on disk that nothing refers to
    /// (orphaned blobs, handles no tree reaches, registry tables of removed stores, temporary
    /// files of interrupted writes, transaction logs left after recovery).
    ///
    /// With `repair`, fixes what is safe to fix: rewrites damaged shards that can be rebuilt,
    /// removes orphaned blobs, unreachable handles, leftover tables and temporary files. It
    /// never changes a tree a transaction can see.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a clustered database; I/O errors that stop the walk.
    pub async fn verify(&self, repair: bool) -> Result<VerifyReport> {
        if self.is_clustered() {
            return Err(Error::InvalidConfig {
                what: "verify",
                reason: "verification needs the folder to itself: close every process and open it standalone".into(),
            });
        }
        let mut report = VerifyReport::default();
        let mut found = Findings::default();
        let engine = self.engine();
        // Logs of finished transactions waiting for a barrier are not leftovers.
        engine.flush_retired()?;
        let registry = engine.registry();

        for dir in [sop_txn::TXLOG_DIR, "stores"] {
            for name in registry.list_files(dir)? {
                let rel = format!("{dir}/{name}");
                if name.ends_with(".tmp") {
                    found.fixable(
                        format!("temporary file {rel} left by an interrupted write"),
                        Fix::RemoveRegistryFile(rel),
                    );
                } else if dir == sop_txn::TXLOG_DIR {
                    found.problem(format!("transaction log {rel} left after recovery"));
                }
            }
        }

        let stores = self.stores()?;
        for table in registry.tables()? {
            if !stores.contains(&table) {
                found.fixable(
                    format!(
                        "registry table {table} belongs to no store (a removal was interrupted)"
                    ),
                    Fix::RemoveTable(table),
                );
            }
        }
        for name in stores {
            let check = self.verify_store(&name, repair, &mut found).await?;
            report.stores.push(check);
        }

        for (what, fix) in found.0 {
            if !repair {
                report.problems.push(what);
                continue;
            }
            let done = match &fix {
                Fix::None => false,
                Fix::Repaired => true,
                Fix::RemoveBlobs(table, ids) => {
                    engine.blobs().remove(table, ids)?;
                    true
                }
                Fix::RemoveHandles(table, ids) => {
                    let batch = ids
                        .iter()
                        .fold(RegistryBatch::new(), |b, id| b.remove(table, *id));
                    registry.write(&batch)?;
                    true
                }
                Fix::RemoveTable(table) => {
                    registry.remove_table(table)?;
                    engine.remove_blob_table(table)?;
                    true
                }
                Fix::RemoveTemporary(path) => {
                    engine
                        .blobs()
                        .remove_temporary(std::slice::from_ref(path))?;
                    true
                }
                Fix::RemoveRegistryFile(rel) => {
                    registry.remove_file_lazy(rel)?;
                    true
                }
            };
            if done {
                report.repaired.push(what);
            } else {
                report.problems.push(what);
            }
        }
        Ok(report)
    }

    async fn verify_store(
        &self,
        name: &str,
        repair: bool,
        found: &mut Findings,
    ) -> Result<StoreCheck> {
        let engine = self.engine();
        let blobs = engine.blobs();
        let info = self
            .store_info(name)?
            .ok_or_else(|| Error::StoreNotFound { name: name.into() })?;
        let mut check = StoreCheck {
            name: name.into(),
            count: info.count,
            ..StoreCheck::default()
        };

        let scan = engine.registry().scan_table(name)?;
        for bad in scan.bad_blocks {
            found.problem(format!("store {name}: {bad}"));
        }
        let mut handles: HashMap<Uuid, Handle> = HashMap::with_capacity(scan.handles.len());
        for h in scan.handles {
            if handles.insert(h.logical_id, h).is_some() {
                found.problem(format!(
                    "store {name}: node {} has two handles in the registry",
                    h.logical_id
                ));
            }
        }

        // Walk from the root: (logical id, level, referenced by).
        let mut referenced: BTreeSet<Uuid> = BTreeSet::new();
        let mut reached: BTreeSet<Uuid> = BTreeSet::new();
        let mut leaf_depth: Option<usize> = None;
        let mut stack = vec![(info.root_id, 1usize, None::<Uuid>)];
        while let Some((id, level, parent)) = stack.pop() {
            let at = match parent {
                Some(p) => format!("store {name}: node {id} (child of {p})"),
                None => format!("store {name}: root node {id}"),
            };
            if !reached.insert(id) {
                found.problem(format!("{at}: reached twice"));
                continue;
            }
            let Some(handle) = handles.get(&id) else {
                // An empty tree has a root id but no root node yet.
                if parent.is_some() || info.count > 0 {
                    found.problem(format!("{at}: no handle in the registry"));
                }
                continue;
            };
            referenced.insert(handle.active_id());
            if let Some(inactive) = handle.inactive_id() {
                referenced.insert(inactive);
            }
            let bytes = match blobs.get(name, handle.active_id()) {
                Ok(b) => b,
                Err(e) => {
                    found.problem(format!("{at}: {e}"));
                    continue;
                }
            };
            let shape = match NodeShape::decode(&bytes) {
                Ok(shape) => shape,
                Err(e) => {
                    found.problem(format!("{at}: {e}"));
                    continue;
                }
            };
            check.nodes += 1;
            check.depth = check.depth.max(level);
            if shape.id != id {
                found.problem(format!("{at}: the node says it is {}", shape.id));
            }
            check.items += shape.items.len() as u64;
            for item in &shape.items {
                if let Some(v) = item.external {
                    check.values += 1;
                    referenced.insert(v);
                    if let Err(e) = blobs.get(name, v) {
                        found.problem(format!("{at}: value of item {}: {e}", item.id));
                    }
                }
            }
            if shape.children.is_empty() {
                if *leaf_depth.get_or_insert(level) != level {
                    found.problem(format!(
                        "{at}: a leaf at level {level}, others at {}",
                        leaf_depth.unwrap_or(0)
                    ));
                }
            } else if shape.children.len() != shape.items.len() + 1 {
                found.problem(format!(
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
            found.problem(format!(
                "store {name}: {} items in the tree, the store file says {}",
                check.items, info.count
            ));
        }

        let unreachable: Vec<Uuid> = handles
            .keys()
            .filter(|id| !reached.contains(id))
            .copied()
            .collect();
        if !unreachable.is_empty() {
            for id in &unreachable {
                if let Some(h) = handles.get(id) {
                    referenced.insert(h.active_id());
                }
            }
            found.fixable(
                format!(
                    "store {name}: {} registry handles no tree node reaches",
                    unreachable.len()
                ),
                Fix::RemoveHandles(name.into(), unreachable.clone()),
            );
            // Their blobs become orphans once the handles go.
            let theirs: Vec<Uuid> = unreachable
                .iter()
                .filter_map(|id| handles.get(id).map(Handle::active_id))
                .collect();
            found.fixable(
                format!("store {name}: {} blobs of those handles", theirs.len()),
                Fix::RemoveBlobs(name.into(), theirs),
            );
        }

        let listing = blobs.list(name)?;
        check.blobs = listing.ids.len();
        let orphans: Vec<Uuid> = listing.ids.difference(&referenced).copied().collect();
        if !orphans.is_empty() {
            found.fixable(
                format!(
                    "store {name}: {} blobs nothing refers to (first {})",
                    orphans.len(),
                    orphans[0]
                ),
                Fix::RemoveBlobs(name.into(), orphans),
            );
        }
        for path in listing.temporary {
            found.fixable(
                format!(
                    "temporary file {} left by an interrupted write",
                    path.display()
                ),
                Fix::RemoveTemporary(path),
            );
        }
        let scrub = blobs.scrub(name, repair)?;
        for id in scrub.damaged {
            found.fixable(
                format!("store {name}: blob {id} has damaged shards (rebuildable)"),
                Fix::None,
            );
        }
        for id in scrub.repaired {
            found.fixable(
                format!("store {name}: blob {id} had damaged shards: rewritten"),
                Fix::Repaired,
            );
        }
        for (id, why) in scrub.unrecoverable {
            if referenced.contains(&id) {
                found.problem(format!("store {name}: blob {id}: {why}"));
            }
        }

        check.keys_ordered = self.string_keys_ordered(name, &info).await;
        if check.keys_ordered == Some(false) {
            found.problem(format!("store {name}: keys out of order"));
        }
        Ok(check)
    }

    /// For a store of string keys and values (what the CLI makes): whether `BTree::check`
    /// passes. `None` when its nodes are not strings.
    async fn string_keys_ordered(&self, name: &str, info: &sop_core::StoreInfo) -> Option<bool> {
        let root = self
            .engine()
            .registry()
            .get_one(name, info.root_id)
            .ok()??;
        let bytes = self.engine().blobs().get(name, root.active_id()).ok()?;
        sop_btree::Node::<String, String>::decode(&bytes).ok()?;
        let tx = self.begin(TxMode::ForReading);
        let mut t = self.open_btree::<String, String>(&tx, name).ok()?;
        let ok = match t.check().await {
            Ok(_) => Some(true),
            Err(Error::Invariant { .. }) => Some(false),
            Err(_) => None,
        };
        drop(t);
        let _ = tx.rollback().await;
        ok
    }
}
