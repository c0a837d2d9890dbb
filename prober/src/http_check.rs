//! mTLS enforced above TLS: a server that asked for a client certificate, accepted our empty
//! one and finished the handshake may still refuse every request without a certificate
//! (nginx's `ssl_verify_client on` answers `400 No required SSL certificate was sent`).
//! When the endpoint speaks HTTP (ALPN `http/1.1` or `h2`, or no ALPN on a well-known HTTPS
//! port), one minimal request over the established connection tells the two apart. HTTP/2
//! is spoken by hand: the client preface, an empty SETTINGS frame and one HEADERS frame of
//! HPACK literals (no Huffman, no dynamic table); of the answer only the `:status` and the
//! DATA of stream 1 are read. See docs/probing.md, "Mutual TLS enforced by HTTP".

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

/// The HTTP version to ask in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Http1,
    H2,
}

/// Whether the check may run for this negotiated ALPN protocol and port, and in which
/// version: `http/1.1` or `h2`, or no ALPN on a well-known HTTPS port (HTTP/1.1). Never for
/// any other protocol, nor for any other port without ALPN.
pub fn dialect(alpn: Option<&str>, port: u16) -> Option<Dialect> {
    match alpn {
        Some("http/1.1") => Some(Dialect::Http1),
        Some("h2") => Some(Dialect::H2),
        Some(_) => None,
        None => HTTP_PORTS.contains(&port).then_some(Dialect::Http1),
    }
}

/// The one request sent: `GET /` with the SNI name (or the address) as `Host`.
pub fn request(dialect: Dialect, host: &str) -> Vec<u8> {
    match dialect {
        Dialect::Http1 => format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: certfleet\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        Dialect::H2 => h2_request(host),
    }
}

/// HTTP/2 frame types and flags used here (RFC 9113).
const H2_DATA: u8 = 0;
const H2_HEADERS: u8 = 1;
const H2_RST_STREAM: u8 = 3;
const H2_SETTINGS: u8 = 4;
const H2_GOAWAY: u8 = 7;
const H2_END_STREAM: u8 = 0x1;
const H2_END_HEADERS: u8 = 0x4;
const H2_PADDED: u8 = 0x8;
const H2_PRIORITY: u8 = 0x20;
/// The default SETTINGS_MAX_FRAME_SIZE: a larger frame means the bytes are not HTTP/2.
const H2_MAX_FRAME: usize = 16_384;

/// Preface, empty SETTINGS, and `GET /` on stream 1 (END_STREAM, END_HEADERS) with
/// `:method GET`, `:scheme https`, `:path /` from the static table and `:authority`,
/// `user-agent` as literals without indexing.
fn h2_request(host: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x84];
    // Literal without indexing, name = static index 1 (:authority).
    block.push(0x01);
    hpack_string(&mut block, host.as_bytes());
    // Literal without indexing, name = static index 58 (user-agent): 15 + 43.
    block.extend_from_slice(&[0x0f, 0x2b]);
    hpack_string(&mut block, b"certfleet");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2_frame(&mut out, H2_SETTINGS, 0, 0, &[]);
    h2_frame(
        &mut out,
        H2_HEADERS,
        H2_END_STREAM | H2_END_HEADERS,
        1,
        &block,
    );
    out
}

