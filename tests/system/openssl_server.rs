//! `openssl s_server` as a child process, killed when dropped: for what rustls will not
//! serve (TLS 1.0, RSA-1024 keys) and to test against a second TLS stack.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::{Cert, Pki};

/// A running `openssl s_server`.
pub struct OpensslServer {
    pub port: u16,
    child: Child,
    log_path: PathBuf,
}

/// The arguments of an `openssl s_server` to start.
pub struct OpensslServerBuilder {
    args: Vec<String>,
    /// Bound to 127.0.0.1 only (a loopback-scope listener), not every address.
    loopback_only: bool,
}

impl OpensslServer {
    /// Serves `leaf` (with its key) followed by `chain`, in that order.
    pub fn serving(leaf: &Cert, chain: &[&Cert], pki: &Pki) -> OpensslServerBuilder {
        let mut args = vec![
            "-cert".to_owned(),
            path_str(&leaf.cert_path),
            "-key".to_owned(),
            path_str(&leaf.key_path),
        ];
        if !chain.is_empty() {
            let name = format!("chain-{}.pem", &leaf.sha256[..16]);
            args.push("-cert_chain".to_owned());
            args.push(path_str(&pki.bundle(&name, chain)));
        }
        OpensslServerBuilder {
            args,
            loopback_only: false,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the server wrote on stdout and stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OpensslServerBuilder {
    /// Adds raw `s_server` arguments, e.g. `["-tls1_2"]`, `["-Verify", "1"]`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    /// Advertise the subject of `ca` as an acceptable client CA (and trust it).
    pub fn ca_file(mut self, ca: &Cert) -> Self {
        self.args.push("-CAfile".to_owned());
        self.args.push(path_str(&ca.cert_path));
        self
    }

    /// Binds 127.0.0.1 alone: a listener only the host itself can reach.
    pub fn loopback_only(mut self) -> Self {
        self.loopback_only = true;
        self
    }

    /// Starts the server and waits (up to 5 s, retrying a TCP connect) until it accepts.
    pub fn start(self, pki: &Pki) -> Result<OpensslServer, String> {
        let port = free_port();
        let log_path = pki.path(&format!("s_server-{port}.log"));
        let log = File::create(&log_path).map_err(|err| format!("log file: {err}"))?;
        let log_err = log.try_clone().map_err(|err| format!("log file: {err}"))?;
        let accept = if self.loopback_only {
            format!("127.0.0.1:{port}")
        } else {
            port.to_string()
        };
        let child = Command::new("openssl")
            .args(["s_server", "-accept", &accept, "-quiet"])
            .args(&self.args)
            // A stdin pipe that stays open and silent: s_server reads it for data to send.
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| format!("openssl s_server did not start: {err}"))?;
        let mut server = OpensslServer {
            port,
            child,
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "openssl s_server {:?} exited with {status}: {}",
                    self.args,
                    server.log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "openssl s_server {:?} did not accept within 5 s: {}",
                    self.args,
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A port that was free a moment ago (bind to port 0, read it, release it).
/// A port for a server that binds it itself (openssl s_server, PostgreSQL, aiosmtpd...).
///
/// Taken below Linux's ephemeral range (32768-60999), walking a per-process sequence: a
/// port handed out here is never one that another test's `bind(0)` listeners or outgoing
/// connections can grab between this check and the server's own bind, and two calls in
/// one test run never return the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12_000;
    const SPAN: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 97) * 200;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + step) % SPAN) as u16;
        let free_v4 = TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free_v4 {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}
