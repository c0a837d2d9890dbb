//! STARTTLS: the plaintext dialogue that comes before the TLS handshake on SMTP, IMAP,
//! POP3, FTP, LDAP, PostgreSQL, XMPP and MySQL ports.
//!
//! Each dialogue reads the server's greeting, asks for TLS, and stops right after the
//! server agrees, so the next bytes on the socket are the TLS handshake. Replies are read
//! with a size limit and the probe's deadline.

use std::fmt;
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

/// A protocol that upgrades to TLS in-band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartTls {
    Smtp,
    Imap,
    Pop3,
    Ftp,
    Ldap,
    Postgres,
    Xmpp,
    Mysql,
}

/// Why the upgrade did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StartTlsError {
    /// The server answered but declined (no STARTTLS capability, `N` to SSLRequest...).
    #[error("{protocol} server refused STARTTLS: {reply}")]
    Refused { protocol: StartTls, reply: String },
    /// The server said something that is not the protocol at all.
    #[error("not a {protocol} server: {reply}")]
    Unexpected { protocol: StartTls, reply: String },
    #[error("{protocol} STARTTLS dialogue timed out")]
    Timeout { protocol: StartTls },
    /// The cause is in the message (a probe result's `error` shows only the message), not
    /// also a `source()`.
    #[error("{protocol} STARTTLS dialogue: {error}")]
    Io {
        protocol: StartTls,
        error: std::io::Error,
    },
    #[error("{protocol} server closed the connection during STARTTLS")]
    Closed { protocol: StartTls },
    #[error("{protocol} reply longer than {MAX_REPLY} bytes")]
    TooLong { protocol: StartTls },
}

/// Longest plaintext reply accepted (a chatty EHLO answer is under 1 KiB).
const MAX_REPLY: usize = 16 * 1024;

impl StartTls {
    /// The protocol usually spoken on a well-known port.
    pub fn for_port(port: u16) -> Option<StartTls> {
        Some(match port {
            25 | 587 => StartTls::Smtp,
            143 => StartTls::Imap,
            110 => StartTls::Pop3,
            21 => StartTls::Ftp,
            389 => StartTls::Ldap,
            5432 => StartTls::Postgres,
            5222 => StartTls::Xmpp,
            3306 => StartTls::Mysql,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StartTls::Smtp => "smtp",
            StartTls::Imap => "imap",
            StartTls::Pop3 => "pop3",
            StartTls::Ftp => "ftp",
            StartTls::Ldap => "ldap",
            StartTls::Postgres => "postgres",
            StartTls::Xmpp => "xmpp",
            StartTls::Mysql => "mysql",
        }
    }
}

impl fmt::Display for StartTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartTls {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "smtp" => StartTls::Smtp,
            "imap" => StartTls::Imap,
            "pop3" => StartTls::Pop3,
            "ftp" => StartTls::Ftp,
            "ldap" => StartTls::Ldap,
            "postgres" | "postgresql" => StartTls::Postgres,
            "xmpp" => StartTls::Xmpp,
            "mysql" => StartTls::Mysql,
            other => {
                return Err(format!(
                    "unknown STARTTLS protocol {other:?} \
                     (smtp, imap, pop3, ftp, ldap, postgres, xmpp, mysql)"
                ))
            }
        })
    }
}

/// Runs the plaintext dialogue of `protocol` on `stream`. `server_name` is used where the
/// protocol names the server (XMPP's `to`).
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    protocol: StartTls,
    server_name: Option<&str>,
    deadline: Instant,
) -> Result<(), StartTlsError> {
    let mut talk = Dialogue {
        stream,
        protocol,
        deadline,
    };
    match protocol {
        StartTls::Smtp => {
            talk.expect_code(&["220"]).await?;
            talk.send(b"EHLO certfleet.invalid\r\n").await?;
            talk.expect_code(&["250"]).await?;
            talk.send(b"STARTTLS\r\n").await?;
            talk.expect_code(&["220"]).await
        }
        StartTls::Ftp => {
            talk.expect_code(&["220"]).await?;
            talk.send(b"AUTH TLS\r\n").await?;
            talk.expect_code(&["234"]).await
        }
        StartTls::Imap => {
            talk.expect_prefix("* OK").await?;
            talk.send(b"cf1 STARTTLS\r\n").await?;
            talk.expect_tagged("cf1 OK").await
        }
        StartTls::Pop3 => {
            talk.expect_prefix("+OK").await?;
            talk.send(b"STLS\r\n").await?;
            talk.expect_prefix("+OK").await
        }
        StartTls::Postgres => {
            // SSLRequest: length 8, code 80877103. The answer is one byte.
            talk.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
            match talk.read_exact_bytes(1).await?.first() {
                Some(b'S') => Ok(()),
                Some(b'N') => Err(talk.refused("N (ssl is off)".into())),
                other => Err(talk.unexpected(format!("{other:?}"))),
            }
        }
        StartTls::Mysql => mysql(&mut talk).await,
        StartTls::Ldap => ldap(&mut talk).await,
        StartTls::Xmpp => xmpp(&mut talk, server_name.unwrap_or("localhost")).await,
    }
}

