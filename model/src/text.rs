//! The one rule for text that comes from a certificate or a server (SANs, subject and
//! issuer attributes, CA names, STARTTLS replies, error texts): it is kept as text, with
//! every control character (U+0000-U+001F, U+007F-U+009F) written as a backslash and two
//! lowercase hex digits, RFC 4514's escape (`a\0b.test` is stored and shown as
//! `a\00b.test`, a newline as `\0a`). Nothing else changes, so ordinary names stay
//! byte-for-byte what the certificate says.
//!
//! Why escape rather than keep the bytes: PostgreSQL's text and JSONB types cannot hold
//! NUL, a newline in a name would forge lines in a plain-text mail, and a terminal
//! interprets escape sequences. Escaped text is the same on every backend, in the API,
//! on the pages and in the mails.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether a character is written escaped.
pub fn is_escaped_control(ch: char) -> bool {
    ch.is_control()
}

/// `text` with every control character written as `\XX`; borrowed when there is none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        push_escaped(&mut out, ch);
    }
    Cow::Owned(out)
}

/// A free-form name from a certificate (a SAN of any type): control characters and the
/// backslash itself are written as `\XX`, so that an escape in the output can only come
/// from this function (`a\00b` in a SAN reads `a\5c00b`).
pub fn escape_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch == '\\' {
            out.push_str("\\5c");
        } else {
            push_escaped(&mut out, ch);
        }
    }
    out
}

/// Pushes `ch`, escaped when it is a control character.
pub fn push_escaped(out: &mut String, ch: char) {
    if is_escaped_control(ch) {
        // Control characters are all below U+00A0: two hex digits suffice.
        let _ = write!(out, "\\{:02x}", u32::from(ch));
    } else {
        out.push(ch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_hex_escapes() {
        assert_eq!(escape_controls("a\0b.test"), "a\\00b.test");
        assert_eq!(
            escape_controls("line\r\nForged: yes"),
            "line\\0d\\0aForged: yes"
        );
        assert_eq!(escape_controls("\u{1b}[31mred"), "\\1b[31mred");
        assert_eq!(escape_controls("del\u{7f}c1\u{85}"), "del\\7fc1\\85");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        let text = "api.example.com, CN=Ünïcode \\ ok";
        assert!(matches!(escape_controls(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn escaping_twice_changes_nothing_more() {
        let once = escape_controls("a\0\n\tb").into_owned();
        assert_eq!(escape_controls(&once), once);
    }

    #[test]
    fn names_escape_their_backslashes_so_escapes_cannot_be_forged() {
        assert_eq!(escape_name("a\0b.test"), "a\\00b.test");
        assert_eq!(escape_name("a\\00b.test"), "a\\5c00b.test");
        assert_eq!(escape_name("www.example.com"), "www.example.com");
    }
}
