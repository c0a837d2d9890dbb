//! The agent's spool disk fills up while the service is down: a 64 KiB tmpfs (mounted by
//! the test; root only, skipped otherwise, saying so) is the spool folder, nearly full of
//! a filler file. The agent keeps running a cycle every second; on the full disk it drops
//! the oldest spooled reports to keep the newest (as its spool bounds do), says so, never
//! crashes, and once the service is back delivers every report it kept.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use certfleet_store::StoreOptions;

use crate::support::{
    certfleet, create_token, database_url, wait_for, write_service_config, Service,
};

/// Bound on each stage (a few agent cycles of one second each).
const STAGE_LIMIT: Duration = Duration::from_secs(60);
/// Free room left beside the filler: three 4 KiB pages, a few reports.
const ROOM: u64 = 3 * 4096;

#[test]
fn a_full_spool_disk_drops_reports_with_a_message_and_the_kept_ones_arrive_later() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).expect("create the spool folder");
    let _mount = match Tmpfs::mount(&spool, "64k") {
        Ok(mount) => mount,
        Err(why) => {
            certfleet_testkit::skip(&format!(
                "cannot mount a tmpfs as the spool ({why}); run as root"
            ));
            return;
        }
    };
    fill_leaving(&spool.join("filler"), ROOM);

    let config = write_service_config(dir.path(), "127.0.0.0/8");
    let token = create_token(&config);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let agent_log = dir.path().join("agent.log");
    let mut agent = Agent::start(&url, &token, &spool, &agent_log);
    let log = || std::fs::read_to_string(&agent_log).unwrap_or_default();

    // The service is down: reports spool until the disk is full, then the oldest make room
    // for the newest, with a warning, and the agent goes on.
    let mut first_spooled = None;
    wait_for("two reports dropped for want of room", STAGE_LIMIT, || {
        agent.assert_alive(&log());
        if first_spooled.is_none() {
            first_spooled = reports(&spool).into_iter().next();
        }
        (log()
            .matches("spool full: the oldest reports were dropped")
            .count()
            >= 2)
            .then_some(())
    });
    let kept = spooled(&spool);
    let dropped = log()
        .matches("spool full: the oldest reports were dropped")
        .count();
    assert!(
        kept >= 1,
        "nothing was spooled before the disk filled:\n{}",
        log()
    );
    assert!(
        !log().contains("cannot spool"),
        "a report was lost:\n{}",
        log()
    );
    let first_spooled = first_spooled.expect("a report was spooled");
    assert!(
        !reports(&spool).contains(&first_spooled),
        "the oldest report {first_spooled} was kept, not the newest"
    );

    // The service comes back: the kept reports and the new ones are delivered.
    let service = Service::start(&config, "api", &format!("127.0.0.1:{port}"));
    wait_for(
        "the spool drained and a cycle delivered",
        STAGE_LIMIT,
        || {
            agent.assert_alive(&log());
            (spooled(&spool) == 0 && log().contains("cycle done")).then_some(())
        },
    );
    let delivered = log().matches("report delivered").count();
    agent.stop();
    let log = log();
    assert!(
        delivered > kept,
        "{delivered} delivered, {kept} were kept:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = runtime
        .block_on(certfleet_store::connect(
            &database_url(dir.path()),
            StoreOptions::default(),
        ))
        .expect("open the service's database");
    let inventory = runtime.block_on(store.inventory()).expect("inventory");
    assert_eq!(inventory.hosts, 1, "{inventory:?}\n{}", service.log());
    eprintln!(
        "spool full: {kept} reports kept in the {} KiB left on the spool's disk, the oldest \
         dropped {dropped} times to make room while the service was down, {delivered} \
         delivered after it came back",
        ROOM / 1024
    );
}

/// A tmpfs mounted on a folder; unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|line| line.starts_with("Uid:"))?;
                line.split_whitespace().nth(2).map(str::to_owned)
            });
        if uid.as_deref() != Some("0") {
            return Err(format!("effective uid {uid:?}, not root"));
        }
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|error| format!("mount: {error}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Writes `path` until the file system is full, then gives back `room` bytes.
fn fill_leaving(path: &Path, room: u64) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let page = [0xa5u8; 4096];
    loop {
        match file.write_all(&page) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(28) => break, // ENOSPC
            Err(error) => panic!("fill the tmpfs: {error}"),
        }
    }
    let written = file.metadata().expect("filler metadata").len();
    let keep = (written / 4096).saturating_sub(room / 4096) * 4096;
    file.set_len(keep).expect("shrink the filler");
    file.sync_all().expect("sync the filler");
}

/// Reports in the spool (the filler is not one).
fn spooled(dir: &Path) -> usize {
    reports(dir).len()
}

/// The spooled reports' file names, oldest first.
fn reports(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("report-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `certfleet agent` running a cycle every second, its log in a file.
struct Agent {
    child: Child,
}

impl Agent {
    fn start(url: &str, token: &str, spool: &Path, log: &Path) -> Agent {
        let log = std::fs::File::create(log).expect("agent log");
        let spool = spool.to_str().expect("UTF-8 path");
        let child = certfleet(&["agent", "-v", "--server", url, "--token", token])
            .args(["--spool-dir", spool, "--interval", "1s"])
            .env("CERTFLEET_AGENT__SPLAY", "0s")
            .env("CERTFLEET_AGENT__RETRY_ATTEMPTS", "1")
            .env("CERTFLEET_AGENT__RETRY_BACKOFF", "20ms")
            .env("CERTFLEET_AGENT__TIMEOUT", "5s")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start certfleet agent");
        Agent { child }
    }

    fn assert_alive(&mut self, log: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the agent exited ({status}):\n{log}");
        }
    }

    /// SIGTERM, as systemd stops it; it exits cleanly.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait for the agent");
        assert!(status.success(), "the agent stopped with {status}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
