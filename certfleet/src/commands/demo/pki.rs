//! The demo's certificates, generated at start (rcgen): a root and an issuing CA, and one
//! leaf per situation the demo shows.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A certificate the demo serves, with the chain to send and its key.
pub struct DemoCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The demo's CAs.
pub struct DemoPki {
    root: rcgen::Certificate,
    root_key: KeyPair,
    issuing: rcgen::Certificate,
    issuing_key: KeyPair,
    pub root_pem: String,
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "certfleet demo");
    name.push(DnType::CommonName, common_name);
    name
}

fn ca_params(common_name: &str) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(30);
    params.not_after = now + Duration::days(3650);
    Ok(params)
}

impl DemoPki {
    pub fn new() -> anyhow::Result<DemoPki> {
        let root_key = KeyPair::generate()?;
        let root = ca_params("certfleet Demo Root CA")?.self_signed(&root_key)?;
        let issuing_key = KeyPair::generate()?;
        let issuing =
            ca_params("certfleet Demo Issuing CA")?.signed_by(&issuing_key, &root, &root_key)?;
        let root_pem = root.pem();
        Ok(DemoPki {
            root,
            root_key,
            issuing,
            issuing_key,
            root_pem,
        })
    }

    /// A leaf for `names`, valid from `valid_from` to `valid_until` days from now.
    /// `with_intermediate: false` leaves the issuing CA out (an incomplete chain).
    pub fn leaf(
        &self,
        names: &[&str],
        valid_from: i64,
        valid_until: i64,
        with_intermediate: bool,
    ) -> anyhow::Result<DemoCert> {
        let key = KeyPair::generate()?;
        let params = leaf_params(names, valid_from, valid_until)?;
        let leaf = params.signed_by(&key, &self.issuing, &self.issuing_key)?;
        let mut chain = vec![leaf.der().clone()];
        if with_intermediate {
            chain.push(self.issuing.der().clone());
        }
        Ok(DemoCert {
            chain,
            key: private_key(&key),
        })
    }

    /// A self-signed leaf.
    pub fn self_signed(&self, names: &[&str], valid_until: i64) -> anyhow::Result<DemoCert> {
        let key = KeyPair::generate()?;
        let leaf = leaf_params(names, -1, valid_until)?.self_signed(&key)?;
        Ok(DemoCert {
            chain: vec![leaf.der().clone()],
            key: private_key(&key),
        })
    }

    /// The CA that client certificates must come from (its name is advertised).
    pub fn client_ca(&self) -> CertificateDer<'static> {
        // The root doubles as the client CA: its name is what mTLS servers advertise.
        let _ = &self.root_key;
        self.root.der().clone()
    }
}

fn leaf_params(
    names: &[&str],
    valid_from: i64,
    valid_until: i64,
) -> anyhow::Result<CertificateParams> {
    let owned: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(owned).context("demo certificate names")?;
    params.distinguished_name = name(names.first().copied().unwrap_or("demo"));
    let now = OffsetDateTime::now_utc();
    params.not_before = now + Duration::days(valid_from);
    params.not_after = now + Duration::days(valid_until);
    Ok(params)
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}
