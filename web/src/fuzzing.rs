//! The bodies of the fuzz targets in `fuzz/` (cargo fuzz) for what clients send the web
//! service: agent reports, osquery enroll and log posts, and the query strings of the read
//! routes. Each runs the bytes through the same functions the handlers call, without a
//! store. The unit tests below feed the committed seed corpus (`fuzz/corpus/<target>/`)
//! through them on every test run. Not an API: nothing outside the fuzz targets and tests
//! should call this.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::extract::{FromRequestParts, Query};
use axum::http::{Request, Uri};
use certfleet_model::{AgentReport, OsqueryHost, ReportLimits};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::extract::ApiQuery;
use crate::handlers::certificates::{CertificateQuery, Listing};
use crate::handlers::endpoints::EndpointQuery;
use crate::handlers::mtls::{parse_grouping, SummaryQuery};
use crate::handlers::notifications::NotificationQuery;
use crate::handlers::params;
use crate::handlers::reports::parse_report;
pub use crate::osquery::ParseError;
use crate::osquery::{self, EnrollRequest, LogLimits, LogRequest};
use crate::ApiError;
use certfleet_store::CertificateLookup;

/// `POST /api/v1/reports`: the body (after decompression) parsed and validated with the
/// server's default limits, then the addresses the prober would be given.
pub fn agent_report(json: &[u8]) -> Result<AgentReport, ApiError> {
    let report = parse_report(json)?;
    report
        .validate_with(&ReportLimits::default())
        .map_err(|error| ApiError::bad_request(error.to_string(), Some(error.field)))?;
    let _ = report.tag("app");
    for socket in &report.sockets {
        let _ = socket.probe_addresses();
    }
    Ok(report)
}

/// `POST /api/v1/osquery/enroll` and `POST /api/v1/osquery/log`: `json` is read as both.
/// The enroll reading gives the host name kept; the log reading gives the report stored
/// for a `result` log (validated with the default limits), `None` when nothing is stored.
/// The log is merged into an empty node state (standing for the store's), so its
/// `interface_addresses` rows and decorations are known when the report is made, as
/// when they came in an earlier post. The report must pass the ownership check
/// (`AgentReport::check_addresses`) unless it stands for too many endpoints.
pub fn osquery(json: &[u8]) -> Result<Option<AgentReport>, ParseError> {
    if let Ok(enroll) = osquery::parse_body::<EnrollRequest>(json) {
        let _ = osquery::sanitize_host_identifier(&enroll.host_identifier);
    }
    let limits = ReportLimits::default();
    let request: LogRequest = osquery::parse_log(json, LogLimits::new(limits.max_sockets))?;
    if request.log_type != "result" {
        return Ok(None);
    }
    let update = osquery::update(&request.data, limits.max_sockets)?;
    let mut node = OsqueryHost::default();
    node.apply(&update);
    let mut rows = update.listeners;
    let room = limits.max_sockets.saturating_sub(rows.len());
    rows.extend(node.listeners.iter().copied().take(room));
    if rows.is_empty() {
        return Ok(None);
    }
    let collected_at = OffsetDateTime::UNIX_EPOCH;
    let report = osquery::report("fuzz-host.example", &rows, &node, collected_at);
    let refused = |error: certfleet_model::ReportError| ParseError {
        field: Some(error.field),
        message: error.message,
    };
    report.validate_with(&limits).map_err(refused)?;
    if let Err(error) = report.check_addresses(&limits) {
        assert_eq!(
            error.field, "sockets",
            "the report claims a foreign address"
        );
        return Err(refused(error));
    }
    Ok(Some(report))
}

/// The query string of the read routes (`data` as sent after `?`; bytes a client could
/// not send raw are percent-encoded first, as a browser would): read as the parameters of
/// certificate, endpoint, notification and mTLS summary lists, each answer as its route
/// gives it, and every value through every parameter parser. One result per route.
pub fn query_params(data: &[u8]) -> Vec<Result<(), ApiError>> {
    let Ok(uri) = format!("/api/v1/fuzz?{}", encode_query(data)).parse::<Uri>() else {
        return vec![Err(ApiError::bad_request("not a request target", None))];
    };
    let certificates = extract::<CertificateQuery>(&uri).and_then(|query| {
        match query.listing()? {
            Listing::Lookup(CertificateLookup::Serial(serial)) => {
                certfleet_store::serial_candidates(&serial)?;
            }
            Listing::Lookup(CertificateLookup::Fingerprint(text)) => {
                certfleet_store::normalize_fingerprint(&text)?;
            }
            Listing::Lookup(CertificateLookup::Hostname(name)) => {
                certfleet_store::hostname_candidates(&name)
                    .map_err(certfleet_store::Error::from)?;
            }
            Listing::Lookup(CertificateLookup::Issuer(_)) | Listing::Expiring(_) => {}
        }
        params::parse_limit(query.limit.as_deref())?;
        params::sha256_cursor(query.cursor.as_deref())?;
        Ok(())
    });
    let endpoints = extract::<EndpointQuery>(&uri).and_then(|query| query.search().map(drop));
    let notifications =
        extract::<NotificationQuery>(&uri).and_then(|query| query.filter().map(drop));
    let summary = extract::<SummaryQuery>(&uri).map(drop);
    if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        for (_, value) in &pairs {
            every_parser(value);
        }
    }
    vec![certificates, endpoints, notifications, summary]
}

