//! The body of the `record` fuzz target in `fuzz/` (cargo fuzz): the store's record path
//! before any SQL. The bytes are a JSON probe result, or a list of them (as from a hostile
//! prober or agent); every one that parses is planned into rows exactly as
//! `record_probe_results` would, and every text that would be bound to a statement is
//! checked to hold no control character (a NUL aborts a PostgreSQL batch). The unit test
//! below feeds the committed seed corpus (`fuzz/corpus/record/`) through it on every test
//! run. Not an API.

use certfleet_model::ProbeResult;

use crate::plan::plan_probes;
use crate::records::EndpointId;

/// Plans the results in `json`. `Ok(n)`: `n` results planned; `Err`: what the store would
/// refuse (bad JSON, or a result the plan refuses, which the store records as an error).
/// Panics when a planned row would carry a control character.
pub fn record(json: &[u8]) -> Result<usize, String> {
    let results: Vec<ProbeResult> = match serde_json::from_slice::<Vec<ProbeResult>>(json) {
        Ok(results) => results,
        Err(_) => vec![serde_json::from_slice::<ProbeResult>(json).map_err(|e| e.to_string())?],
    };
    let batch: Vec<(EndpointId, ProbeResult)> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| (EndpointId(index as i64 + 1), result))
        .collect();
    let planned = plan_probes(&batch).map_err(|error| error.to_string())?;
    let mut texts: Vec<&str> = Vec::new();
    for row in &planned.certificates {
        texts.extend([row.subject.as_str(), &row.issuer, &row.sans, &row.key_type]);
        texts.push(&row.signature_algorithm);
        texts.extend(row.key_curve.as_deref());
    }
    for (name, _) in &planned.names {
        texts.push(name);
    }
    for row in &planned.observations {
        texts.extend([row.ca_names.as_str(), &row.findings]);
        let tls = &row.tls;
        texts.extend(
            [&tls.version, &tls.cipher, &tls.alpn, &tls.group]
                .map(Option::as_deref)
                .into_iter()
                .flatten(),
        );
    }
    for outcome in &planned.outcomes {
        texts.extend(outcome.error.as_deref());
    }
    for text in texts {
        // JSON columns escape controls as \u00XX; a raw one would break both backends.
        assert!(
            !text.chars().any(char::is_control) && !text.contains("\\u0000"),
            "a planned row carries a control character: {text:?}"
        );
    }
    Ok(batch.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_corpus_is_planned_without_control_characters() {
        let (mut planned, mut refused) = (0, 0);
        for (name, bytes) in certfleet_testkit::fuzz_corpus("record", 4) {
            match record(&bytes) {
                Ok(count) => planned += count,
                Err(error) => {
                    eprintln!("{name}: {error}");
                    refused += 1;
                }
            }
        }
        assert!(planned >= 3, "the corpus plans hostile results: {planned}");
        assert!(refused >= 1, "the corpus has a result the plan refuses");
    }
}
