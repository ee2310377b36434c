//! The Redis locker and cache against a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sop_coord::{Cache, Locker, Redis, RedisConfig};
use sop_core::{Error, Uuid};
use sop_testkit::RedisServer;

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| (*s).to_string()).collect()
}

#[tokio::test]
async fn locks_are_all_or_nothing_owner_only_and_expire() {
    let server = RedisServer::start();
    let r = Redis::connect(&RedisConfig::new(server.url()))
        .await
        .unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let ttl = Duration::from_secs(60);
    assert_eq!(r.try_lock(&keys(&["x", "y"]), a, ttl).await.unwrap(), None);
    assert_eq!(
        r.try_lock(&keys(&["z", "y"]), b, ttl).await.unwrap(),
        Some("y".into())
    );
    assert!(
        !r.is_locked_by_other(&keys(&["z"]), a).await.unwrap(),
        "z stayed free"
    );
    assert!(r.is_locked_by_other(&keys(&["x"]), b).await.unwrap());
    r.unlock(&keys(&["x"]), b).await.unwrap();
    assert!(
        r.is_locked_by_other(&keys(&["x"]), b).await.unwrap(),
        "b cannot free a's lock"
    );
    assert!(!r.extend(&keys(&["x", "z"]), a, ttl).await.unwrap());
    assert!(r.extend(&keys(&["x", "y"]), a, ttl).await.unwrap());
    r.unlock(&keys(&["x", "y"]), a).await.unwrap();
    assert_eq!(r.try_lock(&keys(&["y"]), b, ttl).await.unwrap(), None);

    let short = Duration::from_millis(50);
    assert_eq!(r.try_lock(&keys(&["e"]), a, short).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(r.try_lock(&keys(&["e"]), b, ttl).await.unwrap(), None);
    r.unlock(&keys(&["e"]), a).await.unwrap();
    assert!(
        r.is_locked_by_other(&keys(&["e"]), a).await.unwrap(),
        "expired owner cannot free the new owner's lock"
    );
}

#[tokio::test]
async fn cache_ttl_sliding_and_delete() {
    let server = RedisServer::start();
    let r = Redis::connect(&RedisConfig::new(server.url()))
        .await
        .unwrap();
    r.set("k", vec![1, 2, 3], Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(r.get("k", None).await.unwrap(), Some(vec![1, 2, 3]));
    r.set("s", vec![9], Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        r.get("s", Some(Duration::from_millis(300)))
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        r.get("s", None).await.unwrap().is_some(),
        "the read slid its life"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(r.get("s", None).await.unwrap().is_none());
    r.delete(&keys(&["k"])).await.unwrap();
    assert!(r.get("k", None).await.unwrap().is_none());
}

#[tokio::test]
async fn a_restart_changes_the_run_id_and_forgets_locks() {
    let mut server = RedisServer::start();
    let r = Redis::connect(&RedisConfig::new(server.url()))
        .await
        .unwrap();
    let before = r.run_id().await.unwrap();
    let a = Uuid::new_v4();
    r.try_lock(&keys(&["x"]), a, Duration::from_secs(60))
        .await
        .unwrap();
    server.restart();
    // The pool reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match r.run_id().await {
            Ok(id) => break id,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_ne!(before, after);
    assert!(
        !r.is_locked_by_other(&keys(&["x"]), Uuid::new_v4())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn unreachable_redis_is_a_typed_error_within_the_timeout() {
    let port = sop_testkit::free_port();
    let mut cfg = RedisConfig::new(format!("redis://127.0.0.1:{port}"));
    cfg.connect_timeout = Duration::from_millis(500);
    let t = Instant::now();
    let err = Redis::connect(&cfg).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(
        matches!(
            err,
            Error::Coordination(sop_core::CoordinationError::Redis { .. })
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("redis-server is running"),
        "{msg}"
    );

    // Connected, then Redis dies: calls fail with the typed error, they do not hang.
    let mut server = RedisServer::start();
    let mut cfg = RedisConfig::new(server.url());
    cfg.command_timeout = Duration::from_millis(500);
    let r = Redis::connect(&cfg).await.unwrap();
    server.stop();
    let t = Instant::now();
    let err = r.get("k", None).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(
        matches!(
            err,
            Error::Coordination(sop_core::CoordinationError::Redis { .. })
        ),
        "{err}"
    );
}

/// Against a 3-master Redis Cluster: keys of many hash slots are locked all or nothing (a
/// script may touch one slot only), the cache works across slots, and a restart of any one
/// master changes the instance id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_locks_across_slots_all_or_nothing() {
    let mut cluster = sop_testkit::RedisCluster::start(3);
    let r = Redis::connect(&RedisConfig::new(cluster.url()))
        .await
        .unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let ttl = Duration::from_secs(60);
    // 40 keys land on many slots of all three masters.
    let many: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    assert_eq!(r.try_lock(&many, a, ttl).await.unwrap(), None);
    // b wants one of them among fresh keys: refused, and holds none of the fresh ones after.
    let mut want: Vec<String> = (0..20).map(|i| format!("fresh{i}")).collect();
    want.push("k17".into());
    assert_eq!(r.try_lock(&want, b, ttl).await.unwrap(), Some("k17".into()));
    let fresh: Vec<String> = (0..20).map(|i| format!("fresh{i}")).collect();
    assert!(
        !r.is_locked_by_other(&fresh, b).await.unwrap()
            && !r.is_locked_by_other(&fresh, a).await.unwrap(),
        "a refused lock set left some of its keys held"
    );
    assert!(r.is_locked_by_other(&many, b).await.unwrap());
    assert!(r.extend(&many, a, ttl).await.unwrap());
    r.unlock(&many, a).await.unwrap();
    assert!(!r.is_locked_by_other(&many, b).await.unwrap());
    assert_eq!(r.try_lock(&want, b, ttl).await.unwrap(), None);

    for i in 0..20u8 {
        r.set(&format!("c{i}"), vec![i], ttl).await.unwrap();
    }
    assert_eq!(r.get("c7", None).await.unwrap(), Some(vec![7]));
    let gone: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    r.delete(&gone).await.unwrap();
    assert_eq!(r.get("c7", None).await.unwrap(), None);

    let before = r.instance_id().await.unwrap().unwrap();
    assert_eq!(before.split(',').count(), 3, "{before}");
    cluster.restart(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match r.instance_id().await {
            Ok(Some(now)) if now != before => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("a master's restart was not seen: {other:?}"),
        }
    }
}
