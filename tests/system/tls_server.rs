//! An in-process rustls server (tokio + tokio-rustls) that serves a chosen chain in a chosen
//! order, and records what each completed handshake negotiated, so the probe's report can be
//! compared with what the server saw.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::pki::Cert;

/// Which protocol versions the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Both,
    Tls12,
    Tls13,
}

/// Whether the server asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Optional,
    Required,
}

/// What one completed handshake negotiated, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// The suite as rustls spells it, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// e.g. `X25519`.
    pub group: Option<String>,
    pub alpn: Option<String>,
    pub sni: Option<String>,
}

/// How to start a server: the chains to serve and the policy.
pub struct TlsServerBuilder {
    default_chain: Option<Arc<CertifiedKey>>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
    versions: Versions,
    client_auth: ClientAuth,
    client_ca: Vec<CertificateDer<'static>>,
    alpn: Vec<Vec<u8>>,
    ipv6: bool,
    bind: Option<SocketAddr>,
}

/// A running server; stops accepting when dropped.
pub struct TlsServer {
    pub port: u16,
    accept_loop: JoinHandle<()>,
    log: Arc<Log>,
}

/// Completed handshakes, and how many connections were accepted and have finished their
/// handshake attempt (either way).
#[derive(Default)]
struct Log {
    handshakes: Mutex<Vec<Negotiated>>,
    accepted: AtomicUsize,
    settled: AtomicUsize,
    /// Application bytes received after completed handshakes.
    application_bytes: AtomicUsize,
    /// Completed handshakes whose connection has ended since.
    ended: AtomicUsize,
}

impl TlsServer {
    /// A server that sends `chain` (the certificates in exactly this order) with the private
    /// key of `key_of`, which should be the first one.
    pub fn serving(chain: &[&Cert], key_of: &Cert) -> TlsServerBuilder {
        TlsServerBuilder {
            default_chain: Some(certified_key(chain, key_of)),
            by_name: Vec::new(),
            versions: Versions::Both,
            client_auth: ClientAuth::None,
            client_ca: Vec::new(),
            alpn: Vec::new(),
            ipv6: false,
            bind: None,
        }
    }

