use serde_json::{json, Value};

use super::*;

fn columns(address: &str, port: &str) -> Value {
    json!({"pid":"1","port":port,"protocol":"6","family":"2","address":address,
           "fd":"3","socket":"123","path":"","net_namespace":"4026531840"})
}

fn field(error: ParseError) -> String {
    error.field.unwrap_or_default()
}

/// A logger body with `data`, as osquery sends it.
fn body(data: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({"node_key": "k", "log_type": "result", "data": data}))
        .expect("JSON serializes")
}

/// The rows of `data`: parsed into typed entries (at most 100 rows), then read.
fn listening(data: &[Value], limit: usize) -> Result<Vec<PortRow>, ParseError> {
    let request = parse_log(&body(data), LogLimits::new(100))?;
    listening_rows(&request.data, limit)
}

#[test]
fn event_batch_and_snapshot_give_the_same_rows() {
    let rows = vec![columns("10.0.0.5", "8443"), columns("0.0.0.0", "9443")];
    let event: Vec<Value> = rows
        .iter()
        .map(|row| json!({"name":"listening_ports","hostIdentifier":"h","action":"added","columns":row}))
        .collect();
    let batch = vec![json!({"name":"pack_x_listening_ports","hostIdentifier":"h",
        "diffResults":{"added":rows,"removed":[columns("10.0.0.9","1")]}})];
    let snapshot = vec![json!({"name":"listening_ports","hostIdentifier":"h",
        "action":"snapshot","snapshot":rows})];
    let expected = listening(&event, 100).expect("event rows");
    assert_eq!(expected.len(), 2);
    assert_eq!(listening(&batch, 100), Ok(expected.clone()));
    assert_eq!(listening(&snapshot, 100), Ok(expected));
}

#[test]
fn wildcard_listeners_are_reachable_at_the_namespaces_specific_addresses() {
    let data = vec![
        json!({"name":"listening_ports","action":"snapshot","snapshot":[
        columns("10.0.0.5", "8443"), columns("0.0.0.0", "9443"), columns("127.0.0.1", "5432"),
        columns("::1", "5433")]}),
    ];
    let rows = listening(&data, 100).expect("rows");
    let report = report(
        "h",
        &rows,
        &OsqueryHost::default(),
        OffsetDateTime::UNIX_EPOCH,
    );
    assert_eq!(report.validate(), Ok(()));
    let ten: IpAddr = "10.0.0.5".parse().expect("literal");
    assert_eq!(report.host.addresses, vec![ten]);
    let wildcard = report
        .sockets
        .iter()
        .find(|s| s.port == 9443)
        .expect("9443");
    assert_eq!(wildcard.reachable, vec![ten]);
    assert_eq!(wildcard.netns, Some(4_026_531_840));
    for port in [5432, 5433] {
        let socket = report
            .sockets
            .iter()
            .find(|s| s.port == port)
            .expect("loopback");
        assert_eq!(socket.scope, SocketScope::Loopback);
    }
}

#[test]
fn numbers_may_be_json_numbers_and_other_families_are_skipped() {
    let data = vec![
        json!({"name":"listening_ports","action":"snapshot","snapshot":[
        {"port":443,"protocol":6,"family":10,"address":"::","net_namespace":0},
        {"port":0,"protocol":0,"family":1,"address":"","path":"/run/x.sock"},
        {"port":"53","protocol":"17","family":"2","address":"10.0.0.1"}]}),
    ];
    let rows = listening(&data, 100).expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].netns, None);
    assert!(rows[0].tcp && !rows[1].tcp);
}

