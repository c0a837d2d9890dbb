//! A real SMTP server for the tests: aiosmtpd (`pip install aiosmtpd`, done by
//! scripts/test) storing every message it accepts in a Maildir, and a reader for that
//! Maildir.

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// A running aiosmtpd; killed when dropped.
pub struct Smtpd {
    child: Child,
    /// Its address.
    pub address: SocketAddr,
}

impl Smtpd {
    /// Starts aiosmtpd on `port` of 127.0.0.1, delivering into the Maildir `maildir`, and
    /// waits until it accepts connections.
    pub fn start(port: u16, maildir: &Path) -> Smtpd {
        let handler = [OsStr::new("aiosmtpd.handlers.Mailbox"), maildir.as_os_str()];
        Smtpd::spawn(port, &handler, None)
    }

    /// Like [`Smtpd::start`], but the server waits `delay` after each message's data
    /// before it stores the message and answers (a slow relay); sessions still run
    /// concurrently. The handler's module is written beside the Maildir.
    pub fn start_slow(port: u16, maildir: &Path, delay: Duration) -> Smtpd {
        let directory = maildir
            .parent()
            .expect("the Maildir has a parent directory");
        std::fs::write(directory.join("slow_mailbox.py"), SLOW_MAILBOX)
            .expect("handler module written");
        let seconds = delay.as_secs_f64().to_string();
        let handler = [
            OsStr::new("slow_mailbox.SlowMailbox"),
            maildir.as_os_str(),
            OsStr::new(&seconds),
        ];
        Smtpd::spawn(port, &handler, Some(directory))
    }

    /// Runs `python3 -m aiosmtpd` on `port` of 127.0.0.1 with `handler` (class, then its
    /// arguments), importing modules from `python_path` too, and waits until it accepts
    /// connections.
    fn spawn(port: u16, handler: &[&OsStr], python_path: Option<&Path>) -> Smtpd {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new("python3");
        if let Some(path) = python_path {
            command.env("PYTHONPATH", path);
        }
        let child = command
            .args(["-m", "aiosmtpd", "-n", "-l", &address.to_string()])
            .arg("-c")
            .args(handler)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd starts (pip install aiosmtpd)");
        let mut server = Smtpd { child, address };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(address).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("aiosmtpd exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The SMTP URL of this server.
    pub fn url(&self) -> String {
        url(self.address.port())
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An aiosmtpd handler: aiosmtpd's Maildir handler, after a sleep of `delay` seconds in
/// each DATA command (asyncio's sleep: other sessions go on meanwhile).
const SLOW_MAILBOX: &str = r#"
import asyncio
from aiosmtpd.handlers import Mailbox


class SlowMailbox(Mailbox):
    def __init__(self, mail_dir, delay):
        super().__init__(mail_dir)
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 2:
            parser.error("SlowMailbox needs a Maildir and a delay in seconds")
        return cls(args[0], float(args[1]))
"#;

/// `smtp://127.0.0.1:<port>`.
pub fn url(port: u16) -> String {
    format!("smtp://127.0.0.1:{port}")
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// A temporary Maildir and the server writing into it.
pub struct Mailbox {
    /// The Maildir.
    pub dir: tempfile::TempDir,
}

impl Mailbox {
    /// An empty Maildir.
    pub fn new() -> Mailbox {
        Mailbox {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// Its path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("Maildir")
    }

    /// Starts aiosmtpd on a free port writing here.
    pub fn serve(&self) -> Smtpd {
        Smtpd::start(free_port(), &self.path())
    }

    /// Starts an aiosmtpd on a free port writing here that takes `delay` over each
    /// message.
    pub fn serve_slow(&self, delay: Duration) -> Smtpd {
        Smtpd::start_slow(free_port(), &self.path(), delay)
    }

    /// Every message delivered so far, in file-name (delivery) order.
    pub fn messages(&self) -> Vec<Mail> {
        read_dir(&self.path().join("new"))
    }

    /// Messages to `owner`.
    pub fn to(&self, owner: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| m.to == owner)
            .collect()
    }
}

/// Reads `.eml` (or Maildir) files of a directory.
pub fn read_dir(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort_by_key(|path| delivery_order(path));
    paths
        .iter()
        .map(|path| Mail::parse(&std::fs::read_to_string(path).expect("message readable")))
        .collect()
}

/// Maildir names (Python's mailbox) are `<seconds>.M<microseconds>P<pid>Q<count>.<host>`
/// with unpadded numbers, and `.eml` names `<nanoseconds>-<pid>-<count>.eml`: both sort
/// by their numbers, not as text.
fn delivery_order(path: &Path) -> (u128, u128) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let number = |text: &str| {
        text.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    let first = number(&name).parse().unwrap_or(0);
    let count = match name.split_once('Q') {
        Some((_, rest)) => number(rest),
        None => name.rsplit('-').next().map(number).unwrap_or_default(),
    };
    (first, count.parse().unwrap_or(0))
}

/// One received message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `To:` header.
    pub to: String,
    /// `Subject:` header.
    pub subject: String,
    /// The text/plain part, decoded.
    pub text: String,
    /// The text/html part, decoded.
    pub html: String,
}

impl Mail {
    /// Parses a message: unfolded headers, and the parts of a multipart/alternative body
    /// decoded from quoted-printable or base64.
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw
            .split_once("\n\n")
            .expect("headers end with a blank line");
        let top = |name: &str| header(head, name).unwrap_or_default();
        let content_type = top("Content-Type");
        let boundary = content_type
            .split("boundary=")
            .nth(1)
            .map(|b| b.trim_matches('"').to_owned())
            .expect("a multipart message");
        let (mut text, mut html) = (String::new(), String::new());
        for part in body.split(&format!("--{boundary}")) {
            let Some((part_head, part_body)) = part.trim_start_matches('\n').split_once("\n\n")
            else {
                continue;
            };
            let kind = header(part_head, "Content-Type").unwrap_or_default();
            let encoding = header(part_head, "Content-Transfer-Encoding").unwrap_or_default();
            let decoded = decode(part_body, &encoding);
            if kind.starts_with("text/plain") {
                text = decoded;
            } else if kind.starts_with("text/html") {
                html = decoded;
            }
        }
        Mail {
            to: top("To"),
            subject: top("Subject"),
            text,
            html,
        }
    }

    /// Both parts contain `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.text.contains(needle) && self.html.contains(needle)
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    unfolded.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

fn decode(body: &str, encoding: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("valid base64 part");
            String::from_utf8(bytes).expect("UTF-8 part")
        }
        _ => body.to_owned(),
    }
}

fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'=' && index + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[index + 1..(index + 3).min(bytes.len())]);
            if let Some(byte) = hex.ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8(out).expect("UTF-8 part")
}
