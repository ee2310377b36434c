//! Test support for sop-rs.
//!
//! [`RedisServer`] starts a private `redis-server` (found on `PATH`) on a free loopback port with
//! its own folder, and can stop, restart and kill it, so tests of clustered mode never depend on
//! (or disturb) a Redis the machine happens to run. When `redis-server` is missing it fails with
//! how to install it: tests that need Redis never skip silently.

pub mod rng;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private redis-server for one test.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Arguments added to every start (a cluster node's).
    extra: Vec<String>,
}

/// The message when `redis-server` cannot be started.
pub const INSTALL_HINT: &str = "redis-server was not found on PATH: the clustered-mode tests need it. \
Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`) \
and run the tests again";

impl RedisServer {
    /// Starts one on a free port.
    ///
    /// # Panics
    /// When `redis-server` is not installed (with [`INSTALL_HINT`]) or does not come up: this is
    /// test support, where a panic is the failure report.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    #[allow(clippy::expect_used)]
    fn start_with(extra: Vec<String>) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temporary folder for redis-server");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
            extra,
        };
        server.launch();
        server
    }

    #[allow(clippy::expect_used, clippy::panic)]
    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Listening is not enough: it answers commands only once it has started (a PING that
        // gets PONG). A port taken by another test's server would answer too, so this server
        // must still be running afterwards.
        while !ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "redis-server on port {} exited at once ({status}): the port was taken",
                self.port
            );
        }
    }

    /// `redis://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it (SIGKILL: everything it held is gone, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it and starts a new one on the same port (a Redis restart: new `run_id`, no keys).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Its folder.
    #[must_use]
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nobody listens on right now.
#[must_use]
#[allow(clippy::expect_used)]
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether a Redis server on `port` answers PING with PONG.
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// A private Redis Cluster of `n` masters (no replicas) on loopback ports, joined with
/// `redis-cli --cluster create`, each master restartable (a restarted master keeps its slots,
/// from its `nodes.conf`, and forgets every key).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` (at least 3) masters and joins them.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is missing or the cluster does not form.
    #[must_use]
    #[allow(clippy::expect_used, clippy::panic)]
    pub fn start(n: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..n.max(3))
            .map(|_| {
                RedisServer::start_with(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .iter()
                    .map(|s| (*s).to_string())
                    .collect(),
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli (installed with redis-server): {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every master says `cluster_state:ok`.
    #[allow(clippy::panic)]
    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            loop {
                let ok = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"));
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    panic!("the Redis Cluster did not become ok within 30 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis-cluster://127.0.0.1:<p1>?node=127.0.0.1:<p2>&...`.
    #[must_use]
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", n.port));
        }
        url
    }

    /// Restarts master `i` (SIGKILL, then the same port and folder) and waits for the cluster.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
        self.wait_ok();
    }
}
