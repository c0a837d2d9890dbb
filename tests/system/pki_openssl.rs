//! Certificates that rcgen and ring cannot make, made with the `openssl` command line at
//! test time: RSA leaves of any size (1024 bits included) and SHA-1 signatures.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use time::OffsetDateTime;

use crate::pki::{
    next_serial, openssl, path_str, rfc4514, serial_hex, sha256_hex, Cert, KeyFacts, Pki,
};

impl Pki {
    /// Issues an RSA leaf with the `openssl` command line (for what rcgen and ring cannot
    /// make: RSA keys under 2048 bits, SHA-1 signatures), valid from now for `days`.
    pub fn openssl_leaf(
        &self,
        name: &str,
        common_name: &str,
        sans: &[&str],
        rsa_bits: u32,
        digest: &str,
        issuer: &Cert,
    ) -> Cert {
        let serial = next_serial();
        let name = format!("{name}-{}", serial_hex(&serial));
        let key_path = self.path(&format!("{name}.key"));
        let bits = format!("rsa_keygen_bits:{rsa_bits}");
        openssl(
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", &bits, "-out"],
            &key_path,
        );
        let csr_path = self.path(&format!("{name}.csr"));
        let subject = format!("/O=Example/CN={common_name}");
        openssl(
            &[
                "req",
                "-new",
                "-key",
                &path_str(&key_path),
                "-subj",
                &subject,
                "-out",
            ],
            &csr_path,
        );
        let alt_names: Vec<String> = sans
            .iter()
            .map(|san| match san.parse::<IpAddr>() {
                Ok(_) => format!("IP:{san}"),
                Err(_) => format!("DNS:{san}"),
            })
            .collect();
        let ext = format!(
            "subjectAltName={}\nbasicConstraints=critical,CA:FALSE\n",
            alt_names.join(",")
        );
        let ext_path = self.write(&format!("{name}.ext"), &ext);
        let cert_path = self.path(&format!("{name}.pem"));
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &path_str(&csr_path),
                "-CA",
                &path_str(&issuer.cert_path),
                "-CAkey",
                &path_str(&issuer.key_path),
                "-set_serial",
                &format!("0x{}", hex::encode(serial)),
                "-days",
                "365",
                &format!("-{digest}"),
                "-extfile",
                &path_str(&ext_path),
                "-out",
            ],
            &cert_path,
        );
        let pem = fs::read_to_string(&cert_path).expect("openssl wrote the certificate");
        let der = pem_body(&pem);
        let (not_before, not_after) = openssl_dates(&cert_path);
        let signature_algorithm = match (digest, issuer.key.kind) {
            ("sha1", "rsa") => "sha1WithRSAEncryption",
            ("sha256", "rsa") => "sha256WithRSAEncryption",
            ("sha256", "ecdsa") => "ecdsa-with-SHA256",
            other => panic!("no expected signature algorithm name for {other:?}"),
        };
        Cert {
            sha256: sha256_hex(&der),
            der,
            cert_path,
            key_path,
            serial: serial_hex(&serial),
            subject: rfc4514(common_name),
            issuer: issuer.subject.clone(),
            not_before,
            not_after,
            sans: sans.iter().map(|san| (*san).to_owned()).collect(),
            key: KeyFacts {
                kind: "rsa",
                bits: u64::from(rsa_bits),
                curve: None,
            },
            signature_algorithm,
            is_ca: false,
            self_signed: false,
            signer: None,
        }
    }
}

/// The DER of the first certificate in `pem`.
fn pem_body(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("a PEM certificate")
        .to_vec()
}

/// notBefore and notAfter as openssl reads them back from the certificate.
fn openssl_dates(cert_path: &Path) -> (OffsetDateTime, OffsetDateTime) {
    let output = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-startdate",
            "-enddate",
            "-dateopt",
            "iso_8601",
            "-in",
        ])
        .arg(cert_path)
        .output()
        .expect("the openssl command line is installed");
    let text = String::from_utf8_lossy(&output.stdout);
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    let date = |prefix: &str| {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("openssl printed no {prefix} in {text:?}"));
        time::PrimitiveDateTime::parse(line.trim(), &format)
            .unwrap_or_else(|err| panic!("openssl date {line:?}: {err}"))
            .assume_utc()
    };
    (date("notBefore="), date("notAfter="))
}
