//! A real nginx (Debian's `nginx-light`) as a child process, with its own prefix, config,
//! pid file and logs in the test's temporary folder, `daemon off` and `master_process off`
//! (one process, so killing it leaves no worker behind), on a loopback port; killed when
//! dropped.

use std::fs::{self, File};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::openssl_server::free_port;
use crate::pki::{Cert, Pki};

/// A running nginx.
pub struct Nginx {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

/// The nginx binary, when installed (`scripts/test` installs `nginx-light`).
pub fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

impl Nginx {
    /// Serves `leaf` + `chain` on a free loopback port. `verify` is the value of
    /// `ssl_verify_client` (`on`, `optional`, `optional_no_ca`, `off`); `client_ca` is the
    /// `ssl_client_certificate` (the advertised, trusted client CA). With `http2`, the listener
    /// also offers h2 (nginx then prefers it in ALPN). Every location answers `200 served`.
    pub fn start(
        binary: &Path,
        pki: &Pki,
        leaf: &Cert,
        chain: &[&Cert],
        client_ca: &Cert,
        verify: &str,
        http2: bool,
    ) -> Result<Nginx, String> {
        let port = free_port();
        let dir = pki.path(&format!("nginx-{port}"));
        fs::create_dir_all(dir.join("tmp")).map_err(|err| format!("nginx folder: {err}"))?;
        let mut served = vec![leaf];
        served.extend_from_slice(chain);
        let bundle = pki.bundle(&format!("nginx-{port}-chain.pem"), &served);
        let d = dir.display();
        let config = format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log {d}/access.log;\n\
               client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n\
               uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port} ssl{h2};\n\
                 ssl_certificate {bundle};\n\
                 ssl_certificate_key {key};\n\
                 ssl_client_certificate {ca};\n\
                 ssl_verify_client {verify};\n\
                 location / {{ return 200 \"served\\n\"; }}\n\
               }}\n\
             }}\n",
            bundle = bundle.display(),
            key = leaf.key_path.display(),
            ca = client_ca.cert_path.display(),
            h2 = if http2 { " http2" } else { "" },
        );
        let config_path = dir.join("nginx.conf");
        fs::write(&config_path, config).map_err(|err| format!("nginx.conf: {err}"))?;
        let log = File::create(dir.join("stderr.log")).map_err(|err| format!("log: {err}"))?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&config_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|err| format!("nginx did not start: {err}"))?;
        let mut server = Nginx { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("nginx exited with {status}: {}", server.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx did not accept within 10 s: {}",
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The access log: one line per request nginx answered.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// stderr and the error log (for failure messages).
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
