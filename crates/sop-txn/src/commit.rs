//! The commit protocol. See ARCHITECTURE.md, "Commit, end to end".
//!
//! 1. Every store plans its writes: pending out-of-node values go to the log as pieces; every
//!    changed node is encoded (a delta over the version it was read at when that is small).
//! 2. Stale? A committed node this transaction read or changed has a newer version: merge
//!    (re-check its reads item by item, replay its item changes onto the fresh state), go round.
//! 3. Lock the committed nodes it changes (contention only; correctness never depends on it).
//! 4. Node pieces are appended to the log (no sync).
//! 5. The commit point, at the gate: check every version read or replaced against the newest
//!    (the fence), then standalone: append one commit record (handle states, store infos) and
//!    publish it to the catalog; clustered: one metadata batch (the registry's journal synced).
//! 6. Standalone: wait for the group sync that covers the record: one `fdatasync` of the log,
//!    shared with every commit that appended meanwhile.
//!
//! Nothing is deleted, ever, on this path: superseded pieces become unreachable and compaction
//! reclaims their space once no snapshot can read them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sop_core::meta::{HandleChange, MetaBatch};
use sop_core::{Error, Loc, Result, StoreInfo, Uuid, now_millis};

use crate::TxMode;
use crate::engine::Engine;
use crate::plan::{StorePlan, StoreTx};
use crate::record::{CommitRecord, TableChanges};
use crate::transaction::TxInner;

/// How many times a commit goes round (merge, lock wait) before it gives up with the last
/// conflict, even when its deadline is far.
const MAX_ROUNDS: usize = 64;

/// The longest a node lock lives (a transaction with a shorter `max_time`: that).
pub const NODE_LOCK_TTL: Duration = Duration::from_secs(5);

/// The longest a prepared transaction holds the commit gate (or its `max_time`, when
/// shorter): a forgotten one cannot stop the database's commits for longer.
pub const PREPARED_HOLD: Duration = Duration::from_secs(60);

/// What a prepared transaction (phase 1 done) keeps for its phase 2.
pub(crate) struct Prepared {
    plans: Vec<StorePlan>,
    locs: Vec<Vec<Loc>>,
    keys: Vec<String>,
    bytes: u64,
    value_bytes: u64,
    record: CommitRecord,
}

