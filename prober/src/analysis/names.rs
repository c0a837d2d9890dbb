//! Distinguished names as RFC 4514 strings, and RFC 6125 host name matching.

use x509_parser::prelude::{FromDer, X509Name};

/// `CN=api.internal,O=Example`: the last RDN of the DER sequence first, as RFC 4514 says.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<&_> = name.iter_rdn().collect();
    rdns.iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type().to_id_string();
                    let value = match attribute.as_str() {
                        Ok(text) => escape(text),
                        // RFC 4514: a value that is not a string is written as #hex.
                        Err(_) => format!("#{}", hex::encode(attribute.attr_value().data)),
                    };
                    format!("{}={}", short_name(&oid).unwrap_or(&oid), value)
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A DistinguishedName from a TLS CertificateRequest, as RFC 4514. TLS carries the DER of
/// the Name with its outer SEQUENCE; some stacks omit it, so both are accepted. A name that
/// does not parse is shown as `#` and its hex rather than dropped.
pub fn rfc4514_from_der(der: &[u8]) -> String {
    if let (Some(0x30), Ok((rest, name))) = (der.first(), X509Name::from_der(der)) {
        if rest.is_empty() {
            return rfc4514(&name);
        }
    }
    if der.len() < 0x10000 && der.first() == Some(&0x31) {
        // Without the header, the contents start with an RDN, which is a SET (0x31).
        let mut wrapped = vec![0x30];
        if der.len() < 0x80 {
            wrapped.push(der.len() as u8);
        } else if der.len() < 0x100 {
            wrapped.extend_from_slice(&[0x81, der.len() as u8]);
        } else {
            wrapped.push(0x82);
            wrapped.extend_from_slice(&(der.len() as u16).to_be_bytes());
        }
        wrapped.extend_from_slice(der);
        if let Ok((rest, name)) = X509Name::from_der(&wrapped) {
            if rest.is_empty() {
                return rfc4514(&name);
            }
        }
    }
    format!("#{}", hex::encode(der))
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        // Not in RFC 4514's table, but how every tool spells them.
        "2.5.4.5" => "serialNumber",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// RFC 4514 section 2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, ch) in value.chars().enumerate() {
        let special = matches!(ch, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (index == 0 && (ch == '#' || ch == ' '))
            || (index == last && ch == ' ');
        if certfleet_model::text::is_escaped_control(ch) {
            // One rule for every string from a certificate (certfleet_model::text): NUL
            // reads `\00`, a newline `\0a`, as RFC 4514's hexpair escape.
            certfleet_model::text::push_escaped(&mut out, ch);
        } else {
            if special {
                out.push('\\');
            }
            out.push(ch);
        }
    }
    out
}

/// RFC 6125 matching of a presented DNS name (possibly `*.` wildcard) against a host name.
/// The wildcard covers exactly one whole left-most label, and never a bare public-suffix-like
/// `*.com` (at least two labels must follow it).
pub fn dns_name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            if !suffix.contains('.') || suffix.contains('*') {
                return false;
            }
            match host.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == suffix,
                None => false,
            }
        }
        None => !pattern.contains('*') && pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_covers_exactly_one_label() {
        assert!(dns_name_matches("*.example.com", "a.example.com"));
        assert!(dns_name_matches("*.Example.com", "A.example.COM."));
        assert!(!dns_name_matches("*.example.com", "example.com"));
        assert!(!dns_name_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_name_matches("*.com", "example.com"));
        assert!(!dns_name_matches("a*.example.com", "ab.example.com"));
        assert!(dns_name_matches("api.test", "api.test"));
        assert!(!dns_name_matches("api.test", "www.api.test"));
    }

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(escape("Acme, Inc."), "Acme\\, Inc.");
        assert_eq!(escape("#tag "), "\\#tag\\ ");
        assert_eq!(escape("a+b=c"), "a\\+b=c");
        assert_eq!(escape("a\0b\nc"), "a\\00b\\0ac");
    }

    #[test]
    fn garbage_ca_name_is_shown_as_hex() {
        assert_eq!(rfc4514_from_der(&[0xff, 0x01]), "#ff01");
    }
}
