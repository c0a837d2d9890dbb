//! The real `certfleet` binary (`serve`, `token create`, `agent`) as child processes.
//!
//! Cargo only tells a package's tests where that package's own binaries are, and the
//! `certfleet` binary lives in another package: testkit builds it once per test process
//! into this test's target folder and profile (`certfleet_testkit::binary`), or
//! `$CERTFLEET_BIN` names one.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest any one child may run; only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(90);

/// The `certfleet` binary.
pub fn certfleet_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CERTFLEET_BIN") {
        return PathBuf::from(path);
    }
    certfleet_testkit::binary::certfleet().to_path_buf()
}

/// `certfleet ARGS...` without the test's own `CERTFLEET_*` variables (the service reads
/// every one of them as configuration).
pub fn certfleet(args: &[&str]) -> Command {
    let mut command = Command::new(certfleet_bin());
    command.args(args).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("CERTFLEET_") {
            command.env_remove(name);
        }
    }
    command
}

/// A service configuration in `dir`: SQLite, probes allowed into `allow`.
pub fn write_service_config(dir: &Path, allow: &str) -> PathBuf {
    let database = dir.join("certfleet.db");
    let text = format!(
        "[database]\nurl = \"sqlite://{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [probe]\nallow = [\"{allow}\"]\ntimeout = \"5s\"\n\n[notify]\noutbox_dir = \"{}\"\n",
        database.display(),
        dir.join("outbox").display(),
    );
    let path = dir.join("certfleet.toml");
    std::fs::write(&path, text).expect("write the service config");
    path
}

/// The SQLite URL of a config written by [`write_service_config`].
pub fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("certfleet.db").display())
}

/// `certfleet token create`: the token on the last line of stdout.
pub fn create_token(config: &Path) -> String {
    let config = config.to_str().expect("UTF-8 path");
    let output = certfleet(&[
        "token",
        "create",
        "--config",
        config,
        "--agent",
        "agent-test",
    ])
    .output()
    .expect("run certfleet token create");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "token create failed: {stdout}");
    stdout
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned()
}

/// A running `certfleet serve`, killed when dropped.
pub struct Service {
    pub address: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// `certfleet serve --config CONFIG --roles ROLES --listen LISTEN`; returns once it
    /// prints where it listens.
    pub fn start(config: &Path, roles: &str, listen: &str) -> Service {
        let log = config.with_file_name(format!("serve-{}.log", random_hex(4)));
        let log_file = std::fs::File::create(&log).expect("service log");
        let config_arg = config.to_str().expect("UTF-8 path");
        let mut child = certfleet(&["serve", "--config", config_arg, "--roles", roles])
            .args(["--listen", listen])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start certfleet serve");
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("certfleet: listening on http://") {
                    let _ = sender.send(address.trim().to_owned());
                }
            }
        });
        let mut service = Service {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            log,
        };
        let Ok(address) = receiver.recv_timeout(LIMIT) else {
            panic!("certfleet serve did not start; log:\n{}", service.log());
        };
        service.address = address.parse().expect("an address");
        service
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished `certfleet agent` run.
pub struct AgentRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// `certfleet agent ARGS...` with `-v` and the given environment, to completion.
pub fn run_agent(args: &[&str], env: &[(&str, &str)]) -> AgentRun {
    let mut command = certfleet(&["agent", "-v"]);
    command
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start certfleet agent");
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("certfleet agent {args:?} still running after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    AgentRun {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Polls `check` every 100 ms until it gives something, or panics after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub use certfleet_testkit::random_hex;
