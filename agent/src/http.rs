//! The agent's one kind of request: `POST` a small gzip JSON body with a bearer token, read
//! the status and the start of the answer. reqwest does the HTTP (URL parsing, framing,
//! chunked answers, deadlines); this module decides what the agent accepts: `http://` or
//! `https://` over rustls with the Mozilla roots plus an optional CA file, no redirects, no
//! proxies from the environment, and no connection kept between requests (an agent posts
//! once an hour, so pooling would only keep memory and a socket busy).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::Url;
use rustls::{ClientConfig, RootCertStore};

use crate::Error;

/// Bytes of response body kept (for the log and the enroll answer); the rest is not read.
const MAX_BODY: usize = 64 * 1024;

/// Where the service is: `http[s]://host[:port][/prefix]`, checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    base: Url,
}

impl ServerUrl {
    /// Parses a base URL; no user info, query, fragment or spaces.
    pub fn parse(url: &str) -> Result<ServerUrl, Error> {
        let bad = |message: &str| Error::config("agent.server", format!("{url:?}: {message}"));
        // The URL parser drops tabs and line breaks silently; a URL holding them is a typo.
        if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad("no spaces or control characters allowed"));
        }
        let base = Url::parse(url).map_err(|error| bad(&error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("must start with http:// or https://"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad(
                "no user or password allowed (the token is the credential)",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("no query or fragment allowed"));
        }
        Ok(ServerUrl { base })
    }

    /// `https://`.
    pub fn is_tls(&self) -> bool {
        self.base.scheme() == "https"
    }

    /// `host:port`, bracketed for IPv6, for messages.
    pub fn authority(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The base URL's path without the trailing slash (`""` at the root).
    pub fn prefix(&self) -> &str {
        self.base.path().trim_end_matches('/')
    }

    /// `path` (starting with `/`) under the prefix.
    fn join(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.prefix()));
        url
    }
}

/// A bearer credential (agent token, enroll secret), checked once: a token pasted with a
/// line break or a control character would otherwise end up in the request head.
#[derive(Clone)]
pub struct Bearer(HeaderValue);

impl Bearer {
    /// `setting` names where the token came from, for the error.
    pub fn new(setting: &str, token: &str) -> Result<Bearer, Error> {
        let bad = |message: String| Error::config(setting, message);
        if token.is_empty() {
            return Err(bad("is empty".into()));
        }
        if let Some(at) = token.find(|c: char| c.is_control()) {
            return Err(bad(format!(
                "holds a control character at byte {at} (a stray line break in the file?)"
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("must be printable ASCII without spaces".into()));
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|error| bad(error.to_string()))?;
        // Kept out of reqwest's and hyper's debug output.
        value.set_sensitive(true);
        Ok(Bearer(value))
    }
}

/// Hand-written so that a token never reaches a log.
impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(***)")
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
    http: reqwest::Client,
    timeout: Duration,
}

impl Client {
    /// A client for `url`, trusting the Mozilla roots and the certificates of `ca_file`;
    /// each exchange (connect, TLS, request, answer) must finish within `timeout`.
    pub fn new(url: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<Client, Error> {
        let url = ServerUrl::parse(url)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(format!("certfleet-agent/{}", crate::report::VERSION))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .http1_only();
        if url.is_tls() {
            builder = builder.use_preconfigured_tls(tls_config(ca_file)?);
        }
        let http = builder
            .build()
            .map_err(|error| Error::config("agent.server", chain(&error)))?;
        Ok(Client { url, http, timeout })
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
        token: &Bearer,
        body: &[u8],
    ) -> Result<Response, Error> {
        let unreachable = |error: reqwest::Error| Error::Unreachable {
            server: self.url.authority(),
            reason: if error.is_timeout() {
                format!("no answer within {:?}", self.timeout)
            } else {
                chain(&error)
            },
        };
        let mut answer = self
            .http
            .post(self.url.join(path))
            .header(AUTHORIZATION, token.0.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "gzip")
            .body(body.to_vec())
            .send()
            .await
            .map_err(unreachable)?;
        let status = answer.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_BODY {
            match answer.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                // The status is known; a body cut short (a TLS peer closing without
                // close_notify, the deadline) is no failure of the exchange.
                Err(error) => {
                    tracing::debug!(error = %chain(&error), "answer body cut short");
                    break;
                }
            }
        }
        // Dropping the rest closes the connection: an endless answer is not read.
        body.truncate(MAX_BODY);
        if (200..300).contains(&status) {
            return Ok(Response { status, body });
        }
        let body = String::from_utf8_lossy(&body);
        Err(Error::Rejected {
            status,
            body: body.chars().take(300).collect(),
        })
    }
}

/// A reqwest error and its causes, each said once: reqwest's own message names the URL,
/// the innermost cause says what happened ("Connection refused", "invalid peer
/// certificate: UnknownIssuer").
fn chain(error: &reqwest::Error) -> String {
    let step = if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "receive"
    } else {
        "request"
    };
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("{step}: {cause}")
}

fn tls_config(ca_file: Option<&Path>) -> Result<ClientConfig, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| Error::ReadFile {
            path: path.to_owned(),
            error: source,
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
    Ok(config)
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
