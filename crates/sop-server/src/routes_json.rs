//! JSON stores: list, create, add/upsert/update, get, remove, pages.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Json;
use serde::Deserialize;
use serde_json::{Value, json};
use sop::json::{Direction, IndexSpec, JsonItem, JsonStore, PagingInfo};
use sop::{StoreOptions, TxMode};

use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Caller};

pub(crate) fn tx_header(h: &HeaderMap) -> Option<&str> {
    h.get("x-sop-tx").and_then(|v| v.to_str().ok())
}

/// `GET /v1/stores`.
pub async fn list(State(s): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"stores": s.db.stores()?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStore {
    name: String,
    #[serde(default)]
    index_spec: Option<IndexSpec>,
    #[serde(default = "yes")]
    unique: bool,
    #[serde(default)]
    description: String,
}

fn yes() -> bool {
    true
}

/// `POST /v1/stores`: `{name, index_spec?, unique?, description?}`.
pub async fn create(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(b): JsonBody<NewStore>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    caller.must_write()?;
    let tx = s.db.begin(TxMode::ForWriting);
    let options = StoreOptions::new(&b.name)
        .unique(b.unique)
        .description(b.description);
    JsonStore::new(&tx, &options, b.index_spec)?;
    tx.commit().await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({"name": b.name})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Items {
    items: Vec<JsonItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    keys: Vec<Value>,
}

async fn write(
    s: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    name: &str,
    op: &str,
    items: Vec<JsonItem>,
) -> ApiResult<Json<Value>> {
    caller.must_write()?;
    let scope = s.scope(caller, tx_header(headers), TxMode::ForWriting)?;
    let store = s.json_store(&scope, name)?;
    let all = {
        let mut st = store.lock().await;
        match op {
            "add" => st.add(&items).await?,
            "update" => st.update(&items).await?,
            _ => st.upsert(&items).await?,
        }
    };
    drop(store);
    s.finish(scope).await?;
    Ok(Json(json!({"ok": all})))
}

/// `POST /v1/stores/{name}/add`: `{items: [{key, value}]}`; `ok` false when a key existed.
pub async fn add(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Items>,
) -> ApiResult<Json<Value>> {
    write(&s, &c, &headers, &name, "add", b.items).await
}

/// `PUT /v1/stores/{name}/items`: upsert.
pub async fn upsert(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Items>,
) -> ApiResult<Json<Value>> {
    write(&s, &c, &headers, &name, "upsert", b.items).await
}

/// `PATCH /v1/stores/{name}/items`: update existing keys.
pub async fn update(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Items>,
) -> ApiResult<Json<Value>> {
    write(&s, &c, &headers, &name, "update", b.items).await
}

/// `POST /v1/stores/{name}/remove`: `{keys: [...]}`.
pub async fn remove(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Keys>,
) -> ApiResult<Json<Value>> {
    c.must_write()?;
    let scope = s.scope(&c, tx_header(&headers), TxMode::ForWriting)?;
    let store = s.json_store(&scope, &name)?;
    let all = store.lock().await.remove(&b.keys).await?;
    drop(store);
    s.finish(scope).await?;
    Ok(Json(json!({"ok": all})))
}

/// `POST /v1/stores/{name}/get`: `{keys: [...]}` -> `{items: [{key, value|null}]}`.
pub async fn get(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Keys>,
) -> ApiResult<Json<Value>> {
    let scope = s.scope(&c, tx_header(&headers), TxMode::ForReading)?;
    let store = s.json_store(&scope, &name)?;
    let mut out = Vec::with_capacity(b.keys.len());
    {
        let st = store.lock().await;
        for k in b.keys {
            let v = st.get(&k).await?;
            out.push(json!({"key": k, "value": v}));
        }
    }
    drop(store);
    s.finish(scope).await?;
    Ok(Json(json!({"items": out})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    reverse: bool,
}

/// `GET /v1/stores/{name}/items?limit=N&after=<JSON key>&reverse=true`: a page of items, from
/// the first (or last) key, or from the one after `after`; `next` is the key to pass as
/// `after` for the next page (absent at the end).
pub async fn page(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("limit: give 1 to 10000"));
    }
    let after: Option<Value> = q
        .after
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("after: not a JSON key: {e}")))?;
    let scope = s.scope(&c, tx_header(&headers), TxMode::ForReading)?;
    let store = s.json_store(&scope, &name)?;
    let items = {
        let mut st = store.lock().await;
        // Place the cursor on the first key to return.
        let placed = match &after {
            None if q.reverse => st.last().await?,
            None => st.first().await?,
            Some(k) => {
                let found = st.find(k).await?;
                let on_item = st.current_item().await?.is_some();
                match (found, q.reverse) {
                    (true, false) => st.next().await?,
                    (true, true) => st.previous().await?,
                    // Not found: the cursor is on the next greater key, or on none.
                    (false, false) => on_item,
                    (false, true) => {
                        if on_item {
                            st.previous().await?
                        } else {
                            st.last().await?
                        }
                    }
                }
            }
        };
        if placed {
            let mut p = PagingInfo::new(limit);
            if q.reverse {
                p.direction = Direction::Backward;
            }
            st.get_items(&p).await?
        } else {
            Vec::new()
        }
    };
    drop(store);
    s.finish(scope).await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|i| i.key.clone()))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}