    /// Every completed handshake, once each accepted connection has finished its attempt
    /// (the client may exit before the server task has recorded its last handshake).
    pub fn handshakes(&self) -> Vec<Negotiated> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log.settled.load(Ordering::SeqCst) < self.log.accepted.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.log
            .handshakes
            .lock()
            .expect("handshake log is not poisoned")
            .clone()
    }

    /// How many application-data bytes clients sent after their handshakes, once every
    /// completed handshake's connection has ended.
    pub fn application_bytes(&self) -> usize {
        let handshakes = self.handshakes().len();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log.ended.load(Ordering::SeqCst) < handshakes && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.log.application_bytes.load(Ordering::SeqCst)
    }

    /// `127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl TlsServerBuilder {
    /// For SNI `name` (exact, or `*.suffix` for any name under the suffix), send this chain.
    pub fn for_name(mut self, name: &str, chain: &[&Cert], key_of: &Cert) -> Self {
        self.by_name
            .push((name.to_owned(), certified_key(chain, key_of)));
        self
    }

    /// Abort the handshake (rustls sends a fatal alert) unless the SNI name is one given
    /// with `for_name`.
    pub fn only_named(mut self) -> Self {
        self.default_chain = None;
        self
    }

    pub fn versions(mut self, versions: Versions) -> Self {
        self.versions = versions;
        self
    }

    /// Ask for client certificates issued by `client_ca` (whose name is then advertised).
    pub fn client_auth(mut self, client_auth: ClientAuth, client_ca: &Cert) -> Self {
        self.client_auth = client_auth;
        self.client_ca = vec![CertificateDer::from(client_ca.der.clone())];
        self
    }

    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    /// Listen on `[::1]` instead of `127.0.0.1`.
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Listen on this loopback address and port (port 0: any free one).
    pub fn at(mut self, address: SocketAddr) -> Self {
        self.bind = Some(address);
        self
    }

    /// Binds and starts serving; fails only when the address cannot be bound.
    pub fn start(self) -> std::io::Result<TlsServer> {
        let ip = match self.ipv6 {
            true => IpAddr::V6(Ipv6Addr::LOCALHOST),
            false => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let listener = StdListener::bind(self.bind.unwrap_or(SocketAddr::new(ip, 0)))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let acceptor = TlsAcceptor::from(Arc::new(self.config()));
        let log = Arc::new(Log::default());
        let server_log = log.clone();
        let _runtime = runtime().enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let accept_loop = runtime().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                server_log.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_one(acceptor.clone(), stream, server_log.clone()));
            }
        });
        Ok(TlsServer {
            port,
            accept_loop,
            log,
        })
    }

    fn config(self) -> ServerConfig {
        let provider = provider();
        let versions: &[&'static SupportedProtocolVersion] = match self.versions {
            Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
            Versions::Tls12 => &[&rustls::version::TLS12],
            Versions::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .expect("the ring provider supports these versions");
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional | ClientAuth::Required => {
                let mut roots = RootCertStore::empty();
                for ca in self.client_ca {
                    roots.add(ca).expect("client CA is a valid trust anchor");
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = match self.client_auth {
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                builder.with_client_cert_verifier(verifier.build().expect("client verifier"))
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(ByName {
            default_chain: self.default_chain,
            by_name: self.by_name,
        }));
        config.alpn_protocols = self.alpn;
        config
    }
}

/// Handshakes, records what was negotiated, then holds the connection until the client
/// closes it (so a prober can tell "went on without a client certificate" from an alert).
/// Counts the application bytes received, and answers an HTTP request (a head ending in an
/// empty line) with `200 OK`, as a server that serves without a client certificate.
async fn serve_one(acceptor: TlsAcceptor, stream: tokio::net::TcpStream, log: Arc<Log>) {
    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
    let Ok(Ok(mut tls)) = handshake.await else {
        log.settled.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let (_, connection) = tls.get_ref();
    let negotiated = Negotiated {
        version: match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        },
        cipher: connection
            .negotiated_cipher_suite()
            .map(|suite| format!("{:?}", suite.suite()))
            .unwrap_or_default(),
        group: connection
            .negotiated_key_exchange_group()
            .map(|group| format!("{:?}", group.name())),
        alpn: connection
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        sni: connection.server_name().map(str::to_owned),
    };
    log.handshakes
        .lock()
        .expect("handshake log is not poisoned")
        .push(negotiated);
    log.settled.fetch_add(1, Ordering::SeqCst);
    let mut buf = [0u8; 1024];
    let mut received = Vec::new();
    let hold = async {
        while let Ok(n) = tls.read(&mut buf).await {
            if n == 0 {
                break;
            }
            log.application_bytes.fetch_add(n, Ordering::SeqCst);
            received.extend_from_slice(&buf[..n]);
            if received.windows(4).any(|w| w == b"\r\n\r\n") {
                let answer =
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
                let _ = tls.write_all(answer).await;
                let _ = tls.shutdown().await;
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), hold).await;
    log.ended.fetch_add(1, Ordering::SeqCst);
}

/// Picks the chain by SNI: exact names first, then `*.suffix` patterns (any depth below
/// the suffix, so the prober's own wildcard rules are what is tested), else the default.
struct ByName {
    default_chain: Option<Arc<CertifiedKey>>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
}

impl fmt::Debug for ByName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByName")
            .field(
                "names",
                &self.by_name.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = client_hello.server_name() else {
            return self.default_chain.clone();
        };
        let exact = self.by_name.iter().find(|(name, _)| name == sni);
        let pattern = || {
            self.by_name.iter().find(|(name, _)| {
                name.strip_prefix("*.")
                    .is_some_and(|suffix| sni.ends_with(&format!(".{suffix}")))
            })
        };
        exact
            .or_else(pattern)
            .map(|(_, key)| key.clone())
            .or_else(|| self.default_chain.clone())
    }
}

fn certified_key(chain: &[&Cert], key_of: &Cert) -> Arc<CertifiedKey> {
    let chain = chain
        .iter()
        .map(|cert| CertificateDer::from(cert.der.clone()))
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key_of.key_path).expect("a PEM private key");
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .expect("ring can sign with this key");
    Arc::new(CertifiedKey::new(chain, signing_key))
}

/// The ring provider, explicitly: no process-wide default is installed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One runtime for all in-process servers of the test binary.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the test servers")
    })
}
