//! Assertions on probe JSON lines: the facts every line must carry, and the facts of each
//! certificate compared with the one we generated.

use certfleet_model::{Finding, ProbeResult};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::cli::Run;
use crate::pki::Cert;
use crate::tls_server::Negotiated;

/// What every line carries, whatever the status.
pub fn assert_common(result: &Value, target: &str, run: &Run) {
    let context = || format!("{result:#}\n{}", run.context());
    if let Err(err) = serde_json::from_value::<ProbeResult>(result.clone()) {
        panic!("not the model's ProbeResult shape: {err}\n{}", context());
    }
    assert_eq!(result["target"], target, "target as given\n{}", context());
    let probed_at = time_field(result, "probed_at");
    assert!(
        probed_at >= run.started - Duration::seconds(1)
            && probed_at <= run.finished + Duration::seconds(1),
        "probed_at {probed_at} outside the run ({} .. {})\n{}",
        run.started,
        run.finished,
        context()
    );
    let elapsed = result["elapsed_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("elapsed_ms is a whole number\n{}", context()));
    assert!(
        u128::from(elapsed) <= run.wall.as_millis() + 50,
        "elapsed_ms {elapsed} longer than the whole run ({:?})\n{}",
        run.wall,
        context()
    );
    assert_eq!(
        result["starttls"],
        Value::Null,
        "no STARTTLS\n{}",
        context()
    );
    assert!(result["chain"].is_array(), "chain is a list\n{}", context());
    assert_canonical_order(&findings(result), &context());
}

/// Findings are a set in the order of the model's `Finding` (its `Ord`, the declaration
/// order), which is how the prober sorts them: no duplicates, always the same order.
fn assert_canonical_order(findings: &[String], context: &str) {
    let parsed: Vec<Finding> = findings
        .iter()
        .map(|finding| {
            serde_json::from_value(Value::String(finding.clone()))
                .unwrap_or_else(|err| panic!("unknown finding {finding}: {err}\n{context}"))
        })
        .collect();
    assert!(
        parsed.windows(2).all(|pair| pair[0] < pair[1]),
        "findings {findings:?} are not a set in the model's order\n{context}"
    );
}

/// A TLS server answered and its certificates were captured.
pub fn assert_ok(result: &Value, target: &str, run: &Run) {
    assert_common(result, target, run);
    let context = || format!("{result:#}\n{}", run.context());
    assert_eq!(result["status"], "ok", "status\n{}", context());
    assert_eq!(result["error"], Value::Null, "no error\n{}", context());
    assert!(result["tls"].is_object(), "tls parameters\n{}", context());
    assert!(
        result["tls"]["version"].is_string(),
        "tls.version\n{}",
        context()
    );
    assert!(
        result["tls"]["legacy"].is_boolean(),
        "tls.legacy\n{}",
        context()
    );
    assert!(result["mtls"].is_object(), "mtls policy\n{}", context());
    assert!(
        !result["chain"].as_array().is_some_and(Vec::is_empty),
        "a captured chain\n{}",
        context()
    );
    assert_address(result, target, run);
}

/// `address` is the socket address connected to: the target itself for an IP target
/// (without any `@sni`), an address with the target's port for a name.
pub fn assert_address(result: &Value, target: &str, run: &Run) {
    let context = || format!("{result:#}\n{}", run.context());
    let host_port = target.split('@').next().unwrap_or(target);
    let address = result["address"]
        .as_str()
        .unwrap_or_else(|| panic!("address is a string\n{}", context()));
    match host_port.parse::<std::net::SocketAddr>() {
        Ok(socket) => assert_eq!(address, socket.to_string(), "address\n{}", context()),
        Err(_) => {
            let port = host_port.rsplit(':').next().unwrap_or_default();
            let parsed = address.parse::<std::net::SocketAddr>();
            assert!(
                parsed.is_ok_and(|a| a.port().to_string() == port),
                "address {address:?} is a socket address with port {port}\n{}",
                context()
            );
        }
    }
}

/// Anything but `ok`: a reason, and no TLS facts.
pub fn assert_failed(result: &Value, target: &str, status: &str, run: &Run) {
    assert_common(result, target, run);
    let context = || format!("{result:#}\n{}", run.context());
    assert_eq!(result["status"], status, "status\n{}", context());
    assert!(
        result["error"].as_str().is_some_and(|e| !e.is_empty()),
        "an error message for status {status}\n{}",
        context()
    );
    assert_eq!(
        result["tls"],
        Value::Null,
        "no tls parameters\n{}",
        context()
    );
    assert_eq!(result["mtls"], Value::Null, "no mtls policy\n{}", context());
    assert_eq!(
        result["chain"],
        serde_json::json!([]),
        "no chain\n{}",
        context()
    );
    assert_eq!(
        findings(result),
        Vec::<String>::new(),
        "no findings\n{}",
        context()
    );
}

/// The chain holds exactly these certificates, in this order, each with the right facts.
pub fn assert_chain(result: &Value, expected: &[&Cert]) {
    let chain = result["chain"]
        .as_array()
        .unwrap_or_else(|| panic!("chain is a list: {result:#}"));
    let sent: Vec<&str> = chain
        .iter()
        .map(|cert| cert["sha256"].as_str().unwrap_or("?"))
        .collect();
    let wanted: Vec<&str> = expected.iter().map(|cert| cert.sha256.as_str()).collect();
    assert_eq!(sent, wanted, "chain in the order sent: {result:#}");
    for (json, cert) in chain.iter().zip(expected) {
        assert_cert(json, cert);
    }
}

/// Every field of one chain entry against the generated certificate.
pub fn assert_cert(json: &Value, cert: &Cert) {
    let context = || format!("certificate {}:\n{json:#}", cert.subject);
    assert_eq!(
        json["sha256"],
        cert.sha256.as_str(),
        "sha256\n{}",
        context()
    );
    assert_eq!(
        json["serial"],
        cert.serial.as_str(),
        "serial\n{}",
        context()
    );
    assert_eq!(
        json["subject"],
        cert.subject.as_str(),
        "subject\n{}",
        context()
    );
    assert_eq!(
        json["issuer"],
        cert.issuer.as_str(),
        "issuer\n{}",
        context()
    );
    assert_eq!(
        time_field(json, "not_before"),
        cert.not_before,
        "not_before\n{}",
        context()
    );
    assert_eq!(
        time_field(json, "not_after"),
        cert.not_after,
        "not_after\n{}",
        context()
    );
    assert_eq!(
        json["sans"],
        serde_json::json!(cert.sans),
        "sans\n{}",
        context()
    );
    assert_eq!(
        json["key"]["type"],
        cert.key.kind,
        "key.type\n{}",
        context()
    );
    assert_eq!(
        json["key"]["bits"],
        cert.key.bits,
        "key.bits\n{}",
        context()
    );
    match (cert.key.kind, cert.key.curve) {
        (_, Some(curve)) => assert_eq!(json["key"]["curve"], curve, "key.curve\n{}", context()),
        ("rsa", None) => {
            assert_eq!(
                json["key"]["curve"],
                Value::Null,
                "no curve for RSA\n{}",
                context()
            )
        }
        _ => {}
    }
    let algorithm = json["signature_algorithm"].as_str().unwrap_or_default();
    match cert.signature_algorithm {
        exact @ ("sha256WithRSAEncryption" | "ecdsa-with-SHA256") => {
            assert_eq!(algorithm, exact, "signature_algorithm\n{}", context())
        }
        other => {
            let needle = match other {
                "ecdsa-with-SHA384" => "sha384",
                "ED25519" => "25519",
                _ if other.to_lowercase().contains("sha1") => "sha1",
                _ => other,
            };
            assert!(
                algorithm.to_lowercase().contains(&needle.to_lowercase()),
                "signature_algorithm {algorithm:?} should name {needle}\n{}",
                context()
            );
        }
    }
    assert_eq!(json["is_ca"], cert.is_ca, "is_ca\n{}", context());
    assert_eq!(
        json["self_signed"],
        cert.self_signed,
        "self_signed\n{}",
        context()
    );
    assert_eq!(json["parse_error"], Value::Null, "parsed\n{}", context());
}

/// The findings, exactly, as a set (their order is checked by `assert_common`).
pub fn assert_findings(result: &Value, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|f| (*f).to_owned()).collect();
    expected.sort();
    let mut found = findings(result);
    found.sort();
    assert_eq!(
        found, expected,
        "findings of {}: {result:#}",
        result["target"]
    );
}