fn h2_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let length = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
    out.extend_from_slice(&length[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK string literal without Huffman coding: 7-bit-prefix length, then the bytes.
fn hpack_string(out: &mut Vec<u8>, text: &[u8]) {
    let mut length = text.len();
    if length < 127 {
        out.push(length as u8);
    } else {
        out.push(127);
        length -= 127;
        while length >= 128 {
            out.push((length % 128) as u8 | 0x80);
            length /= 128;
        }
        out.push(length as u8);
    }
    out.extend_from_slice(text);
}

/// Judges an HTTP/2 answer: the frames read so far, as raw bytes.
pub fn judge_h2(raw: &[u8], end: End) -> Option<HttpAnswer> {
    let mut pos = 0;
    let mut status = None;
    let mut body = Vec::new();
    let mut ended = false;
    while raw.len() - pos >= 9 {
        let length = usize::from(raw[pos]) << 16
            | usize::from(raw[pos + 1]) << 8
            | usize::from(raw[pos + 2]);
        let (kind, flags) = (raw[pos + 3], raw[pos + 4]);
        let stream = u32::from_be_bytes([raw[pos + 5], raw[pos + 6], raw[pos + 7], raw[pos + 8]])
            & 0x7fff_ffff;
        if length > H2_MAX_FRAME {
            // Not HTTP/2 (an HTTP/1.x answer reads as a huge frame).
            return Some(HttpAnswer::Unknown);
        }
        let Some(payload) = raw.get(pos + 9..pos + 9 + length) else {
            break;
        };
        pos += 9 + length;
        match (kind, stream) {
            (H2_HEADERS, 1) if status.is_none() => {
                let Some(block) = unpad(payload, flags, flags & H2_PRIORITY != 0) else {
                    return Some(HttpAnswer::Unknown);
                };
                match hpack_status(block) {
                    Some(code) => status = Some(code),
                    None => return Some(HttpAnswer::Unknown),
                }
                ended |= flags & H2_END_STREAM != 0;
            }
            (H2_DATA, 1) => {
                let Some(data) = unpad(payload, flags, false) else {
                    return Some(HttpAnswer::Unknown);
                };
                body.extend_from_slice(data);
                ended |= flags & H2_END_STREAM != 0;
            }
            (H2_HEADERS, 1) => ended |= flags & H2_END_STREAM != 0,
            // Our stream reset or the connection refused before an answer: most likely the
            // server did not like our bytes; no verdict.
            (H2_RST_STREAM, 1) | (H2_GOAWAY, _) if status.is_none() => {
                return Some(HttpAnswer::Unknown)
            }
            (H2_RST_STREAM, 1) | (H2_GOAWAY, _) => ended = true,
            _ => {}
        }
    }
    let Some(status) = status else {
        return match end {
            End::Open if raw.len() < MAX_ANSWER => None,
            // Closed (or an alert) after the request and before a status: refused.
            End::Closed => Some(HttpAnswer::CertificateRequired),
            _ => Some(HttpAnswer::Unknown),
        };
    };
    let mut answer = format!("HTTP/2 {status} h2\r\n").into_bytes();
    if ended {
        answer.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    answer.extend_from_slice(b"\r\n");
    answer.extend_from_slice(&body);
    let end = match end {
        End::Open if raw.len() >= MAX_ANSWER => End::Deadline,
        other => other,
    };
    judge(&answer, end)
}

/// The payload without its padding (and priority fields, for HEADERS).
fn unpad(payload: &[u8], flags: u8, priority: bool) -> Option<&[u8]> {
    let mut payload = payload;
    let mut padding = 0;
    if flags & H2_PADDED != 0 {
        padding = usize::from(*payload.first()?);
        payload = &payload[1..];
    }
    if priority {
        payload = payload.get(5..)?;
    }
    payload.get(..payload.len().checked_sub(padding)?)
}

/// The `:status` at the start of a header block (the first pseudo-header): an indexed
/// field (static entries 8-14), or a literal with a `:status` name and a three-digit value,
/// raw or Huffman-coded. Dynamic table size updates before it are skipped.
fn hpack_status(block: &[u8]) -> Option<u16> {
    let mut pos = 0;
    while block.get(pos)? & 0xe0 == 0x20 {
        // Dynamic table size update: a 5-bit-prefix integer.
        let first = block[pos];
        pos += 1;
        if first & 0x1f == 0x1f {
            while block.get(pos)? & 0x80 != 0 {
                pos += 1;
            }
            pos += 1;
        }
    }
    let first = *block.get(pos)?;
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    if first & 0x80 != 0 {
        let index = usize::from(first & 0x7f);
        return STATIC.get(index.checked_sub(8)?).copied();
    }
    let name_index = if first & 0xc0 == 0x40 {
        first & 0x3f
    } else if first & 0xe0 == 0x00 || first & 0xf0 == 0x10 {
        first & 0x0f
    } else {
        return None;
    };
    if !(8..=14).contains(&name_index) {
        return None;
    }
    let value = *block.get(pos + 1)?;
    let length = usize::from(value & 0x7f);
    let bytes = block.get(pos + 2..pos + 2 + length)?;
    let digits = if value & 0x80 != 0 {
        huffman_digits(bytes)?
    } else {
        String::from_utf8(bytes.to_vec()).ok()?
    };
    if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Decodes a Huffman-coded string of ASCII digits (RFC 7541 appendix B: `0`-`2` are the
/// 5-bit codes 0-2, `3`-`9` the 6-bit codes 25-31); anything else is `None`.
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits = bytes.len() * 8;
    let bit = |i: usize| (bytes[i / 8] >> (7 - i % 8)) & 1;
    let take = |from: usize, n: usize| (from..from + n).fold(0u8, |acc, i| acc << 1 | bit(i));
    let mut out = String::new();
    let mut pos = 0;
    while bits - pos >= 5 {
        let five = take(pos, 5);
        if five <= 2 {
            out.push(char::from(b'0' + five));
            pos += 5;
            continue;
        }
        if bits - pos >= 6 {
            let six = take(pos, 6);
            if (25..=31).contains(&six) {
                out.push(char::from(b'0' + six - 22));
                pos += 6;
                continue;
            }
        }
        break;
    }
    // What is left must be padding: fewer than 8 bits, all ones.
    let rest = bits - pos;
    (rest < 8 && (pos..bits).all(|i| bit(i) == 1)).then_some(out)
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
    fn only_http_alpn_or_well_known_ports_without_alpn_are_asked() {
        assert_eq!(dialect(Some("http/1.1"), 40000), Some(Dialect::Http1));
        assert_eq!(dialect(Some("h2"), 40000), Some(Dialect::H2));
        assert_eq!(dialect(Some("imap"), 443), None);
        for port in HTTP_PORTS {
            assert_eq!(dialect(None, port), Some(Dialect::Http1));
        }
        assert_eq!(dialect(None, 40000), None);
        assert_eq!(dialect(None, 636), None);
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        h2_frame(&mut out, kind, flags, stream, payload);
        out
    }

    #[test]
    fn h2_request_is_preface_settings_and_one_headers_frame() {
        let bytes = request(Dialect::H2, "a.test");
        let mut expected = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let block = b"\x82\x87\x84\x01\x06a.test\x0f\x2b\x09certfleet";
        expected.extend_from_slice(&frame(1, 0x05, 1, block));
        assert_eq!(bytes, expected);
        let mut long = Vec::new();
        hpack_string(&mut long, &[b'a'; 300]);
        assert_eq!(&long[..3], &[127, 173 | 0x80, 1]);
    }

    #[test]
    fn h2_answers_are_judged_like_http1() {
        let settings = frame(4, 0, 0, &[]);
        // nginx: indexed :status 400, then the page in a DATA frame.
        let mut refused = settings.clone();
        refused.extend(frame(1, 0x04, 1, &[0x8c]));
        refused.extend(frame(
            0,
            0x01,
            1,
            b"<title>400 No required SSL certificate was sent</title>",
        ));
        assert_eq!(
            judge_h2(&refused, End::Open),
            Some(HttpAnswer::CertificateRequired)
        );
        // A literal :status 403 (raw) with a body about certificates.
        let mut forbidden = settings.clone();
        forbidden.extend(frame(1, 0x04, 1, b"\x08\x03403"));
        forbidden.extend(frame(0, 0x01, 1, b"client certificate required"));
        assert_eq!(
            judge_h2(&forbidden, End::Open),
            Some(HttpAnswer::CertificateRequired)
        );
        // Indexed 200: served at once.
        let mut ok = settings.clone();
        ok.extend(frame(1, 0x04, 1, &[0x88]));
        assert_eq!(judge_h2(&ok, End::Open), Some(HttpAnswer::Served));
        // Huffman-coded "302" (011001 00000 00010) and "404" (+ seven 1 bits of padding).
        assert_eq!(huffman_digits(&[0x64, 0x02]), Some("302".into()));
        assert_eq!(huffman_digits(&[0x68, 0x0d, 0x7f]), Some("404".into()));
        assert_eq!(huffman_digits(&[0x68, 0x0d, 0x7e]), None);
        let mut found = settings.clone();
        found.extend(frame(1, 0x05, 1, &[0x48, 0x82, 0x64, 0x02]));
        assert_eq!(judge_h2(&found, End::Open), Some(HttpAnswer::Served));
        // A 404 whose body is still coming: wait.
        let mut partial = settings.clone();
        partial.extend(frame(1, 0x04, 1, &[0x8d]));
        assert_eq!(judge_h2(&partial, End::Open), None);
        partial.extend(frame(0, 0x01, 1, b"not found"));
        assert_eq!(judge_h2(&partial, End::Open), Some(HttpAnswer::Served));
        // Only SETTINGS so far: wait; then a close: refused; GOAWAY: no verdict.
        assert_eq!(judge_h2(&settings, End::Open), None);
        assert_eq!(
            judge_h2(&settings, End::Closed),
            Some(HttpAnswer::CertificateRequired)
        );
        let mut goaway = settings.clone();
        goaway.extend(frame(7, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 1]));
        assert_eq!(judge_h2(&goaway, End::Closed), Some(HttpAnswer::Unknown));
        // An HTTP/1.1 answer on an h2 connection is not HTTP/2.
        assert_eq!(
            judge_h2(b"HTTP/1.1 200 OK\r\n\r\n", End::Closed),
            Some(HttpAnswer::Unknown)
        );
    }

    #[test]
    fn the_request_is_minimal() {
        assert_eq!(
            request(Dialect::Http1, "api.internal"),
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
