//! Headless Chromium for the page tests: where it is, a page's DOM after load, and the
//! text a person reads in it. `scripts/test` installs Debian's chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `$CHROMIUM`, else Debian's chromium; `None` when neither is there.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// The flags of every headless run: no sandbox (tests run as root), nothing fetched from
/// outside the machine.
pub const HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The DOM of `url` after load (`--dump-dom`), with a fresh profile in `scratch`.
pub fn dump_dom(chromium: &Path, url: &str, scratch: &Path) -> String {
    let profile = tempfile::tempdir_in(scratch).expect("fresh profile directory");
    let output = Command::new(chromium)
        .args(HEADLESS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(output.status.success(), "chromium --dump-dom {url} failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of a DOM as a person reads it: without tags, whitespace collapsed, the five
/// HTML entities a page escapes turned back into their characters.
pub fn visible(dom: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