#[test]
fn hostile_values_are_refused_naming_the_field() {
    let snapshot =
        |row: Value| vec![json!({"name":"listening_ports","action":"snapshot","snapshot":[row]})];
    let cases = [
        (
            json!({"port":"99999999999999999999999","protocol":"6","family":"2","address":"1.2.3.4"}),
            "data[0].snapshot[0].port",
        ),
        (
            json!({"port":70000,"protocol":6,"family":2,"address":"1.2.3.4"}),
            "data[0].snapshot[0].port",
        ),
        (
            json!({"port":-1,"protocol":6,"family":2,"address":"1.2.3.4"}),
            "data[0].snapshot[0].port",
        ),
        (
            json!({"port":1e300,"protocol":6,"family":2,"address":"1.2.3.4"}),
            "data[0].snapshot[0].port",
        ),
        (
            json!({"port":"443","protocol":[6],"family":"2","address":"1.2.3.4"}),
            "data[0].snapshot[0].protocol",
        ),
        (
            json!({"port":"443","protocol":"6","address":"1.2.3.4"}),
            "data[0].snapshot[0].family",
        ),
        (
            json!({"port":"443","protocol":"6","family":"2"}),
            "data[0].snapshot[0].address",
        ),
        (
            json!({"port":"443","protocol":"6","family":"2","address":"not-an-ip"}),
            "data[0].snapshot[0].address",
        ),
        (
            json!({"port":"443","protocol":"6","family":"2","address":7}),
            "data[0].snapshot[0].address",
        ),
        (
            json!({"port":"443","protocol":"6","family":"2","address":"1.2.3.4","net_namespace":"x"}),
            "data[0].snapshot[0].net_namespace",
        ),
        (json!("a row that is a string"), "data[0].snapshot[0]"),
    ];
    for (row, expected) in cases {
        let error = listening(&snapshot(row.clone()), 100).expect_err("refused");
        assert_eq!(field(error), expected, "{row}");
    }
    let shapes = [
        (json!(42), "data[0]"),
        (json!({"name": 3}), "data[0].name"),
        (
            json!({"name":"listening_ports","action":"snapshot","snapshot":{}}),
            "data[0].snapshot",
        ),
        (
            json!({"name":"listening_ports","diffResults":[]}),
            "data[0].diffResults",
        ),
        (
            json!({"name":"listening_ports","action":"added"}),
            "data[0].columns",
        ),
        (
            json!({"name":"listening_ports","action":"exploded"}),
            "data[0].action",
        ),
    ];
    for (entry, expected) in shapes {
        let error = listening(std::slice::from_ref(&entry), 100).expect_err("refused");
        assert_eq!(field(error), expected, "{entry}");
    }
}

#[test]
fn other_queries_and_removed_rows_are_ignored_and_rows_are_bounded() {
    let data = vec![
        json!({"name":"processes","action":"added","columns":{"pid":"1"}}),
        json!({"name":"listening_ports","action":"removed","columns":columns("1.2.3.4","1")}),
    ];
    assert_eq!(listening(&data, 100), Ok(Vec::new()));
    let many = vec![json!({"name":"listening_ports","action":"snapshot",
        "snapshot":vec![columns("1.2.3.4","443"); 3]})];
    assert_eq!(listening(&many, 2).map_err(field), Err("data".into()));
}

