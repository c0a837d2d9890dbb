//! osquery's TLS plugin payloads, read without I/O: the enroll body, the logger body, and
//! the rows of a scheduled `listening_ports` query turned into an [`AgentReport`].
//!
//! osquery sends column values as strings (`"port":"443"`), or as numbers with
//! `--logger_numerics`; both are read. Results come in three shapes: event
//! (`"action":"added","columns":{..}`), batch (`"diffResults":{"added":[..]}`) and snapshot
//! (`"action":"snapshot","snapshot":[..]}`). Removed rows are ignored: an endpoint that is
//! no longer reported retires by age, as with the agent. A bad value is an error that
//! names its field (`data[2].columns.port`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use certfleet_model::{AgentInfo, AgentReport, HostInfo, Protocol, SocketInfo, SocketScope};
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Agent names of enrolled osquery nodes start with this.
pub const AGENT_PREFIX: &str = "osquery:";

/// Longest host identifier kept in an agent name (the name is at most 128 bytes).
const MAX_HOST_IDENTIFIER: usize = 120;

/// `POST /api/v1/osquery/enroll`.
#[derive(Debug, Deserialize)]
pub struct EnrollRequest {
    pub enroll_secret: String,
    /// `host_details` is accepted and not read: osquery sends no addresses there.
    pub host_identifier: String,
}

/// `POST /api/v1/osquery/log`.
#[derive(Debug, Deserialize)]
pub struct LogRequest {
    /// The node key, unless it comes in the `Authorization: NodeKey` header.
    #[serde(default)]
    pub node_key: Option<String>,
    /// `result` (query results) or `status` (osquery's own log lines).
    pub log_type: String,
    #[serde(default)]
    pub data: Vec<Value>,
}

/// A malformed payload: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub field: Option<String>,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> ParseError {
    ParseError {
        field: Some(field.into()),
        message: message.into(),
    }
}

/// Parses a JSON body; a type error names the field's path.
pub fn parse_body<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        ParseError {
            field: (path != ".").then_some(path),
            message: format!("invalid body: {}", error.inner()),
        }
    })?;
    deserializer.end().map_err(|error| ParseError {
        field: None,
        message: format!("invalid body: {error}"),
    })?;
    Ok(value)
}

/// The host name kept for a host identifier: printable ASCII letters, digits and `.-_:`
/// (anything else becomes `_`), at most 120 bytes; `None` when nothing usable is left.
pub fn sanitize_host_identifier(identifier: &str) -> Option<String> {
    let cleaned: String = identifier
        .trim()
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | ':' => c,
            _ => '_',
        })
        .take(MAX_HOST_IDENTIFIER)
        .collect();
    (!cleaned.trim_matches('_').is_empty()).then_some(cleaned)
}

/// One listening socket from a `listening_ports` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRow {
    pub address: IpAddr,
    pub port: u16,
    pub tcp: bool,
    pub netns: Option<u64>,
}

/// Whether a scheduled query's results are read: its name ends in `listening_ports`
/// (packs prefix their names, e.g. `pack_certfleet_listening_ports`).
pub fn is_listening_ports(name: &str) -> bool {
    name.ends_with("listening_ports")
}

