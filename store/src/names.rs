//! Normalizing what users type and what certificates say: serials, host names, CNs.

use crate::error::{Error, Result};

/// A serial in the stored spelling: lowercase hex, no separators (colons, spaces, dashes),
/// no `0x`, no leading zeros (`0` for zero).
pub fn normalize_serial(serial: &str) -> Result<String> {
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
        return Err(Error::invalid("serial", "must be hexadecimal"));
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
pub fn hostname_candidates(hostname: &str) -> Result<Vec<String>> {
    let name = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 || name.chars().any(char::is_whitespace) {
        return Err(Error::invalid("hostname", "must be a host name"));
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
}
