//! Certificates from servers rustls cannot talk to (TLS 1.0/1.1, DHE-only or RSA-kx-only).
//!
//! Below TLS 1.3 the server's Certificate and CertificateRequest messages travel in clear.
//! We send one generous ClientHello (TLS 1.2 at most, every suite of the last twenty years),
//! read handshake records until ServerHelloDone or an alert, reassemble handshake messages
//! that span records, and stop there: the handshake is never completed.

use std::io;

use tls_parser::{parse_tls_message_handshake, TlsMessage, TlsMessageHandshake};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

/// Largest handshake message accepted (a Certificate message with a long chain).
pub const MAX_HANDSHAKE_MESSAGE: usize = 256 * 1024;
/// Most bytes read from one server before giving up.
const MAX_TOTAL_BYTES: usize = 512 * 1024;
/// Most certificates kept from one chain.
pub const MAX_CHAIN_LEN: usize = 32;

/// What the clear-text part of a legacy handshake revealed.
#[derive(Debug, Default)]
pub struct LegacyCapture {
    /// The version the server chose (0x0301 = TLS 1.0 ...).
    pub version: u16,
    pub cipher: u16,
    pub chain: Vec<Vec<u8>>,
    /// `Some(ca_names)` when a CertificateRequest was sent.
    pub certificate_request: Option<Vec<Vec<u8>>>,
}

/// Why the legacy capture failed.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("deadline passed")]
    Timeout,
    /// The I/O error itself: its message and its source, said once.
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("connection closed before ServerHelloDone")]
    Closed,
    #[error("the server answered with something that is not TLS")]
    NotTls,
    #[error("server sent fatal alert {0}")]
    Alert(u8),
    #[error("handshake message of {0} bytes exceeds the {MAX_HANDSHAKE_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("server sent more than {MAX_TOTAL_BYTES} bytes without finishing its hello")]
    TooMuchData,
    #[error("malformed handshake message of type {0}")]
    Malformed(u8),
}

const RECORD_HANDSHAKE: u8 = 22;
const RECORD_ALERT: u8 = 21;

/// Sends the legacy ClientHello on `stream` and reads the server's clear-text flight. The
/// stream is the probe's `TcpStream`; the fuzz target gives it in-memory bytes.
pub async fn capture<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    server_name: Option<&str>,
    deadline: Instant,
) -> Result<LegacyCapture, LegacyError> {
    let hello = client_hello(server_name);
    timeout_at(deadline, stream.write_all(&hello))
        .await
        .map_err(|_| LegacyError::Timeout)??;

    let mut received: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut handshake: Vec<u8> = Vec::new();
    let mut capture = LegacyCapture::default();
    let mut total = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = timeout_at(deadline, stream.read(&mut buf))
            .await
            .map_err(|_| LegacyError::Timeout)??;
        if read == 0 {
            return Err(LegacyError::Closed);
        }
        total += read;
        if total > MAX_TOTAL_BYTES {
            return Err(LegacyError::TooMuchData);
        }
        received.extend_from_slice(&buf[..read]);
        // Move complete records out of `received`.
        while received.len() >= 5 {
            let (kind, major) = (received[0], received[1]);
            if !matches!(kind, 20..=23) || major != 3 {
                return Err(LegacyError::NotTls);
            }
            let length = usize::from(u16::from_be_bytes([received[3], received[4]]));
            if received.len() < 5 + length {
                break;
            }
            let body: Vec<u8> = received.drain(..5 + length).skip(5).collect();
            match kind {
                RECORD_HANDSHAKE => handshake.extend_from_slice(&body),
                RECORD_ALERT if body.len() >= 2 && body[0] == 2 => {
                    return Err(LegacyError::Alert(body[1]))
                }
                RECORD_ALERT => {}
                // ChangeCipherSpec or data: the clear-text part is over.
                _ => return Ok(capture),
            }
        }
        if take_messages(&mut handshake, &mut capture)? {
            // Best effort: tell the server we are leaving (warning alert user_canceled).
            let _ = timeout_at(deadline, stream.write_all(&[21, 3, 1, 0, 2, 1, 90])).await;
            return Ok(capture);
        }
    }
}

