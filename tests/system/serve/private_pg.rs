//! A private PostgreSQL server for one test (never the shared one on 5432): `initdb` into
//! a temporary folder, `postgres` on a free port, and a way to kill it abruptly (SIGKILL
//! to the postmaster and every backend at once, as a crash would) and start it again on
//! the same folder and port, which runs PostgreSQL's crash recovery.
//!
//! PostgreSQL refuses to run as root, so as root it runs as the `postgres` user
//! (`runuser`). Signals are sent with the `kill` command; processes are found in `/proc`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::openssl_server::free_port;

/// Bound on PostgreSQL starting (or recovering) and on its processes disappearing.
const PG_LIMIT: Duration = Duration::from_secs(60);

/// A running (or killed) private PostgreSQL server.
pub struct PrivatePostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    server: Option<Child>,
    starts: u32,
    /// Extra `-c name=value` settings for every start.
    settings: Vec<String>,
}

impl PrivatePostgres {
    /// initdb and start; `Err` says why it cannot run here (no PostgreSQL binaries, or
    /// neither root nor the `postgres` user).
    pub fn start() -> Result<PrivatePostgres, String> {
        Self::start_inner(None)
    }

    /// Like [`start`](Self::start), with `ssl=on` serving this certificate and key.
    pub fn start_with_tls(cert: &Path, key: &Path) -> Result<PrivatePostgres, String> {
        Self::start_inner(Some((cert, key)))
    }

    fn start_inner(tls: Option<(&Path, &Path)>) -> Result<PrivatePostgres, String> {
        let bin = postgres_bin().ok_or("no /usr/lib/postgresql/*/bin/initdb")?;
        let user = output(Command::new("id").arg("-un")).unwrap_or_default();
        let as_postgres = match user.trim() {
            "root" => true,
            "postgres" => false,
            other => return Err(format!("running as {other:?}: need root or postgres")),
        };
        let dir = tempfile::Builder::new()
            .prefix("certfleet-pg-")
            .tempdir()
            .map_err(|error| format!("temporary folder: {error}"))?;
        if as_postgres {
            output(Command::new("chown").arg("postgres:").arg(dir.path()))?;
        }
        let mut pg = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
            as_postgres,
            server: None,
            starts: 0,
            settings: Vec::new(),
        };
        let data = pg.data_dir();
        let mut initdb = pg.command("initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        output(&mut initdb)?;
        if let Some((cert, key)) = tls {
            pg.install_tls(cert, key)?;
        }
        pg.launch();
        Ok(pg)
    }

