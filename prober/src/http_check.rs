//! mTLS enforced above TLS: a server that asked for a client certificate, accepted our empty
//! one and finished the handshake may still refuse every request without a certificate
//! (nginx's `ssl_verify_client on` answers `400 No required SSL certificate was sent`).
//! When the endpoint speaks HTTP/1.1, one minimal request over the established connection
//! tells the two apart. See docs/probing.md, "Mutual TLS enforced by HTTP".

/// Ports taken to speak HTTPS when the server negotiated no ALPN protocol.
pub const HTTP_PORTS: [u16; 5] = [443, 4443, 8443, 9443, 10443];

/// At most this much of the answer is read.
pub const MAX_ANSWER: usize = 4096;

/// What the HTTP server made of a request sent without a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAnswer {
    /// A 4xx that names a certificate, or an alert / close / reset right after the request.
    CertificateRequired,
    /// A normal answer (2xx, 3xx, a 4xx that is not about certificates...).
    Served,
    /// No verdict: not HTTP, nothing before the deadline, the request could not be sent.
    Unknown,
}

/// How reading the answer stopped (or not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The connection is still open and the deadline not reached.
    Open,
    /// An alert, a close_notify, an EOF or a reset.
    Closed,
    /// The deadline passed with the connection open.
    Deadline,
}

/// Whether the check may run for this negotiated ALPN protocol and port: `http/1.1`, or no
/// ALPN on a well-known HTTPS port. `h2` is not checked (see docs/probing.md); neither is
/// any other protocol nor any other port.
pub fn speaks_http1(alpn: Option<&str>, port: u16) -> bool {
    match alpn {
        Some(protocol) => protocol == "http/1.1",
        None => HTTP_PORTS.contains(&port),
    }
}

/// The one request sent: `GET /` with the SNI name (or the address) as `Host`.
pub fn request(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: certfleet\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// Judges the answer read so far; `None` while more bytes may change the verdict.
pub fn judge(answer: &[u8], end: End) -> Option<HttpAnswer> {
    let finished = end != End::Open || answer.len() >= MAX_ANSWER;
    if answer.is_empty() {
        return match end {
            End::Open => None,
            // Closed (or reset, or an alert) right after the request, without a word.
            End::Closed => Some(HttpAnswer::CertificateRequired),
            End::Deadline => Some(HttpAnswer::Unknown),
        };
    }
    let prefix = &b"HTTP/"[..answer.len().min(5)];
    if !answer.starts_with(prefix) {
        return Some(HttpAnswer::Unknown);
    }
    let Some(line_end) = find(answer, b"\r\n") else {
        return finished.then_some(HttpAnswer::Unknown);
    };
    let Some(status) = status_code(&answer[..line_end]) else {
        return Some(HttpAnswer::Unknown);
    };
    if !(400..500).contains(&status) {
        return Some(HttpAnswer::Served);
    }
    if mentions_certificate(answer) {
        return Some(HttpAnswer::CertificateRequired);
    }
    if finished || body_complete(answer) {
        return Some(HttpAnswer::Served);
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `HTTP/1.1 400 Bad Request` → 400.
fn status_code(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

fn mentions_certificate(answer: &[u8]) -> bool {
    String::from_utf8_lossy(answer)
        .to_ascii_lowercase()
        .contains("certificate")
}

/// The headers are complete and the body has reached its `Content-Length`.
fn body_complete(answer: &[u8]) -> bool {
    let Some(head_end) = find(answer, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let length = head.lines().find_map(|line| {
        line.strip_prefix("content-length:")
            .and_then(|value| value.trim().parse::<usize>().ok())
    });
    match length {
        Some(length) => answer.len() - (head_end + 4) >= length,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\n\
        Content-Type: text/html\r\nContent-Length: 246\r\nConnection: close\r\n\r\n\
        <html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n";

    #[test]
    fn only_http1_or_well_known_ports_without_alpn_are_asked() {
        assert!(speaks_http1(Some("http/1.1"), 40000));
        assert!(!speaks_http1(Some("h2"), 443));
        assert!(!speaks_http1(Some("imap"), 443));
        for port in HTTP_PORTS {
            assert!(speaks_http1(None, port));
        }
        assert!(!speaks_http1(None, 40000));
        assert!(!speaks_http1(None, 636));
    }

    #[test]
    fn the_request_is_minimal() {
        assert_eq!(
            request("api.internal"),
            b"GET / HTTP/1.1\r\nHost: api.internal\r\nUser-Agent: certfleet\r\n\
              Connection: close\r\n\r\n"
                .to_vec()
        );
    }

    #[test]
    fn nginx_refusal_is_required() {
        assert_eq!(
            judge(NGINX_400, End::Open),
            Some(HttpAnswer::CertificateRequired)
        );
        let forbidden =
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 30\r\n\r\nclient certificate required!!!";
        assert_eq!(
            judge(forbidden, End::Closed),
            Some(HttpAnswer::CertificateRequired)
        );
    }

    #[test]
    fn normal_answers_are_served() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n",
            b"HTTP/1.0 500 Internal Server Error\r\n",
        ] {
            assert_eq!(judge(answer, End::Open), Some(HttpAnswer::Served));
        }
        let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
        assert_eq!(judge(not_found, End::Open), Some(HttpAnswer::Served));
        // A 4xx whose body is still coming: wait for it.
        let partial = b"HTTP/1.1 404 Not Found\r\nContent-Length: 90\r\n\r\nnot";
        assert_eq!(judge(partial, End::Open), None);
        assert_eq!(judge(partial, End::Closed), Some(HttpAnswer::Served));
        assert_eq!(judge(b"HTTP/1.1 4", End::Open), None);
    }

    #[test]
    fn silence_close_and_garbage() {
        assert_eq!(judge(b"", End::Open), None);
        assert_eq!(
            judge(b"", End::Closed),
            Some(HttpAnswer::CertificateRequired)
        );
        assert_eq!(judge(b"", End::Deadline), Some(HttpAnswer::Unknown));
        assert_eq!(judge(b"\x15\x03\x03", End::Open), Some(HttpAnswer::Unknown));
        assert_eq!(
            judge(b"HTTP/1.1 4xx nope\r\n", End::Open),
            Some(HttpAnswer::Unknown)
        );
        let long = [b'H'; MAX_ANSWER];
        assert_eq!(judge(&long, End::Open), Some(HttpAnswer::Unknown));
    }
}
