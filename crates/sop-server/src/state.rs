//! What the handlers share: the database, the tokens, and the open multi-call transactions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sop::json::JsonStore;
use sop::{Database, Transaction, TxMode, Uuid};

use crate::auth::{Role, Tokens};
use crate::error::{ApiError, ApiResult};

/// A transaction that spans requests (`POST /v1/tx`), with the stores opened in it (a store
/// opens once per transaction).
pub struct OpenTx {
    pub(crate) tx: Arc<Transaction>,
    pub(crate) owner: Option<String>,
    pub(crate) deadline: Instant,
    pub(crate) stores: HashMap<String, Arc<tokio::sync::Mutex<JsonStore>>>,
    /// Requests in it hold this for reading; its commit, rollback or expiry takes it for
    /// writing (after removing it from the map), so no request writes into a transaction
    /// that is committing.
    pub(crate) gate: Arc<tokio::sync::RwLock<()>>,
}

/// The most multi-call transactions one caller may have open.
pub const MAX_OPEN_TX_PER_CALLER: usize = 16;

/// The server's shared state.
pub struct AppState {
    pub(crate) db: Database,
    pub(crate) tokens: Tokens,
    pub(crate) auth: bool,
    pub(crate) tx_timeout: Duration,
    pub(crate) max_upload: u64,
    pub(crate) txs: Mutex<HashMap<Uuid, OpenTx>>,
    /// Downloads under way (each holds a read transaction and a chunk).
    pub(crate) downloads: Arc<tokio::sync::Semaphore>,
}

/// The caller, as the auth layer found it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub(crate) role: Role,
    pub(crate) token: Option<String>,
}

impl Caller {
    pub(crate) fn must_write(&self) -> ApiResult<()> {
        if self.role == Role::ReadWrite {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "this token is read-only; writes need a read-write token",
            ))
        }
    }
}

/// Where a request's work runs: its own transaction, or a multi-call one.
pub(crate) enum Scope {
    Own(Arc<Transaction>),
    /// The id, and the transaction's gate held for reading while the request runs.
    Shared(
        Uuid,
        #[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>,
    ),
}

impl AppState {
    /// The transaction for a request: the multi-call one named by `X-Sop-Tx`, or a new one.
    pub(crate) async fn scope(
        &self,
        caller: &Caller,
        tx_header: Option<&str>,
        mode: TxMode,
    ) -> ApiResult<Scope> {
        match tx_header {
            None => {
                if mode != TxMode::ForReading {
                    caller.must_write()?;
                }
                Ok(Scope::Own(Arc::new(self.db.begin(mode))))
            }
            Some(h) => {
                let id: Uuid = h.parse().map_err(|_| {
                    ApiError::bad_request(format!("X-Sop-Tx {h:?} is not a transaction id"))
                })?;
                let gone = || {
                    ApiError::not_found(format!(
                        "no open transaction {id} (it committed, rolled back, timed out, or is another caller's)"
                    ))
                };
                let gate = match self.txs.lock().get(&id) {
                    Some(t) if t.owner == caller.token => t.gate.clone(),
                    _ => return Err(gone()),
                };
                let guard = gate.read_owned().await;
                // It may have ended while this waited.
                if !self.txs.lock().contains_key(&id) {
                    return Err(gone());
                }
                Ok(Scope::Shared(id, guard))
            }
        }
    }

    /// A JSON store handle in `scope`.
    pub(crate) fn json_store(
        &self,
        scope: &Scope,
        name: &str,
    ) -> ApiResult<Arc<tokio::sync::Mutex<JsonStore>>> {
        match scope {
            Scope::Own(tx) => Ok(Arc::new(tokio::sync::Mutex::new(JsonStore::open(
                tx, name,
            )?))),
            Scope::Shared(id, _) => {
                let mut txs = self.txs.lock();
                let t = txs
                    .get_mut(id)
                    .ok_or_else(|| ApiError::not_found(format!("no open transaction {id}")))?;
                if let Some(s) = t.stores.get(name) {
                    return Ok(s.clone());
                }
                let s = Arc::new(tokio::sync::Mutex::new(JsonStore::open(&t.tx, name)?));
                t.stores.insert(name.to_string(), s.clone());
                Ok(s)
            }
        }
    }

    /// Ends a request's own transaction: commits when `ok` (a shared one goes on).
    pub(crate) async fn finish(&self, scope: Scope) -> ApiResult<()> {
        if let Scope::Own(tx) = scope {
            tx.commit().await?;
        }
        Ok(())
    }

    /// Rolls back multi-call transactions past their deadline.
    pub(crate) async fn reap(&self) {
        let now = Instant::now();
        let expired: Vec<OpenTx> = {
            let mut txs = self.txs.lock();
            let ids: Vec<Uuid> = txs
                .iter()
                .filter(|(_, t)| t.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| txs.remove(&id)).collect()
        };
        for t in expired {
            let _quiet = t.gate.write().await;
            drop(t.stores);
            if let Err(e) = t.tx.rollback().await {
                tracing::warn!("rolling back an expired transaction: {e}");
            }
        }
    }
}
