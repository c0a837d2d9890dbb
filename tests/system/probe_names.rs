//! Names: SNI from `@name` and `--sni`, hostname matching (RFC 6125 wildcards), hostname
//! targets, and ALPN.

use crate::check::{
    assert_chain, assert_common, assert_failed, assert_findings, assert_negotiated, assert_ok,
};
use crate::cli::probe_json;
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

#[test]
fn sni_picks_the_certificate_and_a_name_it_does_not_cover_is_a_hostname_mismatch() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("Example Root CA"), None);
    let ca = pki.issue("ca", Spec::ca("Example Issuing CA"), Some(&root));
    let alpha = pki.issue(
        "alpha",
        Spec::leaf("alpha.test", &["alpha.test"]),
        Some(&ca),
    );
    let beta = pki.issue("beta", Spec::leaf("beta.test", &["beta.test"]), Some(&ca));
    let wild = pki.issue(
        "wild",
        Spec::leaf("*.wild.test", &["*.wild.test"]),
        Some(&ca),
    );
    let server = TlsServer::serving(&[&alpha, &ca], &alpha)
        .for_name("beta.test", &[&beta, &ca], &beta)
        .for_name("*.wild.test", &[&wild, &ca], &wild)
        .start()
        .expect("start the rustls server");
    let ip = server.target();
    let with = |name: &str| format!("{ip}@{name}");
    let targets = [
        ip.clone(),
        with("alpha.test"),
        with("beta.test"),
        with("gamma.test"),
        with("x.wild.test"),
        with("a.b.wild.test"),
    ];
    let mut args: Vec<&str> = targets.iter().map(String::as_str).collect();
    args.extend(["--ca-file", root.pem_file(), "--timeout", "5s"]);

    let run = probe_json(&args);
    let expect = |target: &str, sni: Option<&str>, leaf, findings: &[&str]| {
        let result = run.result(target);
        assert_ok(&result, target, &run);
        assert_eq!(result["sni"], serde_json::json!(sni), "sni: {result:#}");
        assert_chain(&result, &[leaf, &ca]);
        assert_findings(&result, findings);
    };
    // A bare IP target sends no SNI, so no name is checked even though the default leaf
    // does not cover 127.0.0.1.
    expect(&targets[0], None, &alpha, &[]);
    expect(&targets[1], Some("alpha.test"), &alpha, &[]);
    expect(&targets[2], Some("beta.test"), &beta, &[]);
    expect(
        &targets[3],
        Some("gamma.test"),
        &alpha,
        &["hostname_mismatch"],
    );
    expect(&targets[4], Some("x.wild.test"), &wild, &[]);
    // A wildcard covers exactly one label.
    expect(
        &targets[5],
        Some("a.b.wild.test"),
        &wild,
        &["hostname_mismatch"],
    );

    let mut seen: Vec<Option<String>> = server.handshakes().into_iter().map(|h| h.sni).collect();
    seen.sort();
    seen.dedup();
    let mut sent: Vec<Option<String>> = vec![None];
    sent.extend(
        targets[1..]
            .iter()
            .map(|t| t.split('@').nth(1).map(str::to_owned)),
    );
    sent.sort();
    assert_eq!(seen, sent, "the SNI names the server received");
}

#[test]
fn sni_flag_sends_that_name_to_an_ip_target() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("Example Root CA"), None);
    let ca = pki.issue("ca", Spec::ca("Example Issuing CA"), Some(&root));
    let alpha = pki.issue(
        "alpha",
        Spec::leaf("alpha.test", &["alpha.test"]),
        Some(&ca),
    );
    let beta = pki.issue("beta", Spec::leaf("beta.test", &["beta.test"]), Some(&ca));
    let server = TlsServer::serving(&[&alpha, &ca], &alpha)
        .for_name("beta.test", &[&beta, &ca], &beta)
        .start()
        .expect("start the rustls server");
    let target = server.target();

    let run = probe_json(&[
        &target,
        "--sni",
        "beta.test",
        "--ca-file",
        root.pem_file(),
        "--timeout",
        "5s",
    ]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_eq!(result["sni"], "beta.test");
    assert_chain(&result, &[&beta, &ca]);
    assert_findings(&result, &[]);
    let handshakes = server.handshakes();
    assert!(
        !handshakes.is_empty()
            && handshakes
                .iter()
                .all(|h| h.sni.as_deref() == Some("beta.test")),
        "the server received beta.test: {handshakes:?}"
    );
}

