//! Test support for sop-rs.
//!
//! [`RedisServer`] starts a private `redis-server` (found on `PATH`) on a free loopback port with
//! its own folder, and can stop, restart and kill it, so tests of clustered mode never depend on
//! (or disturb) a Redis the machine happens to run. When `redis-server` is missing it fails with
//! how to install it: tests that need Redis never skip silently.

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
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temporary folder for redis-server");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
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
