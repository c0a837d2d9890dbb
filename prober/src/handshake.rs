//! A full rustls handshake over one TCP connection, driven by hand so that the connection
//! state (version, suite, alerts) survives a failed handshake, and so that the server's
//! verdict on our empty client certificate can be read after the handshake (TLS 1.3).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::danger::{Capture, CaptureVerifier, CertificateRequestRecorder, TicketWatcher};
use crate::http_check::{self, Dialect, End, HttpAnswer, MAX_ANSWER};

/// How many leading bytes of the server's answer are kept to tell TLS from other protocols.
const SNIFF_BYTES: usize = 8;

/// How a handshake attempt ended, before any interpretation.
#[derive(Debug)]
pub enum Failure {
    /// The deadline passed.
    Timeout,
    /// The peer closed the connection (no close_notify) before the handshake finished.
    Closed,
    /// A socket error (reset, unreachable...).
    Io(io::Error),
    /// rustls rejected what the server sent, or the server sent a fatal alert.
    Tls(rustls::Error),
}

/// The server's reaction to an empty client certificate under TLS 1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An alert, a reset or a close: a certificate is required.
    Rejected,
    /// A session ticket or application data arrived: it went on without one.
    Accepted,
    /// Nothing arrived within the bound while the connection stayed open.
    Silent,
}

/// Everything a handshake attempt produced.
#[derive(Debug)]
pub struct Handshake {
    pub capture: Arc<Capture>,
    pub version: Option<ProtocolVersion>,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
    pub group: Option<String>,
    /// `Ok` when the client finished its side of the handshake.
    pub outcome: Result<(), Failure>,
    /// For TLS 1.3 servers that requested a certificate: what they did next.
    pub verdict: Option<Verdict>,
    /// The first bytes the server sent, to recognise non-TLS services.
    pub first_bytes: Vec<u8>,
    /// When the server requested a certificate, went on without one and speaks HTTP/1.1:
    /// what it answered to one request (see [`http_check`]).
    pub http: Option<HttpAnswer>,
}

/// Where a request may be sent after the handshake: the `Host` to name and the port (which
/// counts when no ALPN protocol was negotiated). `None` when the endpoint is known not to
/// speak HTTP (a STARTTLS protocol).
#[derive(Debug, Clone)]
pub struct HttpTarget {
    pub host: String,
    pub port: u16,
}

/// Builds the per-probe client configuration around a fresh [`Capture`].
pub fn client_config(provider: &Arc<CryptoProvider>, capture: &Arc<Capture>) -> ClientConfig {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12]);
    // The ring provider supports both versions; this cannot fail with it.
    let builder = match builder {
        Ok(builder) => builder,
        Err(_) => ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions")),
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaptureVerifier(capture.clone())))
        .with_client_cert_resolver(Arc::new(CertificateRequestRecorder(capture.clone())));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.resumption = Resumption::store(Arc::new(TicketWatcher(capture.clone())))
        .tls12_resumption(Tls12Resumption::Disabled);
    config
}

/// Runs one handshake on `stream`. Never takes longer than `deadline`; after a TLS 1.3
/// handshake with a CertificateRequest, waits at most `verdict_wait` for the server's verdict.
pub async fn run(
    stream: &mut TcpStream,
    provider: &Arc<CryptoProvider>,
    server_name: ServerName<'static>,
    deadline: Instant,
    verdict_wait: Duration,
    http: Option<HttpTarget>,
) -> Handshake {
    let capture = Arc::new(Capture::default());
    let config = Arc::new(client_config(provider, &capture));
    let mut handshake = Handshake {
        capture,
        version: None,
        cipher: None,
        alpn: None,
        group: None,
        outcome: Ok(()),
        verdict: None,
        first_bytes: Vec::new(),
        http: None,
    };
    let mut conn = match ClientConnection::new(config, server_name) {
        Ok(conn) => conn,
        Err(error) => {
            handshake.outcome = Err(Failure::Tls(error));
            return handshake;
        }
    };
    let mut buf = vec![0u8; 16 * 1024];
    handshake.outcome = drive(stream, &mut conn, &mut buf, deadline, &mut handshake).await;
    handshake.version = conn.protocol_version();
    handshake.cipher = conn
        .negotiated_cipher_suite()
        .map(|suite| format!("{:?}", suite.suite()));
    handshake.alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    handshake.group = conn
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()));

    let wants_verdict = handshake.outcome.is_ok()
        && handshake.version == Some(ProtocolVersion::TLSv1_3)
        && handshake.capture.certificate_request().is_some();
    if wants_verdict {
        let verdict_deadline = deadline.min(Instant::now() + verdict_wait);
        let verdict = await_verdict(stream, &mut conn, &mut buf, verdict_deadline, &handshake);
        handshake.verdict = Some(verdict.await);
    }
    // Only for servers that asked for a certificate and did not refuse at the TLS level.
    let may_ask = handshake.outcome.is_ok()
        && handshake.capture.certificate_request().is_some()
        && handshake.verdict != Some(Verdict::Rejected);
    let dialect = http.as_ref().and_then(|target| {
        http_check::dialect(handshake.alpn.as_deref(), target.port).filter(|_| may_ask)
    });
    if let (Some(target), Some(dialect)) = (http, dialect) {
        let answer = ask_http(stream, &mut conn, &mut buf, deadline, dialect, &target.host).await;
        tracing::debug!(?answer, "HTTP check after the handshake");
        handshake.http = Some(answer);
    }
    if handshake.outcome.is_ok() {
        // Be polite: a close_notify keeps server logs free of "unexpected EOF" noise.
        conn.send_close_notify();
        let _ = timeout_at(deadline, flush(stream, &mut conn)).await;
    }
    handshake
}

