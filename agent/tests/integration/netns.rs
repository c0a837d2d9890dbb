//! The agent tests' namespaces come from certfleet-testkit; this adds their certificate.

use std::net::Ipv4Addr;
use std::path::Path;

pub use certfleet_testkit::netns::netns_or_skip;

/// A self-signed certificate for `address`, written as `cert.pem` and `key.pem` in `dir`;
/// returns the certificate's SHA-256 (lowercase hex).
pub fn write_certificate(dir: &Path, address: Ipv4Addr) -> String {
    let names = vec![address.to_string(), "cf-test.internal".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).expect("generate a certificate");
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).expect("write key");
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(certified.cert.der()))
}