#[test]
fn hostname_target_sends_its_name_and_gives_one_line_per_address() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("localhost", &["localhost"]));
    let server = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
        .start()
        .expect("start the rustls server");
    let target = format!("localhost:{}", server.port);

    let run = probe_json(&[
        &target,
        "--ca-file",
        chain.root.pem_file(),
        "--timeout",
        "5s",
    ]);
    let results = run.results(&target);
    assert!(!results.is_empty(), "{}", run.context());
    let addresses: Vec<&str> = results
        .iter()
        .map(|r| r["address"].as_str().expect("address of a resolved name"))
        .collect();
    let mut distinct = addresses.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        addresses.len(),
        "one line per address: {addresses:?}"
    );
    for address in &addresses {
        let socket: std::net::SocketAddr = address.parse().expect("a socket address");
        assert!(socket.ip().is_loopback(), "{address}");
        assert_eq!(socket.port(), server.port);
    }
    let v4 = format!("127.0.0.1:{}", server.port);
    let result = results
        .iter()
        .find(|r| r["address"] == v4.as_str())
        .unwrap_or_else(|| panic!("a line for {v4}\n{}", run.context()));
    assert_ok(result, &target, &run);
    assert_eq!(result["sni"], "localhost");
    assert_chain(result, &[&chain.leaf, &chain.intermediate]);
    assert_findings(result, &[]);
}

#[test]
fn alpn_chosen_by_the_server_is_reported() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("h2.test", &["h2.test"]));
    let h2 = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
        .alpn(&["h2"])
        .start()
        .expect("start the rustls server");
    let none = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
        .start()
        .expect("start the rustls server");
    let (h2_target, none_target) = (h2.target(), none.target());

    let run = probe_json(&[&h2_target, &none_target, "--timeout", "5s"]);
    let result = run.result(&h2_target);
    assert_ok(&result, &h2_target, &run);
    assert_eq!(result["tls"]["alpn"], "h2");
    assert_negotiated(&result, h2.handshakes().first().expect("a handshake"));

    let result = run.result(&none_target);
    assert_ok(&result, &none_target, &run);
    assert_eq!(result["tls"]["alpn"], serde_json::Value::Null);
    assert_negotiated(&result, none.handshakes().first().expect("a handshake"));
}

#[test]
fn server_that_aborts_the_handshake_is_a_tls_error() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("known.test", &["known.test"]));
    let served = [&chain.leaf, &chain.intermediate];
    let server = TlsServer::serving(&served, &chain.leaf)
        .for_name("known.test", &served, &chain.leaf)
        .only_named()
        .start()
        .expect("start the rustls server");
    let known = format!("{}@known.test", server.target());
    let unknown = format!("{}@unknown.test", server.target());

    let run = probe_json(&[
        &known,
        &unknown,
        "--ca-file",
        chain.root.pem_file(),
        "--timeout",
        "5s",
    ]);
    let result = run.result(&known);
    assert_ok(&result, &known, &run);
    assert_chain(&result, &served);
    assert_findings(&result, &[]);

    let result = run.result(&unknown);
    assert_common(&result, &unknown, &run);
    assert_eq!(result["status"], "tls_error", "{result:#}");
    assert_eq!(result["sni"], "unknown.test");
    assert!(
        result["error"].as_str().is_some_and(|e| !e.is_empty()),
        "tls_error says why: {result:#}"
    );
    assert_eq!(result["chain"], serde_json::json!([]), "{result:#}");
    assert_findings(&result, &[]);
}

#[test]
fn name_that_does_not_resolve_is_unreachable() {
    let target = "no-such-host.invalid:443";
    let run = probe_json(&[target, "--timeout", "3s"]);
    let result = run.result(target);
    assert_failed(&result, target, "unreachable", &run);
    assert_eq!(result["address"], serde_json::Value::Null, "{result:#}");
}
