//! What is not a TLS server: plain protocols, silence, closed ports, forbidden networks,
//! and the IPv6 loopback.

use std::time::Duration;

use crate::check::{assert_chain, assert_failed, assert_findings, assert_ok};
use crate::cli::probe_json;
use crate::pki::{Pki, Spec};
use crate::plain_servers::{closed_port, PlainServer, Witness};
use crate::tls_server::TlsServer;

#[test]
fn http_and_ssh_servers_are_not_tls() {
    let http = PlainServer::http();
    let ssh = PlainServer::ssh_banner();
    let (http_target, ssh_target) = (http.target(), ssh.target());

    let run = probe_json(&[&http_target, &ssh_target, "--timeout", "5s"]);
    assert_failed(&run.result(&http_target), &http_target, "not_tls", &run);
    assert_failed(&run.result(&ssh_target), &ssh_target, "not_tls", &run);
    assert_eq!(run.result(&http_target)["address"], http_target.as_str());
}

#[test]
fn closed_port_is_refused() {
    let target = format!("127.0.0.1:{}", closed_port());
    let run = probe_json(&[&target, "--timeout", "5s"]);
    let result = run.result(&target);
    assert_failed(&result, &target, "refused", &run);
    assert_eq!(result["address"], target.as_str());
}

#[test]
fn silent_server_times_out_and_the_other_targets_are_still_reported() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("fine.test", &["fine.test"]));
    let tls = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
        .start()
        .expect("start the rustls server");
    let tarpit = PlainServer::tarpit();
    let closed = format!("127.0.0.1:{}", closed_port());
    let (tls_target, tarpit_target) = (tls.target(), tarpit.target());

    let run = probe_json(&[&tarpit_target, &tls_target, &closed, "--timeout", "1s"]);
    assert_eq!(
        run.lines().len(),
        3,
        "one line per target\n{}",
        run.context()
    );
    let result = run.result(&tarpit_target);
    assert_failed(&result, &tarpit_target, "timeout", &run);
    let elapsed = result["elapsed_ms"].as_u64().unwrap_or_default();
    assert!(
        (900..=4000).contains(&elapsed),
        "a 1 s timeout took {elapsed} ms: {result:#}"
    );
    assert!(
        run.wall < Duration::from_secs(15),
        "the run took {:?}",
        run.wall
    );

    let result = run.result(&tls_target);
    assert_ok(&result, &tls_target, &run);
    assert_chain(&result, &[&chain.leaf, &chain.intermediate]);
    assert_failed(&run.result(&closed), &closed, "refused", &run);
}

#[test]
fn link_local_and_multicast_addresses_are_denied_without_connecting() {
    let targets = [
        "169.254.169.254:443",
        "[fe80::1]:443",
        "224.0.0.251:443",
        "[ff02::1]:443",
    ];
    let mut args = targets.to_vec();
    args.extend(["--timeout", "5s"]);
    let run = probe_json(&args);
    for target in targets {
        let result = run.result(target);
        assert_failed(&result, target, "denied", &run);
        let elapsed = result["elapsed_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(
            elapsed < 500,
            "denied without waiting, took {elapsed} ms: {result:#}"
        );
    }
}

#[test]
fn deny_flag_blocks_loopback_before_any_connection() {
    let witness = Witness::new();
    let target = witness.target();
    let run = probe_json(&[&target, "--deny", "127.0.0.0/8", "--timeout", "5s"]);
    assert_failed(&run.result(&target), &target, "denied", &run);
    assert!(!witness.was_connected(), "a denied target was connected to");
}

#[test]
fn allow_flag_denies_addresses_outside_the_allowed_networks() {
    let witness = Witness::new();
    let target = witness.target();
    let run = probe_json(&[&target, "--allow", "10.0.0.0/8", "--timeout", "5s"]);
    assert_failed(&run.result(&target), &target, "denied", &run);
    assert!(!witness.was_connected(), "a denied target was connected to");

    let witness = Witness::new();
    let target = witness.target();
    let run = probe_json(&[&target, "--allow", "127.0.0.0/8", "--timeout", "1s"]);
    let result = run.result(&target);
    assert_ne!(
        result["status"], "denied",
        "127.0.0.1 is inside 127.0.0.0/8: {result:#}"
    );
    assert!(
        witness.was_connected(),
        "an allowed target was probed: {result:#}"
    );
}

#[test]
fn ipv6_loopback_target_is_probed() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("v6.test", &["v6.test", "::1"]));
    let server = match TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
        .ipv6()
        .start()
    {
        Ok(server) => server,
        Err(err) => {
            certfleet_testkit::skip(&format!("cannot listen on [::1] on this machine: {err}"));
            return;
        }
    };
    let target = format!("[::1]:{}", server.port);

    let run = probe_json(&[
        &target,
        "--ca-file",
        chain.root.pem_file(),
        "--timeout",
        "5s",
    ]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_eq!(result["address"], target.as_str());
    assert_eq!(result["sni"], serde_json::Value::Null);
    assert_chain(&result, &[&chain.leaf, &chain.intermediate]);
    assert_findings(&result, &[]);
}

/// IPv6 forms that carry an IPv4 address (NAT64, IPv4-compatible, IPv4-mapped) are judged
/// as that address, and cloud metadata addresses are refused even when the allow list
/// covers everything: each is `denied`, never connected to.
#[test]
fn embedded_ipv4_and_cloud_metadata_addresses_are_denied_even_when_everything_is_allowed() {
    let witness = Witness::new();
    let target = witness.target();
    let witness_port = target.rsplit(':').next().expect("host:port");
    // 127.0.0.1 in IPv6 forms; `::/0` alone does not allow it.
    let loopback = [
        format!("[::ffff:127.0.0.1]:{witness_port}"),
        format!("[64:ff9b::7f00:1]:{witness_port}"),
        format!("[::127.0.0.1]:{witness_port}"),
    ];
    for target in &loopback {
        let run = probe_json(&[target, "--allow", "::/0", "--timeout", "2s"]);
        let result = run.result(target);
        assert_failed(&result, target, "denied", &run);
        let error = result["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("127.0.0.1"),
            "judged as 127.0.0.1: {result:#}"
        );
    }
    assert!(!witness.was_connected(), "a denied target was connected to");

    let targets = [
        "[64:ff9b::a9fe:a9fe]:80",
        "[::a9fe:a9fe]:80",
        "[::ffff:169.254.169.254]:80",
        "169.254.169.254:80",
        "[fd00:ec2::254]:80",
        "[fd00:c1::a9fe:a9fe]:80",
        "100.100.100.200:80",
        "[64:ff9b::6464:64c8]:80",
    ];
    let mut args = targets.to_vec();
    args.extend(["--allow", "::/0", "--allow", "0.0.0.0/0", "--timeout", "2s"]);
    let run = probe_json(&args);
    for target in targets {
        let result = run.result(target);
        assert_failed(&result, target, "denied", &run);
    }
}
