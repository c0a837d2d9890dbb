//! The bodies of the fuzz targets in `fuzz/` (cargo fuzz): each takes the bytes a server
//! could send and runs them through the same code a probe does, in memory. The unit tests
//! below feed the committed seed corpus (`fuzz/corpus/<target>/`) through them on every
//! test run. Not an API: nothing outside the fuzz targets and tests should call this.

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::analysis::{self, rfc4514_from_der, Context, ServedCertificate, TrustStore};
use crate::legacy::{self, MAX_CHAIN_LEN};
pub use crate::legacy::{LegacyCapture, LegacyError};
use crate::starttls::{self, StartTls, StartTlsError};

/// The protocols of the `starttls` target, chosen by the input's first byte modulo 8
/// (`'0'` is SMTP, `'1'` IMAP ... `'7'` MySQL, so seed files start with a digit).
pub const STARTTLS_PROTOCOLS: [StartTls; 8] = [
    StartTls::Smtp,
    StartTls::Imap,
    StartTls::Pop3,
    StartTls::Ftp,
    StartTls::Ldap,
    StartTls::Postgres,
    StartTls::Xmpp,
    StartTls::Mysql,
];

/// Certificate analysis of a served chain. `data` is one DER certificate, or several
/// concatenated (a chain, leaf first); whatever does not split as DER is the last
/// "certificate". Also reads `data` as a CertificateRequest CA name. Returns the leaf's
/// parse error, if any (unparseable certificates are kept, never refused).
pub fn certificate(data: &[u8]) -> Result<(), String> {
    let _ = rfc4514_from_der(data);
    let chain: Vec<ServedCertificate> = split_der(data)
        .into_iter()
        .take(MAX_CHAIN_LEN)
        .map(|der| ServedCertificate::from_der(der.to_vec()))
        .collect();
    analyse(&chain, false);
    match chain.first().and_then(|leaf| leaf.info.parse_error.clone()) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// The legacy (TLS 1.0-1.2 clear-text) capture reading `data` as everything the server
/// sent after our ClientHello, then the analysis the prober does of what it captured.
pub fn legacy_flight(data: &[u8]) -> Result<LegacyCapture, LegacyError> {
    let captured = block_on(async {
        let mut stream = Scripted::new(data);
        legacy::capture(&mut stream, Some("fuzz.example"), deadline()).await
    })?;
    let _ = tls_parser::TlsCipherSuite::from_id(captured.cipher);
    for name in captured.certificate_request.iter().flatten() {
        let _ = rfc4514_from_der(name);
    }
    let chain: Vec<ServedCertificate> = captured
        .chain
        .iter()
        .map(|der| ServedCertificate::from_der(der.clone()))
        .collect();
    analyse(&chain, captured.version < 0x0303);
    Ok(captured)
}

/// The STARTTLS dialogue of the protocol chosen by `data[0]` (see [`STARTTLS_PROTOCOLS`])
/// against a server that answers with the rest of `data`. `Ok` means the dialogue agreed
/// to start TLS.
pub fn starttls(data: &[u8]) -> Result<StartTls, StartTlsError> {
    let Some((&selector, replies)) = data.split_first() else {
        return Ok(StartTls::Smtp);
    };
    let protocol = STARTTLS_PROTOCOLS[usize::from(selector) % STARTTLS_PROTOCOLS.len()];
    starttls_dialogue(protocol, replies).map(|()| protocol)
}

/// The STARTTLS dialogue of `protocol` against a server whose bytes are `replies`.
pub fn starttls_dialogue(protocol: StartTls, replies: &[u8]) -> Result<(), StartTlsError> {
    block_on(async {
        let mut stream = Scripted::new(replies);
        starttls::upgrade(&mut stream, protocol, Some("fuzz.example"), deadline()).await
    })
}

/// Findings, as the prober computes them (Mozilla roots, an SNI name, a fixed clock).
fn analyse(chain: &[ServedCertificate], legacy_protocol: bool) {
    static TRUST: OnceLock<TrustStore> = OnceLock::new();
    let context = Context {
        sni: Some("fuzz.example"),
        legacy_protocol,
        now: time::macros::datetime!(2026-11-27 12:00 UTC),
        trust: TRUST.get_or_init(TrustStore::mozilla),
    };
    let _ = analysis::findings(chain, &context);
}

/// Splits concatenated DER TLVs (definite lengths up to four bytes); a piece that does
/// not look like one ends the split and is kept whole.
fn split_der(mut data: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    while !data.is_empty() {
        let length = match data.get(1) {
            Some(&short) if short < 0x80 => Some((2, usize::from(short))),
            Some(&long) if (0x81..=0x84).contains(&long) => {
                let count = usize::from(long & 0x7f);
                data.get(2..2 + count).map(|bytes| {
                    let value = bytes
                        .iter()
                        .fold(0usize, |acc, byte| acc << 8 | usize::from(*byte));
                    (2 + count, value)
                })
            }
            _ => None,
        };
        match length.and_then(|(header, body)| header.checked_add(body)) {
            Some(total) if total <= data.len() => {
                pieces.push(&data[..total]);
                data = &data[total..];
            }
            _ => {
                pieces.push(data);
                break;
            }
        }
    }
    pieces
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Runs `future` on a current-thread runtime with the time driver (the dialogues use
/// deadlines), created once per thread.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime builds");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// A server in memory: reads give the scripted bytes (then end of file), writes are
/// accepted and dropped.
struct Scripted<'a> {
    replies: &'a [u8],
}

impl<'a> Scripted<'a> {
    fn new(replies: &'a [u8]) -> Self {
        Scripted { replies }
    }
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let count = buf.remaining().min(self.replies.len());
        let (now, later) = self.replies.split_at(count);
        buf.put_slice(now);
        self.replies = later;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use certfleet_testkit::fuzz_corpus as corpus;

    #[test]
    fn certificate_corpus_is_analysed_without_panics() {
        let mut parsed = 0;
        for (name, bytes) in corpus("certificate", 10) {
            let result = certificate(&bytes);
            eprintln!("{name}: {result:?}");
            parsed += usize::from(result.is_ok());
        }
        assert!(parsed >= 5, "only {parsed} seed certificates parsed");
    }

    #[test]
    fn legacy_flight_corpus_is_read_without_panics() {
        let mut captured = 0;
        for (name, bytes) in corpus("legacy_flight", 5) {
            let result = legacy_flight(&bytes);
            eprintln!("{name}: {:?}", result.as_ref().map(|c| c.chain.len()));
            if let Ok(capture) = result {
                captured += usize::from(!capture.chain.is_empty());
            }
        }
        assert!(captured >= 2, "only {captured} seed flights gave a chain");
    }

    #[test]
    fn starttls_corpus_is_read_without_panics() {
        let mut agreed = 0;
        for (name, bytes) in corpus("starttls", 16) {
            let result = starttls(&bytes);
            eprintln!("{name}: {result:?}");
            agreed += usize::from(result.is_ok());
        }
        assert!(agreed >= 8, "only {agreed} seed dialogues reached TLS");
    }

    /// Found by the fuzzer: a leaf whose notBefore is after its notAfter made the trust
    /// check panic (`clamp` with min > max) instead of calling the chain untrusted.
    #[test]
    fn inverted_validity_is_untrusted_not_a_panic() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/certificate/crash-validity-inverted.der");
        let bytes = std::fs::read(path).expect("the crash seed is committed");
        // The fuzzer's input is the certificate and one stray byte (a second "certificate").
        let leaf = ServedCertificate::from_der(split_der(&bytes)[0].to_vec());
        assert!(
            leaf.info.not_before > leaf.info.not_after,
            "{:?}",
            leaf.info
        );
        let context = Context {
            sni: None,
            legacy_protocol: false,
            now: time::macros::datetime!(2026-11-27 12:00 UTC),
            trust: &TrustStore::mozilla(),
        };
        let found = analysis::findings(std::slice::from_ref(&leaf), &context);
        assert!(
            found.contains(&certfleet_model::Finding::Untrusted),
            "{found:?}"
        );
        assert!(
            found.contains(&certfleet_model::Finding::Expired),
            "{found:?}"
        );
    }

    #[test]
    fn split_der_keeps_what_does_not_split() {
        let two = [0x30, 0x01, 0x00, 0x30, 0x00];
        assert_eq!(split_der(&two), vec![&two[..3], &two[3..]]);
        let truncated = [0x30, 0x82, 0xff];
        assert_eq!(split_der(&truncated), vec![&truncated[..]]);
    }
}
