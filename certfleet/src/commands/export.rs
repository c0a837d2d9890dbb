//! `certfleet export certificates|endpoints --format jsonl|csv [--since TIME]`: the
//! inventory streamed from the store a page at a time (keyset order, 5,000 rows a page),
//! so memory stays flat however large the fleet is. The JSON lines carry the API's fields
//! (`certfleet_web::responses`); the CSV flattens them, lists joined with spaces.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use certfleet_store::{ExportCursor, ExportPage, ExportRows, ReadModel};
use certfleet_web::responses::{CertificateSummary, Endpoint};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::admin::open_stores;
use crate::cli::{ExportArgs, ExportFormat, ExportKind};
use crate::config::Config;

/// Rows read per statement: large enough that the round trips do not matter, small enough
/// that a page's memory does not.
const PAGE: u32 = 5_000;

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let since = match args.since.as_deref() {
        Some(text) => parse_since(text, OffsetDateTime::now_utc())?,
        None => OffsetDateTime::UNIX_EPOCH,
    };
    let config = Config::load(args.config.config.as_deref())?;
    let stores = open_stores(&config).await?;
    // With a read replica, the export reads from it while it keeps within
    // database.read_max_lag, checked all along as `serve` does.
    let stop = tokio_util::sync::CancellationToken::new();
    if let Some(replica) = stores.replica.clone() {
        replica.check().await;
        let stop = stop.clone();
        tokio::spawn(async move { replica.watch(stop.cancelled_owned()).await });
    }
    let out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let first = match args.what {
        ExportKind::Certificates => ExportCursor::Certificates(None),
        ExportKind::Endpoints => ExportCursor::Endpoints(None),
    };
    let rows = export(stores.reads.as_ref(), since, first, args.format, out).await;
    stop.cancel();
    let rows = rows?;
    if let Some(replica) = &stores.replica {
        let fallback_reads = replica.status().fallback_reads;
        tracing::info!(
            fallback_reads,
            "export pages the primary answered instead of the replica"
        );
    }
    tracing::info!(rows, what = ?args.what, "export done");
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339, or a duration (`humantime`: `24h`, `7d`) back from `now`.
fn parse_since(text: &str, now: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    if let Ok(time) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
        return Ok(time);
    }
    let back = humantime::parse_duration(text.trim())
        .with_context(|| format!("--since {text:?}: neither an RFC 3339 time nor a duration"))?;
    let back = time::Duration::try_from(back).context("--since: duration too long")?;
    Ok(now - back)
}

/// Streams every page of the export `first` starts, each row as it is read.
async fn export(
    store: &dyn ReadModel,
    since: OffsetDateTime,
    first: ExportCursor,
    format: ExportFormat,
    out: impl Write,
) -> anyhow::Result<u64> {
    let header = match first {
        ExportCursor::Certificates(_) => CERTIFICATE_COLUMNS,
        ExportCursor::Endpoints(_) => ENDPOINT_COLUMNS,
    };
    let mut writer = RowWriter::new(format, out, header)?;
    let mut page = ExportPage {
        since,
        after: first,
        limit: PAGE,
    };
    loop {
        let (read, next) = match store.export_page(&page).await? {
            ExportRows::Certificates(records) => {
                let (read, next) = (records.len(), records.last().map(|r| r.sha256.clone()));
                for record in records.into_iter().map(CertificateSummary::from) {
                    writer.write(&record, || certificate_row(&record))?;
                }
                (read, ExportCursor::Certificates(next))
            }
            ExportRows::Endpoints(records) => {
                let (read, next) = (records.len(), records.last().map(|r| r.id));
                for record in records.into_iter().map(Endpoint::from) {
                    writer.write(&record, || endpoint_row(&record))?;
                }
                (read, ExportCursor::Endpoints(next))
            }
        };
        if read < PAGE as usize {
            return writer.finish();
        }
        page.after = next;
    }
}

/// Writes rows as JSON lines or CSV and counts them (the CSV writer boxed: it holds its
/// own buffer).
enum RowWriter<W: Write> {
    Jsonl { out: W, rows: u64 },
    Csv { out: Box<csv::Writer<W>>, rows: u64 },
}

