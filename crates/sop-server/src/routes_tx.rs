//! Multi-call transactions: `POST /v1/tx`, then calls with `X-Sop-Tx: <id>`, then
//! `POST /v1/tx/{id}/commit` or `/rollback`. One left open past the timeout is rolled back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Json;
use serde::Deserialize;
use serde_json::{Value, json};
use sop::{TxMode, Uuid};

use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Caller, OpenTx};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Begin {
    /// "read" or "write" (the default).
    #[serde(default)]
    mode: Option<String>,
}

/// `POST /v1/tx` `{mode: "read"|"write"}` -> `{id, timeout_ms}`.
pub async fn begin(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    JsonBody(b): JsonBody<Begin>,
) -> ApiResult<Json<Value>> {
    let mode = match b.mode.as_deref() {
        None | Some("write") => {
            c.must_write()?;
            TxMode::ForWriting
        }
        Some("read") => TxMode::ForReading,
        Some(m) => {
            return Err(ApiError::bad_request(format!(
                "mode {m:?}: use \"read\" or \"write\""
            )));
        }
    };
    let tx = Arc::new(s.db.begin(mode));
    let id = tx.id();
    s.txs.lock().insert(
        id,
        OpenTx {
            tx,
            owner: c.token.clone(),
            deadline: Instant::now() + s.tx_timeout,
            stores: HashMap::new(),
        },
    );
    Ok(Json(
        json!({"id": id.to_string(), "timeout_ms": s.tx_timeout.as_millis() as u64}),
    ))
}

fn take(s: &AppState, c: &Caller, id: &str) -> ApiResult<OpenTx> {
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a transaction id")))?;
    let mut txs = s.txs.lock();
    match txs.get(&id) {
        Some(t) if t.owner == c.token => {}
        _ => {
            return Err(ApiError::not_found(format!(
                "no open transaction {id} (it ended, timed out, or is another caller's)"
            )));
        }
    }
    txs.remove(&id)
        .ok_or_else(|| ApiError::not_found(format!("no open transaction {id}")))
}

/// `POST /v1/tx/{id}/commit`: 409 with `retryable` on a conflict.
pub async fn commit(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = take(&s, &c, &id)?;
    // Store handles finish their work before the commit.
    for st in t.stores.values() {
        drop(st.lock().await);
    }
    drop(t.stores);
    t.tx.commit().await?;
    Ok(Json(json!({"committed": true})))
}

/// `POST /v1/tx/{id}/rollback`.
pub async fn rollback(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = take(&s, &c, &id)?;
    drop(t.stores);
    t.tx.rollback().await?;
    Ok(Json(json!({"rolled_back": true})))
}
