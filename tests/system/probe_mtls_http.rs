//! mTLS enforced above TLS (issue 14, item 3): real nginx with `ssl_verify_client on`
//! finishes the handshake without a client certificate and refuses every request, which
//! certfleet finds with one HTTP request (`mtls.enforced: "http"`), over HTTP/1.1 and over
//! h2; `optional` and `optional_no_ca` serve, and stay optional. In-process rustls servers cover a server that
//! requests a certificate and serves anyway over ALPN http/1.1, a TLS-level requirement
//! (`enforced: "tls"`, no request), and a port that does not speak HTTP (no request sent).

use serde_json::Value;

use crate::check::{assert_mtls, assert_ok};
use crate::cli::probe_json;
use crate::nginx_server::{nginx_binary, Nginx};
use crate::pki::{Cert, Pki, Spec};
use crate::tls_server::{ClientAuth, TlsServer, Versions};

fn client_ca(pki: &Pki) -> Cert {
    pki.issue("client-ca", Spec::ca("Payments Client CA"), None)
}

fn enforced(result: &Value) -> &Value {
    &result["mtls"]["enforced"]
}

#[test]
fn nginx_verify_client_on_is_required_and_enforced_by_http() {
    let Some(binary) = nginx_binary() else {
        certfleet_testkit::skip("nginx is not installed (scripts/test installs nginx-light)");
        return;
    };
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("mtls.test", &["mtls.test"]));
    let client_ca = client_ca(&pki);
    let ca_name = client_ca.subject.as_str();
    let modes = [
        ("on", false),
        ("optional", false),
        ("optional_no_ca", false),
        ("off", false),
        ("on", true),
        ("optional", true),
    ];
    let servers: Vec<Nginx> = modes
        .iter()
        .map(|(mode, http2)| {
            Nginx::start(
                &binary,
                &pki,
                &chain.leaf,
                &[&chain.intermediate],
                &client_ca,
                mode,
                *http2,
            )
            .unwrap_or_else(|err| panic!("start nginx (ssl_verify_client {mode}): {err}"))
        })
        .collect();
    let targets: Vec<String> = servers.iter().map(Nginx::target).collect();
    let mut args: Vec<&str> = targets.iter().map(String::as_str).collect();
    args.extend(["--ca-file", chain.root.pem_file(), "--timeout", "5s"]);

    let run = probe_json(&args);
    for (((mode, http2), target), server) in modes.iter().zip(&targets).zip(&servers) {
        let result = run.result(target);
        let context = format!(
            "ssl_verify_client {mode} http2 {http2}: {result:#}\naccess log:\n{}\nerror log:\n{}",
            server.access_log(),
            server.log()
        );
        assert_ok(&result, target, &run);
        // nginx negotiates h2 only with `http2`: the offer and the record are unchanged.
        let (alpn, version) = match http2 {
            true => ("h2", "HTTP/2.0"),
            false => ("http/1.1", "HTTP/1.1"),
        };
        assert_eq!(result["tls"]["alpn"], alpn, "{context}");
        let access = server.access_log();
        match *mode {
            "on" => {
                assert_mtls(&result, true, Some(true), &[ca_name]);
                assert_eq!(enforced(&result), "http", "{context}");
                // Exactly one request, refused with nginx's 400.
                assert_eq!(access.lines().count(), 1, "{context}");
                assert!(
                    access.contains(&format!("\"GET / {version}\" 400 ")),
                    "{context}"
                );
                assert!(access.contains("\"certfleet\""), "{context}");
            }
            "optional" | "optional_no_ca" => {
                assert_mtls(&result, true, Some(false), &[ca_name]);
                assert!(enforced(&result).is_null(), "{context}");
                let object = result["mtls"].as_object().expect("mtls is an object");
                assert!(!object.contains_key("enforced"), "{context}");
                assert_eq!(access.lines().count(), 1, "{context}");
                assert!(
                    access.contains(&format!("\"GET / {version}\" 200 ")),
                    "{context}"
                );
            }
            _ => {
                // No certificate requested: no request sent.
                assert_mtls(&result, false, None, &[]);
                assert!(enforced(&result).is_null(), "{context}");
                assert_eq!(access, "", "{context}");
            }
        }
    }
}

