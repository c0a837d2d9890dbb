//! One probe, start to finish: policy, connect, handshake (or the legacy capture), analysis.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use certfleet_model::{MtlsEnforcement, MtlsPolicy, ProbeResult, ProbeStatus, TlsParameters};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::ProtocolVersion;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::analysis::{self, rfc4514_from_der, ServedCertificate};
use crate::handshake::{self, Failure, Handshake, HttpTarget, Verdict};
use crate::http_check::HttpAnswer;
use crate::legacy::{self, LegacyCapture};
use crate::resolve::Resolver;
use crate::starttls::{self, StartTls, StartTlsError};
use crate::target::{Host, Target};
use crate::ProberConfig;

/// Probes endpoints. Cheap to share (`Arc<Prober>`); every probe is independent.
pub struct Prober {
    config: ProberConfig,
    provider: Arc<CryptoProvider>,
    resolver: Resolver,
}

impl Prober {
    pub fn new(config: ProberConfig) -> Self {
        let resolver = Resolver::new(config.nameservers.clone());
        Prober {
            config,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            resolver,
        }
    }

    pub fn config(&self) -> &ProberConfig {
        &self.config
    }

    /// Probes a target: every address of a host name, or the one IP address.
    pub async fn probe(&self, target: &Target) -> Vec<ProbeResult> {
        match &target.host {
            Host::Ip(ip) => vec![
                self.probe_address(target, SocketAddr::new(*ip, target.port))
                    .await,
            ],
            Host::Name(name) => {
                let started = Instant::now();
                let probed_at = OffsetDateTime::now_utc();
                match self.resolver.lookup(name, self.config.timeout).await {
                    Ok(addresses) => {
                        let mut results = Vec::with_capacity(addresses.len());
                        for ip in addresses {
                            let address = SocketAddr::new(ip, target.port);
                            results.push(self.probe_address(target, address).await);
                        }
                        results
                    }
                    Err(error) => {
                        let mut result = empty_result(target, None, probed_at);
                        result.status = ProbeStatus::Unreachable;
                        result.error = Some(error.to_string());
                        result.elapsed_ms = elapsed_ms(started);
                        vec![result]
                    }
                }
            }
        }
    }

    /// Probes one socket address, sending the target's SNI name (if any).
    pub async fn probe_address(&self, target: &Target, address: SocketAddr) -> ProbeResult {
        let started = Instant::now();
        let mut result = empty_result(target, Some(address), OffsetDateTime::now_utc());
        if let Some(reason) = self.config.policy.refusal(address.ip()) {
            result.status = ProbeStatus::Denied;
            result.error = Some(reason);
            return result;
        }
        let deadline = started + self.config.timeout;
        match self.connect(address, started, deadline).await {
            Ok(stream) => {
                self.probe_stream(stream, target, address, deadline, &mut result)
                    .await
            }
            Err((status, reason)) => {
                result.status = status;
                result.error = Some(reason);
            }
        }
        result.elapsed_ms = elapsed_ms(started);
        result
    }

    /// The plaintext protocol to speak first: the target's own setting, else the prober's.
    fn starttls(&self, target: &Target, address: SocketAddr) -> Option<StartTls> {
        let mode = target.starttls.unwrap_or(self.config.starttls);
        mode.for_port(address.port())
    }

