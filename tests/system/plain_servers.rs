//! Endpoints that do not speak TLS: an HTTP responder, an SSH banner, a tarpit, a closed
//! port, and a listener that only counts who connected.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What a plain server does with each connection it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Reads what the client sent, answers `HTTP/1.1 400 Bad Request`, closes.
    Http,
    /// Writes an SSH identification line at once, then waits for the client to leave.
    SshBanner,
    /// Accepts and never writes; holds the socket until the server is dropped.
    Tarpit,
}

/// A plain TCP server on 127.0.0.1 running in a thread; stops when dropped.
pub struct PlainServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl PlainServer {
    pub fn http() -> PlainServer {
        PlainServer::start(Behaviour::Http)
    }

    pub fn ssh_banner() -> PlainServer {
        PlainServer::start(Behaviour::SshBanner)
    }

    pub fn tarpit() -> PlainServer {
        PlainServer::start(Behaviour::Tarpit)
    }

    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn start(behaviour: Behaviour) -> PlainServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let port = listener.local_addr().expect("bound address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (thread_stop, thread_held) = (stop.clone(), held.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                match behaviour {
                    Behaviour::Tarpit => thread_held
                        .lock()
                        .expect("tarpit list is not poisoned")
                        .push(stream),
                    other => {
                        thread::spawn(move || answer(other, stream));
                    }
                }
            }
        });
        PlainServer { port, stop, held }
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and releases the port.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Ok(mut held) = self.held.lock() {
            held.clear();
        }
    }
}

fn answer(behaviour: Behaviour, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = [0u8; 4096];
    match behaviour {
        Behaviour::Http => {
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            let _ = stream.shutdown(Shutdown::Both);
        }
        Behaviour::SshBanner => {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }
        Behaviour::Tarpit => {}
    }
}

/// A port on 127.0.0.1 where nothing listens (it was bound a moment ago, then released).
pub fn closed_port() -> u16 {
    crate::openssl_server::free_port()
}

/// A listener nobody serves: after a probe, `was_connected` tells whether anything
/// connected to it (the kernel completes connections into the backlog without `accept`).
pub struct Witness {
    listener: TcpListener,
}

impl Witness {
    pub fn new() -> Witness {
        Witness {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind a local port"),
        }
    }

    pub fn target(&self) -> String {
        let port = self.listener.local_addr().expect("bound address").port();
        format!("127.0.0.1:{port}")
    }

    pub fn was_connected(&self) -> bool {
        self.listener
            .set_nonblocking(true)
            .expect("make the witness non-blocking");
        self.listener.accept().is_ok()
    }
}
