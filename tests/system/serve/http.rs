//! A minimal HTTP/1.1 client over `std::net::TcpStream` (one request per connection),
//! enough to talk to the service without pulling an HTTP client crate into the build.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A guard against a hung server: no request in these tests comes near it.
const IO_LIMIT: Duration = Duration::from_secs(120);

/// One request to send.
pub struct Request {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The answer: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn get(path: &str) -> Request {
        Request {
            method: "GET",
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `POST path` with a JSON body.
    pub fn post_json(path: &str, body: Vec<u8>) -> Request {
        Request {
            method: "POST",
            path: path.to_owned(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }
    }

    /// The same request with another method (any token is a valid HTTP method).
    pub fn method(mut self, method: &'static str) -> Request {
        self.method = method;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn bearer(self, token: &str) -> Request {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// Sends the request and reads the whole answer. The body is written from another
    /// thread, so a server that answers early (413) and closes is still heard.
    pub fn send(self, address: SocketAddr) -> io::Result<Response> {
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(IO_LIMIT))?;
        stream.set_write_timeout(Some(IO_LIMIT))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        let mut writer = stream.try_clone()?;
        let body = self.body;
        let sender = std::thread::spawn(move || {
            // A server that refuses the body may close before reading it all.
            let _ = writer.write_all(&body);
        });
        let mut raw = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        let outcome = loop {
            match stream.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => raw.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => break Err(error),
            }
        };
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = sender.join();
        match (parse(&raw), outcome) {
            (Some(response), _) => Ok(response),
            (None, Err(error)) => Err(error),
            (None, Ok(())) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an HTTP response: {:?}", String::from_utf8_lossy(&raw)),
            )),
        }
    }
}

impl Response {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "HTTP {} body is not JSON ({error}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Status and body, for failure messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

/// Parses a complete response (Content-Length, chunked, or until close).
fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|value| value.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().ok()?;
        rest.get(..length)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
