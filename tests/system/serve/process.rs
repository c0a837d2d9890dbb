//! The real `certfleet serve` as a child process (killed when dropped), its configuration
//! file, and `certfleet token create`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the service may take to migrate its database and bind; it normally takes
/// well under a second. Only a hung start-up ever reaches it.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Writes a `certfleet.toml` into `dir` for `database_url`, allowing probes to loopback
/// only (`127.0.0.0/8`, which the default `probe.allow` excludes).
pub fn write_config(dir: &Path, database_url: &str) -> PathBuf {
    let outbox = dir.join("outbox");
    let text = format!(
        "[database]\nurl = {url:?}\nmax_connections = 8\n\n\
         [server]\nlisten = \"127.0.0.1:0\"\n\n\
         [probe]\nallow = [\"127.0.0.0/8\"]\ntimeout = \"5s\"\n\n\
         [notify]\noutbox_dir = {outbox:?}\n",
        url = database_url,
        outbox = outbox.display().to_string(),
    );
    let path = dir.join("certfleet.toml");
    std::fs::write(&path, text).expect("write the test config");
    path
}

/// `certfleet ARGS...` with every `CERTFLEET_*` variable of the test's environment
/// removed: `CERTFLEET_SECTION__KEY` variables override the config, and a developer's
/// `CERTFLEET_DATABASE__URL` must not point the service under test elsewhere.
pub fn certfleet(args: &[&str]) -> Command {
    let mut command = Command::new(crate::bin::certfleet());
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("CERTFLEET_") {
            command.env_remove(name);
        }
    }
    command
}

/// `certfleet token create --agent AGENT`: the token, alone on the last stdout line.
pub fn create_token(config: &Path, agent: &str) -> String {
    let config = config.to_str().expect("temporary paths are UTF-8");
    let output = certfleet(&["token", "create", "--config", config, "--agent", agent])
        .output()
        .expect("run certfleet token create");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "certfleet token create failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .expect("a token line")
        .trim()
        .to_owned()
}

/// A running `certfleet serve`; killed when dropped.
pub struct Service {
    /// Where the API listens (learned from the service's stdout).
    pub address: SocketAddr,
    child: Child,
    log_path: PathBuf,
}

impl Service {
    /// Starts `certfleet serve --config CONFIG --roles ROLES --listen 127.0.0.1:0`, with
    /// its log in `CONFIG`'s folder, and returns once it prints where it listens.
    pub fn start(config: &Path, roles: &str) -> Service {
        Self::start_with_env(config, roles, &[])
    }

    /// Like [`start`](Self::start), with extra environment variables (e.g. `RUST_LOG`).
    /// Everything the service prints on stdout is kept too ([`stdout`](Self::stdout)).
    pub fn start_with_env(config: &Path, roles: &str, env: &[(&str, &str)]) -> Service {
        let dir = config.parent().expect("the config is in a folder");
        let log_path = dir.join(format!("serve-{roles}.log").replace(',', "-"));
        let log = File::create(&log_path).expect("create the service log");
        let config_arg = config.to_str().expect("temporary paths are UTF-8");
        let mut child = certfleet(&["serve", "--config", config_arg, "--roles", roles])
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start certfleet serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdout_path = log_path.with_extension("stdout");
        let mut copy = File::create(&stdout_path).expect("create the service's stdout file");
        let (lines, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(copy, "{line}");
                if let Some(address) = line.strip_prefix("certfleet: listening on http://") {
                    let _ = lines.send(address.trim().to_owned());
                }
            }
        });
        let mut service = Service {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            log_path,
        };
        match listening.recv_timeout(START_LIMIT) {
            Ok(address) => {
                service.address = address.parse().expect("the listening line has an address");
                service
            }
            Err(_) => {
                let status = service.child.try_wait().ok().flatten();
                panic!(
                    "certfleet serve printed no listening line (exit status: {status:?}); log:\n{}",
                    service.log()
                );
            }
        }
    }

    /// Starts `certfleet serve --config CONFIG --roles ROLES` for roles without the API
    /// (nothing to wait for: the caller watches the database for its work).
    pub fn start_in_background(config: &Path, roles: &str) -> Service {
        let dir = config.parent().expect("the config is in a folder");
        let log_path = dir.join(format!("serve-{roles}.log").replace(',', "-"));
        let log = File::create(&log_path).expect("create the service log");
        let config_arg = config.to_str().expect("temporary paths are UTF-8");
        let child = certfleet(&["serve", "--config", config_arg, "--roles", roles])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start certfleet serve");
        Service {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            log_path,
        }
    }

    /// The service's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The service's peak resident memory (`VmHWM` of /proc/PID/status), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmHWM line")
    }

    /// Freezes the process (SIGSTOP): it holds what it has, and does nothing more.
    pub fn freeze(&self) {
        let status = Command::new("kill")
            .args(["-STOP", &self.pid().to_string()])
            .status()
            .expect("run kill -STOP");
        assert!(status.success(), "kill -STOP {} failed", self.pid());
    }

    /// Wakes a frozen process (SIGCONT): it goes on from where it stood.
    pub fn resume(&self) {
        let status = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .status()
            .expect("run kill -CONT");
        assert!(status.success(), "kill -CONT {} failed", self.pid());
    }

    /// SIGKILL, as a crash would, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the service logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// What the service printed on stdout so far (services started with
    /// [`start`](Self::start) only).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.log_path.with_extension("stdout")).unwrap_or_default()
    }

    /// `http://ADDRESS` (for messages).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
