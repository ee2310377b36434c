//! The coordination service failed (raised by `sop-coord`).

/// The coordination service (Redis) could not be used. Check it; retrying later can
/// succeed. Raised by `sop-coord`, the only crate that talks to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinationError {
    /// The coordination service (Redis) could not be used.
    #[error(
        "redis at {endpoint} failed during {op}: {detail}; check that redis-server is running \
         and reachable from this host, and the URL, password and database number"
    )]
    Redis {
        /// Where it was expected (the URL without its password).
        endpoint: String,
        /// What was being done.
        op: &'static str,
        /// The client's error.
        detail: String,
    },
}
