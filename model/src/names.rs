//! Normalizing what users type and what certificates say: serials, host names, CNs, and
//! which names may be sent as SNI. Rules of the domain, not of storage: the store indexes
//! and looks up by them, the prober and the static targets check names with them.

use std::net::IpAddr;

/// Input that is not a serial or a host name; says which and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput {
    /// What was expected (`serial`, `hostname`).
    pub field: &'static str,
    /// Why it is not one.
    pub reason: &'static str,
}

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidInput {}

fn invalid(field: &'static str, reason: &'static str) -> InvalidInput {
    InvalidInput { field, reason }
}

/// Most named endpoints created per (address, port).
pub const NAMES_PER_ENDPOINT: usize = 8;

/// A serial in the stored spelling: lowercase hex, no separators (colons, spaces, dashes),
/// no `0x`, no leading zeros (`0` for zero).
pub fn normalize_serial(serial: &str) -> Result<String, InvalidInput> {
    let mut digits: String = serial
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    if let Some(rest) = digits.strip_prefix("0x") {
        digits = rest.to_owned();
    }
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("serial", "must be hexadecimal"));
    }
    let trimmed = digits.trim_start_matches('0');
    Ok(if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// The stored names a host name is matched against: the name itself, lower-cased and
/// without a trailing dot, and the wildcard that covers it (`a.example.com` ->
/// `*.example.com`). A wildcard never covers a single-label parent (`*.com`).
pub fn hostname_candidates(hostname: &str) -> Result<Vec<String>, InvalidInput> {
    let name = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 || name.chars().any(char::is_whitespace) {
        return Err(invalid("hostname", "must be a host name"));
    }
    let mut candidates = vec![name.clone()];
    if !name.starts_with("*.") {
        if let Some((_, parent)) = name.split_once('.') {
            if parent.contains('.') {
                candidates.push(format!("*.{parent}"));
            }
        }
    }
    Ok(candidates)
}

/// Longest name kept in the hostname index (a DNS name has at most 253 bytes; escapes and
/// e-mail or URI SANs may be longer).
const MAX_INDEXED_NAME: usize = 512;

/// The names a certificate answers to, for the names table: its SANs and its subject CN,
/// lower-cased, deduplicated.
pub fn certificate_names(sans: &[String], subject: &str) -> Vec<String> {
    let mut names: Vec<String> = sans
        .iter()
        .map(|san| san.trim().trim_end_matches('.').to_ascii_lowercase())
        .chain(common_name(subject).map(|cn| cn.to_ascii_lowercase()))
        // A name longer than any DNS name is kept in the certificate's SANs but not
        // indexed: a hostile 10 KiB SAN would not fit a PostgreSQL index row.
        .filter(|name| !name.is_empty() && name.len() <= MAX_INDEXED_NAME)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The CN attribute of an RFC 4514 distinguished name (`CN=api.internal,O=Example`),
/// with backslash escapes undone.
pub fn common_name(subject: &str) -> Option<String> {
    let mut attribute = String::new();
    let mut escaped = false;
    for c in subject.chars().chain([',']) {
        if escaped {
            attribute.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '+' => {
                let (key, value) = attribute.split_once('=')?;
                if key.trim().eq_ignore_ascii_case("cn") {
                    return Some(value.trim().to_owned());
                }
                attribute.clear();
            }
            _ => attribute.push(c),
        }
    }
    None
}

/// The name as it would be sent, when it can be: a DNS name (letters, digits, hyphens,
/// dots), lower-cased, without a trailing dot; never an IP address, a wildcard, an e-mail
/// address or a URI.
pub fn usable_sni(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let usable = !name.is_empty()
        && name.len() <= 253
        && name.parse::<IpAddr>().is_err()
        && name.chars().any(|c| c.is_ascii_alphabetic())
        && name.split('.').all(valid_label);
    usable.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_spellings_normalize_alike() {
        for spelling in ["00:0A:bc:12", "0a bc 12", "0x0ABC12", "abc12", "0A-BC-12"] {
            assert_eq!(
                normalize_serial(spelling).ok().as_deref(),
                Some("abc12"),
                "{spelling}"
            );
        }
        assert_eq!(normalize_serial("00").ok().as_deref(), Some("0"));
        assert!(normalize_serial("xyz").is_err());
    }

    #[test]
    fn hostname_candidates_include_the_covering_wildcard() {
        let candidates = hostname_candidates("A.Example.com.").ok();
        assert_eq!(
            candidates,
            Some(vec!["a.example.com".into(), "*.example.com".into()])
        );
        assert_eq!(
            hostname_candidates("example.com").ok(),
            Some(vec!["example.com".into()])
        );
        let wildcard = hostname_candidates("*.example.com").ok();
        assert_eq!(wildcard, Some(vec!["*.example.com".into()]));
    }

    #[test]
    fn common_name_is_found_anywhere_and_unescaped() {
        assert_eq!(
            common_name("CN=api.internal,O=Example").as_deref(),
            Some("api.internal")
        );
        assert_eq!(
            common_name("O=Ex\\,ample,CN=b.test").as_deref(),
            Some("b.test")
        );
        assert_eq!(common_name("O=Example"), None);
        let names = certificate_names(&["B.test".into(), "10.0.0.1".into()], "CN=b.test");
        assert_eq!(names, vec!["10.0.0.1".to_owned(), "b.test".to_owned()]);
    }

    #[test]
    fn only_dns_names_are_sent_as_sni() {
        assert_eq!(
            usable_sni("API.Example.com."),
            Some("api.example.com".into())
        );
        assert_eq!(usable_sni("i-0abc"), Some("i-0abc".into()));
        for refused in [
            "10.1.2.3",
            "::1",
            "*.example.com",
            "a@b.c",
            "https://x",
            "",
            "-a.b",
        ] {
            assert_eq!(usable_sni(refused), None, "{refused}");
        }
    }
}