/// Parses complete handshake messages off the front of `pending`. `Ok(true)` at
/// ServerHelloDone.
fn take_messages(pending: &mut Vec<u8>, capture: &mut LegacyCapture) -> Result<bool, LegacyError> {
    loop {
        if pending.len() < 4 {
            return Ok(false);
        }
        let kind = pending[0];
        let length =
            usize::from(pending[1]) << 16 | usize::from(pending[2]) << 8 | usize::from(pending[3]);
        if length > MAX_HANDSHAKE_MESSAGE {
            return Err(LegacyError::TooLarge(length));
        }
        if pending.len() < 4 + length {
            return Ok(false);
        }
        let message: Vec<u8> = pending.drain(..4 + length).collect();
        let parsed = match parse_tls_message_handshake(&message) {
            Ok((_, TlsMessage::Handshake(parsed))) => parsed,
            // A message type tls-parser does not know is skipped, like a real client would.
            _ if !matches!(kind, 2 | 11 | 13 | 14) => continue,
            _ => return Err(LegacyError::Malformed(kind)),
        };
        match parsed {
            TlsMessageHandshake::ServerHello(hello) => {
                capture.version = hello.version.0;
                capture.cipher = hello.cipher.0;
            }
            TlsMessageHandshake::Certificate(certificates) => {
                capture.chain = certificates
                    .cert_chain
                    .iter()
                    .take(MAX_CHAIN_LEN)
                    .map(|raw| raw.data.to_vec())
                    .collect();
            }
            TlsMessageHandshake::CertificateRequest(request) => {
                let names = request
                    .unparsed_ca
                    .iter()
                    .map(|name| name.to_vec())
                    .collect();
                capture.certificate_request = Some(names);
            }
            TlsMessageHandshake::ServerDone(_) => return Ok(true),
            _ => {}
        }
    }
}

/// Cipher suites offered: modern ECDHE first, then DHE, plain RSA, 3DES and RC4, so that
/// any server of the last twenty years finds one it accepts.
const SUITES: &[u16] = &[
    0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc023, 0xc027, 0xc024, 0xc028, 0xc009, 0xc013,
    0xc00a, 0xc014, 0x009e, 0x009f, 0x0067, 0x006b, 0x0033, 0x0039, 0x0032, 0x0038, 0x009c, 0x009d,
    0x003c, 0x003d, 0x002f, 0x0035, 0x0041, 0x0084, 0x0045, 0x0088, 0xc012, 0xc008, 0x0016, 0x0013,
    0x000a, 0x0005, 0x0004, 0x0009, 0x00ff,
];

/// Signature algorithms offered, SHA-1 and DSA included.
const SIGNATURE_ALGORITHMS: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0807, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201,
    0x0402, 0x0202,
];

