//! The client against a local server that answers one request as a test tells it to, over
//! TCP or over TLS with a CA made here.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;

const TOKEN: &str = "cf_0123456789abcdef";

fn bearer() -> Bearer {
    Bearer::new("agent.token", TOKEN).expect("a valid token")
}

/// Accepts one connection (through `tls` when given), reads one request and writes
/// `answer` (`None`: never answers); the request as received.
async fn serve_once(
    answer: Option<Vec<u8>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        match tls {
            None => exchange(tcp, answer).await,
            Some(acceptor) => match acceptor.accept(tcp).await {
                Ok(stream) => exchange(stream, answer).await,
                Err(_) => Vec::new(),
            },
        }
    });
    (port, server)
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    answer: Option<Vec<u8>>,
) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            return request;
        }
        request.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    match answer {
        // The client may hang up before a long answer is written: that is its bound.
        Some(answer) => {
            let _ = stream.write_all(&answer).await;
            let _ = stream.shutdown().await;
        }
        None => tokio::time::sleep(Duration::from_secs(30)).await,
    }
    request
}

fn client(url: &str) -> Client {
    Client::new(url, None, Duration::from_secs(5)).expect("a client")
}

#[tokio::test]
async fn a_post_carries_the_token_the_gzip_headers_and_the_body_under_the_prefix() {
    let answer = b"HTTP/1.1 202 Accepted\r\ncontent-length: 12\r\n\r\n{\"hosts\":1}\n".to_vec();
    let (port, server) = serve_once(Some(answer), None).await;
    let client = client(&format!("http://127.0.0.1:{port}/certfleet/"));
    let response = client
        .post_gzip_json("/api/v1/reports", &bearer(), b"\x1f\x8bgzip")
        .await
        .expect("accepted");
    assert_eq!(response.status, 202);
    assert_eq!(response.body, b"{\"hosts\":1}\n");
    let request = server.await.expect("server");
    let text = String::from_utf8_lossy(&request);
    let lower = text.to_ascii_lowercase();
    assert!(
        text.starts_with("POST /certfleet/api/v1/reports HTTP/1.1\r\n"),
        "{text}"
    );
    assert!(
        lower.contains(&format!("authorization: bearer {TOKEN}\r\n")),
        "{text}"
    );
    assert!(lower.contains("content-encoding: gzip\r\n"), "{text}");
    assert!(
        lower.contains("content-type: application/json\r\n"),
        "{text}"
    );
    assert!(lower.contains("user-agent: certfleet-agent/"), "{text}");
    assert!(request.ends_with(b"\r\n\r\n\x1f\x8bgzip"), "{text}");
}

#[tokio::test]
async fn chunked_answers_are_joined_and_long_ones_are_cut_at_the_bound() {
    let chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (port, server) = serve_once(Some(chunked.to_vec()), None).await;
    let response = client(&format!("http://127.0.0.1:{port}"))
        .post_gzip_json("/x", &bearer(), b"")
        .await
        .expect("ok");
    assert_eq!(response.body, b"hello world");
    server.await.expect("server");

    let size = 1024 * 1024;
    let mut long = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n").into_bytes();
    long.resize(long.len() + size, b'a');
    let (port, server) = serve_once(Some(long), None).await;
    let response = client(&format!("http://127.0.0.1:{port}"))
        .post_gzip_json("/x", &bearer(), b"")
        .await
        .expect("ok");
    assert_eq!(response.body.len(), MAX_BODY);
    server.await.expect("server");
}

#[tokio::test]
async fn error_statuses_are_rejections_with_the_start_of_the_answer() {
    let answer =
        b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 25\r\n\r\n{\"error\":\"unknown token\"}"
            .to_vec();
    let (port, server) = serve_once(Some(answer), None).await;
    let error = client(&format!("http://127.0.0.1:{port}"))
        .post_gzip_json("/x", &bearer(), b"")
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, Error::Rejected { status: 401, body } if body.contains("unknown token")),
        "{error:?}"
    );
    assert!(!error.is_transient() && error.keeps_report());
    server.await.expect("server");
}

