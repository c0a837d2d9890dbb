//! osquery's TLS plugin payloads, read without I/O: the enroll body, the logger body, and
//! the rows of scheduled `listening_ports` and `interface_addresses` queries (with the
//! entries' `decorations`) turned into an [`OsqueryUpdate`] of the node's kept state and
//! an [`AgentReport`].
//!
//! osquery sends column values as strings (`"port":"443"`), or as numbers with
//! `--logger_numerics`; both are read. Results come in three shapes: event
//! (`"action":"added","columns":{..}`), batch (`"diffResults":{"added":[..]}`) and snapshot
//! (`"action":"snapshot","snapshot":[..]}`). Removed rows are ignored: an endpoint that is
//! no longer reported retires by age, as with the agent. A bad value is an error that
//! names its field (`data[2].columns.port`).

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::marker::PhantomData;
use std::net::IpAddr;

use certfleet_model::osquery::{in_host_namespace, usable};
pub use certfleet_model::Listener as PortRow;
use certfleet_model::{
    AgentInfo, AgentReport, HostInfo, OsqueryHost, OsqueryUpdate, Protocol, ReportLimits,
    SocketInfo, SocketScope,
};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::body::{self, Encoding, ReadError, ReadLimits};

/// Agent names of enrolled osquery nodes start with this.
pub const AGENT_PREFIX: &str = "osquery:";

/// Longest host identifier kept in an agent name (the name is at most 128 bytes).
const MAX_HOST_IDENTIFIER: usize = 120;

/// Most result entries (`data[...]`) read from one logger post. osquery sends at most
/// `--logger_tls_max_lines` (1,024 by default) per post.
pub const MAX_ENTRIES: usize = 20_000;

/// Longest JSON string read from an osquery body (a key or a value, skipped or not).
pub const MAX_STRING: usize = 1024 * 1024;

/// `POST /api/v1/osquery/enroll`.
#[derive(Debug, Deserialize)]
pub struct EnrollRequest {
    pub enroll_secret: String,
    /// `host_details` is accepted and not read: osquery sends no addresses there.
    pub host_identifier: String,
}

/// `POST /api/v1/osquery/log`, as read: only the fields certfleet uses. Other fields
/// (`hostIdentifier`, `unixTime`, the columns that are not read...) are skipped without
/// being kept.
#[derive(Debug, Default)]
pub struct LogRequest {
    /// The node key, unless it comes in the `Authorization: NodeKey` header.
    pub node_key: Option<String>,
    /// `result` (query results) or `status` (osquery's own log lines).
    pub log_type: String,
    /// The entries that may give rows: those of a `listening_ports` or
    /// `interface_addresses` query, and those whose name is missing (an error) or came
    /// after their rows.
    pub data: Vec<Entry>,
}

/// One result entry (`data[index]`), with only what is read of it.
#[derive(Debug, Default)]
pub struct Entry {
    /// Its position in `data` (for error paths).
    pub index: usize,
    /// `None`: no name.
    pub query: Option<Query>,
    pub action: Option<Action>,
    /// Event format: `columns`.
    pub columns: Option<Row>,
    /// Batch format: `diffResults` (its `added` rows).
    pub diff_results: Option<DiffResults>,
    /// Snapshot format: `snapshot`.
    pub snapshot: Option<Rows>,
    /// `decorations` (osquery's `decorators`), checked like report tags.
    pub decorations: Option<BTreeMap<String, String>>,
}

/// The scheduled query an entry belongs to, by the end of its name (packs prefix their
/// names, e.g. `pack_certfleet_listening_ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    ListeningPorts,
    InterfaceAddresses,
    Other,
}

impl Query {
    pub fn of(name: &str) -> Query {
        if is_listening_ports(name) {
            Query::ListeningPorts
        } else if name.ends_with("interface_addresses") {
            Query::InterfaceAddresses
        } else {
            Query::Other
        }
    }
}

/// An entry's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Added,
    Removed,
    Snapshot,
    /// Any other value, or not a string.
    Other,
}

/// `diffResults`: an object (with its `added` rows, and its `removed` rows for an
/// `interface_addresses` entry whose name came first), or something else.
#[derive(Debug)]
pub enum DiffResults {
    Object {
        added: Option<Rows>,
        removed: Option<Rows>,
    },
    NotObject,
}

