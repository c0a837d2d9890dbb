//! A real DNS server for the tests: dnsmasq on a free loopback port, answering only the
//! records the test gives it (no upstream, no /etc/hosts), killed when dropped.
//! `scripts/test` installs dnsmasq.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::openssl_server::free_port;

/// Bound on dnsmasq binding its port; it takes milliseconds.
const START_LIMIT: Duration = Duration::from_secs(30);

pub struct Dnsmasq {
    pub port: u16,
    child: Child,
}

impl Dnsmasq {
    /// Starts dnsmasq on 127.0.0.1 with these `--address=/name/ip` and `--ptr-record=`
    /// style options; `Err` when dnsmasq is not installed.
    pub fn start(records: &[String]) -> Result<Dnsmasq, String> {
        let port = free_port();
        // /usr/sbin is not on every user's PATH.
        let sbin = std::path::Path::new("/usr/sbin/dnsmasq");
        let program = if sbin.exists() {
            sbin
        } else {
            "dnsmasq".as_ref()
        };
        let child = Command::new(program)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--user=root",
            ])
            .arg(format!("--port={port}"))
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot run dnsmasq: {error}"))?;
        let mut server = Dnsmasq { port, child };
        let started = Instant::now();
        while !udp_bound(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = server.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                panic!("dnsmasq exited ({status}): {stderr}");
            }
            assert!(started.elapsed() < START_LIMIT, "dnsmasq did not bind");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(server)
    }

    /// `127.0.0.1:PORT`, for `--dns-server` and `probe.nameservers`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a UDP socket is bound to 127.0.0.1:`port` (from /proc/net/udp).
fn udp_bound(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|table| {
        table
            .lines()
            .skip(1)
            .any(|line| line.split_whitespace().nth(1) == Some(wanted.as_str()))
    })
}