/// Commits, or with `prepare` stops after phase 1: everything that can conflict is done and
/// validated at the gate, and the gate is reserved for this transaction until its phase 2
/// ([`commit_prepared`]) or rollback, so phase 2 cannot conflict. `Ok(None)`: done (committed,
/// or nothing to prepare).
pub(crate) async fn commit(tx: &TxInner, prepare: bool) -> Result<Option<Prepared>> {
    let engine = &tx.engine;
    if tx.mode == TxMode::ForReading && engine.catalog.versioned() {
        // A snapshot is one consistent state: nothing to validate. What it read is only
        // reported once it is durable.
        return wait_snapshot_durable(engine, tx.snap).await.map(|()| None);
    }
    let stores: Vec<Arc<dyn StoreTx>> = tx.stores.lock().clone();
    let mut last_busy: Option<Error> = None;
    for round in 0..MAX_ROUNDS {
        if Instant::now() >= tx.deadline {
            return Err(last_busy.unwrap_or(Error::Transaction(
                sop_core::TransactionError::Timeout {
                    id: tx.id,
                    max_ms: u64::try_from(tx.max_time.as_millis()).unwrap_or(u64::MAX),
                    during: "commit",
                },
            )));
        }
        if tx.mode != TxMode::NoCheck || round > 0 {
            let mut merged = false;
            for s in &stores {
                if s.stale()? {
                    Arc::clone(s).merge().await?;
                    merged = true;
                }
            }
            if merged {
                continue;
            }
        }
        let plans = stores
            .iter()
            .map(|s| s.plan(tx.mode))
            .collect::<Result<Vec<_>>>()?;
        let value_bytes: u64 = plans.iter().map(|p| p.value_bytes).sum();
        if !plans.iter().any(StorePlan::has_writes) {
            if tx.mode == TxMode::NoCheck {
                return Ok(None);
            }
            if engine.catalog.versioned() {
                // Only reads: they were one snapshot.
                return wait_snapshot_durable(engine, tx.snap).await.map(|()| None);
            }
            // Clustered: reads are re-checked at the gate, which makes them one state.
            match validate_reads(tx, &plans).await {
                Err(Error::Transaction(sop_core::TransactionError::VersionMismatch { .. })) => {
                    continue;
                }
                r => return r.map(|()| None),
            }
        }
        let keys: Vec<String> = {
            let mut k: Vec<String> = plans.iter().flat_map(|p| p.lock_keys.clone()).collect();
            k.sort();
            k.dedup();
            k
        };
        // Node locks only keep two writers of one node from both writing pieces (the version
        // checks at the commit point decide), so they live a few seconds at most: a process
        // killed while holding them stalls nobody for long.
        let ttl = tx.max_time.min(NODE_LOCK_TTL);
        if let Some(held) = engine.locker.try_lock(&keys, tx.id, ttl).await? {
            last_busy = Some(Error::Transaction(sop_core::TransactionError::LockBusy {
                key: held,
                waited_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            }));
            sop_blobstore_ec::pause(jitter(round)).await;
            continue;
        }
        if prepare {
            match prepare_at_gate(tx, &plans).await {
                Ok((locs, bytes, record)) => {
                    // The node locks stay held until phase 2 or rollback.
                    return Ok(Some(Prepared {
                        plans,
                        locs,
                        keys,
                        bytes,
                        value_bytes,
                        record,
                    }));
                }
                Err(e) => {
                    unlock(engine, &keys, tx.id).await;
                    match e {
                        Error::Transaction(sop_core::TransactionError::VersionMismatch {
                            ..
                        }) => continue,
                        e => return Err(e),
                    }
                }
            }
        }
        let outcome = write_and_commit(tx, &plans).await;
        unlock(engine, &keys, tx.id).await;
        match outcome {
            Ok((locs, bytes)) => {
                finish(tx, &plans, &locs, bytes + value_bytes).await;
                return Ok(None);
            }
            // Someone committed between the check and the commit point: merge and go round.
            Err(Error::Transaction(sop_core::TransactionError::VersionMismatch { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Err(
        last_busy.unwrap_or(Error::Transaction(sop_core::TransactionError::Conflict {
            store: String::new(),
            detail: format!("gave up after {MAX_ROUNDS} rounds of merging with other commits"),
        })),
    )
}

async fn unlock(engine: &Engine, keys: &[String], owner: Uuid) {
    if let Err(e) = engine.locker.unlock(keys, owner).await {
        tracing::warn!(error = %e, "could not release node locks; they expire by themselves");
    }
}

/// After a durable commit: L1, counters, maintenance.
async fn finish(tx: &TxInner, plans: &[StorePlan], locs: &[Vec<Loc>], bytes: u64) {
    let engine = &tx.engine;
    after_commit(engine, plans, locs);
    *tx.bytes_written.lock() = bytes;
    let mut jobs = Vec::new();
    let deep: Vec<(String, Uuid)> = plans
        .iter()
        .flat_map(|p| {
            p.nodes
                .iter()
                .filter(|n| n.depth >= crate::maint::SOFT_CHAIN)
                .map(|n| (p.name.clone(), n.lid))
        })
        .collect();
    if !deep.is_empty() && engine.catalog.versioned() {
        jobs.push(crate::maint::Job::Consolidate(deep));
    }
    engine
        .commits
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if engine.note_appended(bytes) {
        jobs.push(crate::maint::Job::Checkpoint);
    }
    engine.maintain(jobs).await;
}

/// Phase 1 of an application's two-phase commit (standalone): the node pieces appended, every
/// check of the commit point passed at the gate, and the gate reserved for this transaction.
async fn prepare_at_gate(
    tx: &TxInner,
    plans: &[StorePlan],
) -> Result<(Vec<Vec<Loc>>, u64, CommitRecord)> {
    let engine = &tx.engine;
    let (locs, bytes, _) = append_nodes(engine, plans)?;
    let record = engine
        .at_gate(tx.id, tx.deadline, || {
            let record = local_validate(tx, plans, &locs)?;
            let until = tx.deadline.min(Instant::now() + PREPARED_HOLD);
            engine.reserve_gate(tx.id, until);
            Ok(record)
        })
        .await?;
    Ok((locs, bytes, record))
}

/// Phase 2: the commit record appended and published under the reserved gate, then made
/// durable. Nothing can conflict here: no other commit passed the gate since phase 1.
pub(crate) async fn commit_prepared(tx: &TxInner, p: Prepared) -> Result<()> {
    let engine = &tx.engine;
    let r = async {
        let (lsn, len) = engine
            .at_gate(tx.id, tx.deadline, || {
                if !engine.holds_gate(tx.id) {
                    return Err(Error::Transaction(sop_core::TransactionError::Timeout {
                        id: tx.id,
                        max_ms: u64::try_from(tx.max_time.as_millis()).unwrap_or(u64::MAX),
                        during: "the time between prepare and commit (the gate was taken back)",
                    }));
                }
                let r = publish(engine, &p.record);
                engine.release_gate(tx.id);
                r
            })
            .await?;
        engine.log.wait_durable(lsn).await?;
        Ok::<u64, Error>(len)
    }
    .await;
    unlock(engine, &p.keys, tx.id).await;
    let len = r?;
    finish(tx, &p.plans, &p.locs, p.bytes + len + p.value_bytes).await;
    Ok(())
}

/// The node locks a prepared transaction holds.
pub(crate) fn prepared_keys(p: &Prepared) -> &[String] {
    &p.keys
}

/// Gives a prepared transaction's reservation and node locks back (rollback).
pub(crate) async fn abandon_prepared(tx: &TxInner, p: Prepared) {
    tx.engine.release_gate(tx.id);
    unlock(&tx.engine, &p.keys, tx.id).await;
}

fn jitter(round: usize) -> Duration {
    let base = 2u64 << round.min(5);
    let spread = u64::from(Uuid::new_v4().as_bytes()[0]) % base.max(1);
    Duration::from_millis(base + spread)
}

/// A reader's answer stands once the state it read is durable; a read of commits a failed
/// sync voided is a conflict (run it again).
async fn wait_snapshot_durable(engine: &Engine, snap: u64) -> Result<()> {
    match engine.log.wait_durable(snap).await {
        Ok(()) => Ok(()),
        Err(Error::Storage(sop_core::StorageError::Io { .. })) => {
            Err(Error::Transaction(sop_core::TransactionError::Conflict {
                store: String::new(),
                detail: "this transaction read commits that a failed log sync voided".into(),
            }))
        }
        Err(e) => Err(e),
    }
}

/// Clustered readers: their reads re-checked at the gate.
async fn validate_reads(tx: &TxInner, plans: &[StorePlan]) -> Result<()> {
    let mut batch = MetaBatch::new();
    for p in plans {
        for (lid, v) in &p.checks {
            batch = batch.handle(&p.name, HandleChange::Check(*lid, Some(*v)));
        }
    }
    tx.engine
        .at_gate(tx.id, tx.deadline, || tx.engine.catalog.meta.apply(&batch))
        .await
}

/// Appends the node pieces, then the commit point; returns the pieces' locations (per plan)
/// and the bytes appended.
async fn write_and_commit(tx: &TxInner, plans: &[StorePlan]) -> Result<(Vec<Vec<Loc>>, u64)> {
    let engine = &tx.engine;
    let (locs, bytes, last) = append_nodes(engine, plans)?;
    if engine.catalog.versioned() {
        let (lsn, record_len) = engine
            .at_gate(tx.id, tx.deadline, || {
                let record = local_validate(tx, plans, &locs)?;
                publish(engine, &record)
            })
            .await?;
        engine.log.wait_durable(lsn).await?;
        Ok((locs, bytes + record_len))
    } else {
        // The pieces are durable before any handle points at them.
        if last > 0 {
            engine.log.wait_durable(last).await?;
        }
        let batch = shared_batch(plans, &locs);
        crate::testing::at_shared_commit_point();
        engine
            .at_gate(tx.id, tx.deadline, || shared_commit_point(tx, plans, batch))
            .await?;
        Ok((locs, bytes))
    }
}

fn mismatch(table: &str, id: Uuid, expected: u64, found: Option<u64>) -> Error {
    Error::Transaction(sop_core::TransactionError::VersionMismatch {
        table: table.into(),
        id,
        expected,
        found: found.unwrap_or(0),
    })
}

/// Appends every plan's node pieces (no sync); their locations per plan, their bytes and the
/// LSN to wait for to have them durable (0: none).
fn append_nodes(engine: &Engine, plans: &[StorePlan]) -> Result<(Vec<Vec<Loc>>, u64, u64)> {
    let pieces: Vec<&[u8]> = plans
        .iter()
        .flat_map(|p| p.nodes.iter().map(|n| n.bytes.as_slice()))
        .collect();
    let bytes: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let (all, last) = if pieces.is_empty() {
        (Vec::new(), 0)
    } else {
        engine.log.append_pieces(&pieces)?
    };
    let mut locs = Vec::with_capacity(plans.len());
    let mut rest = all.as_slice();
    for p in plans {
        let (mine, tail) = rest.split_at(p.nodes.len().min(rest.len()));
        locs.push(mine.to_vec());
        rest = tail;
    }
    Ok((locs, bytes, last))
}

/// Appends a validated record and publishes it (at the gate). Returns its LSN and length.
fn publish(engine: &Engine, record: &CommitRecord) -> Result<(u64, u64)> {
    let bytes = record.encode()?;
    let lsn = engine.log.append_record(&bytes)?;
    engine.catalog.publish(lsn, record);
    Ok((lsn, bytes.len() as u64))
}

/// Standalone commit point (at the gate): validates against the newest versions and builds
/// the record (handle states, store infos as of the gate).
fn local_validate(tx: &TxInner, plans: &[StorePlan], locs: &[Vec<Loc>]) -> Result<CommitRecord> {
    let engine = &tx.engine;
    let catalog = &engine.catalog;
    catalog.drop_voids(&engine.log);
    let mut record = CommitRecord {
        tid: tx.id,
        at_ms: now_millis(),
        tables: Vec::new(),
        stores: Vec::new(),
    };
    for (p, locs) in plans.iter().zip(locs) {
        let (puts, removed) = p.handles(locs);
        // New nodes have fresh random ids: nothing to compare them with.
        let mut lids: Vec<Uuid> = p.checks.iter().map(|(id, _)| *id).collect();
        lids.extend(
            puts.iter()
                .filter(|(_, expected)| expected.is_some())
                .map(|(h, _)| h.logical_id),
        );
        lids.extend(p.removes.iter().map(|(id, _)| *id));
        lids.extend(p.nodes.iter().filter_map(|n| n.base.map(|(d, _)| d)));
        let latest = catalog.latest_handles(&p.name, &lids)?;
        let version = |id: &Uuid| latest.get(id).map(|h| h.version);
        for (id, v) in &p.checks {
            if version(id) != Some(*v) {
                return Err(mismatch(&p.name, *id, *v, version(id)));
            }
        }
        for (h, expected) in &puts {
            let found = version(&h.logical_id);
            if found != *expected {
                return Err(mismatch(
                    &p.name,
                    h.logical_id,
                    expected.unwrap_or(0),
                    found,
                ));
            }
        }
        for (id, v) in &p.removes {
            if version(id) != Some(*v) {
                return Err(mismatch(&p.name, *id, *v, version(id)));
            }
        }
        // A delta must apply to the newest piece of its base (a background rewrite may have
        // moved it: then plan again over the new piece).
        for (d, loc) in p.nodes.iter().filter_map(|n| n.base) {
            if latest.get(&d).map(|h| h.active_id()) != Some(loc) {
                return Err(mismatch(&p.name, d, 0, version(&d)));
            }
        }
        if let Some(info) = store_info_after(tx, p)? {
            record.stores.push(info);
        }
        if !puts.is_empty() || !removed.is_empty() {
            record.tables.push(TableChanges {
                table: p.name.clone(),
                put: puts.into_iter().map(|(h, _)| h).collect(),
                removed,
            });
        }
    }
    Ok(record)
}

/// Clustered: the handle changes and checks of a commit as one registry batch (store infos are
/// added at the gate).
fn shared_batch(plans: &[StorePlan], locs: &[Vec<Loc>]) -> MetaBatch {
    let mut batch = MetaBatch::new();
    for (p, locs) in plans.iter().zip(locs) {
        for (lid, v) in &p.checks {
            batch = batch.handle(&p.name, HandleChange::Check(*lid, Some(*v)));
        }
        let (puts, _) = p.handles(locs);
        for (h, expected) in puts {
            let change = match expected {
                Some(v) => HandleChange::UpdateIf(h, v),
                None => HandleChange::Add(h),
            };
            batch = batch.handle(&p.name, change);
        }
        for (lid, v) in &p.removes {
            batch = batch.handle(&p.name, HandleChange::RemoveIf(*lid, *v));
        }
    }
    batch
}

/// Clustered commit point: one atomic registry batch, which locks exactly the registry blocks
/// of its handles and the files of the store infos it changes (read under those locks).
fn shared_commit_point(tx: &TxInner, plans: &[StorePlan], batch: MetaBatch) -> Result<()> {
    // Only stores whose info changes are read under their locks (a count that does not move
    // makes no two commits wait for each other).
    let stores: Vec<String> = plans
        .iter()
        .filter(|p| p.created.is_some() || p.count_delta != 0)
        .map(|p| p.name.clone())
        .collect();
    tx.engine
        .catalog
        .meta
        .apply_with_stores(batch, &stores, &mut |mut batch| {
            for p in plans {
                if let Some(info) = store_info_after(tx, p)? {
                    batch = batch.put_store(info);
                }
            }
            Ok(batch)
        })
}

/// The store's info to write with the commit: created, or its count moved by this commit's
/// delta (read at the gate, so concurrent committers each add their own).
fn store_info_after(tx: &TxInner, p: &StorePlan) -> Result<Option<StoreInfo>> {
    let current = tx.engine.catalog.latest_store_info(&p.name)?;
    let mut info = match (&p.created, current) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage(sop_core::UsageError::StoreExists {
                name: p.name.clone(),
            }));
        }
        (Some(created), None) => created.clone(),
        (None, None) => {
            return Err(Error::Transaction(sop_core::TransactionError::Conflict {
                store: p.name.clone(),
                detail: "the store was removed by another transaction".into(),
            }));
        }
        (None, Some(_)) if p.count_delta == 0 => return Ok(None),
        (None, Some(info)) => (*info).clone(),
    };
    info.count = info
        .count
        .checked_add_signed(p.count_delta)
        .ok_or_else(|| {
            Error::Corruption(sop_core::CorruptionError::Invariant {
                store: p.name.clone(),
                detail: format!("count {} cannot change by {}", info.count, p.count_delta),
            })
        })?;
    info.updated_ms = now_millis();
    Ok(Some(info))
}

/// After the commit: the new nodes go into L1 under their locations.
fn after_commit(engine: &Engine, plans: &[StorePlan], locs: &[Vec<Loc>]) {
    for (p, locs) in plans.iter().zip(locs) {
        for pid in &p.superseded {
            engine.l1.remove(*pid);
        }
        for (n, loc) in p.nodes.iter().zip(locs) {
            engine.l1.insert(loc.to_uuid(), n.l1.clone());
        }
    }
}
