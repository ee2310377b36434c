//! Locks on string keys, each held by an owner (a transaction id) until released or expired.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sop_core::{Result, Uuid};

use crate::BoxFuture;

/// Locks on keys with an owner and a time to live.
///
/// Every call is all-or-nothing over its keys, and only the owner can extend or release a lock:
/// a lock that expired and was taken by another owner is never released by the first one (the
/// original's plain `DEL` could free a lock someone else held).
pub trait Locker: Send + Sync {
    /// Takes every key for `owner` for `ttl`, or none of them. Keys `owner` already holds are
    /// renewed. Returns `None` on success, or the first key another owner holds.
    fn try_lock<'a>(
        &'a self,
        keys: &'a [String],
        owner: Uuid,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>>>;

    /// Releases the keys `owner` holds; keys held by others or free are left alone.
    fn unlock<'a>(&'a self, keys: &'a [String], owner: Uuid) -> BoxFuture<'a, Result<()>>;

    /// Extends the keys `owner` holds to `ttl` from now. Returns `false` (extending nothing)
    /// when any of them is no longer held by `owner`.
    fn extend<'a>(
        &'a self,
        keys: &'a [String],
        owner: Uuid,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Whether any of the keys is held by an owner other than `owner`.
    fn is_locked_by_other<'a>(
        &'a self,
        keys: &'a [String],
        owner: Uuid,
    ) -> BoxFuture<'a, Result<bool>>;

    /// An id of the lock service's current incarnation (Redis: its `run_id`), which changes
    /// when it restarts and so forgets every lock; `None` when it cannot restart on its own
    /// (in-process).
    fn instance_id(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async { Ok(None) })
    }
}

/// The in-process [`Locker`] of standalone mode.
#[derive(Debug, Default)]
pub struct MemLocker {
    held: Mutex<HashMap<String, (Uuid, Instant)>>,
}

impl MemLocker {
    /// No locks held.
    #[must_use]
    pub fn new() -> Self {
        MemLocker::default()
    }

    fn holder(map: &HashMap<String, (Uuid, Instant)>, key: &str, now: Instant) -> Option<Uuid> {
        map.get(key)
            .filter(|(_, until)| *until > now)
            .map(|(o, _)| *o)
    }
}

impl Locker for MemLocker {
    fn try_lock<'a>(
        &'a self,
        keys: &'a [String],
        owner: Uuid,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut map = self.held.lock();
            if let Some(k) = keys
                .iter()
                .find(|k| Self::holder(&map, k, now).is_some_and(|o| o != owner))
            {
                return Ok(Some(k.clone()));
            }
            for k in keys {
                map.insert(k.clone(), (owner, now + ttl));
            }
            Ok(None)
        })
    }

    fn unlock<'a>(&'a self, keys: &'a [String], owner: Uuid) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut map = self.held.lock();
            for k in keys {
                if map.get(k).is_some_and(|(o, _)| *o == owner) {
                    map.remove(k);
                }
            }
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
            let now = Instant::now();
            let mut map = self.held.lock();
            if !keys
                .iter()
                .all(|k| Self::holder(&map, k, now) == Some(owner))
            {
                return Ok(false);
            }
            for k in keys {
                map.insert(k.clone(), (owner, now + ttl));
            }
            Ok(true)
        })
    }

    fn is_locked_by_other<'a>(
        &'a self,
        keys: &'a [String],
        owner: Uuid,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let now = Instant::now();
            let map = self.held.lock();
            Ok(keys
                .iter()
                .any(|k| Self::holder(&map, k, now).is_some_and(|o| o != owner)))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_string()).collect()
    }

    #[tokio::test]
    async fn all_or_nothing_owner_only_and_expiry() {
        let l = MemLocker::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ttl = Duration::from_secs(60);
        assert_eq!(l.try_lock(&keys(&["x", "y"]), a, ttl).await.unwrap(), None);
        // b cannot take y, and so takes nothing (z stays free).
        assert_eq!(
            l.try_lock(&keys(&["z", "y"]), b, ttl).await.unwrap(),
            Some("y".into())
        );
        assert!(!l.is_locked_by_other(&keys(&["z"]), a).await.unwrap());
        assert!(l.is_locked_by_other(&keys(&["x"]), b).await.unwrap());
        assert!(!l.is_locked_by_other(&keys(&["x"]), a).await.unwrap());
        // b's unlock of a's key does nothing.
        l.unlock(&keys(&["x"]), b).await.unwrap();
        assert!(l.is_locked_by_other(&keys(&["x"]), b).await.unwrap());
        assert!(!l.extend(&keys(&["x", "z"]), a, ttl).await.unwrap());
        assert!(l.extend(&keys(&["x", "y"]), a, ttl).await.unwrap());
        l.unlock(&keys(&["x", "y"]), a).await.unwrap();
        assert_eq!(l.try_lock(&keys(&["y"]), b, ttl).await.unwrap(), None);

        // An expired lock is free for others, and the old owner cannot release the new one.
        let short = Duration::from_millis(50);
        assert_eq!(l.try_lock(&keys(&["e"]), a, short).await.unwrap(), None);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(l.try_lock(&keys(&["e"]), b, ttl).await.unwrap(), None);
        l.unlock(&keys(&["e"]), a).await.unwrap();
        assert!(l.is_locked_by_other(&keys(&["e"]), a).await.unwrap());
    }
}
