//! The page frame shared by every view: plain HTML and CSS, no JavaScript.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::OffsetDateTime;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
header form{margin-left:auto}
header input{width:24rem;padding:.35rem;border-radius:4px;border:0}
main{padding:1.2rem;max-width:80rem}
table{border-collapse:collapse;background:#fff;margin:.5rem 0 1.2rem}
th,td{border:1px solid #d8dce2;padding:.3rem .6rem;text-align:left;font-size:.92rem;vertical-align:top}
th{background:#eef0f3}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin-bottom:1rem}
.card{background:#fff;border:1px solid #d8dce2;border-radius:6px;padding:.8rem 1.1rem;min-width:9rem}
.card .n{font-size:1.8rem;font-weight:700}
.bad{color:#b3261e}.warn{color:#a15c00}.good{color:#1b6e3a}
.mono{font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all}
.bar{display:flex;height:1rem;width:20rem;border:1px solid #d8dce2}
.bar span{display:block;height:100%}
.req{background:#1b6e3a}.opt{background:#e0a100}.none{background:#c9ced6}
pre{background:#fff;border:1px solid #d8dce2;padding:.6rem;overflow:auto}
";

/// A whole page with the header and search box.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · certfleet" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { "certfleet" }
                    a href="/endpoints" { "Endpoints" }
                    a href="/certificates?expiring_within=30d" { "Expiring" }
                    a href="/mtls" { "mTLS" }
                    a href="/notifications/failed" { "Failed notifications" }
                    a href="/probers" { "Probers" }
                    form action="/search" method="get" {
                        input type="search" name="q" aria-label="Search"
                            placeholder="hostname, serial, fingerprint, address or issuer";
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// `2026-12-01` for a timestamp.
pub fn day(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

/// Whole days from now until `at` (negative when past).
pub fn days_left(at: OffsetDateTime) -> i64 {
    (at - OffsetDateTime::now_utc()).whole_days()
}

/// Days left, coloured by urgency.
pub fn days_left_cell(at: OffsetDateTime) -> Markup {
    let days = days_left(at);
    let class = if days < 0 {
        "bad"
    } else if days < 30 {
        "warn"
    } else {
        "good"
    };
    let text = if days < 0 {
        format!("expired {} d ago", -days)
    } else {
        format!("{days} d")
    };
    html! { span class=(class) { (text) } }
}

/// A link to `path` with these query parameters (values percent-encoded).
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// A "Next page" link when there is one.
pub fn next_page(path: &str, pairs: &[(&str, &str)], cursor: Option<&str>) -> Markup {
    let Some(cursor) = cursor else {
        return html! {};
    };
    let mut pairs = pairs.to_vec();
    pairs.push(("cursor", cursor));
    html! { p class="pager" { a id="next-page" href=(link(path, &pairs)) { "Next page" } } }
}

/// Percent-encoding of a query value or path segment (RFC 3986 unreserved kept).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `-` for nothing.
pub fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}
