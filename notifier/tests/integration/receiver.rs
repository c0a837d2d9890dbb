//! A real HTTP receiver for webhook tests: an axum server on 127.0.0.1 that records every
//! request and answers from a script; and a tarpit that accepts connections and never
//! answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Answer {
        self.body = body;
        self
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    /// Verifies `X-Certfleet-Signature` as a receiver would: the HMAC-SHA256, keyed with
    /// `secret`, of `<X-Certfleet-Timestamp>.<body>`, compared in constant time.
    pub fn signed_with(&self, secret: &str) -> bool {
        let Some(hex_mac) = self.header("x-certfleet-signature").strip_prefix("sha256=") else {
            return false;
        };
        let Ok(expected) = hex::decode(hex_mac) else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(self.header("x-certfleet-timestamp").as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        mac.verify_slice(&expected).is_ok()
    }
}

struct Script {
    first: Mutex<VecDeque<Answer>>,
    then: Answer,
    received: Mutex<Vec<Received>>,
}

/// An HTTP receiver on 127.0.0.1 (port 0); stops when dropped.
pub struct Receiver {
    pub url: String,
    script: Arc<Script>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers `first`, one per request, then `then` to every later request.
    pub async fn start(first: Vec<Answer>, then: Answer) -> Receiver {
        let script = Arc::new(Script {
            first: Mutex::new(first.into()),
            then,
            received: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("bound").port();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("receiver serves");
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            script,
            task,
        }
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.script.received.lock().expect("not poisoned").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hook(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    script
        .received
        .lock()
        .expect("not poisoned")
        .push(Received { headers, body });
    let next = script.first.lock().expect("not poisoned").pop_front();
    let answer = next.unwrap_or_else(|| script.then.clone());
    let mut response = answer.body.into_response();
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("a status code");
    for (name, value) in answer.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a header value"));
    }
    response
}

/// Accepts connections on 127.0.0.1 and never reads or answers; stops when dropped.
pub struct Tarpit {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Tarpit {
    pub async fn start() -> Tarpit {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("bound").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Tarpit {
            url: format!("http://127.0.0.1:{port}/hook"),
            task,
        }
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.task.abort();
    }
}
