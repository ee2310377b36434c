//! The Redis implementations of [`Locker`] and [`Cache`] for clustered mode (the only code of
//! sop-rs that names `fred`).
//!
//! Locks are keys `L<key>` whose value is the owner's id, set with a time to live; taking,
//! releasing and extending a set of keys are Lua scripts, so each is atomic and only the owner
//! can release or extend (the original released with a plain `DEL`). Cache entries are keys
//! `C<key>`.
//!
//! Against a Redis Cluster (a `redis-cluster://` URL) a script may only touch keys of one hash
//! slot, so a set of locks is taken slot by slot, in ascending slot order (every process uses
//! the same order), all or nothing: when a slot's keys are held by another owner, the slots
//! already taken are released. Releasing, extending and reading go slot by slot too. The
//! instance id (restart detection) joins the `run_id` of every master, so a restart of any
//! shard changes it.

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
    /// A Redis Cluster: multi-key scripts go slot by slot.
    cluster: bool,
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
        let cluster = cfg.server.is_clustered();
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
        Ok(Redis {
            pool,
            endpoint,
            cluster,
        })
    }

    /// `keys` as lock keys, grouped by hash slot in ascending order (one group when not a
    /// cluster).
    fn groups(&self, keys: &[String], prefix: fn(&str) -> String) -> Vec<Vec<String>> {
        let keys = keys.iter().map(|k| prefix(k));
        if !self.cluster {
            return vec![keys.collect()];
        }
        let mut by_slot = std::collections::BTreeMap::<u16, Vec<String>>::new();
        for k in keys {
            by_slot
                .entry(fred::util::redis_keyslot(k.as_bytes()))
                .or_default()
                .push(k);
        }
        by_slot.into_values().collect()
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
        if self.cluster {
            // Every master's: a restart of any shard (which forgets its locks) changes it.
            let client = self.pool.next();
            let mut masters = client
                .cached_cluster_state()
                .map(|s| s.unique_primary_nodes())
                .unwrap_or_default();
            masters.sort_by_key(ToString::to_string);
            let mut ids = Vec::with_capacity(masters.len());
            for m in masters {
                let info: String = client
                    .with_cluster_node(m)
                    .info(Some(fred::types::InfoKind::Server))
                    .await
                    .map_err(|e| self.err("INFO server", e))?;
                ids.push(self.run_id_in(&info)?);
            }
            return Ok(ids.join(","));
        }
        let info: String = self
            .pool
            .next()
            .info(Some(fred::types::InfoKind::Server))
            .await
            .map_err(|e| self.err("INFO server", e))?;
        self.run_id_in(&info)
    }

    fn run_id_in(&self, info: &str) -> Result<String> {
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
            let groups = self.groups(keys, lock_key);
            for (i, k) in groups.iter().enumerate() {
                let taken: std::result::Result<Option<String>, _> = self
                    .pool
                    .eval(
                        TRY_LOCK,
                        k.clone(),
                        vec![owner.to_string(), millis(ttl).to_string()],
                    )
                    .await;
                let held = match taken {
                    Ok(None) => continue,
                    Ok(Some(h)) => Ok(Some(h.strip_prefix('L').unwrap_or(&h).to_string())),
                    Err(e) => Err(self.err("taking locks", e)),
                };
                // All or nothing: the slots taken so far go back (best effort: they expire).
                for k in &groups[..i] {
                    let _: std::result::Result<i64, _> = self
                        .pool
                        .eval(UNLOCK, k.clone(), vec![owner.to_string()])
                        .await;
                }
                return held;
            }
            Ok(None)
        })
    }

    fn unlock<'a>(&'a self, keys: &'a [String], owner: Uuid) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            // Every slot, even after one fails (a master restarting): a lock left behind on
            // another master would stall its key until its time runs out.
            let mut first = None;
            for k in self.groups(keys, lock_key) {
                let r: std::result::Result<i64, _> =
                    self.pool.eval(UNLOCK, k, vec![owner.to_string()]).await;
                if let Err(e) = r {
                    first.get_or_insert(self.err("releasing locks", e));
                }
            }
            first.map_or(Ok(()), Err)
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
            for k in self.groups(keys, lock_key) {
                let ok: i64 = self
                    .pool
                    .eval(EXTEND, k, vec![owner.to_string(), millis(ttl).to_string()])
                    .await
                    .map_err(|e| self.err("extending locks", e))?;
                if ok != 1 {
                    return Ok(false);
                }
            }
            Ok(true)
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
            let me = owner.to_string();
            for k in self.groups(keys, lock_key) {
                let values: Vec<Option<String>> = self
                    .pool
                    .mget(k)
                    .await
                    .map_err(|e| self.err("reading locks", e))?;
                if values.iter().flatten().any(|v| *v != me) {
                    return Ok(true);
                }
            }
            Ok(false)
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
            for k in self.groups(keys, cache_key) {
                let _: i64 = self
                    .pool
                    .del(k)
                    .await
                    .map_err(|e| self.err("deleting from the cache", e))?;
            }
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
