//! Text search and vector queries.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Json;
use serde::Deserialize;
use serde_json::{Value, json};
use sop::search::SearchIndex;
use sop::vector::{Metric, QueryOptions, VectorStore};
use sop::{Error, TxMode, UsageError};

use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;

use crate::body::JsonBody;

/// The most hits a search or query returns.
const MAX_K: usize = 1000;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Caller};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Docs {
    docs: Vec<Doc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doc {
    id: String,
    text: String,
}

/// `POST /v1/search/{index}/docs`: `{docs: [{id, text}]}` indexed in one transaction.
pub async fn index_docs(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<Docs>,
) -> ApiResult<Json<Value>> {
    c.must_write()?;
    crate::routes_json::own_transaction_only(&headers)?;
    let tx = s.db.begin(TxMode::ForWriting);
    let mut idx = SearchIndex::open_or_create(&tx, &name)?;
    for d in &b.docs {
        idx.add(&d.id, &d.text).await?;
    }
    drop(idx);
    tx.commit().await?;
    Ok(Json(json!({"indexed": b.docs.len()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: String,
    #[serde(default)]
    k: Option<usize>,
}

/// `GET /v1/search/{index}?q=...&k=10`: `{hits: [{id, score}]}`, best first.
pub async fn search(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let k = q.k.unwrap_or(10);
    if k == 0 || k > MAX_K {
        return Err(ApiError::bad_request(format!("k: give 1 to {MAX_K}")));
    }
    let tx = s.db.begin(TxMode::ForReading);
    let idx = SearchIndex::open(&tx, &name)?;
    let hits = idx.search(&q.q, k).await?;
    drop(idx);
    tx.commit().await?;
    let hits: Vec<Value> = hits
        .into_iter()
        .map(|h| json!({"id": h.doc_id, "score": h.score}))
        .collect();
    Ok(Json(json!({"hits": hits})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upserts {
    items: Vec<VItem>,
    /// For a new store: "cosine" (default), "l2" or "dot".
    #[serde(default)]
    metric: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VItem {
    id: String,
    vector: Vec<f32>,
    #[serde(default)]
    payload: Value,
}

/// `POST /v1/vectors/{store}/items`: `{items: [{id, vector, payload}], metric?}` (the store
/// is made on its first items, with their dimension).
pub async fn upsert_vectors(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<Upserts>,
) -> ApiResult<Json<Value>> {
    c.must_write()?;
    crate::routes_json::own_transaction_only(&headers)?;
    let Some(first) = b.items.first() else {
        return Ok(Json(json!({"upserted": 0})));
    };
    let metric = match b.metric.as_deref() {
        None | Some("cosine") => Metric::Cosine,
        Some("l2") => Metric::L2,
        Some("dot") => Metric::Dot,
        Some(m) => {
            return Err(ApiError::bad_request(format!(
                "metric {m:?}: use cosine, l2 or dot"
            )));
        }
    };
    let tx = s.db.begin(TxMode::ForWriting);
    let mut vs = match VectorStore::open(&tx, &name).await {
        Ok(v) => v,
        Err(Error::Usage(UsageError::StoreNotFound { .. })) => {
            VectorStore::create(&tx, &name, first.vector.len(), metric).await?
        }
        Err(e) => return Err(e.into()),
    };
    let n = b.items.len();
    let items: Vec<(String, Vec<f32>, Value)> = b
        .items
        .into_iter()
        .map(|i| (i.id, i.vector, i.payload))
        .collect();
    vs.upsert_batch(&items).await?;
    drop(vs);
    tx.commit().await?;
    Ok(Json(json!({"upserted": n})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VQuery {
    vector: Vec<f32>,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    nprobe: Option<usize>,
    /// Keeps items whose payload has each of these fields equal.
    #[serde(default)]
    filter: Option<serde_json::Map<String, Value>>,
}

/// `POST /v1/vectors/{store}/query`: `{vector, k?, nprobe?, filter?}` -> `{hits: [{id, score,
/// payload}]}` (a read: a read-only token may ask).
pub async fn query_vectors(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<VQuery>,
) -> ApiResult<Json<Value>> {
    let (k, nprobe) = (b.k.unwrap_or(10), b.nprobe.unwrap_or(8));
    if k == 0 || k > MAX_K || nprobe == 0 || nprobe > 4096 {
        return Err(ApiError::bad_request(format!(
            "k: give 1 to {MAX_K}; nprobe: 1 to 4096"
        )));
    }
    let tx = s.db.begin(TxMode::ForReading);
    let vs = VectorStore::open(&tx, &name).await?;
    let keep = |p: &Value| {
        b.filter
            .as_ref()
            .is_none_or(|f| f.iter().all(|(k, v)| p.get(k) == Some(v)))
    };
    let mut opts = QueryOptions::new(k);
    opts.nprobe = nprobe;
    opts.filter = Some(&keep);
    let (hits, _) = vs.query(&b.vector, &opts).await?;
    drop(vs);
    tx.commit().await?;
    let hits: Vec<Value> = hits
        .into_iter()
        .map(|h| json!({"id": h.id, "score": h.score, "payload": h.payload}))
        .collect();
    Ok(Json(json!({"hits": hits})))
}
