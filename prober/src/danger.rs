//! Dangerous by design: a certificate verifier that accepts everything.
//!
//! certfleet's job is to *record* what servers present, including expired, self-signed,
//! mis-ordered and weak certificates. A verifying client would abort exactly when the server
//! is misconfigured, which is when the owner most needs to know. So every probe uses
//! [`CaptureVerifier`], which stores the DER it is shown and accepts it, and also accepts
//! every handshake signature (small RSA keys, SHA-1, odd curves) without checking it.
//!
//! Nothing sent over these connections is secret: the prober never sends application data
//! and never presents a client certificate. Trust is judged afterwards, offline, by
//! `analysis::trust`, against the configured roots.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, ResolvesClientCert, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, NamedGroup, SignatureScheme};

/// What one handshake revealed, written by rustls callbacks and read by the probe.
#[derive(Debug, Default)]
pub struct Capture {
    /// The certificates exactly as the server sent them, leaf first.
    chain: Mutex<Option<Vec<Vec<u8>>>>,
    /// `Some(ca_names)` once the server sent a CertificateRequest (names as DER).
    certificate_request: Mutex<Option<Vec<Vec<u8>>>>,
    ticket_received: AtomicBool,
}

impl Capture {
    pub fn chain(&self) -> Option<Vec<Vec<u8>>> {
        lock(&self.chain).clone()
    }

    pub fn certificate_request(&self) -> Option<Vec<Vec<u8>>> {
        lock(&self.certificate_request).clone()
    }

    pub fn ticket_received(&self) -> bool {
        self.ticket_received.load(Ordering::Acquire)
    }
}

/// A poisoned lock only means another callback panicked; the data is still plain bytes.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records the server's chain and accepts it. See the module documentation for why.
#[derive(Debug)]
pub struct CaptureVerifier(pub Arc<Capture>);

impl ServerCertVerifier for CaptureVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|der| der.as_ref().to_vec())
            .collect();
        *lock(&self.0.chain) = Some(chain);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ECDSA_NISTP521_SHA512,
            SignatureScheme::ED25519,
            SignatureScheme::ED448,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::RSA_PKCS1_SHA1,
            SignatureScheme::ECDSA_SHA1_Legacy,
        ]
    }
}

/// Notes the CertificateRequest (and its CA names) and answers with no certificate, so
/// the server's reaction to an empty client certificate tells its mTLS policy.
#[derive(Debug)]
pub struct CertificateRequestRecorder(pub Arc<Capture>);

impl ResolvesClientCert for CertificateRequestRecorder {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let names = root_hint_subjects
            .iter()
            .map(|name| name.to_vec())
            .collect();
        *lock(&self.0.certificate_request) = Some(names);
        None
    }

    fn has_certs(&self) -> bool {
        // Claim to have certificates so rustls always consults `resolve`.
        true
    }
}

/// A session store that keeps nothing (no resumption, every probe is a full handshake) but
/// notices TLS 1.3 session tickets: a ticket after our empty client certificate means the
/// server accepted it.
#[derive(Debug)]
pub struct TicketWatcher(pub Arc<Capture>);

impl ClientSessionStore for TicketWatcher {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: Tls13ClientSessionValue) {
        self.0.ticket_received.store(true, Ordering::Release);
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        None
    }
}
