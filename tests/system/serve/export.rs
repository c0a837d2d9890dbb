//! `certfleet export`: the inventory a real service recorded, streamed from its database as
//! JSON lines and as CSV, with `--since`, and a clear error for a bad `--since`.

use std::collections::BTreeSet;
use std::path::Path;

use certfleet_store::EndpointRecord;
use serde_json::Value;

use super::process::certfleet;

/// Runs `certfleet export ARGS --config CONFIG`; its standard output, or its failure.
fn export(config: &Path, args: &[&str]) -> Result<String, String> {
    let config = config.to_str().expect("temporary paths are UTF-8");
    let mut all = vec!["export", "--config", config];
    all.extend_from_slice(args);
    let output = certfleet(&all).output().expect("run certfleet export");
    let stdout = String::from_utf8(output.stdout).expect("export writes UTF-8");
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Every certificate and endpoint (`endpoints`: all of them, retired ones too) of the store
/// is exported once, in both formats, with the API's fields; `--since` in the future
/// exports nothing.
pub fn exports_match_the_store(config: &Path, endpoints: &[EndpointRecord], leaves: &[String]) {
    let jsonl = export(config, &["certificates"]).expect("export certificates");
    let certificates: Vec<Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    let exported: BTreeSet<&str> = certificates
        .iter()
        .map(|c| c["sha256"].as_str().expect("sha256"))
        .collect();
    assert_eq!(exported.len(), certificates.len(), "each once: {jsonl}");
    for leaf in leaves {
        assert!(
            exported.contains(leaf.as_str()),
            "{leaf} not exported: {jsonl}"
        );
    }
    let first = &certificates[0];
    for field in [
        "serial",
        "subject",
        "issuer",
        "not_after",
        "sans",
        "key",
        "first_seen",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }

    let csv = export(config, &["certificates", "--format", "csv"]).expect("export csv");
    let mut lines = csv.lines();
    let header = lines.next().expect("a header line");
    assert!(
        header.starts_with("sha256,serial,subject,issuer,not_before,not_after"),
        "{header}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), certificates.len(), "{csv}");
    for leaf in leaves {
        assert!(
            rows.iter().any(|row| row.starts_with(leaf.as_str())),
            "{leaf}: {csv}"
        );
    }

    let jsonl = export(config, &["endpoints", "--since", "1h"]).expect("export endpoints");
    let ids: Vec<i64> = jsonl
        .lines()
        .map(|line| {
            let endpoint: Value = serde_json::from_str(line).expect("JSON");
            endpoint["id"].as_i64().expect("id")
        })
        .collect();
    let mut expected: Vec<i64> = endpoints.iter().map(|e| e.id.0).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "every endpoint once, in id order");
    let csv = export(config, &["endpoints", "--format", "csv"]).expect("export endpoints csv");
    assert_eq!(csv.lines().count(), endpoints.len() + 1, "{csv}");
    assert!(
        csv.lines()
            .next()
            .is_some_and(|h| h.ends_with(",mtls,findings,zone")),
        "{csv}"
    );
    // No [[zones]] in this config: every endpoint is in the default zone.
    assert!(
        csv.lines().skip(1).all(|row| row.ends_with(",default")),
        "{csv}"
    );

    let future = export(config, &["certificates", "--since", "2999-01-01T00:00:00Z"])
        .expect("export since the future");
    assert_eq!(future, "", "nothing was seen after 2999");
    let error = export(config, &["certificates", "--since", "last tuesday"])
        .expect_err("a bad --since fails");
    assert!(error.contains("--since"), "{error}");
}
