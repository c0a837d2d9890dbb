//! Streaming reads of JSON ingest bodies: the body as sent is passed frame by frame
//! ([`parse_streamed`]) to a parser on the blocking pool, which decompresses it (gzip) or
//! reads it as is straight into a typed deserializer ([`read_json`]); neither the body as
//! sent nor the decompressed bytes are ever buffered whole. Four bounds hold whatever the
//! bytes are:
//!
//! - at most `max_body` bytes are taken as sent ([`ReadError::TooLarge`]; a
//!   `Content-Length` above it is refused before anything is read);
//! - at most `max_decompressed` bytes are read after decompression (a gzip bomb stops
//!   there: [`ReadError::TooLarge`]);
//! - no JSON string is longer than `max_string` bytes (serde_json buffers each string it
//!   hands to a visitor, the ones it skips excepted: [`ReadError::StringTooLong`]);
//! - what the deserializer builds is bounded by the deserializer itself (the osquery
//!   payloads count their entries and rows while parsing, see [`crate::osquery`]).
//!
//! A type error names the field's path (`data[2].columns.port`).

use std::io::{self, BufReader, Read};
use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderMap};
use serde::de::DeserializeSeed;
use tokio::sync::mpsc;

use crate::ApiError;

/// How the body was sent (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// The request's `Content-Encoding`: none, `identity` or `gzip`; others are refused
    /// (`415`) before the body is read.
    pub fn of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase());
        match encoding.as_deref() {
            None | Some("identity") | Some("") => Ok(Encoding::Identity),
            Some("gzip") => Ok(Encoding::Gzip),
            Some(other) => Err(ApiError::UnsupportedEncoding(other.to_owned())),
        }
    }
}

/// The bounds of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Bytes read after decompression.
    pub max_decompressed: usize,
    /// Bytes of one JSON string (a key or a value, escapes counted as sent).
    pub max_string: usize,
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Past `max_body` as sent, or past `max_decompressed` once decompressed.
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The client stopped sending, or sent a broken body.
    #[error("could not read the request body: {0}")]
    Body(String),
    #[error("a JSON string in the body is longer than {limit} bytes")]
    StringTooLong { limit: usize },
    /// Not gzip, or a corrupt gzip stream.
    #[error("invalid gzip body: {0}")]
    Decode(String),
    /// Not JSON, or not of the expected shape; `field` is the path when known.
    #[error("invalid body: {message}")]
    Json {
        field: Option<String>,
        message: String,
    },
}

/// The request's `Content-Length` when it is above `max_body`: such a body is refused
/// before it is read.
pub fn declared_too_large(headers: &HeaderMap, max_body: usize) -> Result<(), ReadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > max_body as u64 => Err(ReadError::TooLarge { limit: max_body }),
        _ => Ok(()),
    }
}

/// Bodies parsed at once, across every ingest route.
static PARSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Frames of the body in flight between the connection and the parser.
const FRAMES_IN_FLIGHT: usize = 4;

/// Runs `parse` on the blocking pool over `body` as it arrives: at most `max_body` bytes
/// as sent ([`ReadError::TooLarge`] past it, whatever the parser made of the part it
/// saw), and no more than a few frames held at once. When the parser stops early (an
/// error, a bound), the rest of the body is not read.
pub async fn parse_streamed<T: Send + 'static>(
    mut body: Body,
    max_body: usize,
    parse: impl FnOnce(&mut dyn Read) -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    // Parsing is CPU work on the blocking pool: no more parsers than cores, and so no
    // more bodies' structures in memory at once, however many requests are in flight
    // (the others wait here, their bodies unread). Never closed.
    let _slot = PARSERS
        .acquire()
        .await
        .map_err(|_| ReadError::Body("the service is shutting down".into()))?;
    let (frames, receiver) = mpsc::channel::<Bytes>(FRAMES_IN_FLIGHT);
    let parser = tokio::task::spawn_blocking(move || {
        parse(&mut ChannelReader {
            frames: receiver,
            current: Bytes::new(),
        })
    });
    let mut sent = 0usize;
    let mut failure = None;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let data = match frame {
            None => break,
            Some(Err(error)) => {
                failure = Some(ReadError::Body(error.to_string()));
                break;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
        };
        sent = sent.saturating_add(data.len());
        if sent > max_body {
            failure = Some(ReadError::TooLarge { limit: max_body });
            break;
        }
        if frames.send(data).await.is_err() {
            // The parser is done: the rest of the body is not needed.
            break;
        }
    }
    // The parser sees the end of the body; on a failure its answer is not used.
    drop(frames);
    let parsed = parser
        .await
        .map_err(|error| ReadError::Body(format!("body parser failed: {error}")))?;
    match failure {
        Some(failure) => Err(failure),
        None => parsed,
    }
}

