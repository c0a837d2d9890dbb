//! Servers that only speak TLS 1.0: the chain is still captured from the clear-text
//! handshake, and the protocol is a finding.

use crate::check::{assert_chain, assert_findings, assert_mtls, assert_ok};
use crate::cli::probe_json;
use crate::openssl_server::OpensslServer;
use crate::pki::{Key, Pki, Spec};

#[test]
fn tls_1_0_only_server_is_legacy_and_its_chain_is_captured() {
    let pki = Pki::new();
    let root = pki.issue("root", Spec::ca("Example Root CA"), None);
    let intermediate = pki.issue("intermediate", Spec::ca("Example Issuing CA"), Some(&root));
    let leaf = pki.issue(
        "leaf",
        Spec::leaf("old.test", &["old.test"]).key(Key::Rsa2048),
        Some(&intermediate),
    );
    // OpenSSL 3 only negotiates TLS 1.0 at security level 0 (SHA-1 handshake signatures).
    let started = OpensslServer::serving(&leaf, &[&intermediate], &pki)
        .args(&["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        .start(&pki);
    let server = match started {
        Ok(server) => server,
        Err(err) => {
            certfleet_testkit::skip(&format!("this OpenSSL cannot serve TLS 1.0: {err}"));
            return;
        }
    };
    let target = server.target();

    let run = probe_json(&[&target, "--ca-file", root.pem_file(), "--timeout", "5s"]);
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_eq!(
        result["tls"]["version"],
        "TLSv1.0",
        "{result:#}\n{}",
        server.log()
    );
    assert_eq!(result["tls"]["legacy"], true);
    assert_chain(&result, &[&leaf, &intermediate]);
    assert_findings(&result, &["legacy_protocol"]);
    assert_mtls(&result, false, None, &[]);
}