/// The added TCP and UDP rows of every `listening_ports` result in `data`, at most `limit`
/// of them. Rows of other queries, removed rows, and rows of other families (UNIX
/// sockets) or protocols are skipped.
pub fn listening_rows(data: &[Value], limit: usize) -> Result<Vec<PortRow>, ParseError> {
    let mut rows = Vec::new();
    for (index, entry) in data.iter().enumerate() {
        let path = format!("data[{index}]");
        let Some(entry) = entry.as_object() else {
            return Err(bad(path, "expected an object"));
        };
        let name = match entry.get("name") {
            Some(Value::String(name)) => name,
            _ => return Err(bad(format!("{path}.name"), "expected a string")),
        };
        if !is_listening_ports(name) {
            continue;
        }
        for (row_path, columns) in added_rows(entry, &path)? {
            if let Some(row) = port_row(columns, &row_path)? {
                if rows.len() >= limit {
                    return Err(bad("data", format!("more than {limit} rows")));
                }
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// The added rows of one result entry, each with its field path.
fn added_rows<'a>(
    entry: &'a Map<String, Value>,
    path: &str,
) -> Result<Vec<(String, &'a Value)>, ParseError> {
    let list = |key: &str, field: String| match entry_path(entry, key) {
        Some(Value::Array(rows)) => Ok(rows
            .iter()
            .enumerate()
            .map(|(index, row)| (format!("{field}[{index}]"), row))
            .collect()),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err(bad(field, "expected an array")),
    };
    if let Some(diff) = entry.get("diffResults") {
        if !diff.is_object() {
            return Err(bad(format!("{path}.diffResults"), "expected an object"));
        }
        return list("diffResults.added", format!("{path}.diffResults.added"));
    }
    match entry.get("action").and_then(Value::as_str) {
        Some("snapshot") => list("snapshot", format!("{path}.snapshot")),
        Some("added") => match entry.get("columns") {
            Some(columns) => Ok(vec![(format!("{path}.columns"), columns)]),
            None => Err(bad(format!("{path}.columns"), "missing")),
        },
        Some("removed") => Ok(Vec::new()),
        _ => Err(bad(
            format!("{path}.action"),
            "expected added, removed, snapshot, or diffResults",
        )),
    }
}

fn entry_path<'a>(entry: &'a Map<String, Value>, dotted: &str) -> Option<&'a Value> {
    let mut parts = dotted.split('.');
    let mut value = entry.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn port_row(columns: &Value, path: &str) -> Result<Option<PortRow>, ParseError> {
    let Some(columns) = columns.as_object() else {
        return Err(bad(path, "expected an object"));
    };
    let family = required_number(columns, "family", path)?;
    let protocol = required_number(columns, "protocol", path)?;
    let port = required_number(columns, "port", path)?;
    if !matches!(family, 2 | 10) || !matches!(protocol, 6 | 17) || port == 0 {
        return Ok(None);
    }
    let port = u16::try_from(port).map_err(|_| bad(format!("{path}.port"), "above 65535"))?;
    let address = match columns.get("address") {
        Some(Value::String(text)) => text
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| bad(format!("{path}.address"), "expected an IP address"))?,
        Some(_) => return Err(bad(format!("{path}.address"), "expected a string")),
        None => return Err(bad(format!("{path}.address"), "missing")),
    };
    let netns = number(columns, "net_namespace", path)?.filter(|inode| *inode != 0);
    Ok(Some(PortRow {
        address,
        port,
        tcp: protocol == 6,
        netns,
    }))
}

fn required_number(
    columns: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<u64, ParseError> {
    number(columns, name, path)?.ok_or_else(|| bad(format!("{path}.{name}"), "missing"))
}

/// A column as an unsigned number: a JSON number or a decimal string; empty is `None`.
fn number(columns: &Map<String, Value>, name: &str, path: &str) -> Result<Option<u64>, ParseError> {
    let invalid = || bad(format!("{path}.{name}"), "expected an unsigned integer");
    match columns.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number.as_u64().map(Some).ok_or_else(invalid),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => text.trim().parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// The report of one host for its rows. A wildcard listener is reachable at the specific,
/// non-loopback addresses other listeners of the same network namespace are bound to
/// (osquery tells nothing else about the host's addresses); loopback binds get scope
/// loopback. Duplicate rows count once.
pub fn report(hostname: &str, rows: &[PortRow], collected_at: OffsetDateTime) -> AgentReport {
    let rows: BTreeSet<PortRow> = rows.iter().copied().collect();
    let specific = |netns: Option<u64>| -> Vec<IpAddr> {
        let addresses: BTreeSet<IpAddr> = rows
            .iter()
            .filter(|row| row.netns == netns && is_routable(row.address))
            .map(|row| row.address)
            .collect();
        addresses.into_iter().collect()
    };
    let sockets = rows
        .iter()
        .map(|row| SocketInfo {
            address: row.address,
            port: row.port,
            protocol: if row.tcp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            netns: row.netns,
            process: None,
            container: None,
            reachable: if row.address.is_unspecified() {
                specific(row.netns)
            } else {
                Vec::new()
            },
            scope: if row.address.is_loopback() {
                SocketScope::Loopback
            } else {
                SocketScope::Host
            },
        })
        .collect();
    let host_netns = rows.iter().map(|row| row.netns).min().flatten();
    AgentReport {
        agent: AgentInfo {
            version: "osquery".into(),
        },
        collected_at,
        host: HostInfo {
            hostname: hostname.to_owned(),
            machine_id: String::new(),
            addresses: specific(host_netns),
            tags: Default::default(),
            namespace_addresses: Vec::new(),
        },
        sockets,
    }
}

fn is_routable(address: IpAddr) -> bool {
    !address.is_unspecified() && !address.is_loopback() && !address.is_multicast()
}

#[cfg(test)]
#[path = "osquery_tests.rs"]
mod tests;
