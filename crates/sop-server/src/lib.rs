//! sop-rs over HTTP/JSON: JSON stores, streamed values (Range downloads), BM25 search and
//! vector queries, with transactions per request or spanning requests (`X-Sop-Tx`).
//!
//! Safe by default: it binds to 127.0.0.1, every `/v1` call needs a bearer token (read-write
//! or read-only), bodies are size-limited, errors are JSON with 4xx statuses for what the
//! client can fix. The routes are in [`openapi::ROUTES`] and served at `/openapi.json`.
//!
//! ```no_run
//! # async fn f() -> Result<(), String> {
//! use sop_server::{Role, ServerConfig, Tokens};
//! let db = sop::Database::standalone("data/db").map_err(|e| e.to_string())?;
//! let config = ServerConfig::new(Tokens::new().with("a-long-secret-token", Role::ReadWrite));
//! let server = sop_server::Server::start(db, config).await?;
//! println!("listening on http://{}", server.addr());
//! let mut server = server;
//! server.wait().await;
//! # Ok(()) }
//! ```

mod auth;
mod body;
mod error;
pub mod openapi;
mod routes_ai;
mod routes_blob;
mod routes_json;
mod routes_tx;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use parking_lot::Mutex;
use serde_json::json;

pub use auth::{Role, Tokens};
pub use error::ApiError;
use routes_json::ItemsOp;
use state::{AppState, Caller};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen (default 127.0.0.1:8080: this machine only).
    pub addr: SocketAddr,
    /// The accepted tokens.
    pub tokens: Tokens,
    /// Serve without tokens (every caller may write): only when told to.
    pub no_auth: bool,
    /// The largest JSON body (default 1 MiB).
    pub max_body: usize,
    /// The largest upload to `/v1/blobs` (default 4 GiB).
    pub max_upload: u64,
    /// How long a multi-call transaction may stay open (default 60 s).
    pub tx_timeout: Duration,
}

impl ServerConfig {
    /// The defaults, with `tokens`.
    #[must_use]
    pub fn new(tokens: Tokens) -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tokens,
            no_auth: false,
            max_body: 1 << 20,
            max_upload: 4 << 30,
            tx_timeout: Duration::from_secs(60),
        }
    }
}

async fn authenticate(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let caller = if s.auth {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match s.tokens.role(header) {
            Some(role) => Caller {
                role,
                token: header.map(str::to_string),
            },
            None => {
                let mut r = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send Authorization: Bearer <token> (a token the server was given)",
                )
                .into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return r;
            }
        }
    } else {
        Caller {
            role: Role::ReadWrite,
            token: None,
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn router(state: Arc<AppState>, max_body: usize) -> Router {
    let v1 = Router::new()
        .route("/stores", get(routes_json::list).post(routes_json::create))
        .route(
            "/stores/{name}/items",
            get(routes_json::page)
                .put(|s, c, h, p, b| routes_json::items(ItemsOp::Upsert, s, c, h, p, b))
                .patch(|s, c, h, p, b| routes_json::items(ItemsOp::Update, s, c, h, p, b)),
        )
        .route(
            "/stores/{name}/add",
            post(|s, c, h, p, b| routes_json::items(ItemsOp::Add, s, c, h, p, b)),
        )
        .route("/stores/{name}/get", post(routes_json::get))
        .route("/stores/{name}/remove", post(routes_json::remove))
        .route("/tx", post(routes_tx::begin))
        .route("/tx/{id}/commit", post(routes_tx::commit))
        .route("/tx/{id}/rollback", post(routes_tx::rollback))
        .route(
            "/blobs/{store}/{key}",
            put(routes_blob::put).get(routes_blob::get),
        )
        .route("/search/{index}/docs", post(routes_ai::index_docs))
        .route("/search/{index}", get(routes_ai::search))
        .route("/vectors/{store}/items", post(routes_ai::upsert_vectors))
        .route("/vectors/{store}/query", post(routes_ai::query_vectors))
        .layer(DefaultBodyLimit::max(max_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .nest("/v1", v1)
        .fallback(|| async { ApiError::not_found("no such route: see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route takes another method: see /openapi.json",
            )
        })
        .with_state(state)
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `config.addr` (port 0: any free one) and serves `db` in the background.
    ///
    /// # Errors
    /// No token given (and `no_auth` not set), or the address cannot be bound.
    pub async fn start(db: sop::Database, config: ServerConfig) -> Result<Server, String> {
        if config.tokens.is_empty() && !config.no_auth {
            return Err(
                "no token: give one (--token-file FILE, or SOP_TOKEN / SOP_READ_TOKEN) or, \
                        to serve without authentication, --no-auth"
                    .into(),
            );
        }
        // A day at most: a deadline must stay representable.
        let config = ServerConfig {
            tx_timeout: config.tx_timeout.min(Duration::from_secs(86_400)),
            ..config
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(AppState {
            db,
            tokens: config.tokens,
            auth: !config.no_auth,
            tx_timeout: config.tx_timeout,
            max_upload: config.max_upload,
            txs: Mutex::new(HashMap::new()),
            downloads: Arc::new(tokio::sync::Semaphore::new(64)),
        });
        let reaper = {
            let s = Arc::downgrade(&state);
            let every =
                (config.tx_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match s.upgrade() {
                        Some(s) => s.reap().await,
                        None => break,
                    }
                }
            })
        };
        let app = router(state, config.max_body);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("the server stopped: {e}");
            }
            reaper.abort();
        });
        Ok(Server {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking connections, finishes the requests under way, and returns.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Serves until the server stops (it runs until [`Server::shutdown`] or a fatal error).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}
