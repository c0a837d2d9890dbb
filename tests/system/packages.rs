//! The Debian packages, for real: `packaging/build-debs.sh` builds them from the binary this
//! test run already built, `dpkg -i` installs them into this machine, the installed service
//! starts from the installed config as its system user (as its unit would), the installed
//! agent reports to it once, and `dpkg --purge` removes every trace.
//!
//! It changes the machine (packages, a system user), so it runs only with
//! `CERTFLEET_TEST_PACKAGES=1`, which `scripts/test` sets when it runs as root with dpkg;
//! otherwise it skips through `testkit::skip` (a failure under `CERTFLEET_TEST_STRICT=1`).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bound on the service's start-up (migrations and bind take well under a second).
const START_LIMIT: Duration = Duration::from_secs(60);
const AGENT_HOSTNAME: &str = "certfleet-package-test";

const SERVER_FILES: &[&str] = &[
    "/usr/bin/certfleet",
    "/etc/certfleet/certfleet.toml",
    "/lib/systemd/system/certfleet.service",
];
const AGENT_FILES: &[&str] = &[
    "/usr/bin/certfleet-agent",
    "/usr/lib/certfleet-agent/certfleet",
    "/etc/certfleet/agent.toml",
    "/lib/systemd/system/certfleet-agent.service",
];
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants";