pub fn findings(result: &Value) -> Vec<String> {
    result["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("findings is a list: {result:#}"))
        .iter()
        .map(|f| {
            f.as_str()
                .unwrap_or_else(|| panic!("finding is a string: {result:#}"))
                .to_owned()
        })
        .collect()
}

/// The probe reports what the in-process server negotiated.
pub fn assert_negotiated(result: &Value, server: &Negotiated) {
    let tls = &result["tls"];
    assert_eq!(
        tls["version"],
        server.version.as_str(),
        "tls.version: {result:#}"
    );
    assert_eq!(
        tls["cipher"],
        server.cipher.as_str(),
        "tls.cipher: {result:#}"
    );
    if let Some(group) = &server.group {
        assert_eq!(tls["group"], group.as_str(), "tls.group: {result:#}");
    }
    assert_eq!(
        tls["alpn"],
        serde_json::json!(server.alpn),
        "tls.alpn: {result:#}"
    );
    assert_eq!(tls["legacy"], false, "tls.legacy: {result:#}");
}

/// `mtls` exactly: `{"requested", "required", "ca_names"}`.
pub fn assert_mtls(result: &Value, requested: bool, required: Option<bool>, ca_names: &[&str]) {
    let mtls = &result["mtls"];
    assert_eq!(mtls["requested"], requested, "mtls.requested: {result:#}");
    assert_eq!(
        mtls["required"],
        serde_json::json!(required),
        "mtls.required: {result:#}"
    );
    assert_eq!(
        mtls["ca_names"],
        serde_json::json!(ca_names),
        "mtls.ca_names: {result:#}"
    );
}

fn time_field(json: &Value, field: &str) -> OffsetDateTime {
    let text = json[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string: {json:#}"));
    OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|err| panic!("{field} {text:?} is not RFC 3339: {err}"))
}
