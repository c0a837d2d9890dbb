//! Chains: what is captured, in which order, and the validity and path findings.

use time::Duration;

use crate::check::{assert_chain, assert_findings, assert_mtls, assert_negotiated, assert_ok};
use crate::cli::probe_json;
use crate::openssl_server::OpensslServer;
use crate::pki::{Key, Pki, Spec};
use crate::tls_server::{TlsServer, Versions};

#[test]
fn valid_ecdsa_chain_from_rustls_reports_every_fact_of_every_certificate() {
    let pki = Pki::new();
    let sans = ["api.test", "*.api.test", "127.0.0.1", "::1"];
    let chain = pki.chain(Spec::leaf("api.test", &sans));
    let server = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
        .versions(Versions::Tls13)
        .start()
        .expect("start the rustls server");
    let target = server.target();

    let run = probe_json(&[
        &target,
        "--ca-file",
        chain.root.pem_file(),
        "--timeout",
        "5s",
    ]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_eq!(
        result["sni"],
        serde_json::Value::Null,
        "no SNI for an IP target"
    );
    assert_chain(&result, &[&chain.leaf, &chain.intermediate]);
    assert_findings(&result, &[]);
    assert_mtls(&result, false, None, &[]);
    let handshakes = server.handshakes();
    let first = handshakes
        .first()
        .expect("the server completed a handshake");
    assert_eq!(first.version, "TLSv1.3");
    assert!(first.cipher.starts_with("TLS13_"), "{first:?}");
    assert_negotiated(&result, first);
    assert!(
        handshakes.iter().all(|h| h.sni.is_none()),
        "the server received no SNI from a bare IP target: {handshakes:?}"
    );

    let run = probe_json(&[&target, "--timeout", "5s"]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_chain(&result, &[&chain.leaf, &chain.intermediate]);
    assert_findings(&result, &["untrusted"]);
}

#[test]
fn valid_rsa_chain_from_openssl_has_no_findings_when_its_root_is_trusted() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("RSA Root CA").key(Key::Rsa2048), None);
    let intermediate = pki.issue(
        "intermediate",
        Spec::ca("RSA Issuing CA").key(Key::Rsa2048),
        Some(&root),
    );
    let leaf = pki.issue(
        "leaf",
        Spec::leaf("rsa.test", &["rsa.test", "127.0.0.1"]).key(Key::Rsa2048),
        Some(&intermediate),
    );
    let server = OpensslServer::serving(&leaf, &[&intermediate], &pki)
        .start(&pki)
        .expect("start openssl s_server");
    let target = server.target();

    let run = probe_json(&[&target, "--ca-file", root.pem_file(), "--timeout", "5s"]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_chain(&result, &[&leaf, &intermediate]);
    assert_eq!(
        result["chain"][0]["signature_algorithm"],
        "sha256WithRSAEncryption"
    );
    assert_eq!(result["tls"]["version"], "TLSv1.3", "{}", server.log());
    assert!(
        result["tls"]["cipher"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{result:#}"
    );
    assert_findings(&result, &[]);
    assert_mtls(&result, false, None, &[]);
}

#[test]
fn leaf_validity_is_reported_as_expired_not_yet_valid_or_expires_soon() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("Example Root CA"), None);
    let intermediate = pki.issue("intermediate", Spec::ca("Example Issuing CA"), Some(&root));
    let leaf = |name: &str, from: i64, until: i64| {
        let spec = Spec::leaf(name, &[name]).valid(Duration::days(from), Duration::days(until));
        pki.issue(name, spec, Some(&intermediate))
    };
    let expired = leaf("expired.test", -400, -1);
    let not_yet_valid = leaf("future.test", 30, 400);
    let expires_soon = leaf("soon.test", -30, 10);
    let just_under = leaf("29days.test", -30, 29);
    let just_over = leaf("31days.test", -30, 31);
    let servers: Vec<TlsServer> = [
        &expired,
        &not_yet_valid,
        &expires_soon,
        &just_under,
        &just_over,
    ]
    .iter()
    .map(|leaf| {
        TlsServer::serving(&[leaf, &intermediate], leaf)
            .start()
            .expect("start the rustls server")
    })
    .collect();
    let targets: Vec<String> = servers.iter().map(TlsServer::target).collect();

    let mut args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let ca = root.pem_file();
    args.extend(["--ca-file", ca, "--timeout", "5s"]);
    let run = probe_json(&args);

    let result = run.result(&targets[0]);
    assert_ok(&result, &targets[0], &run);
    assert_chain(&result, &[&expired, &intermediate]);
    let findings = crate::check::findings(&result);
    assert!(findings.contains(&"expired".to_owned()), "{result:#}");
    for absent in ["untrusted", "not_yet_valid", "incomplete_chain"] {
        assert!(
            !findings.contains(&absent.to_owned()),
            "{absent}: {result:#}"
        );
    }

    let result = run.result(&targets[1]);
    assert_ok(&result, &targets[1], &run);
    assert_chain(&result, &[&not_yet_valid, &intermediate]);
    assert_findings(&result, &["not_yet_valid"]);

    let result = run.result(&targets[2]);
    assert_ok(&result, &targets[2], &run);
    assert_chain(&result, &[&expires_soon, &intermediate]);
    assert_findings(&result, &["expires_soon"]);

    let result = run.result(&targets[3]);
    assert_ok(&result, &targets[3], &run);
    assert_chain(&result, &[&just_under, &intermediate]);
    assert_findings(&result, &["expires_soon"]);

    let result = run.result(&targets[4]);
    assert_ok(&result, &targets[4], &run);
    assert_chain(&result, &[&just_over, &intermediate]);
    assert_findings(&result, &[]);
}

#[test]
fn self_signed_leaf_is_self_signed_and_untrusted() {
    let pki = Pki::new();
    let leaf = pki.issue("self", Spec::leaf("self.test", &["self.test"]), None);
    let server = TlsServer::serving(&[&leaf], &leaf)
        .start()
        .expect("start the rustls server");
    let target = server.target();

    let run = probe_json(&[&target, "--timeout", "5s"]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_chain(&result, &[&leaf]);
    assert_eq!(result["chain"][0]["self_signed"], true);
    assert_eq!(result["chain"][0]["subject"], result["chain"][0]["issuer"]);
    assert_findings(&result, &["self_signed", "untrusted"]);
}

#[test]
fn leaf_sent_without_its_intermediate_is_an_incomplete_chain() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("alone.test", &["alone.test"]));
    let server = TlsServer::serving(&[&chain.leaf], &chain.leaf)
        .start()
        .expect("start the rustls server");
    let target = server.target();

    let run = probe_json(&[
        &target,
        "--ca-file",
        chain.root.pem_file(),
        "--timeout",
        "5s",
    ]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_chain(&result, &[&chain.leaf]);
    assert_findings(&result, &["incomplete_chain", "untrusted"]);
}

#[test]
fn chains_sent_out_of_order_are_reported_in_sent_order_as_wrong_order() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("Example Root CA"), None);
    let upper = pki.issue("upper", Spec::ca("Example Upper CA"), Some(&root));
    let lower = pki.issue("lower", Spec::ca("Example Lower CA"), Some(&upper));
    let leaf = pki.issue(
        "leaf",
        Spec::leaf("order.test", &["order.test"]),
        Some(&lower),
    );
    let swapped = TlsServer::serving(&[&leaf, &upper, &lower], &leaf)
        .start()
        .expect("start the rustls server");
    let root_first = TlsServer::serving(&[&leaf, &root, &upper, &lower], &leaf)
        .start()
        .expect("start the rustls server");
    let in_order = TlsServer::serving(&[&leaf, &lower, &upper, &root], &leaf)
        .start()
        .expect("start the rustls server");
    let targets = [swapped.target(), root_first.target(), in_order.target()];

    let ca = root.pem_file();
    let run = probe_json(&[
        &targets[0],
        &targets[1],
        &targets[2],
        "--ca-file",
        ca,
        "--timeout",
        "5s",
    ]);

    let result = run.result(&targets[0]);
    assert_ok(&result, &targets[0], &run);
    assert_chain(&result, &[&leaf, &upper, &lower]);
    assert_findings(&result, &["wrong_order"]);

    let result = run.result(&targets[1]);
    assert_ok(&result, &targets[1], &run);
    assert_chain(&result, &[&leaf, &root, &upper, &lower]);
    assert_findings(&result, &["wrong_order"]);

    // Sending the root too, in order, is allowed by TLS and is no finding.
    let result = run.result(&targets[2]);
    assert_ok(&result, &targets[2], &run);
    assert_chain(&result, &[&leaf, &lower, &upper, &root]);
    assert_findings(&result, &[]);
}

#[test]
fn intermediate_expiring_before_the_leaf_is_chain_expires_first() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("Example Root CA"), None);
    let short_ca = Spec::ca("Short Lived CA").valid(Duration::days(-10), Duration::days(60));
    let intermediate = pki.issue("intermediate", short_ca, Some(&root));
    let leaf = pki.issue(
        "leaf",
        Spec::leaf("long.test", &["long.test"]),
        Some(&intermediate),
    );
    let server = TlsServer::serving(&[&leaf, &intermediate], &leaf)
        .start()
        .expect("start the rustls server");
    let target = server.target();

    let run = probe_json(&[&target, "--ca-file", root.pem_file(), "--timeout", "5s"]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_chain(&result, &[&leaf, &intermediate]);
    assert_findings(&result, &["chain_expires_first"]);
}
