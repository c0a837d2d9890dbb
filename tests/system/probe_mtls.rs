//! The mutual-TLS matrix: {rustls, openssl} x {TLS 1.2, TLS 1.3} x {optional, required},
//! with and without advertised CA names, and servers that ask for nothing.

use crate::check::{assert_chain, assert_findings, assert_mtls, assert_negotiated, assert_ok};
use crate::cli::probe_json;
use crate::openssl_server::OpensslServer;
use crate::pki::{Cert, Pki, Spec};
use crate::tls_server::{ClientAuth, TlsServer, Versions};

/// The client CA the servers advertise, and its RFC 4514 name.
fn client_ca(pki: &Pki) -> Cert {
    pki.issue("client-ca", Spec::ca("Payments Client CA"), None)
}

#[test]
fn rustls_servers_asking_for_client_certificates_are_optional_or_required() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("mtls.test", &["mtls.test"]));
    let client_ca = client_ca(&pki);
    let ca_name = client_ca.subject.as_str();
    assert_eq!(ca_name, "CN=Payments Client CA,O=Example");
    let served = [&chain.leaf, &chain.intermediate];
    let cases = [
        (Versions::Tls12, ClientAuth::Optional, "TLSv1.2"),
        (Versions::Tls12, ClientAuth::Required, "TLSv1.2"),
        (Versions::Tls13, ClientAuth::Optional, "TLSv1.3"),
        (Versions::Tls13, ClientAuth::Required, "TLSv1.3"),
        (Versions::Tls13, ClientAuth::None, "TLSv1.3"),
    ];
    let servers: Vec<TlsServer> = cases
        .iter()
        .map(|(versions, auth, _)| {
            TlsServer::serving(&served, &chain.leaf)
                .versions(*versions)
                .client_auth(*auth, &client_ca)
                .start()
                .expect("start the rustls server")
        })
        .collect();
    let targets: Vec<String> = servers.iter().map(TlsServer::target).collect();
    let mut args: Vec<&str> = targets.iter().map(String::as_str).collect();
    args.extend(["--ca-file", chain.root.pem_file(), "--timeout", "5s"]);

    let run = probe_json(&args);
    for (((_, auth, version), target), server) in cases.iter().zip(&targets).zip(&servers) {
        let result = run.result(target);
        assert_ok(&result, target, &run);
        assert_eq!(result["tls"]["version"], *version, "{auth:?}: {result:#}");
        assert_chain(&result, &served);
        assert_findings(&result, &[]);
        let handshakes = server.handshakes();
        match auth {
            // The server never completes a handshake without a client certificate.
            ClientAuth::Required => assert_eq!(handshakes, vec![], "{auth:?} {version}"),
            _ => assert_negotiated(&result, handshakes.first().expect("a completed handshake")),
        }
        match auth {
            ClientAuth::Optional => assert_mtls(&result, true, Some(false), &[ca_name]),
            ClientAuth::Required => assert_mtls(&result, true, Some(true), &[ca_name]),
            ClientAuth::None => assert_mtls(&result, false, None, &[]),
        }
    }
}

#[test]
fn openssl_servers_asking_for_client_certificates_are_optional_or_required() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("mtls.test", &["mtls.test"]));
    let client_ca = client_ca(&pki);
    let ca_name = client_ca.subject.as_str();
    struct Case {
        version: &'static str,
        verify: &'static str,
        advertise: bool,
    }
    let mut cases = Vec::new();
    for version in ["-tls1_2", "-tls1_3"] {
        for verify in ["-verify", "-Verify"] {
            for advertise in [true, false] {
                cases.push(Case {
                    version,
                    verify,
                    advertise,
                });
            }
        }
    }
    let servers: Vec<OpensslServer> =
        cases
            .iter()
            .map(|case| {
                let server = OpensslServer::serving(&chain.leaf, &[&chain.intermediate], &pki)
                    .args(&[case.version, case.verify, "1"]);
                let server = match case.advertise {
                    true => server.ca_file(&client_ca),
                    false => server,
                };
                server.start(&pki).expect("start openssl s_server")
            })
            .collect();
    let plain = OpensslServer::serving(&chain.leaf, &[&chain.intermediate], &pki)
        .start(&pki)
        .expect("start openssl s_server");
    let mut targets: Vec<String> = servers.iter().map(OpensslServer::target).collect();
    targets.push(plain.target());
    let mut args: Vec<&str> = targets.iter().map(String::as_str).collect();
    args.extend(["--ca-file", chain.root.pem_file(), "--timeout", "5s"]);

    let run = probe_json(&args);
    for ((case, target), server) in cases.iter().zip(&targets).zip(&servers) {
        let result = run.result(target);
        let context = format!(
            "{} {} 1 advertise={}: {result:#}\n{}",
            case.version,
            case.verify,
            case.advertise,
            server.log()
        );
        assert_ok(&result, target, &run);
        let version = match case.version {
            "-tls1_2" => "TLSv1.2",
            _ => "TLSv1.3",
        };
        assert_eq!(result["tls"]["version"], version, "{context}");
        assert_chain(&result, &[&chain.leaf, &chain.intermediate]);
        assert_findings(&result, &[]);
        let names: &[&str] = match case.advertise {
            true => &[ca_name],
            false => &[],
        };
        let required = case.verify == "-Verify";
        assert_eq!(result["mtls"]["requested"], true, "{context}");
        assert_eq!(result["mtls"]["required"], required, "{context}");
        assert_eq!(
            result["mtls"]["ca_names"],
            serde_json::json!(names),
            "{context}"
        );
    }
    let target = plain.target();
    let result = run.result(&target);
    assert_ok(&result, &target, &run);
    assert_mtls(&result, false, None, &[]);
}
