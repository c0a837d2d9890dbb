//! STARTTLS through real servers: aiosmtpd (SMTP) and a private PostgreSQL with ssl=on.
//! The certificate must be captured through the upgrade, and a server that declines must
//! be `starttls_refused`, not a TLS error.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::probe_json;
use crate::openssl_server::free_port;
use crate::pki::{Pki, Spec};
use crate::serve::private_pg::PrivatePostgres;

/// aiosmtpd on a free port; killed when dropped.
pub(crate) struct SmtpServer {
    child: Child,
    pub port: u16,
}

impl SmtpServer {
    /// `None` (with a message) when aiosmtpd is not installed; scripts/test installs it.
    pub fn start(tls: Option<(&str, &str)>) -> Option<SmtpServer> {
        let port = free_port();
        let mut command = Command::new("python3");
        command.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        if let Some((cert, key)) = tls {
            command.args(["--tlscert", cert, "--tlskey", key]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut server = SmtpServer { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if server.child.try_wait().ok().flatten().is_some()
                || started.elapsed() > Duration::from_secs(20)
            {
                certfleet_testkit::skip(
                    "aiosmtpd did not start (is it installed? pip install aiosmtpd)",
                );
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn smtp_starttls_certificate_is_captured_and_a_refusal_is_reported_as_such() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("mail.test", &["mail.test"]));
    let bundle = pki.bundle("mail-chain.pem", &[&chain.leaf, &chain.intermediate]);
    let key = chain.leaf.key_path.to_str().expect("UTF-8 path");
    let Some(with_tls) = SmtpServer::start(Some((bundle.to_str().expect("UTF-8 path"), key)))
    else {
        return;
    };
    let Some(without_tls) = SmtpServer::start(None) else {
        return;
    };

    let run = probe_json(&[
        &with_tls.target(),
        &without_tls.target(),
        "--starttls",
        "smtp",
        "--ca-file",
        chain.root.pem_file(),
    ]);
    let upgraded = run.result(&with_tls.target());
    assert_eq!(upgraded["status"], "ok", "{}", run.context());
    assert_eq!(upgraded["starttls"], "smtp");
    assert_eq!(upgraded["chain"][0]["sha256"], chain.leaf.sha256.as_str());
    assert_eq!(
        upgraded["chain"][1]["sha256"],
        chain.intermediate.sha256.as_str()
    );
    assert_eq!(upgraded["findings"], serde_json::json!([]));

    let refused = run.result(&without_tls.target());
    assert_eq!(refused["status"], "starttls_refused", "{refused}");
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("454")),
        "{refused}"
    );
}

#[test]
fn postgres_sslrequest_certificate_is_captured() {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("db.test", &["db.test"]));
    let bundle = pki.bundle("db-chain.pem", &[&chain.leaf, &chain.intermediate]);
    let with_tls = match PrivatePostgres::start_with_tls(&bundle, &chain.leaf.key_path) {
        Ok(pg) => pg,
        Err(reason) => {
            certfleet_testkit::skip(&format!("no private PostgreSQL here ({reason})"));
            return;
        }
    };
    let plain = PrivatePostgres::start().expect("a second private PostgreSQL");
    let upgraded_target = format!("127.0.0.1:{}@db.test", with_tls.port());
    let plain_target = format!("127.0.0.1:{}", plain.port());

    let run = probe_json(&[&upgraded_target, &plain_target, "--starttls", "postgres"]);
    let upgraded = run.result(&upgraded_target);
    assert_eq!(upgraded["status"], "ok", "{}", run.context());
    assert_eq!(upgraded["starttls"], "postgres");
    assert_eq!(upgraded["sni"], "db.test");
    assert_eq!(upgraded["chain"][0]["sha256"], chain.leaf.sha256.as_str());
    assert_eq!(upgraded["tls"]["version"], "TLSv1.3");

    let refused = run.result(&plain_target);
    assert_eq!(refused["status"], "starttls_refused", "{refused}");
}

#[test]
fn starttls_is_chosen_by_port_and_can_be_turned_off() {
    // Port 5432 means PostgreSQL unless told otherwise: against a plain TLS server on
    // another port nothing changes, and `--starttls none` keeps implicit TLS everywhere.
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("plain.test", &["plain.test"]));
    let server =
        crate::tls_server::TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
            .start()
            .expect("start the rustls server");
    let run = probe_json(&[&server.target(), "--starttls", "none"]);
    let result = run.result(&server.target());
    assert_eq!(result["status"], "ok");
    assert_eq!(result["starttls"], serde_json::Value::Null);
    // A TLS server waits for the client, so an IMAP client waiting for a greeting meets
    // silence: the dialogue's deadline, reported as such.
    let run = probe_json(&[&server.target(), "--starttls", "imap", "--timeout", "1s"]);
    let result = run.result(&server.target());
    assert_eq!(result["status"], "timeout", "{result}");
    assert_eq!(result["starttls"], "imap");
    let error = result["error"].as_str().unwrap_or("");
    assert!(error.contains("imap STARTTLS"), "{result}");
}
