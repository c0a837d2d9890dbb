//! A minimal HTTP/1.1 client for one kind of request: `POST` a small body, read the status.
//! Plain `http://` over a TCP stream, `https://` over rustls with the Mozilla roots plus an
//! optional CA file. One connection per request (`Connection: close`): an agent posts once
//! an hour, so pooling would only keep memory and a socket busy.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Error;

/// Bytes of response headers read at most.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes of response body kept (for the log); the rest is not read.
const MAX_BODY: usize = 64 * 1024;

/// Where the service is: `http[s]://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// `https://`.
    pub tls: bool,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port (80 or 443 unless given).
    pub port: u16,
    /// Path prefix without the trailing slash (`""` at the root).
    pub prefix: String,
}

impl ServerUrl {
    /// Parses a base URL; no user info, query or fragment.
    pub fn parse(url: &str) -> Result<ServerUrl, Error> {
        let bad = |message: &str| Error::config("agent.server", format!("{url:?}: {message}"));
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let odd = |c: char| c.is_whitespace() || c.is_control();
        if authority.contains('@') || path.contains(['?', '#']) || url.contains(odd) {
            return Err(bad("no user, query, fragment or spaces allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(port) => port.parse().map_err(|_| bad("bad port"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(ServerUrl {
            tls,
            host: host.to_owned(),
            port,
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `host:port`, bracketed for IPv6, for the `Host` header and messages.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A status and the start of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Up to 64 KiB of the body.
    pub body: Vec<u8>,
}

/// Posts to one server.
#[derive(Clone)]
pub struct Client {
    url: ServerUrl,
    tls: Option<TlsConnector>,
    timeout: Duration,
}

impl Client {
    /// A client for `url`, trusting the Mozilla roots and the certificates of `ca_file`.
    pub fn new(url: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<Client, Error> {
        let url = ServerUrl::parse(url)?;
        let tls = url.tls.then(|| tls_connector(ca_file)).transpose()?;
        Ok(Client { url, tls, timeout })
    }

    /// The server's URL.
    pub fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// `POST prefix+path` with a bearer token and a gzip JSON body. A 2xx answer is `Ok`;
    /// any other status is [`Error::Rejected`]; the network and the deadline give
    /// [`Error::Unreachable`].
    pub async fn post_gzip_json(
        &self,
        path: &str,
        token: &str,
        body: &[u8],
    ) -> Result<Response, Error> {
        let head = format!(
            "POST {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: certfleet-agent/{}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.url.prefix,
            path,
            self.url.authority(),
            crate::report::VERSION,
            token,
            body.len()
        );
        let unreachable = |reason: String| Error::Unreachable {
            server: self.url.authority(),
            reason,
        };
        let exchange = async {
            let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
                .await
                .map_err(|error| unreachable(format!("connect: {error}")))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => exchange(tcp, head.as_bytes(), body).await,
                Some(connector) => {
                    let name = ServerName::try_from(self.url.host.clone())
                        .map_err(|error| unreachable(format!("server name: {error}")))?;
                    let stream = connector
                        .connect(name, tcp)
                        .await
                        .map_err(|error| unreachable(format!("TLS: {error}")))?;
                    exchange(stream, head.as_bytes(), body).await
                }
            }
            .map_err(unreachable)
        };
        let response = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))??;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        let body = String::from_utf8_lossy(&response.body);
        Err(Error::Rejected {
            status: response.status,
            body: body.chars().take(300).collect(),
        })
    }
}

fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| Error::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let bad = |message: String| Error::config("agent.ca_file", message);
        let mut added = 0;
        for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
            let certificate = certificate.map_err(|error| bad(error.to_string()))?;
            roots
                .add(certificate)
                .map_err(|error| bad(error.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(format!("no certificate in {}", path.display())));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::config("agent.server", error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Sends the request and reads the answer's status and the start of its body.
async fn exchange<S>(mut stream: S, head: &[u8], body: &[u8]) -> Result<Response, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |step: &str, error: std::io::Error| format!("{step}: {error}");
    stream.write_all(head).await.map_err(|e| io("send", e))?;
    stream.write_all(body).await.map_err(|e| io("send", e))?;
    stream.flush().await.map_err(|e| io("send", e))?;
    let mut received = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if received.len() > MAX_HEAD {
            return Err("response headers too large".into());
        }
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| io("receive", e))?;
        if read == 0 {
            return Err("connection closed before an answer".into());
        }
        received.extend_from_slice(&chunk[..read]);
    };
    let (status, length, chunked) = parse_head(&received[..head_end])?;
    let mut body = received.split_off(head_end);
    let wanted = length.unwrap_or(usize::MAX).min(MAX_BODY);
    while body.len() < wanted {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(read) => body.extend_from_slice(&chunk[..read]),
            // The status is known; a TLS peer closing without close_notify is no failure.
            Err(_) => break,
        }
    }
    body.truncate(wanted);
    if chunked {
        body = dechunk(&body);
    }
    Ok(Response { status, body })
}

/// Status code, `Content-Length` and whether the body is chunked.
pub fn parse_head(head: &[u8]) -> Result<(u16, Option<usize>, bool), String> {
    let text = std::str::from_utf8(head).map_err(|_| "response headers are not text")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("bad status line {status_line:?}"));
    };
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|code| (100..600).contains(code) && version.starts_with("HTTP/1."))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok((status, length, chunked))
}

/// The data of a chunked body, as far as it is complete.
pub fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|&size| size > 0) else {
            break;
        };
        let start = line_end + 2;
        let end = start.saturating_add(size).min(body.len());
        data.extend_from_slice(&body[start..end]);
        body = body.get(end + 2..).unwrap_or_default();
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_parse_with_defaults_and_brackets() {
        let url = ServerUrl::parse("https://certfleet.example.com/").expect("valid");
        assert_eq!((url.tls, url.port, url.prefix.as_str()), (true, 443, ""));
        let url = ServerUrl::parse("http://[::1]:8080/certfleet/").expect("valid");
        assert_eq!((url.host.as_str(), url.port), ("::1", 8080));
        assert_eq!(url.prefix, "/certfleet");
        assert_eq!(url.authority(), "[::1]:8080");
        for bad in [
            "ftp://x",
            "http://",
            "http://user:pw@x",
            "http://x:99999",
            "http://[::1",
            "http://x/?a",
            "http://x/a\r\nInjected: 1",
            "x",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn response_heads_give_status_and_framing() {
        let head = b"HTTP/1.1 202 Accepted\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(parse_head(head), Ok((202, Some(12), false)));
        let head = b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(head), Ok((500, None, true)));
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"SSH-2.0 22 x\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err());
        }
        assert!(parse_head(b"HTTP/1.1 200 \xff\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_are_joined_and_truncation_is_survived() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(dechunk(b"5\r\nhel"), b"hel");
        assert_eq!(dechunk(b"zz\r\nhello"), b"");
        assert_eq!(dechunk(b"ffffffffffffffff\r\nx"), b"x");
    }
}