    async fn connect(
        &self,
        address: SocketAddr,
        started: Instant,
        deadline: Instant,
    ) -> Result<TcpStream, (ProbeStatus, String)> {
        let connect_deadline = deadline.min(started + self.config.connect_timeout);
        match timeout_at(connect_deadline, TcpStream::connect(address)).await {
            Err(_) => Err((ProbeStatus::Timeout, "connect timed out".into())),
            Ok(Err(error)) => Err(connect_error(&error)),
            Ok(Ok(stream)) => {
                // Handshake flights are small; send them without Nagle's delay.
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
        }
    }

    async fn probe_stream(
        &self,
        mut stream: TcpStream,
        target: &Target,
        address: SocketAddr,
        deadline: Instant,
        result: &mut ProbeResult,
    ) {
        let server_name = match target.server_name() {
            Some(name) => match ServerName::try_from(name.to_owned()) {
                Ok(name) => name,
                Err(error) => {
                    result.status = ProbeStatus::TlsError;
                    result.error = Some(format!("invalid SNI name {name:?}: {error}"));
                    return;
                }
            },
            None => ServerName::IpAddress(address.ip().into()),
        };
        // After STARTTLS the endpoint speaks that protocol, never HTTP.
        let mut http = Some(HttpTarget {
            host: match target.server_name() {
                Some(name) => name.to_owned(),
                None => match address {
                    SocketAddr::V4(v4) => v4.ip().to_string(),
                    SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
                },
            },
            port: address.port(),
        });
        if let Some(protocol) = self.starttls(target, address) {
            http = None;
            result.starttls = Some(protocol.as_str().to_owned());
            let upgraded =
                starttls::upgrade(&mut stream, protocol, target.server_name(), deadline).await;
            if let Err(error) = upgraded {
                result.status = match error {
                    StartTlsError::Refused { .. } => ProbeStatus::StarttlsRefused,
                    StartTlsError::Unexpected { .. } => ProbeStatus::NotTls,
                    StartTlsError::Timeout { .. } => ProbeStatus::Timeout,
                    _ => ProbeStatus::TlsError,
                };
                result.error = Some(error.to_string());
                return;
            }
        }
        let handshake = handshake::run(
            &mut stream,
            &self.provider,
            server_name,
            deadline,
            self.config.verdict_wait,
            http,
        )
        .await;
        if let Some(chain) = handshake.capture.chain() {
            self.finish_from_handshake(&handshake, chain, result);
            return;
        }
        if let Some(status) = non_tls_status(&handshake) {
            result.status = status.0;
            result.error = Some(status.1);
            return;
        }
        // Close the first connection before opening another: single-threaded servers
        // (openssl s_server, many embedded stacks) would not accept the second meanwhile.
        drop(stream);
        let primary_error = handshake
            .outcome
            .as_ref()
            .err()
            .map(describe)
            .unwrap_or_default();
        if self.config.legacy_fallback && worth_legacy_attempt(&handshake.outcome) {
            if let Some(capture) = self.legacy_capture(address, target, deadline).await {
                self.finish_from_legacy(capture, result);
                return;
            }
        }
        result.status = match handshake.outcome {
            Err(Failure::Timeout) => ProbeStatus::Timeout,
            _ => ProbeStatus::TlsError,
        };
        result.error = Some(primary_error);
        result.tls = tls_parameters(&handshake);
    }

    fn finish_from_handshake(
        &self,
        handshake: &Handshake,
        chain: Vec<Vec<u8>>,
        result: &mut ProbeResult,
    ) {
        let request = handshake.capture.certificate_request();
        let requested = request.is_some();
        result.tls = tls_parameters(handshake);
        let (status, error, required) = match (&handshake.outcome, requested) {
            (Ok(()), false) => (ProbeStatus::Ok, None, None),
            (Ok(()), true) => {
                // TLS 1.2 already gave its verdict during the handshake; TLS 1.3 after it.
                // Then an HTTP server may still refuse requests without a certificate.
                let required = if matches!(handshake.verdict, Some(Verdict::Rejected)) {
                    Some(MtlsEnforcement::Tls)
                } else if handshake.http == Some(HttpAnswer::CertificateRequired) {
                    Some(MtlsEnforcement::Http)
                } else {
                    None
                };
                (ProbeStatus::Ok, None, Some(required))
            }
            // The server refused to go on after our empty client certificate.
            (Err(Failure::Tls(_) | Failure::Closed | Failure::Io(_)), true) => {
                (ProbeStatus::Ok, None, Some(Some(MtlsEnforcement::Tls)))
            }
            (Err(Failure::Timeout), _) => (
                ProbeStatus::Timeout,
                Some("handshake timed out after the certificate".into()),
                None,
            ),
            (Err(failure), false) => (ProbeStatus::TlsError, Some(describe(failure)), None),
        };
        result.status = status;
        result.error = error;
        // `required`: None (not requested or unknown), Some(None) went on, Some(Some(at)).
        let enforced = required.flatten();
        result.mtls = Some(MtlsPolicy {
            requested,
            required: requested.then_some(enforced.is_some()),
            enforced,
            ca_names: request
                .unwrap_or_default()
                .iter()
                .map(|name| rfc4514_from_der(name))
                .collect(),
        });
        self.analyze(chain, result, false);
    }

    async fn legacy_capture(
        &self,
        address: SocketAddr,
        target: &Target,
        deadline: Instant,
    ) -> Option<LegacyCapture> {
        let started = Instant::now();
        let mut stream = self.connect(address, started, deadline).await.ok()?;
        if let Some(protocol) = self.starttls(target, address) {
            starttls::upgrade(&mut stream, protocol, target.server_name(), deadline)
                .await
                .ok()?;
        }
        match legacy::capture(&mut stream, target.server_name(), deadline).await {
            Ok(capture) if !capture.chain.is_empty() => Some(capture),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%address, %error, "legacy capture failed");
                None
            }
        }
    }

    fn finish_from_legacy(&self, capture: LegacyCapture, result: &mut ProbeResult) {
        let version = legacy_version_name(capture.version);
        let cipher = tls_parser::TlsCipherSuite::from_id(capture.cipher)
            .map(|suite| suite.name.to_owned())
            .unwrap_or_else(|| format!("0x{:04x}", capture.cipher));
        result.status = ProbeStatus::Ok;
        result.tls = Some(TlsParameters {
            version,
            cipher: Some(cipher),
            alpn: None,
            group: None,
            legacy: true,
        });
        let requested = capture.certificate_request.is_some();
        result.mtls = Some(MtlsPolicy {
            requested,
            // The handshake cannot be finished, so the server's verdict stays unknown.
            required: None,
            enforced: None,
            ca_names: capture
                .certificate_request
                .unwrap_or_default()
                .iter()
                .map(|name| rfc4514_from_der(name))
                .collect(),
        });
        self.analyze(capture.chain, result, capture.version < 0x0303);
    }

    fn analyze(&self, chain: Vec<Vec<u8>>, result: &mut ProbeResult, legacy_protocol: bool) {
        let served: Vec<ServedCertificate> = chain
            .into_iter()
            .take(legacy::MAX_CHAIN_LEN)
            .map(ServedCertificate::from_der)
            .collect();
        let context = analysis::Context {
            sni: result.sni.as_deref(),
            legacy_protocol,
            now: OffsetDateTime::now_utc(),
            trust: &self.config.trust,
        };
        result.findings = analysis::findings(&served, &context);
        result.chain = served
            .into_iter()
            .map(|cert| {
                let mut info = cert.info;
                if self.config.include_pem {
                    info.pem = Some(pem_of(&cert.der));
                }
                info
            })
            .collect();
    }
}