impl<W: Write> RowWriter<W> {
    fn new(format: ExportFormat, out: W, header: &[&str]) -> anyhow::Result<Self> {
        Ok(match format {
            ExportFormat::Jsonl => RowWriter::Jsonl { out, rows: 0 },
            ExportFormat::Csv => {
                let mut out = csv::Writer::from_writer(out);
                out.write_record(header)?;
                RowWriter::Csv {
                    out: Box::new(out),
                    rows: 0,
                }
            }
        })
    }

    fn write(
        &mut self,
        item: &impl serde::Serialize,
        csv_row: impl FnOnce() -> Vec<String>,
    ) -> anyhow::Result<()> {
        match self {
            RowWriter::Jsonl { out, rows } => {
                serde_json::to_writer(&mut *out, item)?;
                out.write_all(b"\n")?;
                *rows += 1;
            }
            RowWriter::Csv { out, rows } => {
                out.write_record(csv_row())?;
                *rows += 1;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<u64> {
        match self {
            RowWriter::Jsonl { mut out, rows } => {
                out.flush()?;
                Ok(rows)
            }
            RowWriter::Csv { mut out, rows } => {
                out.flush()?;
                Ok(rows)
            }
        }
    }
}

const CERTIFICATE_COLUMNS: &[&str] = &[
    "sha256",
    "serial",
    "subject",
    "issuer",
    "not_before",
    "not_after",
    "sans",
    "key_type",
    "key_bits",
    "signature_algorithm",
    "is_ca",
    "self_signed",
    "first_seen",
    "last_seen",
];

fn certificate_row(c: &CertificateSummary) -> Vec<String> {
    vec![
        c.sha256.clone(),
        c.serial.clone(),
        c.subject.clone(),
        c.issuer.clone(),
        rfc3339(c.not_before),
        rfc3339(c.not_after),
        c.sans.join(" "),
        c.key.kind.clone(),
        c.key.bits.to_string(),
        c.signature_algorithm.clone(),
        c.is_ca.to_string(),
        c.self_signed.to_string(),
        rfc3339(c.first_seen),
        rfc3339(c.last_seen),
    ]
}

const ENDPOINT_COLUMNS: &[&str] = &[
    "id",
    "address",
    "port",
    "sni",
    "hostname",
    "process",
    "container",
    "app",
    "env",
    "owner",
    "first_seen",
    "last_seen",
    "retired_at",
    "last_status",
    "last_probed_at",
    "leaf_sha256",
    "leaf_not_after",
    "mtls",
    "findings",
    // Last, so that scripts reading the columns by position before zones keep working.
    "zone",
];

fn endpoint_row(e: &Endpoint) -> Vec<String> {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let time = |value: Option<OffsetDateTime>| value.map(rfc3339).unwrap_or_default();
    let observation = e.observation.as_ref();
    let mtls = observation.map(|o| o.mtls.label());
    let findings = observation.map(|o| {
        let names: Vec<&str> = o.findings.iter().map(|f| f.as_str()).collect();
        names.join(" ")
    });
    vec![
        e.id.to_string(),
        e.address.clone(),
        e.port.to_string(),
        text(&e.sni),
        text(&e.hostname),
        text(&e.process),
        text(&e.container),
        text(&e.app),
        text(&e.env),
        text(&e.owner),
        rfc3339(e.first_seen),
        rfc3339(e.last_seen),
        time(e.retired_at),
        e.last_status
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        time(e.last_probed_at),
        observation
            .and_then(|o| o.leaf_sha256.clone())
            .unwrap_or_default(),
        time(observation.and_then(|o| o.leaf_not_after)),
        mtls.unwrap_or_default().to_owned(),
        findings.unwrap_or_default(),
        e.zone.clone(),
    ]
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn since_is_a_time_or_a_duration_back() {
        let now = datetime!(2026-12-05 12:00 UTC);
        assert_eq!(
            parse_since("2026-12-01T00:00:00Z", now).ok(),
            Some(datetime!(2026-12-01 0:00 UTC))
        );
        assert_eq!(
            parse_since("7d", now).ok(),
            Some(now - time::Duration::days(7))
        );
        assert_eq!(
            parse_since("24h", now).ok(),
            Some(now - time::Duration::hours(24))
        );
        let error = parse_since("yesterday", now).expect_err("not a time");
        assert!(format!("{error:#}").contains("--since"), "{error:#}");
    }
}