struct Dialogue<'a, S> {
    stream: &'a mut S,
    protocol: StartTls,
    deadline: Instant,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Dialogue<'_, S> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), StartTlsError> {
        match timeout_at(self.deadline, self.stream.write_all(bytes)).await {
            Err(_) => Err(StartTlsError::Timeout {
                protocol: self.protocol,
            }),
            Ok(Err(source)) => Err(StartTlsError::Io {
                protocol: self.protocol,
                error: source,
            }),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads one byte at a time up to and including `\n`: the server must not have sent
    /// anything past the reply we wait for, and TLS bytes must stay on the socket.
    async fn line(&mut self) -> Result<String, StartTlsError> {
        let mut line = Vec::with_capacity(128);
        loop {
            let byte = self.read_exact_bytes(1).await?[0];
            line.push(byte);
            if byte == b'\n' {
                return Ok(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
            if line.len() > MAX_REPLY {
                return Err(StartTlsError::TooLong {
                    protocol: self.protocol,
                });
            }
        }
    }

    async fn read_exact_bytes(&mut self, count: usize) -> Result<Vec<u8>, StartTlsError> {
        let mut buf = vec![0u8; count];
        match timeout_at(self.deadline, self.stream.read_exact(&mut buf)).await {
            Err(_) => Err(StartTlsError::Timeout {
                protocol: self.protocol,
            }),
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(StartTlsError::Closed {
                    protocol: self.protocol,
                })
            }
            Ok(Err(source)) => Err(StartTlsError::Io {
                protocol: self.protocol,
                error: source,
            }),
            Ok(Ok(_)) => Ok(buf),
        }
    }

    /// SMTP/FTP style: `CODE-text` continues, `CODE text` ends the reply.
    async fn expect_code(&mut self, codes: &[&str]) -> Result<(), StartTlsError> {
        let mut total = 0;
        loop {
            let line = self.line().await?;
            total += line.len();
            if total > MAX_REPLY {
                return Err(StartTlsError::TooLong {
                    protocol: self.protocol,
                });
            }
            let code = line.get(..3).unwrap_or("");
            if !code.bytes().all(|b| b.is_ascii_digit()) || code.is_empty() {
                return Err(self.unexpected(line));
            }
            if line.as_bytes().get(3) == Some(&b'-') {
                continue;
            }
            return if codes.contains(&code) {
                Ok(())
            } else {
                Err(self.refused(line))
            };
        }
    }

    async fn expect_prefix(&mut self, prefix: &str) -> Result<(), StartTlsError> {
        let line = self.line().await?;
        if line.starts_with(prefix) {
            Ok(())
        } else if line.starts_with("-ERR") || line.starts_with("* BAD") || line.starts_with("* NO")
        {
            Err(self.refused(line))
        } else {
            Err(self.unexpected(line))
        }
    }

    /// IMAP: skip untagged `*` lines until the tagged answer.
    async fn expect_tagged(&mut self, wanted: &str) -> Result<(), StartTlsError> {
        for _ in 0..64 {
            let line = self.line().await?;
            if line.starts_with('*') {
                continue;
            }
            return if line.starts_with(wanted) {
                Ok(())
            } else {
                Err(self.refused(line))
            };
        }
        Err(StartTlsError::TooLong {
            protocol: self.protocol,
        })
    }

    fn refused(&self, reply: String) -> StartTlsError {
        StartTlsError::Refused {
            protocol: self.protocol,
            reply: printable(&reply),
        }
    }

    fn unexpected(&self, reply: String) -> StartTlsError {
        StartTlsError::Unexpected {
            protocol: self.protocol,
            reply: printable(&reply),
        }
    }
}

/// A server's reply as kept in an error: at most 200 characters, control characters
/// escaped by the one rule for server text (`certfleet_model::text`).
fn printable(text: &str) -> String {
    let head: String = text.chars().take(200).collect();
    certfleet_model::text::escape_controls(head.trim_end_matches(['\r', '\n'])).into_owned()
}

/// MySQL: read the server's handshake packet, check CLIENT_SSL, send an SSLRequest.
async fn mysql<S: AsyncRead + AsyncWrite + Unpin>(
    talk: &mut Dialogue<'_, S>,
) -> Result<(), StartTlsError> {
    const CLIENT_SSL: u32 = 0x0800;
    const CLIENT_PROTOCOL_41: u32 = 0x0200;
    let header = talk.read_exact_bytes(4).await?;
    let length =
        usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if !(4..=MAX_REPLY).contains(&length) {
        return Err(talk.unexpected(format!("packet length {length}")));
    }
    let packet = talk.read_exact_bytes(length).await?;
    if packet[0] == 0xff {
        let message = String::from_utf8_lossy(packet.get(3..).unwrap_or(&[])).into_owned();
        return Err(talk.refused(message));
    }
    if packet[0] != 10 {
        return Err(talk.unexpected(format!("protocol version {}", packet[0])));
    }
    // version string (NUL-terminated), thread id (4), auth data (8), filler (1), caps low (2)
    let version_end = packet.iter().skip(1).position(|b| *b == 0).map(|p| p + 1);
    let caps_at = version_end.map(|end| end + 1 + 4 + 8 + 1);
    let capabilities = caps_at
        .and_then(|at| packet.get(at..at + 2))
        .map(|caps| u32::from(u16::from_le_bytes([caps[0], caps[1]])))
        .ok_or_else(|| talk.unexpected("truncated handshake packet".into()))?;
    if capabilities & CLIENT_SSL == 0 {
        return Err(talk.refused("server does not offer SSL".into()));
    }
    let mut request = vec![32, 0, 0, 1];
    request.extend_from_slice(&(CLIENT_SSL | CLIENT_PROTOCOL_41).to_le_bytes());
    request.extend_from_slice(&(16u32 * 1024 * 1024).to_le_bytes());
    request.push(33); // utf8_general_ci
    request.extend_from_slice(&[0u8; 23]);
    talk.send(&request).await
}

/// LDAP: an ExtendedRequest for StartTLS (OID 1.3.6.1.4.1.1466.20037); success is
/// resultCode 0 in the ExtendedResponse.
async fn ldap<S: AsyncRead + AsyncWrite + Unpin>(
    talk: &mut Dialogue<'_, S>,
) -> Result<(), StartTlsError> {
    const OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
    let mut request = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
    request.extend_from_slice(OID);
    talk.send(&request).await?;
    let header = talk.read_exact_bytes(2).await?;
    if header[0] != 0x30 {
        return Err(talk.unexpected(format!("tag 0x{:02x}", header[0])));
    }
    let length = match header[1] {
        short if short < 0x80 => usize::from(short),
        0x81 => usize::from(talk.read_exact_bytes(1).await?[0]),
        0x82 => {
            let bytes = talk.read_exact_bytes(2).await?;
            usize::from(u16::from_be_bytes([bytes[0], bytes[1]]))
        }
        other => return Err(talk.unexpected(format!("length form 0x{other:02x}"))),
    };
    if length > MAX_REPLY {
        return Err(StartTlsError::TooLong {
            protocol: talk.protocol,
        });
    }
    let body = talk.read_exact_bytes(length).await?;
    // messageID INTEGER, then [APPLICATION 24] ExtendedResponse { resultCode ENUMERATED ... }
    let after_id = body
        .get(1)
        .map(|len| 2 + usize::from(*len))
        .unwrap_or(usize::MAX);
    let response = body.get(after_id..).unwrap_or(&[]);
    if response.first() != Some(&0x78) {
        return Err(talk.unexpected("no ExtendedResponse".into()));
    }
    let position = response.windows(2).position(|w| w == [0x0a, 0x01]);
    match position.and_then(|at| response.get(at + 2)) {
        Some(0) => Ok(()),
        Some(code) => Err(talk.refused(format!("resultCode {code}"))),
        None => Err(talk.unexpected("ExtendedResponse without resultCode".into())),
    }
}

/// XMPP: open a stream, look for `<starttls` in the features, ask, expect `<proceed`.
async fn xmpp<S: AsyncRead + AsyncWrite + Unpin>(
    talk: &mut Dialogue<'_, S>,
    domain: &str,
) -> Result<(), StartTlsError> {
    let open = format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    );
    talk.send(open.as_bytes()).await?;
    let features = read_until(talk, &["</stream:features>", "<stream:features/>"]).await?;
    if !features.contains("<starttls") {
        return Err(talk.refused("no <starttls/> in stream features".into()));
    }
    talk.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await?;
    let answer = read_until(talk, &["<proceed", "<failure"]).await?;
    if answer.contains("<proceed") {
        // Consume the rest of the element (`.../>`) so TLS starts on a clean socket.
        read_until(talk, &[">"]).await?;
        Ok(())
    } else {
        Err(talk.refused("<failure/>".into()))
    }
}

async fn read_until<S: AsyncRead + AsyncWrite + Unpin>(
    talk: &mut Dialogue<'_, S>,
    markers: &[&str],
) -> Result<String, StartTlsError> {
    let mut text = Vec::new();
    loop {
        text.push(talk.read_exact_bytes(1).await?[0]);
        if text.len() > MAX_REPLY {
            return Err(StartTlsError::TooLong {
                protocol: talk.protocol,
            });
        }
        if markers
            .iter()
            .any(|marker| text.ends_with(marker.as_bytes()))
        {
            return Ok(String::from_utf8_lossy(&text).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_ports_choose_their_protocol() {
        assert_eq!(StartTls::for_port(587), Some(StartTls::Smtp));
        assert_eq!(StartTls::for_port(5432), Some(StartTls::Postgres));
        assert_eq!(StartTls::for_port(443), None);
        assert_eq!("PostgreSQL".parse::<StartTls>(), Ok(StartTls::Postgres));
        assert!("gopher".parse::<StartTls>().is_err());
    }
}