/// Builds a TLS 1.2 ClientHello record (record version TLS 1.0 for old middleboxes).
fn client_hello(server_name: Option<&str>) -> Vec<u8> {
    let mut extensions = Vec::new();
    if let Some(name) = server_name {
        let name = name.as_bytes();
        let mut list = vec![0u8];
        put_u16_prefixed(&mut list, name);
        let mut data = Vec::new();
        put_u16_prefixed(&mut data, &list);
        put_extension(&mut extensions, 0x0000, &data);
    }
    let groups: Vec<u8> = [0x001du16, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101]
        .iter()
        .flat_map(|group| group.to_be_bytes())
        .collect();
    let mut data = Vec::new();
    put_u16_prefixed(&mut data, &groups);
    put_extension(&mut extensions, 0x000a, &data);
    put_extension(&mut extensions, 0x000b, &[1, 0]);
    let algorithms: Vec<u8> = SIGNATURE_ALGORITHMS
        .iter()
        .flat_map(|alg| alg.to_be_bytes())
        .collect();
    let mut data = Vec::new();
    put_u16_prefixed(&mut data, &algorithms);
    put_extension(&mut extensions, 0x000d, &data);

    let mut body = vec![3, 3];
    body.extend_from_slice(&random_bytes());
    body.push(0); // no session id
    let suites: Vec<u8> = SUITES
        .iter()
        .flat_map(|suite| suite.to_be_bytes())
        .collect();
    put_u16_prefixed(&mut body, &suites);
    body.extend_from_slice(&[1, 0]); // compression: null only
    put_u16_prefixed(&mut body, &extensions);

    let mut message = vec![1];
    message.extend_from_slice(&u32_to_u24(body.len()));
    message.extend_from_slice(&body);
    let mut record = vec![RECORD_HANDSHAKE, 3, 1];
    put_u16_prefixed(&mut record, &message);
    record
}

fn put_extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    put_u16_prefixed(out, data);
}

/// Lengths here are bounded by construction (a name of at most 253 bytes, fixed lists).
fn put_u16_prefixed(out: &mut Vec<u8>, data: &[u8]) {
    let length = u16::try_from(data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(data);
}

fn u32_to_u24(value: usize) -> [u8; 3] {
    let bytes = (value as u32).to_be_bytes();
    [bytes[1], bytes[2], bytes[3]]
}

fn random_bytes() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut random = [0u8; 32];
    // The client random only needs to be unpredictable enough to look normal; on the
    // (never observed) failure of the system RNG, zeros still make a valid hello.
    let _ = ring::rand::SystemRandom::new().fill(&mut random);
    random
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_parses_back_with_its_sni() {
        let hello = client_hello(Some("legacy.test"));
        let (_, record) = tls_parser::parse_tls_plaintext(&hello).expect("parses");
        let Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello))) =
            record.msg.first()
        else {
            panic!("not a ClientHello");
        };
        assert_eq!(hello.version.0, 0x0303);
        assert_eq!(hello.ciphers.len(), SUITES.len());
        let ext = hello.ext.expect("extensions");
        let (_, extensions) = tls_parser::parse_tls_client_hello_extensions(ext).expect("ext");
        assert!(extensions.iter().any(|e| matches!(
            e,
            tls_parser::TlsExtension::SNI(names) if names[0].1 == b"legacy.test"
        )));
    }

    #[test]
    fn messages_split_across_records_are_reassembled() {
        let certificate = [0x30u8, 0x03, 0x02, 0x01, 0x05];
        let mut chain = Vec::new();
        chain.extend_from_slice(&u32_to_u24(certificate.len()));
        chain.extend_from_slice(&certificate);
        let mut body = Vec::new();
        body.extend_from_slice(&u32_to_u24(chain.len()));
        body.extend_from_slice(&chain);
        let mut message = vec![11];
        message.extend_from_slice(&u32_to_u24(body.len()));
        message.extend_from_slice(&body);
        message.extend_from_slice(&[14, 0, 0, 0]); // ServerHelloDone

        let mut capture = LegacyCapture::default();
        let mut pending = message[..6].to_vec();
        assert!(!take_messages(&mut pending, &mut capture).expect("partial is fine"));
        pending.extend_from_slice(&message[6..]);
        assert!(take_messages(&mut pending, &mut capture).expect("complete"));
        assert_eq!(capture.chain, vec![certificate.to_vec()]);
    }

    #[test]
    fn oversized_handshake_message_is_refused() {
        let mut pending = vec![11, 0x10, 0, 0];
        let mut capture = LegacyCapture::default();
        assert!(matches!(
            take_messages(&mut pending, &mut capture),
            Err(LegacyError::TooLarge(0x100000))
        ));
    }
}
