//! JSON stores: list, create, add/upsert/update, get, remove, pages.

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Json;
use serde::Deserialize;
use serde_json::{Value, json};
use sop::json::{Direction, IndexSpec, JsonItem, JsonOrder, JsonStore, PagingInfo};
use sop::{StoreOptions, TxMode};

use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Caller};

pub(crate) fn tx_header(h: &HeaderMap) -> Option<&str> {
    h.get("x-sop-tx").and_then(|v| v.to_str().ok())
}

/// Refuses `X-Sop-Tx` on a route that always runs in a transaction of its own (silently
/// ignoring it would let a client believe a rollback undoes the call).
pub(crate) fn own_transaction_only(h: &HeaderMap) -> ApiResult<()> {
    if tx_header(h).is_some() {
        return Err(ApiError::bad_request(
            "this route runs in a transaction of its own: send it without X-Sop-Tx",
        ));
    }
    Ok(())
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
    headers: HeaderMap,
    JsonBody(b): JsonBody<NewStore>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    caller.must_write()?;
    own_transaction_only(&headers)?;
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

/// Runs a write on store `name`: in the request's own transaction (committed here) or in
/// its multi-call one.
async fn write(
    s: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    name: &str,
    f: impl AsyncFnOnce(&mut JsonStore) -> sop::Result<bool>,
) -> ApiResult<Json<Value>> {
    caller.must_write()?;
    let scope = s
        .scope(caller, tx_header(headers), TxMode::ForWriting)
        .await?;
    let store = s.json_store(&scope, name)?;
    let all = f(&mut *store.lock().await).await?;
    drop(store);
    s.finish(scope).await?;
    Ok(Json(json!({"ok": all})))
}

/// What a batch of items does.
#[derive(Clone, Copy, Debug)]
pub enum ItemsOp {
    /// `POST /v1/stores/{name}/add`: `ok` false when a key existed.
    Add,
    /// `PUT /v1/stores/{name}/items`.
    Upsert,
    /// `PATCH /v1/stores/{name}/items`: existing keys only.
    Update,
}

/// `{items: [{key, value}]}` added, upserted or updated (`op`; the router binds it).
pub async fn items(
    op: ItemsOp,
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Items>,
) -> ApiResult<Json<Value>> {
    write(&s, &c, &headers, &name, async |st| match op {
        ItemsOp::Add => st.add(&b.items).await,
        ItemsOp::Upsert => st.upsert(&b.items).await,
        ItemsOp::Update => st.update(&b.items).await,
    })
    .await
}

/// `POST /v1/stores/{name}/remove`: `{keys: [...]}`.
pub async fn remove(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Keys>,
) -> ApiResult<Json<Value>> {
    write(&s, &c, &headers, &name, async |st| st.remove(&b.keys).await).await
}

/// `POST /v1/stores/{name}/get`: `{keys: [...]}` -> `{items: [{key, value|null}]}`.
pub async fn get(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<Keys>,
) -> ApiResult<Json<Value>> {
    if b.keys.len() > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "keys: at most {MAX_PAGE} a request"
        )));
    }
    let scope = s.scope(&c, tx_header(&headers), TxMode::ForReading).await?;
    let store = s.json_store(&scope, &name)?;
    let mut out = Vec::with_capacity(b.keys.len());
    {
        let st = store.lock().await;
        let mut bytes = 0usize;
        for k in b.keys {
            let v = st.get(&k).await?;
            bytes += v.as_ref().map_or(0, |v| v.to_string().len());
            if bytes > MAX_RESPONSE_BYTES {
                return Err(ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!(
                        "the values asked for are over {MAX_RESPONSE_BYTES} bytes: ask for fewer keys"
                    ),
                ));
            }
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
    after_id: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    reverse: bool,
}

/// The most items a page returns, and the most value bytes a response carries (a page stops
/// early at that, with `next` set).
pub(crate) const MAX_PAGE: usize = 1000;
pub(crate) const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// `GET /v1/stores/{name}/items?limit=N&after=<JSON key>&after_id=<id>&reverse=true`: a page
/// of items from the first (or last) one, or from the one after (`reverse`: before) the item
/// `after`/`after_id`; `next` is `{key, id}` to pass as `after`/`after_id` for the next page
/// (absent at the end). Without `after_id`, every item of key `after` is skipped.
pub async fn page(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: give 1 to {MAX_PAGE}"
        )));
    }
    let after: Option<Value> = q
        .after
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("after: not a JSON key: {e}")))?;
    let after_id: Option<sop::Uuid> = q
        .after_id
        .as_deref()
        .map(|t| {
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("after_id {t:?} is not an item id")))
        })
        .transpose()?;
    let scope = s.scope(&c, tx_header(&headers), TxMode::ForReading).await?;
    let store = s.json_store(&scope, &name)?;
    let (items, more) = {
        let mut st = store.lock().await;
        let order = JsonOrder::new(st.spec().cloned());
        let placed = match &after {
            None if q.reverse => st.last().await?,
            None => st.first().await?,
            Some(k) => {
                let exact = match after_id {
                    Some(id) => st.find_with_id(k, id).await?,
                    None => false,
                };
                if exact {
                    if q.reverse {
                        st.previous().await?
                    } else {
                        st.next().await?
                    }
                } else {
                    // On the first item of `k`, or the next greater key, or none.
                    st.find(k).await?;
                    let mut on = st.current_item().await?;
                    if q.reverse {
                        match on {
                            Some(_) => st.previous().await?,
                            None => st.last().await?,
                        }
                    } else {
                        while on
                            .as_ref()
                            .is_some_and(|i| order.compare_keys(&i.key, k).is_eq())
                        {
                            // At the end the cursor stays on the last item: stop there.
                            on = if st.next().await? {
                                st.current_item().await?
                            } else {
                                None
                            };
                        }
                        on.is_some()
                    }
                }
            }
        };
        let mut items: Vec<JsonItem> = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        if placed {
            // Small pages from the cursor, so a response stops at its byte budget without
            // having read the rest.
            let mut p = PagingInfo::new(1);
            if q.reverse {
                p.direction = Direction::Backward;
            }
            while items.len() < limit {
                p.page_size = (limit - items.len()).min(50);
                let got = st.get_items(&p).await?;
                let n = got.len();
                for it in got {
                    bytes += it.value.as_ref().map_or(0, |v| v.to_string().len())
                        + it.key.to_string().len();
                    items.push(it);
                }
                if n < p.page_size {
                    break;
                }
                if bytes > MAX_RESPONSE_BYTES {
                    more = true;
                    break;
                }
            }
            more |= items.len() == limit;
        }
        (items, more)
    };
    drop(store);
    s.finish(scope).await?;
    let next = more
        .then(|| items.last().map(|i| json!({"key": i.key, "id": i.id})))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}