/// The body as the parser reads it: frames from the connection, in order.
struct ChannelReader {
    frames: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.frames.blocking_recv() {
                Some(frame) => self.current = frame,
                None => return Ok(0),
            }
        }
        let count = buf.len().min(self.current.len());
        let frame = self.current.split_to(count);
        buf[..count].copy_from_slice(&frame);
        Ok(count)
    }
}

/// Reads `body` (as sent, with its `encoding`) with `seed`, within `limits`, and checks
/// that nothing but whitespace follows the JSON value.
pub fn read_json<'de, R: Read, S: DeserializeSeed<'de>>(
    body: R,
    encoding: Encoding,
    limits: ReadLimits,
    seed: S,
) -> Result<S::Value, ReadError> {
    match encoding {
        Encoding::Identity => read_from(body, limits, seed),
        Encoding::Gzip => read_from(flate2::read::GzDecoder::new(body), limits, seed),
    }
}

fn read_from<'de, R: Read, S: DeserializeSeed<'de>>(
    source: R,
    limits: ReadLimits,
    seed: S,
) -> Result<S::Value, ReadError> {
    let mut reader = Bounded::new(source, limits);
    let result = {
        let mut deserializer = serde_json::Deserializer::from_reader(BufReader::new(&mut reader));
        let mut track = serde_path_to_error::Track::new();
        seed.deserialize(serde_path_to_error::Deserializer::new(
            &mut deserializer,
            &mut track,
        ))
        .map_err(|error| {
            let path = track.path().to_string();
            ((path != ".").then_some(path), error)
        })
        .and_then(|value| {
            deserializer
                .end()
                .map(|()| value)
                .map_err(|error| (None, error))
        })
    };
    result.map_err(|(field, error)| match reader.tripped {
        Some(tripped) => tripped,
        None if error.is_io() => ReadError::Decode(error.to_string()),
        None => ReadError::Json {
            field,
            message: error.to_string(),
        },
    })
}

/// A reader that fails past `max_decompressed` bytes or inside a JSON string longer than
/// `max_string`, and remembers which bound it hit. It follows only where strings start
/// and end (a `"` outside a string opens one; inside, `\` escapes the next byte and `"`
/// closes it), which is exact for JSON; what is not JSON fails in the parser anyway.
struct Bounded<R> {
    inner: R,
    limits: ReadLimits,
    read: usize,
    in_string: bool,
    escaped: bool,
    string_len: usize,
    tripped: Option<ReadError>,
}

impl<R: Read> Bounded<R> {
    fn new(inner: R, limits: ReadLimits) -> Self {
        Bounded {
            inner,
            limits,
            read: 0,
            in_string: false,
            escaped: false,
            string_len: 0,
            tripped: None,
        }
    }