#[tokio::test]
async fn a_silent_server_and_a_closed_port_are_unreachable() {
    let (port, _server) = serve_once(None, None).await;
    let impatient = Client::new(
        &format!("http://127.0.0.1:{port}"),
        None,
        Duration::from_millis(300),
    )
    .expect("a client");
    let error = impatient
        .post_gzip_json("/x", &bearer(), b"")
        .await
        .expect_err("no answer");
    assert!(
        error.to_string().contains("no answer within 300ms"),
        "{error}"
    );
    assert!(error.is_transient());

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let error = client(&format!("http://{closed}"))
        .post_gzip_json("/x", &bearer(), b"")
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("cannot reach {closed}: connect: ")),
        "{text}"
    );
    assert!(error.is_transient());
}

/// A CA, and a server certificate for 127.0.0.1 signed by it.
fn test_pki() -> (String, tokio_rustls::TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "agent test CA");
    let ca = ca.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("server key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn https_trusts_the_configured_ca_file_and_nothing_unknown() {
    let (ca_pem, acceptor) = test_pki();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write the CA");
    let answer = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}".to_vec();

    let (port, server) = serve_once(Some(answer.clone()), Some(acceptor.clone())).await;
    let url = format!("https://127.0.0.1:{port}");
    let trusting = Client::new(&url, Some(&ca_file), Duration::from_secs(5)).expect("client");
    let response = trusting
        .post_gzip_json("/api/v1/reports", &bearer(), b"body")
        .await
        .expect("accepted over TLS");
    assert_eq!(
        (response.status, response.body.as_slice()),
        (202, &b"{}"[..])
    );
    let request = server.await.expect("server");
    assert!(request.starts_with(b"POST /api/v1/reports HTTP/1.1\r\n"));

    let (port, _server) = serve_once(Some(answer), Some(acceptor)).await;
    let url = format!("https://127.0.0.1:{port}");
    let error = client(&url)
        .post_gzip_json("/x", &bearer(), b"")
        .await
        .expect_err("an unknown CA");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let error = Client::new(&url, Some(&empty), Duration::from_secs(5))
        .err()
        .expect("no certificate in the CA file");
    assert!(error.to_string().contains("agent.ca_file"), "{error}");
}

#[test]
fn tokens_that_cannot_be_a_header_are_refused_with_the_setting_named() {
    assert!(Bearer::new("agent.token", TOKEN).is_ok());
    let control = Bearer::new("agent.token", "cf_abc\r\nX-Injected: 1").expect_err("CRLF");
    assert_eq!(
        control.to_string(),
        "invalid agent configuration: agent.token: holds a control character at byte 6 \
         (a stray line break in the file?)"
    );
    let spaced = Bearer::new("agent.enroll_secret", "two words").expect_err("space");
    assert!(
        spaced
            .to_string()
            .contains("agent.enroll_secret: must be printable ASCII"),
        "{spaced}"
    );
    assert!(Bearer::new("agent.token", "").is_err());
    assert!(Bearer::new("agent.token", "caf\u{e9}").is_err());
    assert_eq!(format!("{:?}", bearer()), "Bearer(***)");
}

#[test]
fn server_urls_parse_with_defaults_brackets_and_prefixes() {
    let url = ServerUrl::parse("https://certfleet.example.com/").expect("valid");
    assert!(url.is_tls());
    assert_eq!(
        (url.authority().as_str(), url.prefix()),
        ("certfleet.example.com:443", "")
    );
    let url = ServerUrl::parse("http://[::1]:8080/certfleet/").expect("valid");
    assert_eq!(url.authority(), "[::1]:8080");
    assert_eq!(url.prefix(), "/certfleet");
    assert_eq!(
        url.join("/api/v1/reports").as_str(),
        "http://[::1]:8080/certfleet/api/v1/reports"
    );
    for bad in [
        "ftp://x",
        "http://",
        "http://user:pw@x",
        "http://x:99999",
        "http://[::1",
        "http://x/?a",
        "http://x/#a",
        "http://x/a\r\nInjected: 1",
        "http://x/a b",
        "x",
    ] {
        assert!(ServerUrl::parse(bad).is_err(), "{bad}");
    }
}