fn empty_result(
    target: &Target,
    address: Option<SocketAddr>,
    probed_at: OffsetDateTime,
) -> ProbeResult {
    ProbeResult {
        target: target.raw.clone(),
        address: address.map(|a| a.to_string()),
        sni: target.server_name().map(str::to_owned),
        status: ProbeStatus::TlsError,
        error: None,
        probed_at,
        elapsed_ms: 0,
        starttls: None,
        tls: None,
        mtls: None,
        chain: Vec::new(),
        findings: Vec::new(),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn connect_error(error: &io::Error) -> (ProbeStatus, String) {
    let status = match error.kind() {
        io::ErrorKind::ConnectionRefused => ProbeStatus::Refused,
        io::ErrorKind::TimedOut => ProbeStatus::Timeout,
        _ => ProbeStatus::Unreachable,
    };
    (status, format!("connect: {error}"))
}

/// The server answered, but not with TLS: say what it looked like.
fn non_tls_status(handshake: &Handshake) -> Option<(ProbeStatus, String)> {
    let bytes = &handshake.first_bytes;
    if bytes.is_empty() || looks_like_tls(bytes) {
        return None;
    }
    let what = if bytes.starts_with(b"HTTP/") {
        "an HTTP response".to_owned()
    } else if bytes.starts_with(b"SSH-") {
        "an SSH banner".to_owned()
    } else if bytes
        .iter()
        .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\r' || *b == b'\n')
    {
        format!("text {:?}", String::from_utf8_lossy(bytes))
    } else {
        format!("bytes {}", hex::encode(bytes))
    };
    Some((
        ProbeStatus::NotTls,
        format!("not TLS: the server sent {what}"),
    ))
}

/// A TLS record starts with a content type 20..=24 and major version 3.
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [20..=24] | [20..=24, 3, ..])
}

/// rustls gave up before seeing a certificate: an old protocol or suite is the likely cause.
fn worth_legacy_attempt(outcome: &Result<(), Failure>) -> bool {
    match outcome {
        Ok(()) | Err(Failure::Timeout) => false,
        Err(Failure::Closed) => true,
        Err(Failure::Io(error)) => error.kind() == io::ErrorKind::ConnectionReset,
        Err(Failure::Tls(error)) => matches!(
            error,
            rustls::Error::AlertReceived(_)
                | rustls::Error::PeerIncompatible(_)
                | rustls::Error::PeerMisbehaved(_)
                | rustls::Error::InvalidMessage(_)
        ),
    }
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Timeout => "TLS handshake timed out".into(),
        Failure::Closed => "the server closed the connection during the handshake".into(),
        Failure::Io(error) => format!("handshake: {error}"),
        Failure::Tls(error) => format!("handshake: {error}"),
    }
}

fn tls_parameters(handshake: &Handshake) -> Option<TlsParameters> {
    let version = handshake.version?;
    Some(TlsParameters {
        version: match version {
            ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
            ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
            other => format!("{other:?}"),
        },
        cipher: handshake.cipher.clone(),
        alpn: handshake.alpn.clone(),
        group: handshake.group.clone(),
        legacy: false,
    })
}

fn legacy_version_name(version: u16) -> String {
    match version {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        other => format!("0x{other:04x}"),
    }
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
