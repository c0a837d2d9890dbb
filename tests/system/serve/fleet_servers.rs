//! Many TLS listeners on 127.0.0.1 (one port per endpoint) served by one in-process rustls
//! configuration, counting the connections each port accepts, with a gate: the first
//! `pass` connections are served at once, later ones wait (accepted, but not answered)
//! until the test opens the gate. That holds the probers mid-round for as long as the test
//! needs, without any timer.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::pki::Cert;

/// The listeners, their per-port connection counts, and the gate.
pub struct FleetServers {
    pub ports: Vec<u16>,
    counts: Arc<Vec<AtomicUsize>>,
    accepted: Arc<AtomicUsize>,
    open: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl FleetServers {
    /// `count` listeners serving `leaf` (self-signed or not; the prober records anything);
    /// connections after the first `pass` wait for [`open_gate`](Self::open_gate).
    pub fn start(count: usize, leaf: &Cert, pass: usize) -> FleetServers {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(leaf)));
        let counts: Arc<Vec<AtomicUsize>> =
            Arc::new((0..count).map(|_| AtomicUsize::new(0)).collect());
        let accepted = Arc::new(AtomicUsize::new(0));
        let (open, gate) = watch::channel(false);
        let _runtime = runtime().enter();
        let mut ports = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for index in 0..count {
            let listener = StdListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .expect("bind a loopback port");
            listener.set_nonblocking(true).expect("non-blocking");
            ports.push(listener.local_addr().expect("bound").port());
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let (acceptor, counts, accepted) = (acceptor.clone(), counts.clone(), accepted.clone());
            let gate = gate.clone();
            tasks.push(runtime().spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    counts[index].fetch_add(1, Ordering::SeqCst);
                    let nth = accepted.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, mut gate) = (acceptor.clone(), gate.clone());
                    tokio::spawn(async move {
                        if nth >= pass {
                            // Err: the servers are gone; nothing left to serve.
                            let _ = gate.wait_for(|open| *open).await;
                        }
                        let handshake = acceptor.accept(stream);
                        let _ = tokio::time::timeout(Duration::from_secs(30), handshake).await;
                    });
                }
            }));
        }
        FleetServers {
            ports,
            counts,
            accepted,
            open,
            tasks,
        }
    }

    /// Connections accepted so far, on all ports.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted so far on the `index`th port.
    pub fn connections(&self, index: usize) -> usize {
        self.counts[index].load(Ordering::SeqCst)
    }

    /// Lets every waiting and later connection through.
    pub fn open_gate(&self) {
        let _ = self.open.send(true);
    }
}

impl Drop for FleetServers {
    fn drop(&mut self) {
        self.open_gate();
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub fn server_config(leaf: &Cert) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::from_pem_file(&leaf.key_path).expect("a PEM private key");
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(leaf.der.clone())], key)
        .expect("the leaf and its key match")
}

/// The runtime of these servers (the probers are separate processes).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the fleet servers")
    })
}