fn every_parser(value: &str) {
    let _ = params::parse_limit(Some(value));
    let _ = params::sha256_cursor(Some(value));
    let _ = params::id_cursor(Some(value));
    let _ = params::parse_window(value, "fuzz");
    let _ = params::parse_mtls(value);
    let _ = params::parse_finding(value);
    let _ = params::parse_bool(value, "fuzz");
    let _ = parse_grouping(Some(value));
    let _ = params::present(&Some(value.to_owned()));
    let _ = certfleet_store::normalize_serial(value);
    let _ = certfleet_store::serial_candidates(value);
    let _ = certfleet_store::normalize_fingerprint(value);
    let _ = certfleet_store::hostname_candidates(value);
}

/// The route's extractor on a request for `uri`.
fn extract<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    let mut request = Request::new(());
    *request.uri_mut() = uri.clone();
    let (mut parts, ()) = request.into_parts();
    // The extractor never waits (it only reads the URI): one poll finishes it.
    let future = pin!(ApiQuery::<T>::from_request_parts(&mut parts, &()));
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result.map(|ApiQuery(value)| value),
        Poll::Pending => Err(ApiError::Internal("extractor waited".into())),
    }
}

/// Query bytes as a client could put them on the request line: URI query characters
/// (and `%`) as they are, anything else percent-encoded.
fn encode_query(data: &[u8]) -> String {
    let mut text = String::with_capacity(data.len());
    for &byte in data {
        let raw = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte);
        if raw {
            text.push(char::from(byte));
        } else {
            text.push_str(&format!("%{byte:02X}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use certfleet_testkit::fuzz_corpus as corpus;

    #[test]
    fn agent_report_corpus_is_read_without_panics() {
        let (mut accepted, mut refused) = (0, 0);
        for (name, bytes) in corpus("agent_report", 8) {
            let result = agent_report(&bytes);
            eprintln!("{name}: {:?}", result.as_ref().map(|r| r.sockets.len()));
            match result {
                Ok(_) => accepted += 1,
                Err(ApiError::BadRequest { .. }) => refused += 1,
                Err(other) => panic!("{name}: {other:?} is not a 400"),
            }
        }
        assert!(accepted >= 3, "only {accepted} seed reports accepted");
        assert!(refused >= 3, "only {refused} seed reports refused");
    }

    #[test]
    fn osquery_corpus_is_read_without_panics() {
        let mut reports = 0;
        for (name, bytes) in corpus("osquery", 8) {
            let result = osquery(&bytes);
            eprintln!(
                "{name}: {:?}",
                result.as_ref().map(|r| r.as_ref().map(|r| r.sockets.len()))
            );
            reports += usize::from(matches!(result, Ok(Some(_))));
        }
        assert!(reports >= 3, "only {reports} seed payloads gave a report");
    }

    #[test]
    fn query_params_corpus_is_read_without_panics() {
        let mut accepted = 0;
        for (name, bytes) in corpus("query_params", 10) {
            let results = query_params(&bytes);
            eprintln!("{name}: {results:?}");
            for result in results {
                match result {
                    Ok(()) => accepted += 1,
                    Err(ApiError::BadRequest { .. }) => {}
                    Err(other) => panic!("{name}: {other:?} is not a 400"),
                }
            }
        }
        assert!(accepted >= 5, "only {accepted} seed readings accepted");
    }

    /// Found by the fuzzer: a window past the range of `time::Duration` panicked while
    /// being built, before the 3650-day check could refuse it.
    #[test]
    fn huge_windows_are_refused_not_panics() {
        for raw in [
            "106751991167301d",
            "9223372036854775807h",
            "-45678901234567890",
            "1e3d",
        ] {
            assert!(
                params::parse_window(raw, "expiring_within").is_err(),
                "{raw}"
            );
        }
        let ok = params::parse_window("3650d", "expiring_within").expect("the largest window");
        assert_eq!(ok, time::Duration::days(3650));
        assert!(params::parse_window("87601h", "expiring_within").is_err());
        assert_eq!(
            params::parse_window("90m", "expiring_within").expect("minutes"),
            time::Duration::minutes(90)
        );
    }

    #[test]
    fn query_bytes_are_encoded_into_a_valid_uri() {
        let all: Vec<u8> = (0..=255).collect();
        let results = query_params(&all);
        assert_eq!(results.len(), 4, "the URI parsed: {results:?}");
    }
}
