//! The commit protocol. See ARCHITECTURE.md, "Commit, end to end".
//!
//! Phase 1: plan every store's changes (fresh physical ids), lock the committed nodes it
//! changes, check that every node it read or changed is still at the version it read (else
//! merge: re-check its reads item by item and replay its item changes onto the fresh state),
//! write the `Pending` log durably, write every new node and value blob, one sync barrier.
//! Phase 2, the commit point: one registry batch, under the engine's gate, that checks the
//! versions again (the storage fence), flips the changed handles, adds and removes handles,
//! replaces the store infos (counts) and turns the log into `Committed`. Then: caches, unlock,
//! delete the obsolete blobs, remove the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sop_core::{Error, Result, StoreInfo, now_millis};
use sop_registry::{RegistryBatch, StoreRepository};

use crate::TxMode;
use crate::plan::{StorePlan, StoreTx};
use crate::transaction::TxInner;
use crate::txlog::{self, TxLog};

/// How many times a commit goes round (merge, lock wait) before it gives up with the last
/// conflict, even when its deadline is far.
const MAX_ROUNDS: usize = 64;

pub(crate) async fn commit(tx: &TxInner) -> Result<()> {
    tx.engine.check_coordinator().await?;
    tx.engine.maybe_sweep().await;
    let stores: Vec<Arc<dyn StoreTx>> = tx.stores.lock().clone();
    let mut last_busy: Option<Error> = None;
    for round in 0..MAX_ROUNDS {
        if Instant::now() >= tx.deadline {
            return Err(last_busy.unwrap_or(Error::Timeout {
                id: tx.id,
                max_ms: u64::try_from(tx.max_time.as_millis()).unwrap_or(u64::MAX),
                during: "commit",
            }));
        }
        if tx.mode == TxMode::NoCheck && round == 0 {
            // No validation: straight to writing.
        } else {
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
        if !plans.iter().any(StorePlan::has_writes) {
            if tx.mode == TxMode::NoCheck {
                return Ok(());
            }
            // A reader (or a writer that changed nothing): its reads are re-checked under the
            // gate, which is what makes them one consistent state.
            match validate_reads(tx, &plans).await {
                Err(Error::VersionMismatch { .. }) => continue,
                r => return r,
            }
        }
        let keys: Vec<String> = {
            let mut k: Vec<String> = plans.iter().flat_map(|p| p.lock_keys.clone()).collect();
            k.sort();
            k.dedup();
            k
        };
        let ttl = tx.max_time;
        if let Some(held) = tx.engine.locker.try_lock(&keys, tx.id, ttl).await? {
            last_busy = Some(Error::LockBusy {
                key: held,
                waited_ms: u64::try_from(tx.max_time.as_millis()).unwrap_or(u64::MAX),
            });
            tokio::time::sleep(jitter(round)).await;
            continue;
        }
        let outcome = write_and_flip(tx, &plans).await;
        let _ = tx.engine.locker.unlock(&keys, tx.id).await;
        match outcome {
            Ok(()) => {
                after_commit(tx, &plans).await;
                return Ok(());
            }
            // Someone committed between the check and the flip: merge and go round.
            Err(Error::VersionMismatch { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Err(last_busy.unwrap_or(Error::Conflict {
        store: String::new(),
        detail: format!("gave up after {MAX_ROUNDS} rounds of merging with other commits"),
    }))
}

fn jitter(round: usize) -> Duration {
    let base = 2u64 << round.min(5);
    let spread = u64::from(sop_core::Uuid::new_v4().as_bytes()[0]) % base.max(1);
    Duration::from_millis(base + spread)
}

async fn validate_reads(tx: &TxInner, plans: &[StorePlan]) -> Result<()> {
    let mut batch = RegistryBatch::new();
    for p in plans {
        for (lid, v) in &p.checks {
            batch = batch.check(&p.name, *lid, Some(*v));
        }
    }
    tx.engine
        .at_gate(tx.id, tx.deadline, || tx.engine.registry.write(&batch))
        .await
}

/// Phase 1's writes and phase 2's commit point. On any error, takes back what it wrote.
async fn write_and_flip(tx: &TxInner, plans: &[StorePlan]) -> Result<()> {
    let engine = &tx.engine;
    let written: Vec<(String, sop_core::Uuid)> = plans
        .iter()
        .flat_map(|p| p.blobs.iter().map(|(id, _)| (p.name.clone(), *id)))
        .collect();
    let log_path = txlog::path_of(tx.id);
    engine.mark_live(tx.id, tx.max_time).await?;
    let pending = txlog::encode(&TxLog::Pending {
        tid: tx.id,
        started_ms: now_millis(),
        blobs: written.clone(),
    })?;
    engine.registry.append_file_durable(&log_path, &pending)?;
    let r = async {
        for p in plans {
            let blobs: Vec<(sop_core::Uuid, &[u8])> =
                p.blobs.iter().map(|(id, b)| (*id, b.as_slice())).collect();
            if !blobs.is_empty() {
                engine.blobs.put_deferred(&p.name, &blobs)?;
            }
        }
        // Also makes the deletions of earlier commits durable, so their logs can go.
        engine.blob_barrier()?;
        let batch = flip_batch(tx, plans, &log_path)?;
        engine
            .at_gate(tx.id, tx.deadline, || {
                commit_point(tx, plans, batch, &log_path)
            })
            .await
    }
    .await;
    if let Err(e) = &r
        && !is_in_doubt(e)
    {
        // The log stays: it may also list values written ahead, which live on until the
        // transaction ends (its rollback removes them and the log).
        let _ = engine.remove_blobs(&written);
    }
    r
}

/// The handle changes, checks and the `Committed` log of a commit (store infos come at the gate).
fn flip_batch(tx: &TxInner, plans: &[StorePlan], log_path: &str) -> Result<RegistryBatch> {
    let mut batch = RegistryBatch::new();
    let mut obsolete = Vec::new();
    for p in plans {
        for (lid, v) in &p.checks {
            batch = batch.check(&p.name, *lid, Some(*v));
        }
        for (h, expected) in &p.updates {
            batch = batch.update_if(&p.name, *h, *expected);
        }
        for h in &p.adds {
            batch = batch.add(&p.name, *h);
        }
        for (lid, expected) in &p.removes {
            batch = batch.remove_if(&p.name, *lid, *expected);
        }
        obsolete.extend(p.obsolete.iter().map(|id| (p.name.clone(), *id)));
        obsolete.extend(p.dead.iter().map(|id| (p.name.clone(), *id)));
    }
    let committed = txlog::encode(&TxLog::Committed {
        tid: tx.id,
        done_ms: now_millis(),
        obsolete,
    })?;
    Ok(batch.put_file(log_path, committed))
}

/// The commit point, run at the gate: store infos read and written under it, then one atomic
/// registry batch.
fn commit_point(
    tx: &TxInner,
    plans: &[StorePlan],
    mut batch: RegistryBatch,
    log_path: &str,
) -> Result<()> {
    let engine = &tx.engine;
    // A sweep in another process may have judged this transaction dead (its liveness lock
    // expired) and rolled it back; then its blobs are gone and it must not commit.
    if engine.is_clustered() && engine.registry.read_file(log_path)?.is_none() {
        return Err(Error::Conflict {
            store: String::new(),
            detail: "a recovery sweep rolled this transaction back (it outlived its max_time)"
                .into(),
        });
    }
    for p in plans {
        if let Some(info) = store_info_after(tx, p)? {
            batch = batch.put_file(
                &StoreRepository::relative_path(&info.name),
                StoreRepository::encode_info(&info)?,
            );
        }
    }
    engine.registry.write(&batch)
}

/// The store's info to write with the commit: created, or its count moved by this commit's
/// delta (read under the gate, so concurrent committers each add their own).
fn store_info_after(tx: &TxInner, p: &StorePlan) -> Result<Option<StoreInfo>> {
    let current = tx.engine.store_info(&p.name)?;
    let mut info = match (&p.created, current) {
        (Some(_), Some(_)) => {
            return Err(Error::StoreExists {
                name: p.name.clone(),
            });
        }
        (Some(created), None) => created.clone(),
        (None, None) => {
            return Err(Error::Conflict {
                store: p.name.clone(),
                detail: "the store was removed by another transaction".into(),
            });
        }
        (None, Some(_)) if p.count_delta == 0 => return Ok(None),
        (None, Some(info)) => info,
    };
    info.count = info
        .count
        .checked_add_signed(p.count_delta)
        .ok_or_else(|| Error::Invariant {
            store: p.name.clone(),
            detail: format!("count {} cannot change by {}", info.count, p.count_delta),
        })?;
    info.updated_ms = now_millis();
    Ok(Some(info))
}

/// After the commit point: nothing here can undo the commit; failures leave work for the sweep.
async fn after_commit(tx: &TxInner, plans: &[StorePlan]) {
    let engine = &tx.engine;
    let mut gone = Vec::new();
    let mut value_keys = Vec::new();
    for p in plans {
        for (pid, node, bytes) in &p.l1 {
            engine.l1.insert(*pid, Arc::clone(node), *bytes);
        }
        for id in p.obsolete.iter().chain(p.dead.iter()) {
            engine.l1.remove(*id);
            value_keys.push(format!("V{id}"));
            value_keys.push(format!("N{id}"));
            gone.push((p.name.clone(), *id));
        }
    }
    if let Err(e) = engine.cache.delete(&value_keys).await {
        tracing::warn!(error = %e, "could not drop obsolete values from the L2 cache");
    }
    if let Err(e) = engine.remove_blobs(&gone) {
        tracing::warn!(tid = %tx.id, error = %e, "cleanup after commit failed; the idle sweep will finish it");
        return;
    }
    engine.retire_log(txlog::path_of(tx.id));
}

/// Whether a commit error leaves its outcome unknown (the registry could not prove that its
/// batch will never be applied): nothing it wrote may be removed; recovery decides from the log.
pub(crate) fn is_in_doubt(e: &Error) -> bool {
    matches!(e, Error::Poisoned { .. })
}
