//! Keys, signature algorithms and subject alternative names of the leaf.

use crate::check::{assert_chain, assert_findings, assert_ok};
use crate::cli::probe_json;
use crate::openssl_server::OpensslServer;
use crate::pki::{Key, Pki, Spec};
use crate::tls_server::TlsServer;

#[test]
fn rsa_1024_leaf_from_openssl_is_a_weak_key_of_1024_bits() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("unused.test", &[]));
    let sans = ["weak.test", "127.0.0.1"];
    let leaf = pki.openssl_leaf(
        "weak",
        "weak.test",
        &sans,
        1024,
        "sha256",
        &chain.intermediate,
    );
    // OpenSSL 3 refuses to serve a 1024-bit key at its default security level.
    let server = OpensslServer::serving(&leaf, &[&chain.intermediate], &pki)
        .args(&["-cipher", "DEFAULT:@SECLEVEL=0"])
        .start(&pki)
        .expect("start openssl s_server");
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
    assert_chain(&result, &[&leaf, &chain.intermediate]);
    assert_eq!(result["chain"][0]["key"]["type"], "rsa");
    assert_eq!(result["chain"][0]["key"]["bits"], 1024);
    assert_findings(&result, &["weak_key"]);
}

#[test]
fn sha1_signed_leaf_is_a_sha1_signature() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("RSA Root CA").key(Key::Rsa2048), None);
    let intermediate = pki.issue(
        "intermediate",
        Spec::ca("RSA Issuing CA").key(Key::Rsa2048),
        Some(&root),
    );
    let sans = ["sha1.test"];
    let leaf = pki.openssl_leaf("sha1", "sha1.test", &sans, 2048, "sha1", &intermediate);
    let server = TlsServer::serving(&[&leaf, &intermediate], &leaf)
        .start()
        .expect("start the rustls server");
    let target = server.target();

    let run = probe_json(&[&target, "--ca-file", root.pem_file(), "--timeout", "5s"]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_chain(&result, &[&leaf, &intermediate]);
    let findings = crate::check::findings(&result);
    assert!(
        findings.contains(&"sha1_signature".to_owned()),
        "{result:#}"
    );
    for absent in [
        "weak_key",
        "expired",
        "wrong_order",
        "incomplete_chain",
        "self_signed",
    ] {
        assert!(
            !findings.contains(&absent.to_owned()),
            "{absent}: {result:#}"
        );
    }
}

#[test]
fn ed25519_and_p384_leaves_report_their_key_types_and_sizes() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("Example Root CA"), None);
    let ed_ca = pki.issue(
        "ed-ca",
        Spec::ca("Ed25519 CA").key(Key::Ed25519),
        Some(&root),
    );
    let ed_leaf = pki.issue(
        "ed-leaf",
        Spec::leaf("ed.test", &["ed.test"]).key(Key::Ed25519),
        Some(&ed_ca),
    );
    let p384_ca = pki.issue("p384-ca", Spec::ca("P-384 CA").key(Key::P384), Some(&root));
    let p384_leaf = pki.issue(
        "p384-leaf",
        Spec::leaf("p384.test", &["p384.test"]).key(Key::P384),
        Some(&p384_ca),
    );
    let ed = TlsServer::serving(&[&ed_leaf, &ed_ca], &ed_leaf)
        .start()
        .expect("start the rustls server");
    let p384 = TlsServer::serving(&[&p384_leaf, &p384_ca], &p384_leaf)
        .start()
        .expect("start the rustls server");
    let (ed_target, p384_target) = (ed.target(), p384.target());

    let run = probe_json(&[
        &ed_target,
        &p384_target,
        "--ca-file",
        root.pem_file(),
        "--timeout",
        "5s",
    ]);

    let result = run.result(&ed_target);
    assert_ok(&result, &ed_target, &run);
    assert_chain(&result, &[&ed_leaf, &ed_ca]);
    assert_eq!(result["chain"][0]["key"]["type"], "ed25519");
    assert_eq!(result["chain"][0]["key"]["bits"], 256);
    assert_findings(&result, &[]);

    let result = run.result(&p384_target);
    assert_ok(&result, &p384_target, &run);
    assert_chain(&result, &[&p384_leaf, &p384_ca]);
    assert_eq!(result["chain"][0]["key"]["curve"], "P-384");
    assert_eq!(
        result["chain"][1]["signature_algorithm"],
        "ecdsa-with-SHA256"
    );
    assert_findings(&result, &[]);
}

#[test]
fn leaf_with_a_hundred_sans_reports_all_of_them_in_order() {
    let pki = Pki::new();
    let names: Vec<String> = (0..100).map(|i| format!("host{i:03}.many.test")).collect();
    let sans: Vec<&str> = names.iter().map(String::as_str).collect();
    let chain = pki.chain(Spec::leaf("many.test", &sans));
    let server = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
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
        result["chain"][0]["sans"].as_array().map(Vec::len),
        Some(100)
    );
    assert_chain(&result, &[&chain.leaf, &chain.intermediate]);
    assert_findings(&result, &[]);
}

#[test]
fn dns_ip_email_and_uri_sans_are_reported_as_plain_strings() {
    let pki = Pki::new();
    let sans = [
        "mixed.test",
        "10.1.2.3",
        "2001:db8::1",
        "ops@example.com",
        "spiffe://example.test/api",
    ];
    let chain = pki.chain(Spec::leaf("mixed.test", &sans));
    let server = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
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
    assert_chain(&result, &[&chain.leaf, &chain.intermediate]);
}
