//! A private `nats-server` with JetStream (Debian's `nats-server` package, which
//! `scripts/test` installs) on a free loopback port, its storage in a temporary folder,
//! that a test can stop and start again on the same port and storage.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian installs the server.
pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A running (or stopped) private NATS server; killed when dropped.
pub struct NatsServer {
    address: SocketAddr,
    storage: tempfile::TempDir,
    child: Option<Child>,
}

/// Whether `nats-server` is installed; when it is not, [`skip`](crate::skip) says so (a
/// failure under `CERTFLEET_TEST_STRICT=1`).
pub fn nats_server_or_skip() -> bool {
    let installed = std::path::Path::new(NATS_SERVER).exists();
    if !installed {
        crate::skip("nats-server is not installed (scripts/test installs Debian's nats-server)");
    }
    installed
}

impl NatsServer {
    /// Starts a server with JetStream on a free port of 127.0.0.1 and waits until it
    /// accepts connections.
    pub fn start() -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = NatsServer {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            storage: tempfile::tempdir().expect("a storage folder"),
            child: None,
        };
        server.start_again();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.address)
    }

    /// The JetStream storage folder.
    pub fn storage(&self) -> PathBuf {
        self.storage.path().to_owned()
    }

    /// Stops the server (SIGKILL: as abrupt as a crash) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and storage (after [`NatsServer::stop`])
    /// and waits until it accepts connections.
    pub fn start_again(&mut self) {
        self.stop();
        let log = self.storage.path().join("nats-server.log");
        let child = Command::new(NATS_SERVER)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.address.port().to_string())
            .arg("-sd")
            .arg(self.storage.path())
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let address = self.address;
        crate::wait_until(
            "nats-server to accept connections",
            Duration::from_secs(30),
            &|| std::fs::read_to_string(&log).unwrap_or_default(),
            || TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok(),
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