    fn trip(&mut self, error: ReadError) -> io::Error {
        let message = error.to_string();
        self.tripped = Some(error);
        io::Error::new(io::ErrorKind::InvalidData, message)
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(error) = &self.tripped {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                error.to_string(),
            ));
        }
        let count = self.inner.read(buf)?;
        self.read = self.read.saturating_add(count);
        if self.read > self.limits.max_decompressed {
            let limit = self.limits.max_decompressed;
            return Err(self.trip(ReadError::TooLarge { limit }));
        }
        for &byte in buf.get(..count).unwrap_or_default() {
            if !self.in_string {
                if byte == b'"' {
                    self.in_string = true;
                    self.string_len = 0;
                }
                continue;
            }
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
            } else if byte == b'"' {
                self.in_string = false;
                continue;
            }
            self.string_len += 1;
            if self.string_len > self.limits.max_string {
                let limit = self.limits.max_string;
                return Err(self.trip(ReadError::StringTooLong { limit }));
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::marker::PhantomData;

    use serde_json::Value;

    use super::*;

    const LIMITS: ReadLimits = ReadLimits {
        max_decompressed: 1000,
        max_string: 10,
    };

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("gzip into memory");
        encoder.finish().expect("gzip into memory")
    }

    fn value(body: &[u8], encoding: Encoding) -> Result<Value, ReadError> {
        read_json(body, encoding, LIMITS, PhantomData::<Value>)
    }

    #[test]
    fn plain_and_gzip_bodies_are_read_alike() {
        let json = br#"{"a": ["0123456789", "\"\"\"\"\""], "b": 1}"#;
        let plain = value(json, Encoding::Identity).expect("plain");
        assert_eq!(plain["b"], 1);
        assert_eq!(value(&gzip(json), Encoding::Gzip), Ok(plain));
    }

    #[test]
    fn bombs_stop_at_the_decompressed_limit_and_long_strings_fail() {
        let zeros = format!("[{}0]", "0,".repeat(600));
        assert_eq!(
            value(&gzip(zeros.as_bytes()), Encoding::Gzip),
            Err(ReadError::TooLarge { limit: 1000 })
        );
        let long = br#"{"key": "01234567890"}"#;
        assert_eq!(
            value(long, Encoding::Identity),
            Err(ReadError::StringTooLong { limit: 10 })
        );
        let long_key = br#"{"01234567890": 1}"#;
        assert_eq!(
            value(&gzip(long_key), Encoding::Gzip),
            Err(ReadError::StringTooLong { limit: 10 })
        );
    }

    fn parse_value(body: &mut dyn Read) -> Result<Value, ReadError> {
        read_json(body, Encoding::Identity, LIMITS, PhantomData::<Value>)
    }

    #[tokio::test]
    async fn streamed_bodies_are_bounded_as_sent() {
        let body = Body::from(r#"{"a": [1, 2]}"#);
        let value = parse_streamed(body, 100, parse_value).await;
        assert_eq!(value.map(|v| v["a"][1].clone()), Ok(Value::from(2)));
        // Past max_body, whatever the parser made of the part it saw.
        let body = Body::from(r#"{"a": [1, 2]}"#);
        assert_eq!(
            parse_streamed(body, 5, parse_value).await,
            Err(ReadError::TooLarge { limit: 5 })
        );
        // A parser that stops early answers without the rest of the body.
        let body = Body::from(format!("[x{}]", " ".repeat(500)));
        let early = parse_streamed(body, 1000, parse_value).await;
        assert!(matches!(early, Err(ReadError::Json { .. })), "{early:?}");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_LENGTH,
            "101".parse().expect("a header value"),
        );
        assert_eq!(
            declared_too_large(&headers, 100),
            Err(ReadError::TooLarge { limit: 100 })
        );
        assert_eq!(declared_too_large(&headers, 101), Ok(()));
    }

    #[test]
    fn bad_gzip_bad_json_and_trailing_bytes_are_errors() {
        assert!(matches!(
            value(b"not gzip", Encoding::Gzip),
            Err(ReadError::Decode(_))
        ));
        let mut truncated = gzip(br#"{"a": 1}"#);
        truncated.truncate(truncated.len() - 6);
        assert!(value(&truncated, Encoding::Gzip).is_err());
        let eof = value(b"{", Encoding::Identity);
        assert!(matches!(eof, Err(ReadError::Json { .. })), "{eof:?}");
        assert!(matches!(
            value(br#"{"a": 1} trailing"#, Encoding::Identity),
            Err(ReadError::Json { field: None, .. })
        ));
        let typed = read_json(
            &br#"{"a": "x"}"#[..],
            Encoding::Identity,
            LIMITS,
            PhantomData::<std::collections::BTreeMap<String, u8>>,
        );
        assert!(
            matches!(&typed, Err(ReadError::Json { field: Some(f), .. }) if f == "a"),
            "{typed:?}"
        );
    }
}