#[test]
fn bodies_with_wrong_types_name_the_field() {
    let log = |json: &[u8]| parse_log(json, LogLimits::new(100));
    let error = log(br#"{"log_type":"result","data":{}}"#).expect_err("bad");
    assert_eq!(field(error), "data");
    let error = log(br#"{"log_type":"result","node_key":5}"#).expect_err("bad");
    assert_eq!(field(error), "node_key");
    let error = log(br#"{"data":[]}"#).expect_err("bad");
    assert_eq!(error.field, None, "{error:?}");
    assert!(error.message.contains("log_type"), "{error:?}");
    let error = parse_body::<EnrollRequest>(br#"{"enroll_secret":1,"host_identifier":"h"}"#)
        .expect_err("bad");
    assert_eq!(field(error), "enroll_secret");
    assert!(log(b"{").is_err());
    assert!(log(br#"{"log_type":"status"} trailing"#).is_err());
}

#[test]
fn host_identifiers_are_sanitized_and_bounded() {
    assert_eq!(
        sanitize_host_identifier(" web-1.example "),
        Some("web-1.example".into())
    );
    assert_eq!(
        sanitize_host_identifier("a b\n\u{202e}c"),
        Some("a_b__c".into())
    );
    assert_eq!(sanitize_host_identifier("\n\t"), None);
    assert_eq!(sanitize_host_identifier(""), None);
    let long = sanitize_host_identifier(&"x".repeat(10_000)).expect("kept");
    assert_eq!(long.len(), MAX_HOST_IDENTIFIER);
}

#[test]
fn entries_and_rows_are_bounded_while_parsing() {
    let row = columns("10.0.0.1", "443");
    let limits = LogLimits {
        max_rows: 3,
        max_entries: 5,
    };
    let snapshot = |rows: usize| json!({"name":"listening_ports","action":"snapshot","snapshot":vec![row.clone(); rows]});
    assert!(parse_log(&body(&[snapshot(3)]), limits).is_ok());
    let error = parse_log(&body(&[snapshot(2), snapshot(2)]), limits).expect_err("4 rows");
    assert_eq!(
        (field(error.clone()), error.message.as_str()),
        ("data".into(), "more than 3 rows")
    );
    let event = json!({"name":"listening_ports","action":"added","columns":row});
    let error = parse_log(&body(&vec![event; 4]), limits).expect_err("4 events");
    assert_eq!(error.message, "more than 3 rows");

    // Entries count whatever they hold; rows of other queries (name first) and rows
    // that are skipped anyway (UNIX sockets) are neither kept nor counted.
    let other = json!({"name":"processes","action":"snapshot","snapshot":vec![row.clone(); 50]});
    let parsed = parse_log(&body(&vec![other.clone(); 5]), limits).expect("5 entries");
    assert!(parsed.data.is_empty(), "{:?}", parsed.data);
    let error = parse_log(&body(&vec![other; 6]), limits).expect_err("6 entries");
    assert_eq!(
        (field(error.clone()), error.message.as_str()),
        ("data".into(), "more than 5 entries")
    );
    let unix = json!({"port":"0","protocol":"0","family":"1","address":"","path":"/run/a"});
    let sockets = json!({"name":"listening_ports","action":"snapshot",
        "snapshot":[unix.clone(), unix.clone(), unix.clone(), unix, row.clone()]});
    let parsed = parse_log(&body(std::slice::from_ref(&sockets)), limits).expect("one kept row");
    assert_eq!(
        listening_rows(&parsed.data, 10).map(|rows| rows.len()),
        Ok(1)
    );
    // The error paths keep each row's index in the list.
    let mut bad = sockets;
    bad["snapshot"][4]["port"] = json!("x");
    assert_eq!(
        listening(&[bad], 10).map_err(field),
        Err("data[0].snapshot[4].port".into())
    );
}

#[test]
fn rows_before_the_name_and_unknown_fields_are_read_alike() {
    let text = br#"{"data":[
        {"snapshot":[{"port":"443","protocol":"6","family":"2","address":"10.0.0.1"}],
         "action":"snapshot","name":"pack_x_listening_ports","numerics":{"a":[1,{"b":2}]}},
        {"columns":{"port":"x"},"action":"added","name":"processes"},
        {"columns":{"port":"x"},"name":"processes","action":"added"}],
        "log_type":"result","extra":[[[]]],"node_key":"k"}"#;
    let request = parse_log(text, LogLimits::new(100)).expect("parsed");
    assert_eq!(request.node_key.as_deref(), Some("k"));
    assert_eq!(request.log_type, "result");
    assert_eq!(request.data.len(), 1, "other queries are not kept");
    let rows = listening_rows(&request.data, 10).expect("rows");
    assert_eq!(rows.len(), 1);
}

#[test]
fn gzip_bombs_stop_at_the_decompressed_limit() {
    use std::io::Write;
    // A field that is skipped is read to its end, within the limit.
    let zeros = format!(
        r#"{{"log_type":"result","data":[],"x":[{}0]}}"#,
        "0,".repeat(100_000)
    );
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(zeros.as_bytes()).expect("gzip");
    let gzip = encoder.finish().expect("gzip");
    let read = |limit| read_log(gzip.as_slice(), Encoding::Gzip, limit, LogLimits::new(100));
    assert_eq!(
        read(64 * 1024).map(|_| ()),
        Err(ReadError::TooLarge { limit: 64 * 1024 })
    );
    assert!(read(1024 * 1024).is_ok());
    // A list of numbers where results are expected fails at its first number.
    let zeros = format!(r#"{{"data":[{}0]}}"#, "0,".repeat(100_000));
    let error = read_log(
        zeros.as_bytes(),
        Encoding::Identity,
        1 << 20,
        LogLimits::new(100),
    )
    .expect_err("numbers");
    assert!(
        matches!(&error, ReadError::Json { field: Some(field), .. } if field == "data[0]"),
        "{error:?}"
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("literal")
}

fn interface(address: &str) -> Value {
    json!({"interface":"eth0","address":address,"mask":"255.255.255.0","broadcast":"",
           "point_to_point":"","type":"dhcp","friendly_name":""})
}

/// The update of `data`, parsed within 100 rows.
fn update_of(data: &[Value]) -> Result<OsqueryUpdate, ParseError> {
    let request = parse_log(&body(data), LogLimits::new(100))?;
    update(&request.data, 100)
}

#[test]
fn interface_addresses_in_every_format_keep_only_usable_addresses() {
    let rows = vec![
        interface("10.0.0.5"),
        interface("127.0.0.1"),
        interface("::1"),
        interface("fe80::1%eth0"),
        interface("169.254.3.4"),
        interface("fd00::5"),
    ];
    let usable = vec![ip("10.0.0.5"), ip("fd00::5")];
    let snapshot = update_of(&[json!({"name":"pack_certfleet_interface_addresses",
        "action":"snapshot","snapshot":rows})])
    .expect("snapshot");
    assert_eq!(snapshot.addresses_snapshot, Some(usable.clone()));
    assert!(snapshot.listeners.is_empty() && !snapshot.listeners_snapshot);

    let batch = update_of(&[json!({"name":"interface_addresses",
        "diffResults":{"added":rows,"removed":[interface("10.0.0.9")]}})])
    .expect("batch");
    assert_eq!(batch.addresses_snapshot, None);
    assert_eq!(batch.addresses_added, usable);
    assert_eq!(batch.addresses_removed, vec![ip("10.0.0.9")]);

    let event = update_of(&[
        json!({"name":"interface_addresses","action":"added","columns":interface("10.0.0.5")}),
        json!({"name":"interface_addresses","action":"removed","columns":interface("10.0.0.9")}),
    ])
    .expect("events");
    assert_eq!(event.addresses_added, vec![ip("10.0.0.5")]);
    assert_eq!(event.addresses_removed, vec![ip("10.0.0.9")]);

    // A bad address names its field; interface rows count against the post's rows.
    let bad = update_of(&[json!({"name":"interface_addresses","action":"snapshot",
        "snapshot":[interface("10.0.0.5"), interface("eth0")]})]);
    assert_eq!(
        bad.map_err(field),
        Err("data[0].snapshot[1].address".into())
    );
    let many = json!({"name":"interface_addresses","action":"snapshot",
        "snapshot":vec![interface("10.0.0.5"); 101]});
    assert_eq!(update_of(&[many]).map_err(field), Err("data".into()));
    // Removed rows (read before the name, as osquery writes it) are kept up to the same
    // bound and skipped beyond it, never refused.
    let removed = json!({"diffResults":{"added":[],
        "removed":vec![interface("10.0.0.9"); 150]},"name":"interface_addresses"});
    let update = update_of(&[removed]).expect("removed rows are not refused");
    assert_eq!(update.addresses_removed.len(), 100);
    let listening = json!({"diffResults":{"added":[columns("10.0.0.5","443")],
        "removed":vec![columns("10.0.0.6","443"); 150]},"name":"listening_ports"});
    let update = update_of(&[listening]).expect("listening_ports removed rows");
    assert_eq!(update.listeners.len(), 1);
}

#[test]
fn wildcards_of_the_host_namespace_are_reachable_at_its_interface_addresses() {
    let container = |address: &str, port: &str| {
        let mut row = columns(address, port);
        row["net_namespace"] = json!("4026532000");
        row
    };
    let mut v6 = columns("::", "8443");
    v6["family"] = json!("10");
    let post = update_of(&[
        json!({"name":"listening_ports","action":"snapshot","snapshot":[
        columns("0.0.0.0", "9443"), v6, columns("127.0.0.1", "5432"),
        container("172.17.0.2", "443"), container("0.0.0.0", "8080")]}),
    ])
    .expect("listeners");
    assert!(post.listeners_snapshot);

    // Without interface addresses, the host's wildcards give nothing to probe.
    let mut node = OsqueryHost::default();
    node.apply(&post);
    let before = report("h", &post.listeners, &node, OffsetDateTime::UNIX_EPOCH);
    let probed = |report: &AgentReport, port: u16| {
        let socket = report.sockets.iter().find(|s| s.port == port);
        socket.expect("the socket").probe_addresses()
    };
    assert!(probed(&before, 9443).is_empty());
    assert_eq!(before.check_addresses(&ReportLimits::default()), Ok(()));

    // The interface addresses come in a later post: the kept wildcards are expanded.
    let interfaces = update_of(&[json!({"name":"interface_addresses","action":"snapshot",
        "snapshot":[interface("10.0.0.5"), interface("fd00::5"), interface("127.0.0.1")]})])
    .expect("interfaces");
    node.apply(&interfaces);
    assert_eq!(
        node.listeners.len(),
        2,
        "the host's wildcards: {:?}",
        node.listeners
    );
    let after = report("h", &node.listeners, &node, OffsetDateTime::UNIX_EPOCH);
    assert_eq!(after.validate(), Ok(()));
    assert_eq!(after.check_addresses(&ReportLimits::default()), Ok(()));
    assert_eq!(after.host.addresses, vec![ip("10.0.0.5"), ip("fd00::5")]);
    assert_eq!(probed(&after, 9443), vec![ip("10.0.0.5")], "0.0.0.0: IPv4");
    assert_eq!(
        probed(&after, 8443),
        vec![ip("10.0.0.5"), ip("fd00::5")],
        "::, dual-stack"
    );

    // With both known, the container keeps its own addresses.
    let full = report("h", &post.listeners, &node, OffsetDateTime::UNIX_EPOCH);
    assert_eq!(full.check_addresses(&ReportLimits::default()), Ok(()));
    assert_eq!(probed(&full, 8080), vec![ip("172.17.0.2")]);
    assert_eq!(full.host.namespace_addresses, vec![ip("172.17.0.2")]);
    assert_eq!(probed(&full, 9443), vec![ip("10.0.0.5")]);
}

#[test]
fn decorations_become_tags_and_are_checked_like_report_tags() {
    let entry = |decorations: Value| {
        json!({"name":"pack_certfleet_listening_ports","decorations":decorations,
               "action":"snapshot","snapshot":[columns("0.0.0.0","443")]})
    };
    let tags = json!({"app":"billing","env":"prod","owner":"billing-team@example.com",
                      "host_uuid":"4C4C4544"});
    let update = update_of(&[entry(tags)]).expect("decorations");
    let tags = update.tags.clone().expect("tags");
    assert_eq!(tags["app"], "billing");
    assert_eq!(tags["owner"], "billing-team@example.com");
    assert_eq!(tags.len(), 4);
    let mut node = OsqueryHost::default();
    node.apply(&update);
    let report = report("h", &update.listeners, &node, OffsetDateTime::UNIX_EPOCH);
    assert_eq!(report.tag("env"), Some("prod"));

    // Without decorations, a post leaves the kept tags alone.
    let plain = update_of(&[json!({"name":"listening_ports","action":"snapshot","snapshot":[]})]);
    assert_eq!(plain.map(|update| update.tags), Ok(None));
    // Decorations of other queries are not read.
    let other = update_of(&[json!({"name":"processes","decorations":{"app":"x"}})]);
    assert_eq!(other.map(|update| update.tags), Ok(None));

    let many: serde_json::Map<String, Value> =
        (0..65).map(|n| (format!("k{n}"), json!("v"))).collect();
    let refused = [
        Value::Object(many),
        json!({"app": "x".repeat(513)}),
        json!({"app": "a\nb"}),
        json!({"app": "a\u{0}b"}),
        json!({"app": 5}),
        json!({"app": ["x"]}),
        json!({" ": "x"}),
        json!({"\u{1b}[31m": "x"}),
        json!(["app"]),
    ];
    for decorations in refused {
        let error = update_of(&[entry(decorations.clone())]).expect_err("refused");
        assert!(
            field(error.clone()).starts_with("data[0].decorations"),
            "{decorations}: {error:?}"
        );
    }
    let longest = json!({"app": "x".repeat(512)});
    assert!(update_of(&[entry(longest)]).is_ok());
}

#[test]
fn the_shipped_pack_feeds_both_queries_and_is_the_documented_one() {
    let pack = include_str!("../../packaging/osquery/certfleet.conf");
    let parsed: Value = serde_json::from_str(pack).expect("the pack is JSON");
    let queries = parsed["queries"].as_object().expect("queries");
    // osquery names a pack's results `pack_<pack>_<query>`.
    let read: BTreeSet<_> = queries
        .keys()
        .map(|name| format!("{:?}", Query::of(&format!("pack_certfleet_{name}"))))
        .collect();
    let expected: BTreeSet<_> = ["ListeningPorts", "InterfaceAddresses"]
        .map(String::from)
        .into();
    assert_eq!(read, expected);
    for query in queries.values() {
        assert_eq!(query["snapshot"], json!(true), "{query}");
        assert!(query["interval"].as_u64().is_some(), "{query}");
    }
    let docs = include_str!("../../docs/osquery.md");
    assert!(
        docs.contains(pack.trim_end()),
        "docs/osquery.md shows the shipped pack"
    );
}
