//! The L2 cache: bytes by key with a time to live, shared by every transaction of a process
//! (standalone) or of a cluster (Redis).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sop_core::Result;

use crate::BoxFuture;

/// Bytes by key, each with a time to live. A miss is never an error: the caller goes to storage.
pub trait Cache: Send + Sync {
    /// The bytes under `key`; with `slide = Some(ttl)`, the entry's life restarts at `ttl`.
    fn get<'a>(
        &'a self,
        key: &'a str,
        slide: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;

    /// Stores `value` under `key` for `ttl`.
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<()>>;

    /// Forgets the keys.
    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<()>>;
}

/// The in-process [`Cache`] of standalone mode, bounded in bytes: when full, expired entries go
/// first, then the entries closest to expiry.
#[derive(Debug)]
pub struct MemCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, (Vec<u8>, Instant)>,
    bytes: usize,
}

impl MemCache {
    /// An empty cache holding at most `capacity` bytes of keys and values.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        MemCache {
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    /// Bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

impl Inner {
    fn remove(&mut self, key: &str) {
        if let Some((v, _)) = self.map.remove(key) {
            self.bytes -= key.len() + v.len();
        }
    }

    fn make_room(&mut self, need: usize, capacity: usize, now: Instant) {
        if self.bytes + need <= capacity {
            return;
        }
        let expired: Vec<String> = self
            .map
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove(&k);
        }
        if self.bytes + need <= capacity {
            return;
        }
        let mut by_expiry: Vec<(Instant, String)> = self
            .map
            .iter()
            .map(|(k, (_, until))| (*until, k.clone()))
            .collect();
        by_expiry.sort();
        for (_, k) in by_expiry {
            if self.bytes + need <= capacity {
                break;
            }
            self.remove(&k);
        }
    }
}

impl Cache for MemCache {
    fn get<'a>(
        &'a self,
        key: &'a str,
        slide: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut inner = self.inner.lock();
            match inner.map.get_mut(key) {
                Some((v, until)) if *until > now => {
                    if let Some(ttl) = slide {
                        *until = now + ttl;
                    }
                    Ok(Some(v.clone()))
                }
                Some(_) => {
                    inner.remove(key);
                    Ok(None)
                }
                None => Ok(None),
            }
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut inner = self.inner.lock();
            inner.remove(key);
            let need = key.len() + value.len();
            if need > self.capacity {
                return Ok(());
            }
            inner.make_room(need, self.capacity, now);
            inner.bytes += need;
            inner.map.insert(key.to_string(), (value, now + ttl));
            Ok(())
        })
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            for k in keys {
                inner.remove(k);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn ttl_sliding_ttl_and_byte_bound() {
        let c = MemCache::new(100);
        let long = Duration::from_secs(60);
        c.set("a", vec![1; 10], long).await.unwrap();
        assert_eq!(c.get("a", None).await.unwrap(), Some(vec![1; 10]));
        assert_eq!(c.bytes(), 11);

        c.set("s", vec![2], Duration::from_millis(600))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        // Sliding: the read restarts its life.
        assert!(
            c.get("s", Some(Duration::from_millis(600)))
                .await
                .unwrap()
                .is_some()
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(c.get("s", None).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(c.get("s", None).await.unwrap().is_none());

        // Over capacity: the entry closest to expiry goes first.
        c.set("b", vec![3; 40], Duration::from_secs(1))
            .await
            .unwrap();
        c.set("c", vec![4; 40], long).await.unwrap();
        c.set("d", vec![5; 40], long).await.unwrap();
        assert!(c.get("b", None).await.unwrap().is_none());
        assert!(c.get("d", None).await.unwrap().is_some());
        assert!(c.bytes() <= 100);
        c.delete(&["d".to_string()]).await.unwrap();
        assert!(c.get("d", None).await.unwrap().is_none());
        // Too big for the whole cache: not stored, not an error.
        c.set("huge", vec![0; 200], long).await.unwrap();
        assert!(c.get("huge", None).await.unwrap().is_none());
    }
}
