//! Writing probe results: JSON lines (the contract) or a readable table.

use std::io::{self, Write};

use certfleet_model::{ProbeResult, ProbeStatus};
use time::OffsetDateTime;

use crate::cli::Format;

/// Writes results as they arrive, flushing each one so pipelines see them at once.
pub struct ResultWriter<W: Write> {
    out: W,
    format: Format,
    header_written: bool,
}

impl<W: Write> ResultWriter<W> {
    pub fn new(out: W, format: Format) -> Self {
        ResultWriter {
            out,
            format,
            header_written: false,
        }
    }

    pub fn write(&mut self, result: &ProbeResult) -> io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, result)?;
                self.out.write_all(b"\n")?;
            }
            Format::Table => {
                if !self.header_written {
                    self.header_written = true;
                    writeln!(
                        self.out,
                        "{:<28} {:<11} {:<8} {:>6} {:<10} {:<32} FINDINGS",
                        "TARGET", "STATUS", "TLS", "DAYS", "MTLS", "SUBJECT"
                    )?;
                }
                writeln!(self.out, "{}", table_row(result))?;
            }
        }
        self.out.flush()
    }
}

fn table_row(result: &ProbeResult) -> String {
    let target = match (&result.address, result.target.contains(':')) {
        (Some(address), _) if !result.target.starts_with(address.as_str()) => {
            format!("{} ({address})", result.target)
        }
        _ => result.target.clone(),
    };
    let version = result
        .tls
        .as_ref()
        .map(|tls| tls.version.as_str())
        .unwrap_or("-");
    let days = result
        .leaf()
        .filter(|leaf| leaf.parse_error.is_none())
        .map(|leaf| {
            (leaf.not_after - OffsetDateTime::now_utc())
                .whole_days()
                .to_string()
        })
        .unwrap_or_else(|| "-".into());
    let mtls = match &result.mtls {
        None => "-",
        Some(policy) => match (policy.requested, policy.required) {
            (false, _) => "none",
            (true, Some(true)) => "required",
            (true, Some(false)) => "optional",
            (true, None) => "requested",
        },
    };
    let subject = match (result.status, result.leaf()) {
        (_, Some(leaf)) => leaf.subject.clone(),
        (ProbeStatus::Ok, None) => "-".into(),
        (_, None) => result.error.clone().unwrap_or_default(),
    };
    let findings: Vec<&str> = result
        .findings
        .iter()
        .map(|finding| finding.as_str())
        .collect();
    format!(
        "{:<28} {:<11} {:<8} {:>6} {:<10} {:<32} {}",
        target,
        result.status.as_str(),
        version,
        days,
        mtls,
        truncate(&subject, 32),
        findings.join(",")
    )
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(width - 1).collect();
        short.push('…');
        short
    }
}
