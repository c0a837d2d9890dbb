//! The hostile-server suite: every misbehaving server costs its probe the deadline or a
//! limit, never the process; memory stays bounded; the well-behaved targets of the same
//! run are reported normally.

use std::thread;
use std::time::Duration;

use crate::cli::probe_json;
use crate::hostile_servers::{HostileServer, Hostility};
use crate::pki::{Pki, Spec};
use crate::tls_server::{TlsServer, Versions};

/// The per-probe deadline of this suite.
const TIMEOUT_MS: u64 = 2000;

#[test]
fn hostile_servers_cost_one_probe_each_and_the_run_goes_on() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("good.test", &["good.test"]));
    let good = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
        .versions(Versions::Both)
        .start()
        .expect("start the rustls server");

    // (behaviour, accepted statuses)
    let mut cases: Vec<(Hostility, &[&str])> = vec![
        (Hostility::Tarpit, &["timeout"]),
        (Hostility::Trickle, &["timeout"]),
        (Hostility::HugeCertificate, &["tls_error"]),
        (Hostility::GarbageRecords, &["tls_error"]),
        (Hostility::Truncated, &["tls_error"]),
        (Hostility::TinyRecords, &["tls_error", "timeout"]),
        (Hostility::Reset, &["tls_error"]),
    ];
    // Every alert description of TLS 1.0 to 1.3 (RFC 5246 7.2, RFC 8446 6, RFC 7507),
    // each sent as fatal, and one that no RFC defines.
    let alerts = [
        0, 10, 20, 21, 22, 30, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 60, 70, 71, 80, 86,
        90, 100, 109, 110, 111, 112, 113, 114, 115, 116, 120, 255,
    ];
    cases.extend(alerts.map(|code| (Hostility::Alert(code), &["tls_error"][..])));
    let servers: Vec<(HostileServer, Hostility, &[&str])> = cases
        .into_iter()
        .map(|(hostility, statuses)| (HostileServer::start(hostility), hostility, statuses))
        .collect();

    let timeout = format!("{TIMEOUT_MS}ms");
    let mut args: Vec<String> = vec!["--timeout".into(), timeout];
    args.push(good.target());
    args.extend(servers.iter().map(|(server, _, _)| server.target()));
    args.push(good.target().replace("127.0.0.1", "localhost"));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();

    let peak = PeakRss::watch_next_certfleet();
    let run = probe_json(&arg_refs);
    let peak_kib = peak.finish();

    let good_result = run.result(&good.target());
    assert_eq!(good_result["status"], "ok", "{}", run.context());
    assert_eq!(good_result["chain"].as_array().map(Vec::len), Some(2));
    for (server, hostility, statuses) in &servers {
        let result = run.result(&server.target());
        let status = result["status"].as_str().unwrap_or("");
        assert!(
            statuses.contains(&status),
            "{hostility:?}: status {status:?}, expected one of {statuses:?}\n{result}"
        );
        let elapsed = result["elapsed_ms"].as_u64().unwrap_or(u64::MAX);
        // The deadline covers the whole probe, the legacy retry included; the margin is for
        // a loaded CI machine, not for the prober.
        assert!(
            elapsed <= TIMEOUT_MS + 1500,
            "{hostility:?} took {elapsed} ms against a {TIMEOUT_MS} ms deadline\n{result}"
        );
        assert!(
            result["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{result}"
        );
        assert_eq!(
            result["chain"].as_array().map(Vec::len),
            Some(0),
            "{result}"
        );
    }
    if let Some(peak_kib) = peak_kib {
        eprintln!("hostile suite: certfleet peak RSS {} MiB", peak_kib / 1024);
        // 16 MiB announced per connection must never be buffered.
        assert!(peak_kib < 128 * 1024, "peak RSS {peak_kib} KiB");
    }
}

#[test]
fn every_alert_reason_is_named_in_the_error() {
    let server = HostileServer::start(Hostility::Alert(112));
    let run = probe_json(&[&server.target(), "--timeout", "2s"]);
    let result = run.result(&server.target());
    let error = result["error"].as_str().unwrap_or("");
    assert!(error.contains("alert"), "{error}");
    assert!(
        error.to_lowercase().contains("unrecognisedname") || error.contains("112"),
        "{error}"
    );
}

/// Samples the peak resident set (VmHWM) of the next `certfleet` child while it runs.
struct PeakRss {
    sampler: Option<thread::JoinHandle<Option<u64>>>,
}

impl PeakRss {
    fn watch_next_certfleet() -> PeakRss {
        let own_pid = std::process::id();
        let sampler = thread::spawn(move || {
            let mut peak = None;
            for _ in 0..3000 {
                if let Some(kib) = child_hwm(own_pid) {
                    peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
                } else if peak.is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        PeakRss {
            sampler: Some(sampler),
        }
    }

    fn finish(mut self) -> Option<u64> {
        self.sampler.take().and_then(|s| s.join().ok()).flatten()
    }
}

/// VmHWM of a child of `parent` named certfleet, from /proc.
fn child_hwm(parent: u32) -> Option<u64> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let is_child = status.lines().any(|l| l == format!("PPid:\t{parent}"));
        if is_child && status.lines().any(|l| l == "Name:\tcertfleet") {
            return status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        }
    }
    None
}
