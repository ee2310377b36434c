//! Streamed values: `PUT /v1/blobs/{store}/{key}` streams the body into the store (never
//! held whole in memory), `GET` streams it back, with `Range: bytes=a-b` for a part.

use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use futures_util::StreamExt;
use serde_json::json;
use sop::streaming::StreamingStore;
use sop::{StoreOptions, TxMode, ValueDataSize};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Caller};

/// `PUT /v1/blobs/{store}/{key}`: the body becomes the value (replacing it), in one
/// transaction: a broken upload stores nothing.
pub async fn put(
    State(s): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    c.must_write()?;
    crate::routes_json::own_transaction_only(&headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_upload) {
        return Err(too_large(s.max_upload));
    }
    let tx = s.db.begin(TxMode::ForWriting);
    let st = StreamingStore::<String>::open_or_create(
        &tx,
        &StoreOptions::with_value_size(&store, ValueDataSize::Big),
    )?;
    let mut w = st.replace(&key).await?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        total += chunk.len() as u64;
        if total > s.max_upload {
            return Err(too_large(s.max_upload));
        }
        w.write(&chunk).await?;
    }
    w.finish().await?;
    drop(st);
    tx.commit().await?;
    Ok(Json(json!({"key": key, "bytes": total})))
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("uploads are limited to {max} bytes (--max-upload)"),
    )
}

/// How long a download waits for its client to take the next piece.
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// A single byte range of a value of `len` bytes: `(start, end exclusive)`.
fn range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // one range only
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.saturating_sub(n), len)
        }
        (a, "") => (a.parse().ok()?, len),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.saturating_add(1).min(len),
        ),
    };
    (start < end && start < len).then_some((start, end))
}

/// `GET /v1/blobs/{store}/{key}`: the value, or the part a `Range` header asks for (206).
pub async fn get(
    State(s): State<Arc<AppState>>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Ok(permit) = s.downloads.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many downloads under way: try again shortly",
        ));
    };
    let tx = s.db.begin(TxMode::ForReading);
    let mut st = StreamingStore::<String>::open(&tx, &store)?;
    let len = st
        .len(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no value {key:?} in {store:?}")))?;
    let (start, end, status) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => (0, len, StatusCode::OK),
        Some(h) => {
            match range(h, len) {
                Some((a, b)) => (a, b, StatusCode::PARTIAL_CONTENT),
                None => {
                    return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                    ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "bad_range", format!("range {h:?} of a {len}-byte value: use one range bytes=a-b inside it")),
                )
                    .into_response());
                }
            }
        }
    };
    let mut reader = st
        .reader(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no value {key:?} in {store:?}")))?;
    reader.seek(std::io::SeekFrom::Start(start)).await?;
    // The reader runs in its own task and hands the body 256 KiB pieces: memory stays bounded
    // whatever the value's size; the read transaction ends with the body.
    let (txs, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut left = end - start;
        let mut buf = vec![0u8; 256 << 10];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match reader.read(&mut buf[..want]).await {
                Ok(0) => break,
                Ok(n) => {
                    left -= n as u64;
                    // A client that stops reading for a minute is dropped: the read
                    // transaction (and the log it pins) does not wait for it for ever.
                    let sent = tokio::time::timeout(
                        STALL,
                        txs.send(Ok(Bytes::copy_from_slice(&buf[..n]))),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break; // the client went away or stalled
                    }
                }
                Err(e) => {
                    let _ = txs.send(Err(std::io::Error::other(e.to_string()))).await;
                    break;
                }
            }
        }
        drop(reader);
        drop(st);
        let _ = tx.rollback().await;
        drop(permit);
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, end - start);
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    resp.body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::range;

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(range("bytes=-5", 100), Some((95, 100)));
        assert_eq!(range("bytes=50-1000", 100), Some((50, 100)));
        assert_eq!(range("bytes=100-", 100), None);
        assert_eq!(range("bytes=5-2", 100), None);
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
        assert_eq!(range("bytes=-0", 100), None);
    }
}