/// A list of rows (`snapshot`, `diffResults.added`).
#[derive(Debug)]
pub enum Rows {
    /// `null`: no rows.
    Null,
    /// The rows that may give a socket or an error, each with its index in the list.
    /// Rows that are well formed and skipped (another family or protocol, port 0) are
    /// not kept.
    List(Vec<(usize, Row)>),
    NotArray,
}

/// One row of `listening_ports`: the columns read, or not an object.
#[derive(Debug, Clone, Copy)]
pub enum Row {
    Columns(Columns),
    NotObject,
}

/// The columns read of a row. osquery sends strings (`"443"`), or numbers with
/// `--logger_numerics`; both are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns {
    pub address: Address,
    pub port: Number,
    pub protocol: Number,
    pub family: Number,
    pub net_namespace: Number,
}

/// A numeric column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Number {
    /// Missing, `null` or an empty string.
    #[default]
    Empty,
    Value(u64),
    /// Anything else (negative, fractional, too large, not a number).
    Invalid,
}

/// The `address` column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Address {
    #[default]
    Missing,
    Ip(IpAddr),
    /// A string that is not an IP address.
    NotIp,
    NotString,
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

/// The bounds of reading one logger post.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Rows kept while parsing, in all entries together (`ReportLimits::max_sockets`).
    pub max_rows: usize,
    /// Entries of `data`.
    pub max_entries: usize,
}

impl LogLimits {
    pub fn new(max_rows: usize) -> Self {
        LogLimits {
            max_rows,
            max_entries: MAX_ENTRIES,
        }
    }
}

/// Reads an enroll body (as sent, decompressed with `max_decompressed`).
pub fn read_enroll(
    body: impl Read,
    encoding: Encoding,
    max_decompressed: usize,
) -> Result<EnrollRequest, ReadError> {
    let limits = ReadLimits {
        max_decompressed,
        max_string: MAX_STRING,
    };
    body::read_json(body, encoding, limits, PhantomData::<EnrollRequest>)
}

/// Reads a logger body (as sent, decompressed with `max_decompressed`) into its typed
/// form, counting entries and rows as they are parsed: past `limits`, parsing stops
/// with an error naming `data`.
pub fn read_log(
    body: impl Read,
    encoding: Encoding,
    max_decompressed: usize,
    limits: LogLimits,
) -> Result<LogRequest, ReadError> {
    let budget = Budget {
        limits,
        rows: Cell::new(0),
        removed: Cell::new(0),
        over: Cell::new(None),
    };
    let read = ReadLimits {
        max_decompressed,
        max_string: MAX_STRING,
    };
    let result = body::read_json(body, encoding, read, LogSeed(&budget));
    match budget.over.get() {
        Some(what) => Err(ReadError::Json {
            field: Some("data".into()),
            message: match what {
                Over::Entries => format!("more than {} entries", limits.max_entries),
                Over::Rows => format!("more than {} rows", limits.max_rows),
            },
        }),
        None => result,
    }
}

/// Parses an (uncompressed) JSON body; a type error names the field's path.
pub fn parse_body<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, ParseError> {
    let limits = ReadLimits {
        max_decompressed: json.len(),
        max_string: MAX_STRING,
    };
    body::read_json(json, Encoding::Identity, limits, PhantomData::<T>).map_err(into_parse_error)
}

/// Parses an (uncompressed) logger body within `limits`.
pub fn parse_log(json: &[u8], limits: LogLimits) -> Result<LogRequest, ParseError> {
    read_log(json, Encoding::Identity, json.len(), limits).map_err(into_parse_error)
}