#[test]
fn debian_packages_install_run_report_and_purge() {
    if std::env::var("CERTFLEET_TEST_PACKAGES").as_deref() != Ok("1") {
        certfleet_testkit::skip(
            "installs packages into this machine: set CERTFLEET_TEST_PACKAGES=1 (root, dpkg; \
             scripts/test does)",
        );
        return;
    }
    let out = tempfile::tempdir().expect("a temporary folder");
    let debs = build_packages(out.path());
    let installed = Installed;
    succeed(Command::new("dpkg").arg("-i").args(&debs), "dpkg -i");

    check_files_user_and_units();
    let service = InstalledService::start();
    let token = create_token();
    report_once(&service.url(), &token);
    assert_eq!(
        hosts_named(AGENT_HOSTNAME),
        1,
        "the agent's report reached the store"
    );
    drop(service);

    drop(installed);
    for path in SERVER_FILES.iter().chain(AGENT_FILES) {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
    for path in ["/var/lib/certfleet", "/etc/certfleet"] {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
    for unit in ["certfleet.service", "certfleet-agent.service"] {
        let link = Path::new(WANTS).join(unit);
        assert!(
            link.symlink_metadata().is_err(),
            "{} is left after the purge",
            link.display()
        );
    }
}

/// Runs the packaging script on this test run's binary; the two `.deb` paths.
fn build_packages(out: &Path) -> Vec<PathBuf> {
    let repo = crate::bin::repo();
    let output = succeed(
        Command::new("bash")
            .arg(repo.join("packaging/build-debs.sh"))
            .arg(crate::bin::certfleet())
            .arg(out)
            .env("DEB_COMPRESSION", "none"),
        "packaging/build-debs.sh",
    );
    let debs: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    let names: Vec<String> = debs
        .iter()
        .map(|deb| {
            deb.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(debs.len(), 2, "two packages: {names:?}");
    assert!(names[0].starts_with("certfleet_"), "{names:?}");
    assert!(names[1].starts_with("certfleet-agent_"), "{names:?}");
    debs
}

/// Purges both packages when dropped, so a failed assertion leaves the machine clean.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "certfleet-agent", "certfleet"])
            .stdout(Stdio::null())
            .status();
    }
}

fn check_files_user_and_units() {
    for path in SERVER_FILES.iter().chain(AGENT_FILES) {
        assert!(Path::new(path).is_file(), "{path} is installed");
    }
    let passwd = succeed(
        Command::new("getent").args(["passwd", "certfleet"]),
        "getent",
    );
    let passwd = String::from_utf8_lossy(&passwd.stdout).trim().to_owned();
    let fields: Vec<&str> = passwd.split(':').collect();
    assert_eq!(fields.len(), 7, "a passwd line: {passwd}");
    assert!(
        fields[6].ends_with("nologin"),
        "the service user cannot log in: {passwd}"
    );
    let uid: u32 = fields[2].parse().expect("a numeric uid");
    let state = std::fs::metadata("/var/lib/certfleet").expect("/var/lib/certfleet exists");
    assert_eq!(
        state.uid(),
        uid,
        "/var/lib/certfleet belongs to the certfleet user"
    );
    let config = std::fs::metadata("/etc/certfleet/certfleet.toml").expect("the config");
    assert_eq!(
        config.mode() & 0o007,
        0,
        "the service config is not world-readable"
    );

    let server_unit = read("/lib/systemd/system/certfleet.service");
    for line in [
        "User=certfleet",
        "StateDirectory=certfleet",
        "ExecStart=/usr/bin/certfleet serve --config /etc/certfleet/certfleet.toml",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(server_unit.contains(line), "certfleet.service has {line}");
    }
    let agent_unit = read("/lib/systemd/system/certfleet-agent.service");
    for line in [
        "ExecStart=/usr/lib/certfleet-agent/certfleet agent --config /etc/certfleet/agent.toml",
        "CPUQuota=",
        "MemoryMax=",
        "Nice=19",
        "CPUSchedulingPolicy=idle",
        "IOSchedulingClass=idle",
    ] {
        assert!(
            agent_unit.contains(line),
            "certfleet-agent.service has {line}"
        );
    }
    // The postinst enables the units with deb-systemd-helper, when it is there.
    if Path::new("/usr/bin/deb-systemd-helper").exists() {
        for unit in ["certfleet.service", "certfleet-agent.service"] {
            let link = Path::new(WANTS).join(unit);
            let enabled = link.symlink_metadata().is_ok();
            assert!(enabled, "{} is enabled", link.display());
        }
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        succeed(
            Command::new("systemd-analyze").args([
                "verify",
                "/lib/systemd/system/certfleet.service",
                "/lib/systemd/system/certfleet-agent.service",
            ]),
            "systemd-analyze verify",
        );
    }
}

/// The installed `certfleet serve`, run as the unit runs it: its `ExecStart` command as the
/// `certfleet` user (setpriv execs, as systemd's `User=` does, so killing the child kills
/// the service), in its state folder, on a loopback port of its own. Killed when dropped.
struct InstalledService {
    child: Child,
    address: String,
}

impl InstalledService {
    fn start() -> InstalledService {
        let unit = read("/lib/systemd/system/certfleet.service");
        let exec_start = unit
            .lines()
            .find_map(|line| line.strip_prefix("ExecStart="))
            .expect("certfleet.service has ExecStart");
        let mut command = as_certfleet_user(exec_start.split_whitespace());
        command
            .args(["--listen", "127.0.0.1:0"])
            .current_dir("/var/lib/certfleet");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the installed certfleet serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("certfleet: listening on http://") {
                    let _ = lines.send(address.trim().to_owned());
                }
            }
        });
        let mut service = InstalledService {
            child,
            address: String::new(),
        };
        match listening.recv_timeout(START_LIMIT) {
            Ok(address) => service.address = address,
            Err(_) => panic!(
                "the installed service printed no listening line (status {:?})",
                service.child.try_wait()
            ),
        }
        service
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for InstalledService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PROGRAM ARGS...` as the certfleet system user, without the test's `CERTFLEET_*`
/// variables (the service reads every one of them as configuration).
fn as_certfleet_user<'a>(program_and_args: impl IntoIterator<Item = &'a str>) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid",
            "certfleet",
            "--regid",
            "certfleet",
            "--init-groups",
            "--",
        ])
        .args(program_and_args)
        .env("RUST_LOG", "info");
    remove_certfleet_variables(&mut command);
    command
}

fn remove_certfleet_variables(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("CERTFLEET_") {
            command.env_remove(name);
        }
    }
}

/// `certfleet token create` with the installed binary and config: the token line.
fn create_token() -> String {
    let output = succeed(
        &mut as_certfleet_user([
            "/usr/bin/certfleet",
            "token",
            "create",
            "--config",
            "/etc/certfleet/certfleet.toml",
            "--agent",
            "package-test",
        ]),
        "certfleet token create",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout.lines().rev().find(|line| !line.trim().is_empty());
    token.expect("a token line").trim().to_owned()
}

/// The installed agent, once, with the installed config: exit 0 means delivered.
fn report_once(server: &str, token: &str) {
    let mut command = Command::new("/usr/bin/certfleet-agent");
    remove_certfleet_variables(&mut command);
    command
        .args([
            "--once",
            "--config",
            "/etc/certfleet/agent.toml",
            "--spool-dir",
            "",
        ])
        .args(["--server", server, "--token", token])
        .env("CERTFLEET_AGENT__HOSTNAME", AGENT_HOSTNAME)
        .env("CERTFLEET_AGENT__SPLAY", "0s");
    succeed(&mut command, "certfleet-agent --once");
}

/// Hosts of that name in the installed service's SQLite database.
fn hosts_named(hostname: &str) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let url = "sqlite:///var/lib/certfleet/certfleet.db?mode=ro";
        let mut connection = sqlx::SqliteConnection::connect(url)
            .await
            .expect("open the installed database");
        sqlx::query_scalar("SELECT count(*) FROM hosts WHERE hostname = $1")
            .bind(hostname)
            .fetch_one(&mut connection)
            .await
            .expect("count the hosts")
    })
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// Runs the command and insists on success, with its output in the failure message.
fn succeed(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
