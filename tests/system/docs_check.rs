//! The operator's documentation against what ships: every key of the example configs is in
//! docs/configuration.md, and the example alert rules are well formed and use only metrics
//! that `/metrics` exposes.

use crate::bin::repo;

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {relative}: {error}"))
}

/// Dotted names of every key in a TOML document: `database.url`, `owners.rules.app`.
/// A table that is a map of free names (`[agent.tags]`) counts as one key.
fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (name, value) in table {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) if path != "agent.tags" => keys(&path, inner, out),
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        keys(&path, inner, out);
                    }
                }
            }
            _ => out.push(path),
        }
    }
}

#[test]
fn every_key_of_the_example_configs_is_in_the_configuration_reference() {
    let reference = read("docs/configuration.md");
    let mut missing = Vec::new();
    for example in ["certfleet.example.toml", "agent/agent.example.toml"] {
        let table: toml::Table = read(example)
            .parse()
            .unwrap_or_else(|error| panic!("{example} is TOML: {error}"));
        let mut found = Vec::new();
        keys("", &table, &mut found);
        assert!(found.len() > 10, "{example} has keys: {found:?}");
        for key in found {
            if !reference.contains(&format!("`{key}`")) {
                missing.push(format!("{example}: {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

/// Metric names in `/metrics` (web/src): every `certfleet_...` word the web crate writes.
fn exposed_metrics() -> Vec<String> {
    let mut names = Vec::new();
    let mut folders = vec![repo().join("web/src")];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).expect("read web/src");
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a web source file");
                names.extend(metric_words(&text));
            }
        }
    }
    names
}

fn metric_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("certfleet_"))
        .map(str::to_owned)
        .collect()
}

/// A structural check of docs/alerts.yml without a YAML crate: groups, and rules each with
/// `alert`, `expr` and `labels.severity`, whose expressions name only exposed metrics.
/// The full check is promtool's, below.
#[test]
fn the_example_alert_rules_are_well_formed_and_use_exposed_metrics() {
    let rules = read("docs/alerts.yml");
    assert!(
        rules.starts_with("groups:") || rules.contains("\ngroups:"),
        "a groups list"
    );
    assert!(!rules.contains('\t'), "YAML forbids tabs in indentation");
    let alerts = rules.matches("- alert: ").count();
    assert!(alerts >= 4, "several alerts, found {alerts}");
    assert_eq!(
        rules.matches("    expr: ").count(),
        alerts,
        "one expr per alert"
    );
    assert_eq!(
        rules.matches("severity: ").count(),
        alerts,
        "one severity per alert"
    );
    let exposed = exposed_metrics();
    for name in metric_words(&rules) {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            exposed
                .iter()
                .any(|metric| metric == base || metric == &name),
            "docs/alerts.yml uses {name}, which /metrics does not expose"
        );
    }
}

/// Prometheus's own check of the rules: syntax, PromQL, durations.
#[test]
fn promtool_accepts_the_example_alert_rules() {
    if certfleet_testkit::promtool::promtool_or_skip() {
        certfleet_testkit::promtool::check_rules(&repo().join("docs/alerts.yml"));
    }
}