    /// A hot standby of `primary` on its own port and folder: `pg_basebackup -R` copies the
    /// primary and writes the standby's streaming-replication settings into the copy
    /// (`initdb`'s `pg_hba.conf` lets replication connections in from 127.0.0.1).
    pub fn standby_of(primary: &PrivatePostgres) -> Result<PrivatePostgres, String> {
        let dir = tempfile::Builder::new()
            .prefix("certfleet-pg-standby-")
            .tempdir()
            .map_err(|error| format!("temporary folder: {error}"))?;
        if primary.as_postgres {
            output(Command::new("chown").arg("postgres:").arg(dir.path()))?;
        }
        let mut standby = PrivatePostgres {
            dir,
            bin: primary.bin.clone(),
            port: free_port(),
            as_postgres: primary.as_postgres,
            server: None,
            starts: 0,
            settings: Vec::new(),
        };
        let mut backup = standby.command("pg_basebackup");
        backup.arg("-D").arg(standby.data_dir());
        backup.args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
        ]);
        // -R: standby.signal and primary_conninfo; -c fast: no wait for a checkpoint.
        backup.args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]);
        output(&mut backup)?;
        standby.launch();
        Ok(standby)
    }

    /// Runs SQL with `psql`: what it printed (unaligned, tuples only), or why it failed.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let mut psql = self.command("psql");
        psql.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        psql.args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql]);
        output(&mut psql)
    }

    /// Copies the certificate and key into the data folder (owned by the server's user,
    /// key mode 0600 as PostgreSQL demands) and turns `ssl` on.
    fn install_tls(&mut self, cert: &Path, key: &Path) -> Result<(), String> {
        let data = self.data_dir();
        for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
            let to = data.join(name);
            std::fs::copy(from, &to).map_err(|error| format!("copy {name}: {error}"))?;
            output(Command::new("chmod").arg("600").arg(&to))?;
            if self.as_postgres {
                output(Command::new("chown").arg("postgres:").arg(&to))?;
            }
        }
        self.settings.extend([
            "ssl=on".to_owned(),
            "ssl_cert_file=server.crt".to_owned(),
            "ssl_key_file=server.key".to_owned(),
        ]);
        Ok(())
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// SIGKILL to the postmaster and all its children at once (the postmaster is stopped
    /// first so that it forks no new backend in between); returns when they are gone.
    pub fn kill(&mut self) {
        let mut victims = Vec::new();
        if let Some(postmaster) = self.postmaster_pid() {
            signal("STOP", &[postmaster]);
            victims = children_of(postmaster);
            victims.push(postmaster);
            signal("KILL", &victims);
        }
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let started = Instant::now();
        while victims.iter().any(|pid| is_alive(*pid)) {
            assert!(
                started.elapsed() < PG_LIMIT,
                "PostgreSQL {victims:?} survived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The dead postmaster may linger as a zombie that nobody reaps (its parent,
        // runuser, was killed too), and PostgreSQL refuses to start while the PID in
        // postmaster.pid still exists. It is dead: remove its lock file.
        if !victims.is_empty() {
            let _ = std::fs::remove_file(self.data_dir().join("postmaster.pid"));
            // The same holds for the Unix socket's lock file in the socket folder.
            let socket = format!(".s.PGSQL.{}", self.port);
            let _ = std::fs::remove_file(self.dir.path().join(format!("{socket}.lock")));
            let _ = std::fs::remove_file(self.dir.path().join(socket));
        }
    }

    /// Starts the server again on the same folder and port (crash recovery included).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|start| std::fs::read_to_string(self.log_path(start)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("PostgreSQL log file");
        let log_err = log.try_clone().expect("PostgreSQL log file");
        let data = self.data_dir();
        let socket_dir = self.dir.path().to_owned();
        // fsync is off only to make the test quicker: a killed process loses nothing the
        // kernel already has, and the kernel survives this test.
        let server = self
            .command("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=40"])
            .args(
                self.settings
                    .iter()
                    .flat_map(|setting| ["-c", setting.as_str()]),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("start postgres");
        self.server = Some(server);
        let started = Instant::now();
        loop {
            let mut ready = self.command("pg_isready");
            ready.args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()]);
            if ready.status().is_ok_and(|status| status.success()) {
                return;
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > PG_LIMIT {
                panic!("private PostgreSQL not ready ({exited:?}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `BIN/program`, run as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.current_dir(self.dir.path());
        command
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.path().join(format!("postgres-{start}.log"))
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        is_alive(pid).then_some(pid)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `/usr/lib/postgresql/<newest>/bin` when it has `initdb`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Runs a command to completion; its stdout, or why it failed.
fn output(command: &mut Command) -> Result<String, String> {
    let result = command
        .output()
        .map_err(|error| format!("{command:?}: {error}"))?;
    if !result.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            result.status,
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&result.stdout).into_owned())
}

fn signal(name: &str, pids: &[u32]) {
    let mut command = Command::new("kill");
    command.arg(format!("-{name}"));
    command.args(pids.iter().map(u32::to_string));
    let _ = command.stderr(Stdio::null()).status();
}

/// Processes whose parent is `parent` (from `/proc/PID/stat`).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// A process exists and is not a zombie (a zombie holds no shared memory or socket).
fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// `(state, ppid)` of a process.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"));
    let text = text.ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}