#[test]
fn rustls_servers_are_asked_only_when_they_speak_http_and_did_not_refuse() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("mtls.test", &["mtls.test"]));
    let client_ca = client_ca(&pki);
    let ca_name = client_ca.subject.as_str();
    let served = [&chain.leaf, &chain.intermediate];
    struct Case {
        versions: Versions,
        auth: ClientAuth,
        alpn: &'static [&'static str],
    }
    let cases = [
        // Requests a certificate, serves anyway, speaks http/1.1: asked, still optional.
        Case {
            versions: Versions::Tls13,
            auth: ClientAuth::Optional,
            alpn: &["http/1.1"],
        },
        Case {
            versions: Versions::Tls12,
            auth: ClientAuth::Optional,
            alpn: &["http/1.1"],
        },
        // Refuses at the TLS level: required, enforced by TLS, nothing sent.
        Case {
            versions: Versions::Tls13,
            auth: ClientAuth::Required,
            alpn: &["http/1.1"],
        },
        Case {
            versions: Versions::Tls12,
            auth: ClientAuth::Required,
            alpn: &["http/1.1"],
        },
        // No ALPN on a port that is not a well-known HTTPS port: not HTTP, never asked.
        Case {
            versions: Versions::Tls13,
            auth: ClientAuth::Optional,
            alpn: &[],
        },
        // h2: asked in HTTP/2. This server answers in HTTP/1.1, which is no verdict.
        Case {
            versions: Versions::Tls13,
            auth: ClientAuth::Optional,
            alpn: &["h2"],
        },
    ];
    let servers: Vec<TlsServer> = cases
        .iter()
        .map(|case| {
            TlsServer::serving(&served, &chain.leaf)
                .versions(case.versions)
                .client_auth(case.auth, &client_ca)
                .alpn(case.alpn)
                .start()
                .expect("start the rustls server")
        })
        .collect();
    let targets: Vec<String> = servers.iter().map(TlsServer::target).collect();
    let mut args: Vec<&str> = targets.iter().map(String::as_str).collect();
    args.extend(["--ca-file", chain.root.pem_file(), "--timeout", "5s"]);

    let run = probe_json(&args);
    for ((case, target), server) in cases.iter().zip(&targets).zip(&servers) {
        let result = run.result(target);
        let context = format!(
            "{:?} {:?} alpn {:?}: {result:#}",
            case.versions, case.auth, case.alpn
        );
        assert_ok(&result, target, &run);
        let sent = server.application_bytes();
        match (case.auth, case.alpn) {
            (ClientAuth::Required, _) => {
                assert_mtls(&result, true, Some(true), &[ca_name]);
                assert_eq!(enforced(&result), "tls", "{context}");
                assert_eq!(sent, 0, "{context}");
            }
            (_, ["http/1.1"]) => {
                assert_mtls(&result, true, Some(false), &[ca_name]);
                assert!(enforced(&result).is_null(), "{context}");
                let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: certfleet\r\n\
                    Connection: close\r\n\r\n";
                assert_eq!(sent, request.len(), "one request was sent: {context}");
            }
            (_, ["h2"]) => {
                assert_mtls(&result, true, Some(false), &[ca_name]);
                assert!(enforced(&result).is_null(), "{context}");
                assert!(sent > 0, "an HTTP/2 request was sent: {context}");
            }
            _ => {
                assert_mtls(&result, true, Some(false), &[ca_name]);
                assert!(enforced(&result).is_null(), "{context}");
                assert_eq!(sent, 0, "no request to a non-HTTP port: {context}");
            }
        }
    }
}
