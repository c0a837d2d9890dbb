//! Servers that misbehave on purpose: each accepts, reads the ClientHello, then does one
//! hostile thing. They run in threads and stop when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// What the server does after reading the client's first flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostility {
    /// Accepts, reads the ClientHello, and never answers (a tarpit).
    Tarpit,
    /// A plausible record header, then one byte a second forever.
    Trickle,
    /// A TLS 1.2 ServerHello, then a Certificate message announcing 16 MiB, streamed.
    HugeCertificate,
    /// Handshake records full of random bytes, forever.
    GarbageRecords,
    /// Half a ServerHello, then close.
    Truncated,
    /// A Certificate message cut into a million one-byte records.
    TinyRecords,
    /// Close with a TCP reset (SO_LINGER 0) after the ClientHello.
    Reset,
    /// A fatal alert with this description code, then close.
    Alert(u8),
}

pub struct HostileServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl HostileServer {
    pub fn start(hostility: Hostility) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let port = listener.local_addr().expect("bound address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let stop = thread_stop.clone();
                thread::spawn(move || serve(stream, hostility, &stop));
            }
        });
        HostileServer { port, stop }
    }

    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut stream: TcpStream, hostility: Hostility, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if hostility == Hostility::Reset {
        // Closing with unread bytes in the receive buffer makes Linux answer with a RST.
        let mut first = [0u8; 1];
        let _ = stream.read(&mut first);
        thread::sleep(Duration::from_millis(50));
        drop(stream);
        return;
    }
    let mut hello = [0u8; 4096];
    if stream.read(&mut hello).unwrap_or(0) == 0 {
        return;
    }
    // Writes fail once the prober has given up and closed; that ends the connection.
    let _ = match hostility {
        Hostility::Tarpit => tarpit(stop),
        Hostility::Trickle => trickle(&mut stream, stop),
        Hostility::HugeCertificate => huge_certificate(&mut stream, stop),
        Hostility::GarbageRecords => garbage(&mut stream, stop),
        Hostility::Truncated => stream.write_all(&server_hello()[..30]),
        Hostility::TinyRecords => tiny_records(&mut stream, stop),
        Hostility::Reset => Ok(()),
        Hostility::Alert(code) => stream.write_all(&[21, 3, 3, 0, 2, 2, code]),
    };
}

fn tarpit(stop: &AtomicBool) -> std::io::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn trickle(stream: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
    stream.write_all(&[22, 3, 3, 0x40])?;
    while !stop.load(Ordering::SeqCst) {
        stream.write_all(&[0])?;
        thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

/// A TLS 1.2 ServerHello choosing ECDHE-ECDSA-AES128-GCM-SHA256, no extensions.
fn server_hello() -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0xc0, 0x2b, 0]);
    let mut message = vec![2, 0, 0, body.len() as u8];
    message.extend_from_slice(&body);
    record(22, &message)
}

fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind, 3, 3];
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn huge_certificate(stream: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
    stream.write_all(&server_hello())?;
    // Certificate, 0xffffff bytes announced, then chunks of zeros until the client leaves.
    let mut first = vec![11, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc];
    first.resize(16 * 1024, 0);
    stream.write_all(&record(22, &first))?;
    let chunk = record(22, &[0u8; 16 * 1024]);
    for _ in 0..1024 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        stream.write_all(&chunk)?;
    }
    Ok(())
}

fn garbage(stream: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
    let mut state: u32 = 0x1234_5678;
    while !stop.load(Ordering::SeqCst) {
        let body: Vec<u8> = (0..1000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        stream.write_all(&record(22, &body))?;
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn tiny_records(stream: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
    stream.write_all(&server_hello())?;
    let mut batch = Vec::with_capacity(6 * 10_000);
    // A Certificate message header announcing 60,000 bytes, then one byte per record.
    for byte in [11u8, 0, 0xea, 0x60] {
        batch.extend_from_slice(&record(22, &[byte]));
    }
    for index in 0..1_000_000u32 {
        batch.extend_from_slice(&record(22, &[(index % 251) as u8]));
        if batch.len() >= 6 * 10_000 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            stream.write_all(&batch)?;
            batch.clear();
        }
    }
    stream.write_all(&batch)
}