/// A read error as a [`ParseError`] (a field and a message).
pub fn into_parse_error(error: ReadError) -> ParseError {
    match error {
        ReadError::Json { field, message } => ParseError {
            field,
            message: if message.starts_with("more than") {
                message
            } else {
                format!("invalid body: {message}")
            },
        },
        other => ParseError {
            field: None,
            message: other.to_string(),
        },
    }
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

/// Whether a scheduled query's results are read: its name ends in `listening_ports`
/// (packs prefix their names, e.g. `pack_certfleet_listening_ports`).
pub fn is_listening_ports(name: &str) -> bool {
    name.ends_with("listening_ports")
}

/// The added TCP and UDP rows of every `listening_ports` result in `data`, at most `limit`
/// of them. Rows of other queries, removed rows, and rows of other families (UNIX
/// sockets) or protocols are skipped.
#[cfg(test)]
pub fn listening_rows(data: &[Entry], limit: usize) -> Result<Vec<PortRow>, ParseError> {
    Ok(update(data, limit)?.listeners)
}

/// What a post tells of its node: the added `listening_ports` rows (at most `limit`; a
/// snapshot among them replaces the kept listeners), the `interface_addresses` rows
/// (snapshot, added, removed; only usable addresses are kept), and the decorations of the
/// last entry of those queries that has any.
pub fn update(data: &[Entry], limit: usize) -> Result<OsqueryUpdate, ParseError> {
    let mut update = OsqueryUpdate::default();
    for entry in data {
        let path = format!("data[{}]", entry.index);
        match entry.query {
            None => return Err(bad(format!("{path}.name"), "expected a string")),
            Some(Query::Other) => continue,
            Some(Query::ListeningPorts) => {
                for (row_path, row) in added_rows(entry, &path)? {
                    if let Some(row) = port_row(row, &row_path)? {
                        if update.listeners.len() >= limit {
                            return Err(bad("data", format!("more than {limit} rows")));
                        }
                        update.listeners.push(row);
                    }
                }
                update.listeners_snapshot |= is_snapshot(entry);
            }
            Some(Query::InterfaceAddresses) => {
                let added = interface_addresses(added_rows(entry, &path)?)?;
                let removed = interface_addresses(removed_rows(entry, &path)?)?;
                if is_snapshot(entry) {
                    let snapshot = update.addresses_snapshot.get_or_insert_with(Vec::new);
                    snapshot.extend(added);
                } else {
                    update.addresses_added.extend(added);
                }
                update.addresses_removed.extend(removed);
            }
        }
        if let Some(decorations) = &entry.decorations {
            update.tags = Some(decorations.clone());
        }
    }
    Ok(update)
}

/// Whether an entry is a snapshot result (all the rows of its query, not a difference).
fn is_snapshot(entry: &Entry) -> bool {
    entry.diff_results.is_none() && entry.action == Some(Action::Snapshot)
}

/// The usable addresses of `interface_addresses` rows (no loopback, link-local,
/// multicast, wildcard); an address that is missing or not an IP address is an error.
fn interface_addresses(rows: Vec<(String, &Row)>) -> Result<Vec<IpAddr>, ParseError> {
    let mut addresses = Vec::new();
    for (path, row) in rows {
        let Row::Columns(columns) = row else {
            return Err(bad(path, "expected an object"));
        };
        let address = ip_address(columns.address, &path)?;
        if usable(address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

fn ip_address(address: Address, path: &str) -> Result<IpAddr, ParseError> {
    match address {
        Address::Ip(address) => Ok(address),
        Address::NotIp => Err(bad(format!("{path}.address"), "expected an IP address")),
        Address::NotString => Err(bad(format!("{path}.address"), "expected a string")),
        Address::Missing => Err(bad(format!("{path}.address"), "missing")),
    }
}

/// The removed rows of an entry (event `removed`, batch `diffResults.removed`).
fn removed_rows<'a>(entry: &'a Entry, path: &str) -> Result<Vec<(String, &'a Row)>, ParseError> {
    if let Some(DiffResults::Object { removed, .. }) = &entry.diff_results {
        return rows_of(removed.as_ref(), format!("{path}.diffResults.removed"));
    }
    match (&entry.action, &entry.columns) {
        (Some(Action::Removed), Some(columns)) => Ok(vec![(format!("{path}.columns"), columns)]),
        (Some(Action::Removed), None) => Err(bad(format!("{path}.columns"), "missing")),
        _ => Ok(Vec::new()),
    }
}

fn rows_of(rows: Option<&Rows>, field: String) -> Result<Vec<(String, &Row)>, ParseError> {
    match rows {
        Some(Rows::List(rows)) => Ok(rows
            .iter()
            .map(|(index, row)| (format!("{field}[{index}]"), row))
            .collect()),
        Some(Rows::Null) | None => Ok(Vec::new()),
        Some(Rows::NotArray) => Err(bad(field, "expected an array")),
    }
}

/// The added rows of one result entry, each with its field path.
fn added_rows<'a>(entry: &'a Entry, path: &str) -> Result<Vec<(String, &'a Row)>, ParseError> {
    let list = rows_of;
    match &entry.diff_results {
        Some(DiffResults::NotObject) => {
            return Err(bad(format!("{path}.diffResults"), "expected an object"))
        }
        Some(DiffResults::Object { added, .. }) => {
            return list(added.as_ref(), format!("{path}.diffResults.added"))
        }
        None => {}
    }
    match entry.action {
        Some(Action::Snapshot) => list(entry.snapshot.as_ref(), format!("{path}.snapshot")),
        Some(Action::Added) => match &entry.columns {
            Some(columns) => Ok(vec![(format!("{path}.columns"), columns)]),
            None => Err(bad(format!("{path}.columns"), "missing")),
        },
        Some(Action::Removed) => Ok(Vec::new()),
        Some(Action::Other) | None => Err(bad(
            format!("{path}.action"),
            "expected added, removed, snapshot, or diffResults",
        )),
    }
}

fn port_row(row: &Row, path: &str) -> Result<Option<PortRow>, ParseError> {
    let Row::Columns(columns) = row else {
        return Err(bad(path, "expected an object"));
    };
    let family = required_number(columns.family, "family", path)?;
    let protocol = required_number(columns.protocol, "protocol", path)?;
    let port = required_number(columns.port, "port", path)?;
    if !matches!(family, 2 | 10) || !matches!(protocol, 6 | 17) || port == 0 {
        return Ok(None);
    }
    let port = u16::try_from(port).map_err(|_| bad(format!("{path}.port"), "above 65535"))?;
    let address = ip_address(columns.address, path)?;
    let netns = number(columns.net_namespace, "net_namespace", path)?.filter(|inode| *inode != 0);
    Ok(Some(PortRow {
        address,
        port,
        tcp: protocol == 6,
        netns,
    }))
}

fn required_number(value: Number, name: &str, path: &str) -> Result<u64, ParseError> {
    number(value, name, path)?.ok_or_else(|| bad(format!("{path}.{name}"), "missing"))
}

fn number(value: Number, name: &str, path: &str) -> Result<Option<u64>, ParseError> {
    match value {
        Number::Empty => Ok(None),
        Number::Value(number) => Ok(Some(number)),
        Number::Invalid => Err(bad(
            format!("{path}.{name}"),
            "expected an unsigned integer",
        )),
    }
}

impl Columns {
    /// Whether the row is well formed as far as the filter goes and filtered out (another
    /// family or protocol, port 0): nothing of it is needed.
    fn skipped(&self) -> bool {
        match (self.family, self.protocol, self.port) {
            (Number::Value(family), Number::Value(protocol), Number::Value(port)) => {
                !matches!(family, 2 | 10) || !matches!(protocol, 6 | 17) || port == 0
            }
            _ => false,
        }
    }
}

// ---- The typed, bounded parse. ----

#[derive(Debug, Clone, Copy)]
enum Over {
    Entries,
    Rows,
}

/// What one logger post may still add while it is parsed.
struct Budget {
    limits: LogLimits,
    rows: Cell<usize>,
    /// Removed rows kept (`diffResults.removed`): at most `max_rows`, the others skipped.
    removed: Cell<usize>,
    over: Cell<Option<Over>>,
}

impl Budget {
    fn exceeded<E: de::Error>(&self, what: Over) -> E {
        self.over.set(Some(what));
        E::custom(match what {
            Over::Entries => format!("more than {} entries", self.limits.max_entries),
            Over::Rows => format!("more than {} rows", self.limits.max_rows),
        })
    }
}

/// The fields read, by name; any other key is `Other` and its value is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    NodeKey,
    LogType,
    Data,
    Name,
    Action,
    Columns,
    DiffResults,
    Snapshot,
    Added,
    Removed,
    Decorations,
    Address,
    Port,
    Protocol,
    Family,
    NetNamespace,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "node_key" => Field::NodeKey,
                    "log_type" => Field::LogType,
                    "data" => Field::Data,
                    "name" => Field::Name,
                    "action" => Field::Action,
                    "columns" => Field::Columns,
                    "diffResults" => Field::DiffResults,
                    "snapshot" => Field::Snapshot,
                    "added" => Field::Added,
                    "removed" => Field::Removed,
                    "decorations" => Field::Decorations,
                    "address" => Field::Address,
                    "port" => Field::Port,
                    "protocol" => Field::Protocol,
                    "family" => Field::Family,
                    "net_namespace" => Field::NetNamespace,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Skips whatever remains of a sequence or a map read as "not the expected kind".
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Visits of a lenient reader: each JSON kind listed gives `$other` (a sequence or a map
/// is skipped first, without keeping anything). The kinds a visitor reads are written
/// out beside it.
macro_rules! otherwise {
    ($de:lifetime, $other:expr; $($kind:ident)*) => { $(otherwise!(@ $kind $de $other);)* };
    (@ bool $de:lifetime $other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($other) }
    };
    (@ i64 $de:lifetime $other:expr) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($other) }
    };
    (@ u64 $de:lifetime $other:expr) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($other) }
    };
    (@ f64 $de:lifetime $other:expr) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($other) }
    };
    (@ str $de:lifetime $other:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($other) }
    };
    (@ unit $de:lifetime $other:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok($other) }
    };
    (@ seq $de:lifetime $other:expr) => {
        fn visit_seq<A: SeqAccess<$de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq)?;
            Ok($other)
        }
    };
    (@ map $de:lifetime $other:expr) => {
        fn visit_map<A: MapAccess<$de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map)?;
            Ok($other)
        }
    };
}

