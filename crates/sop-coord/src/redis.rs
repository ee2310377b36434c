//! The Redis implementations of [`Locker`] and [`Cache`] for clustered mode (the only code of
//! sop-rs that names `fred`).
//!
//! Locks are keys `L<key>` whose value is the owner's id, set with a time to live; taking,
//! releasing and extending a set of keys are Lua scripts, so each is atomic and only the owner
//! can release or extend (the original released with a plain `DEL`). Cache entries are keys
//! `C<key>`.

use std::time::Duration;

use fred::prelude::*;
use sop_core::{Error, Result, Uuid};

use crate::{BoxFuture, Cache, Locker};

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long one command may take before it fails with [`CoordinationError::Redis`](sop_core::CoordinationError::Redis).
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// A config for `url` with 4 connections and 2-second timeouts.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            pool_size: 4,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// A pool of connections to one Redis, used as [`Locker`] and [`Cache`].
pub struct Redis {
    pool: Pool,
    endpoint: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

const TRY_LOCK: &str = r"
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v and v ~= ARGV[1] then return k end
end
for i, k in ipairs(KEYS) do
  redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
end
return false
";

const UNLOCK: &str = r"
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 1
";

const EXTEND: &str = r"
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) ~= ARGV[1] then return 0 end
end
for i, k in ipairs(KEYS) do
  redis.call('PEXPIRE', k, ARGV[2])
end
return 1
";

const GET_SLIDING: &str = r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn lock_key(k: &str) -> String {
    format!("L{k}")
}

fn cache_key(k: &str) -> String {
    format!("C{k}")
}

impl Redis {
    /// Connects a pool to `config.url`.
    ///
    /// # Errors
    /// [`CoordinationError::Redis`](sop_core::CoordinationError::Redis) naming the endpoint when the URL is bad or Redis cannot be reached
    /// within `connect_timeout`.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        let endpoint = redact(&config.url);
        let err = |op: &'static str, e: fred::error::Error| {
            Error::Coordination(sop_core::CoordinationError::Redis {
                endpoint: endpoint.clone(),
                op,
                detail: e.to_string(),
            })
        };
        let cfg = Config::from_url(&config.url).map_err(|e| err("parsing the url", e))?;
        let mut builder = Builder::from_config(cfg);
        builder
            .with_config(|c| {
                c.fail_fast = true;
            })
            .with_connection_config(|c| {
                c.connection_timeout = config.connect_timeout;
                c.internal_command_timeout = config.command_timeout;
                c.max_command_attempts = 1;
            })
            .with_performance_config(|c| {
                c.default_command_timeout = config.command_timeout;
            })
            .set_policy(ReconnectPolicy::new_constant(0, 200));
        let pool = builder
            .build_pool(config.pool_size.max(1))
            .map_err(|e| err("building the pool", e))?;
        let init = tokio::time::timeout(config.connect_timeout, pool.init()).await;
        match init {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(err("connecting", e)),
            Err(_) => {
                let _ = pool.quit().await;
                return Err(Error::Coordination(sop_core::CoordinationError::Redis {
                    endpoint,
                    op: "connecting",
                    detail: format!("no answer within {:?}", config.connect_timeout),
                }));
            }
        }
        Ok(Redis { pool, endpoint })
    }

    fn err(&self, op: &'static str, e: fred::error::Error) -> Error {
        Error::Coordination(sop_core::CoordinationError::Redis {
            endpoint: self.endpoint.clone(),
            op,
            detail: e.to_string(),
        })
    }

    /// The server's `run_id`: it changes when Redis restarts (and forgets every lock).
    ///
    /// # Errors
    /// [`CoordinationError::Redis`](sop_core::CoordinationError::Redis).
    pub async fn run_id(&self) -> Result<String> {
        let info: String = self
            .pool
            .next()
            .info(Some(fred::types::InfoKind::Server))
            .await
            .map_err(|e| self.err("INFO server", e))?;
        info.lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|s| s.trim().to_string())
            .ok_or_else(|| {
                Error::Coordination(sop_core::CoordinationError::Redis {
                    endpoint: self.endpoint.clone(),
                    op: "INFO server",
                    detail: "no run_id in the reply".into(),
                })
            })
    }

    /// Where it connects (the URL without a password).
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Closes the connections.
    pub async fn close(&self) {
        let _ = self.pool.quit().await;
    }
}

/// The URL with any password replaced, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Locker for Redis {
    fn try_lock<'a>(
        &'a self,
        keys: &'a [String],
        owner: Uuid,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(None);
            }
            let k: Vec<String> = keys.iter().map(|k| lock_key(k)).collect();
            let held: Option<String> = self
                .pool
                .eval(
                    TRY_LOCK,
                    k,
                    vec![owner.to_string(), millis(ttl).to_string()],
                )
                .await
                .map_err(|e| self.err("taking locks", e))?;
            Ok(held.map(|h| h.strip_prefix('L').unwrap_or(&h).to_string()))
        })
    }

    fn unlock<'a>(&'a self, keys: &'a [String], owner: Uuid) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            let k: Vec<String> = keys.iter().map(|k| lock_key(k)).collect();
            let _: i64 = self
                .pool
                .eval(UNLOCK, k, vec![owner.to_string()])
                .await
                .map_err(|e| self.err("releasing locks", e))?;
            Ok(())
        })
    }

    fn extend<'a>(
        &'a self,
        keys: &'a [String],
        owner: Uuid,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(true);
            }
            let k: Vec<String> = keys.iter().map(|k| lock_key(k)).collect();
            let ok: i64 = self
                .pool
                .eval(EXTEND, k, vec![owner.to_string(), millis(ttl).to_string()])
                .await
                .map_err(|e| self.err("extending locks", e))?;
            Ok(ok == 1)
        })
    }

    fn instance_id(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move { self.run_id().await.map(Some) })
    }

    fn is_locked_by_other<'a>(
        &'a self,
        keys: &'a [String],
        owner: Uuid,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(false);
            }
            let k: Vec<String> = keys.iter().map(|k| lock_key(k)).collect();
            let values: Vec<Option<String>> = self
                .pool
                .mget(k)
                .await
                .map_err(|e| self.err("reading locks", e))?;
            let me = owner.to_string();
            Ok(values.iter().flatten().any(|v| *v != me))
        })
    }
}

impl Cache for Redis {
    fn get<'a>(
        &'a self,
        key: &'a str,
        slide: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let k = cache_key(key);
            let v: Option<Vec<u8>> = match slide {
                None => self.pool.get(k).await,
                Some(ttl) => {
                    self.pool
                        .eval(GET_SLIDING, vec![k], vec![millis(ttl).to_string()])
                        .await
                }
            }
            .map_err(|e| self.err("reading the cache", e))?;
            Ok(v)
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let _: () = self
                .pool
                .set(
                    cache_key(key),
                    value.as_slice(),
                    Some(Expiration::PX(millis(ttl))),
                    None,
                    false,
                )
                .await
                .map_err(|e| self.err("writing the cache", e))?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            let k: Vec<String> = keys.iter().map(|k| cache_key(k)).collect();
            let _: i64 = self
                .pool
                .del(k)
                .await
                .map_err(|e| self.err("deleting from the cache", e))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("redis://:secret@host:6379/1"),
            "redis://***@host:6379/1"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
