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

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Caller, MAX_OPEN_TX_PER_CALLER, OpenTx};

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
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    // The body is optional (`{}` or nothing: a writing transaction).
    let b: Begin = if body.iter().all(u8::is_ascii_whitespace) {
        Begin::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?
    };
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
    let mut txs = s.txs.lock();
    if txs.values().filter(|t| t.owner == c.token).count() >= MAX_OPEN_TX_PER_CALLER {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_transactions",
            format!(
                "{MAX_OPEN_TX_PER_CALLER} transactions of this caller are open: commit or roll back one"
            ),
        ));
    }
    let tx = Arc::new(s.db.begin(mode));
    let id = tx.id();
    txs.insert(
        id,
        OpenTx {
            tx,
            owner: c.token.clone(),
            deadline: Instant::now() + s.tx_timeout,
            stores: HashMap::new(),
            gate: Arc::default(),
        },
    );
    drop(txs);
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

/// Ends a multi-call transaction: requests under way in it finish first, later ones find it
/// gone; then it commits (`commit`) or rolls back.
async fn end(s: &AppState, c: &Caller, id: &str, commit: bool) -> ApiResult<()> {
    let t = take(s, c, id)?;
    let _quiet = t.gate.write().await;
    drop(t.stores);
    if commit {
        t.tx.commit().await?;
    } else {
        t.tx.rollback().await?;
    }
    Ok(())
}

/// `POST /v1/tx/{id}/commit`: 409 with `retryable` on a conflict.
pub async fn commit(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    end(&s, &c, &id, true).await?;
    Ok(Json(json!({"committed": true})))
}

/// `POST /v1/tx/{id}/rollback`.
pub async fn rollback(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    end(&s, &c, &id, false).await?;
    Ok(Json(json!({"rolled_back": true})))
}
