//! The demo's TLS endpoints: in-process rustls servers on 127.0.0.1, one per situation.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::pki::DemoCert;

/// Whether the endpoint asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Optional,
    Required,
}

/// Starts a TLS server for `cert`; returns its address. It runs until the process ends.
pub async fn serve(
    cert: DemoCert,
    client_auth: ClientAuth,
    client_ca: &CertificateDer<'static>,
) -> anyhow::Result<SocketAddr> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("demo TLS versions")?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let mut roots = RootCertStore::empty();
            roots.add(client_ca.clone()).context("demo client CA")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated().build()
            } else {
                verifier.build()
            };
            builder.with_client_cert_verifier(verifier.context("demo client verifier")?)
        }
    };
    let config = builder
        .with_single_cert(cert.chain, cert.key)
        .context("demo certificate")?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // Hold the session until the client leaves; failed handshakes are expected
                // (the prober sends no client certificate).
                if let Ok(Ok(mut tls)) = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    acceptor.accept(stream),
                )
                .await
                {
                    let mut sink = [0u8; 1024];
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        tls.read(&mut sink),
                    )
                    .await;
                }
            });
        }
    });
    Ok(address)
}