async fn drive(
    stream: &mut TcpStream,
    conn: &mut ClientConnection,
    buf: &mut [u8],
    deadline: Instant,
    handshake: &mut Handshake,
) -> Result<(), Failure> {
    loop {
        match timeout_at(deadline, flush(stream, conn)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(error)) => return Err(Failure::Io(error)),
            Ok(Ok(())) => {}
        }
        if !conn.is_handshaking() {
            return Ok(());
        }
        let read = match timeout_at(deadline, stream.read(buf)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(error)) => return Err(Failure::Io(error)),
            Ok(Ok(0)) => return Err(Failure::Closed),
            Ok(Ok(read)) => read,
        };
        if handshake.first_bytes.len() < SNIFF_BYTES {
            let want = (SNIFF_BYTES - handshake.first_bytes.len()).min(read);
            handshake.first_bytes.extend_from_slice(&buf[..want]);
        }
        if let Err(error) = feed(conn, &buf[..read]) {
            // Send our alert if rustls queued one; the result no longer matters.
            let _ = timeout_at(deadline, flush(stream, conn)).await;
            return Err(error);
        }
    }
}

async fn await_verdict(
    stream: &mut TcpStream,
    conn: &mut ClientConnection,
    buf: &mut [u8],
    deadline: Instant,
    handshake: &Handshake,
) -> Verdict {
    loop {
        if handshake.capture.ticket_received() {
            return Verdict::Accepted;
        }
        let mut plaintext = [0u8; 1];
        match conn.reader().read(&mut plaintext) {
            Ok(n) if n > 0 => return Verdict::Accepted,
            // A clean close_notify right after our empty certificate is a refusal too.
            Ok(_) => return Verdict::Rejected,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Verdict::Rejected,
        }
        let read = match timeout_at(deadline, stream.read(buf)).await {
            Err(_) => return Verdict::Silent,
            Ok(Err(_)) | Ok(Ok(0)) => return Verdict::Rejected,
            Ok(Ok(read)) => read,
        };
        if feed(conn, &buf[..read]).is_err() {
            return Verdict::Rejected;
        }
    }
}

/// Sends one request over the established connection and judges the answer.
async fn ask_http(
    stream: &mut TcpStream,
    conn: &mut ClientConnection,
    buf: &mut [u8],
    deadline: Instant,
    dialect: Dialect,
    host: &str,
) -> HttpAnswer {
    let judge = |answer: &[u8], end: End| match dialect {
        Dialect::Http1 => http_check::judge(answer, end),
        Dialect::H2 => http_check::judge_h2(answer, end),
    };
    if conn
        .writer()
        .write_all(&http_check::request(dialect, host))
        .is_err()
    {
        return HttpAnswer::Unknown;
    }
    match timeout_at(deadline, flush(stream, conn)).await {
        Ok(Ok(())) => {}
        // The request did not leave: no verdict.
        Err(_) | Ok(Err(_)) => return HttpAnswer::Unknown,
    }
    let mut answer = Vec::new();
    loop {
        let mut end = drain_plaintext(conn, &mut answer);
        if let Some(verdict) = judge(&answer, end) {
            return verdict;
        }
        let read = match timeout_at(deadline, stream.read(buf)).await {
            Err(_) => return judge(&answer, End::Deadline).unwrap_or(HttpAnswer::Unknown),
            Ok(Err(_)) | Ok(Ok(0)) => None,
            Ok(Ok(read)) => Some(read),
        };
        match read {
            Some(read) => {
                if feed(conn, &buf[..read]).is_err() {
                    // An alert: keep what came before it, then judge a closed connection.
                    end = End::Closed;
                }
            }
            None => end = End::Closed,
        }
        if end == End::Closed {
            drain_plaintext(conn, &mut answer);
            return judge(&answer, End::Closed).unwrap_or(HttpAnswer::Unknown);
        }
    }
}

/// Moves decrypted application data into `answer` (up to [`MAX_ANSWER`]); `Closed` when
/// the server sent close_notify.
fn drain_plaintext(conn: &mut ClientConnection, answer: &mut Vec<u8>) -> End {
    let mut chunk = [0u8; 1024];
    while answer.len() < MAX_ANSWER {
        match conn.reader().read(&mut chunk) {
            Ok(0) => return End::Closed,
            Ok(n) => {
                let keep = n.min(MAX_ANSWER - answer.len());
                answer.extend_from_slice(&chunk[..keep]);
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return End::Open,
            Err(_) => return End::Closed,
        }
    }
    End::Open
}

/// Hands received bytes to rustls and processes them.
fn feed(conn: &mut ClientConnection, mut data: &[u8]) -> Result<(), Failure> {
    while !data.is_empty() {
        let taken = conn.read_tls(&mut data).map_err(Failure::Io)?;
        conn.process_new_packets().map_err(Failure::Tls)?;
        if taken == 0 {
            break;
        }
    }
    Ok(())
}

/// Writes everything rustls has queued.
async fn flush(stream: &mut TcpStream, conn: &mut ClientConnection) -> io::Result<()> {
    while conn.wants_write() {
        let mut out = Vec::with_capacity(4096);
        conn.write_tls(&mut out)?;
        stream.write_all(&out).await?;
    }
    Ok(())
}