struct LogSeed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for LogSeed<'_> {
    type Value = LogRequest;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<LogRequest, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogSeed<'_> {
    type Value = LogRequest;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an osquery log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LogRequest, A::Error> {
        let mut request = LogRequest::default();
        let mut log_type = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::NodeKey => request.node_key = map.next_value()?,
                Field::LogType => log_type = Some(map.next_value()?),
                Field::Data => request.data = map.next_value_seed(EntriesSeed(self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        request.log_type = log_type.ok_or_else(|| de::Error::missing_field("log_type"))?;
        Ok(request)
    }
}

/// `data`: at most `max_entries` entries.
struct EntriesSeed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = Vec<Entry>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Vec<Entry>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = Vec<Entry>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of results")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Entry>, A::Error> {
        let mut entries = Vec::new();
        for index in 0.. {
            if index >= self.0.limits.max_entries {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(self.0.exceeded(Over::Entries));
                }
                break;
            }
            let Some(entry) = seq.next_element_seed(EntrySeed(self.0, index))? else {
                break;
            };
            // An entry of another query holds nothing more once its name is known.
            if entry.query != Some(Query::Other) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

/// One entry: an object; its rows count against the post's rows.
struct EntrySeed<'b>(&'b Budget, usize);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Entry, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object (an osquery result)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let budget = self.0;
        let mut entry = Entry {
            index: self.1,
            ..Entry::default()
        };
        while let Some(key) = map.next_key::<Field>()? {
            // The rows of another query whose name came first are skipped unread.
            let other_query = entry.query == Some(Query::Other);
            match key {
                Field::Name => entry.query = Some(map.next_value::<QueryName>()?.0),
                Field::Action => entry.action = Some(map.next_value()?),
                Field::Columns if !other_query => {
                    let row: Row = map.next_value()?;
                    if !row.skipped() {
                        budget.take_row::<A::Error>()?;
                    }
                    entry.columns = Some(row);
                }
                Field::DiffResults if !other_query => {
                    entry.diff_results = Some(map.next_value_seed(DiffSeed(budget))?);
                }
                Field::Decorations if !other_query => {
                    entry.decorations = Some(map.next_value::<Decorations>()?.0);
                }
                Field::Snapshot if !other_query => {
                    entry.snapshot = Some(map.next_value_seed(RowsSeed(budget, Kept::Added))?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if entry.query == Some(Query::Other) {
            // Rows read before the name are of no use.
            entry.columns = None;
            entry.diff_results = None;
            entry.snapshot = None;
            entry.decorations = None;
        }
        Ok(entry)
    }
}

impl Budget {
    /// Counts one kept row; past the bound, parsing stops.
    fn take_row<E: de::Error>(&self) -> Result<(), E> {
        let rows = self.rows.get();
        if rows >= self.limits.max_rows {
            return Err(self.exceeded(Over::Rows));
        }
        self.rows.set(rows + 1);
        Ok(())
    }
}

/// `diffResults`: an object whose `added` rows are read and counted, and its `removed`
/// rows too (osquery writes `name` after `diffResults`, so whether they are of
/// `interface_addresses`, where they are used, is not known yet): those are kept up to
/// their own bound, and skipped beyond it rather than refused.
struct DiffSeed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for DiffSeed<'_> {
    type Value = DiffResults;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<DiffResults, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DiffSeed<'_> {
    type Value = DiffResults;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DiffResults, A::Error> {
        let mut added = None;
        let mut removed = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Added => added = Some(map.next_value_seed(RowsSeed(self.0, Kept::Added))?),
                Field::Removed => {
                    removed = Some(map.next_value_seed(RowsSeed(self.0, Kept::Removed))?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(DiffResults::Object { added, removed })
    }
    otherwise!('de, DiffResults::NotObject; bool i64 u64 f64 str unit seq);
}

/// A list of rows: those not skipped count against the post's rows.
struct RowsSeed<'b>(&'b Budget, Kept);

/// Which rows a list holds: added ones count against the post's rows (an error past
/// them); removed ones are kept up to the same number, and skipped past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Added,
    Removed,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Rows;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Rows, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Rows;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows, A::Error> {
        let mut rows = Vec::new();
        let mut index = 0;
        while let Some(row) = seq.next_element::<Row>()? {
            if !row.skipped() {
                match self.1 {
                    Kept::Added => self.0.take_row::<A::Error>()?,
                    Kept::Removed if self.0.removed.get() >= self.0.limits.max_rows => {
                        index += 1;
                        continue;
                    }
                    Kept::Removed => self.0.removed.set(self.0.removed.get() + 1),
                }
                rows.push((index, row));
            }
            index += 1;
        }
        Ok(Rows::List(rows))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Rows, E> {
        Ok(Rows::Null)
    }
    otherwise!('de, Rows::NotArray; bool i64 u64 f64 str map);
}

impl Row {
    /// Whether the row is well formed as far as the filter goes and filtered out (another
    /// family or protocol, port 0): nothing of it is needed.
    fn skipped(&self) -> bool {
        match self {
            Row::Columns(columns) => columns.skipped(),
            Row::NotObject => false,
        }
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a row")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut columns = Columns::default();
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::Address => columns.address = map.next_value()?,
                        Field::Port => columns.port = map.next_value()?,
                        Field::Protocol => columns.protocol = map.next_value()?,
                        Field::Family => columns.family = map.next_value()?,
                        Field::NetNamespace => columns.net_namespace = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Row::Columns(columns))
            }
            otherwise!('de, Row::NotObject; bool i64 u64 f64 str unit seq);
        }
        deserializer.deserialize_any(RowVisitor)
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl<'de> Visitor<'de> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Number, E> {
                Ok(Number::Value(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Number, E> {
                Ok(u64::try_from(value).map_or(Number::Invalid, Number::Value))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Number, E> {
                let text = text.trim();
                Ok(match text.parse() {
                    _ if text.is_empty() => Number::Empty,
                    Ok(value) => Number::Value(value),
                    Err(_) => Number::Invalid,
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Number, E> {
                Ok(Number::Empty)
            }
            otherwise!('de, Number::Invalid; bool f64 seq map);
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AddressVisitor;
        impl<'de> Visitor<'de> for AddressVisitor {
            type Value = Address;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an IP address")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Address, E> {
                // A scoped IPv6 address (`fe80::1%eth0`, as `interface_addresses` gives
                // link-local ones) is read without its zone.
                let text = text.trim();
                let ip = match text.split_once('%') {
                    Some((ip, zone)) if ip.contains(':') && !zone.is_empty() => ip,
                    _ => text,
                };
                Ok(ip.parse().map_or(Address::NotIp, Address::Ip))
            }
            otherwise!('de, Address::NotString; bool i64 u64 f64 unit seq map);
        }
        deserializer.deserialize_any(AddressVisitor)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ActionVisitor;
        impl<'de> Visitor<'de> for ActionVisitor {
            type Value = Action;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an action")
            }
            fn visit_str<E: de::Error>(self, action: &str) -> Result<Action, E> {
                Ok(match action {
                    "added" => Action::Added,
                    "removed" => Action::Removed,
                    "snapshot" => Action::Snapshot,
                    _ => Action::Other,
                })
            }
            otherwise!('de, Action::Other; bool i64 u64 f64 unit seq map);
        }
        deserializer.deserialize_any(ActionVisitor)
    }
}

/// `decorations`: a map of strings, checked as report tags are (at most 64 keys; keys
/// not blank; keys and values at most 512 bytes, without control characters). Counted
/// while it is parsed.
struct Decorations(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Decorations {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecorationsVisitor;
        impl<'de> Visitor<'de> for DecorationsVisitor {
            type Value = Decorations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Decorations, A::Error> {
                let limits = ReportLimits::default();
                let mut tags = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if tags.len() >= limits.max_tags {
                        let message = format!("more than {} entries", limits.max_tags);
                        return Err(de::Error::custom(message));
                    }
                    if key.trim().is_empty() {
                        return Err(de::Error::custom("a key must not be empty"));
                    }
                    tag_text::<A::Error>(&key, limits.max_string)?;
                    let value: TagValue = map.next_value()?;
                    tags.insert(key, value.0);
                }
                Ok(Decorations(tags))
            }
        }
        deserializer.deserialize_map(DecorationsVisitor)
    }
}

/// A decoration's value: a string checked as a report tag's.
struct TagValue(String);

impl<'de> Deserialize<'de> for TagValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        tag_text::<D::Error>(&text, ReportLimits::default().max_string)?;
        Ok(TagValue(text))
    }
}

fn tag_text<E: de::Error>(text: &str, max: usize) -> Result<(), E> {
    if text.len() > max {
        return Err(E::custom(format!("longer than {max} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(E::custom("contains control characters"));
    }
    Ok(())
}

/// `name`: which query it is; it must be a string.
struct QueryName(Query);

impl<'de> Deserialize<'de> for QueryName {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = QueryName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<QueryName, E> {
                Ok(QueryName(Query::of(name)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The report of one host for its rows (those of the post and the wildcard listeners
/// kept for the node) and its kept state.
///
/// A wildcard listener of the host's namespace is reachable at the host's interface
/// addresses of its family (`::` at the IPv4 ones too: Linux sockets are dual-stack
/// unless they ask otherwise). Without interface addresses, and in other namespaces
/// (containers; osquery lists only the host's interfaces), it is reachable at the
/// specific, non-loopback addresses other listeners of the same namespace are bound to.
/// Loopback binds get scope loopback. Duplicate rows count once.
///
/// `host.addresses` are the interface addresses (or, while none are known, the specific
/// addresses of the host's namespace); every other specific address a socket is bound to
/// is in `host.namespace_addresses`, so the report passes
/// [`AgentReport::check_addresses`]. The tags are the node's decorations.
pub fn report(
    hostname: &str,
    rows: &[PortRow],
    node: &OsqueryHost,
    collected_at: OffsetDateTime,
) -> AgentReport {
    let rows: BTreeSet<PortRow> = rows.iter().copied().collect();
    let host_netns = node
        .host_netns
        .or_else(|| rows.iter().map(|row| row.netns).min().flatten());
    let interfaces = &node.addresses;
    let specific = |netns: Option<u64>| -> Vec<IpAddr> {
        let addresses: BTreeSet<IpAddr> = rows
            .iter()
            .filter(|row| row.netns == netns && is_routable(row.address))
            .map(|row| row.address)
            .collect();
        addresses.into_iter().collect()
    };
    let reachable = |row: &PortRow| -> Vec<IpAddr> {
        if !row.address.is_unspecified() {
            return Vec::new();
        }
        if interfaces.is_empty() || !in_host_namespace(row.netns, host_netns) {
            return specific(row.netns);
        }
        interfaces
            .iter()
            .copied()
            .filter(|address| row.address.is_ipv6() || address.is_ipv4())
            .collect()
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
            tags: Default::default(),
            reachable: reachable(row),
            scope: if row.address.is_loopback() {
                SocketScope::Loopback
            } else {
                SocketScope::Host
            },
        })
        .collect();
    let addresses = if interfaces.is_empty() {
        specific(host_netns)
    } else {
        interfaces.clone()
    };
    let namespace_addresses: BTreeSet<IpAddr> = rows
        .iter()
        .map(|row| row.address)
        .filter(|address| is_routable(*address) && !addresses.contains(address))
        .collect();
    AgentReport {
        agent: AgentInfo {
            version: "osquery".into(),
        },
        collected_at,
        host: HostInfo {
            hostname: hostname.to_owned(),
            machine_id: String::new(),
            addresses,
            tags: node.tags.clone(),
            namespace_addresses: namespace_addresses.into_iter().collect(),
        },
        sockets,
        probes: Vec::new(),
    }
}

fn is_routable(address: IpAddr) -> bool {
    !address.is_unspecified() && !address.is_loopback() && !address.is_multicast()
}

#[cfg(test)]
#[path = "osquery_tests.rs"]
mod tests;
