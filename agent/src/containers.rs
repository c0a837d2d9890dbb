//! A container's workload tags, from its runtime's own state on the host: nothing inside
//! the container is read, no runtime API is called.
//!
//! - Docker: `<docker_root>/containers/<id>/config.v2.json`, its `Name` (`/billing-api`)
//!   and `Config.Labels`.
//! - containerd (Kubernetes' CRI plugin, nerdctl, Docker's own `moby` namespace):
//!   the OCI runtime spec of the running task,
//!   `<containerd_root>/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`, its
//!   `annotations`. The CRI plugin writes `io.kubernetes.cri.sandbox-namespace`,
//!   `io.kubernetes.cri.sandbox-name` and `io.kubernetes.cri.container-name` there
//!   (containerd's `pkg/cri/annotations`).
//!
//! Each file is read once per pass and container, at most [`MAX_STATE_FILE`] bytes; only
//! the name and the labels are kept (serde skips the rest, the environment included,
//! without keeping it). A missing, oversized or garbled file leaves the container with no
//! tags of its own: its sockets keep the host's.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use certfleet_model::ReportLimits;
use serde::Deserialize;

/// The largest runtime state file read (Docker's `config.v2.json` is a few KiB).
pub const MAX_STATE_FILE: u64 = 1024 * 1024;
/// containerd's runtime v2 task directory under its state directory.
const CONTAINERD_TASKS: &str = "io.containerd.runtime.v2.task";
/// containerd namespaces looked at, at most (`k8s.io`, `moby`, `default`, ...).
const MAX_CONTAINERD_NAMESPACES: usize = 64;
/// Label prefix for explicit tags: `certfleet.owner=team@example.com` is the `owner` tag.
pub const LABEL_PREFIX: &str = "certfleet.";

/// Derived tags: (tag, labels or annotations that give it, the first set one winning).
const DERIVED: [(&str, &[&str]); 4] = [
    ("app", &["app.kubernetes.io/name"]),
    (
        "namespace",
        &[
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ],
    ),
    (
        "pod",
        &["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"],
    ),
    (
        "container",
        &[
            "io.kubernetes.cri.container-name",
            "io.kubernetes.container.name",
        ],
    ),
];
/// Tags kept first when a container has more than a socket may carry.
const FIRST: [&str; 6] = ["owner", "app", "env", "namespace", "pod", "container"];

/// What the runtime state says about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Its tags (possibly none: a container without labels).
    Tags(BTreeMap<String, String>),
    /// No runtime state for it (another runtime, or it exited meanwhile).
    Missing,
    /// State found but unusable: unreadable, too large, or not the expected JSON.
    Invalid,
}

/// Where the runtimes keep their state; `None`: not looked at.
#[derive(Debug, Clone)]
pub struct RuntimeState {
    docker_root: Option<PathBuf>,
    containerd_tasks: Option<PathBuf>,
    /// containerd's namespace directories, listed on first use.
    namespaces: Option<Vec<PathBuf>>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Config", default)]
    config: Option<DockerInner>,
}

#[derive(Deserialize)]
struct DockerInner {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct OciSpec {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

impl RuntimeState {
    /// Docker's root (`/var/lib/docker`) and containerd's state directory
    /// (`/run/containerd`); an empty path turns that runtime off.
    pub fn new(docker_root: &Path, containerd_root: &Path) -> RuntimeState {
        let set = |path: &Path| (!path.as_os_str().is_empty()).then(|| path.to_owned());
        RuntimeState {
            docker_root: set(docker_root),
            containerd_tasks: set(containerd_root).map(|root| root.join(CONTAINERD_TASKS)),
            namespaces: None,
        }
    }

    /// The tags of container `id` (64 hex digits, from the process's cgroup): Docker's
    /// state first, then containerd's.
    pub fn lookup(&mut self, id: &str) -> Lookup {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Lookup::Missing; // never a path component of its own choosing
        }
        if let Some(root) = &self.docker_root {
            let path = root.join("containers").join(id).join("config.v2.json");
            match read_json::<DockerConfig>(&path) {
                Ok(config) => {
                    let labels = config.config.and_then(|c| c.labels).unwrap_or_default();
                    return Lookup::Tags(workload_tags(config.name.as_deref(), &labels));
                }
                Err(Failure::Missing) => {}
                Err(Failure::Invalid) => return Lookup::Invalid,
            }
        }
        for namespace in self.containerd_namespaces() {
            let path = namespace.join(id).join("config.json");
            match read_json::<OciSpec>(&path) {
                Ok(spec) => {
                    let annotations = spec.annotations.unwrap_or_default();
                    return Lookup::Tags(workload_tags(None, &annotations));
                }
                Err(Failure::Missing) => {}
                Err(Failure::Invalid) => return Lookup::Invalid,
            }
        }
        Lookup::Missing
    }

    fn containerd_namespaces(&mut self) -> &[PathBuf] {
        let tasks = self.containerd_tasks.as_deref();
        self.namespaces.get_or_insert_with(|| {
            let Some(entries) = tasks.and_then(|t| std::fs::read_dir(t).ok()) else {
                return Vec::new();
            };
            let mut namespaces: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .take(MAX_CONTAINERD_NAMESPACES)
                .map(|entry| entry.path())
                .collect();
            namespaces.sort();
            namespaces
        })
    }
}

enum Failure {
    Missing,
    Invalid,
}

/// A JSON file of at most [`MAX_STATE_FILE`] bytes.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Failure> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(Failure::Missing),
        Err(error) if error.raw_os_error() == Some(20) => return Err(Failure::Missing), // ENOTDIR
        Err(_) => return Err(Failure::Invalid),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| Failure::Invalid)?;
    if bytes.len() as u64 > MAX_STATE_FILE {
        return Err(Failure::Invalid);
    }
    serde_json::from_slice(&bytes).map_err(|_| Failure::Invalid)
}

/// Labels (or annotations) as tags: `certfleet.<key>` gives `<key>`;
/// `app.kubernetes.io/name` gives `app`; the Kubernetes namespace, pod and container name
/// give `namespace`, `pod` and `container`, and so does a Docker container's own name
/// (without its `/`). Explicit `certfleet.` labels win. Entries the service would refuse
/// (empty, over 512 bytes, control characters) are left out, and at most as many as a
/// socket may carry are kept, `owner`, `app`, `env`, `namespace`, `pod` and `container`
/// first.
pub fn workload_tags(
    name: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let limits = ReportLimits::default();
    let usable = |text: &str| {
        !text.trim().is_empty()
            && text.len() <= limits.max_string
            && !text.chars().any(char::is_control)
    };
    let mut tags = BTreeMap::new();
    for (tag, keys) in DERIVED {
        let value = keys
            .iter()
            .find_map(|key| labels.get(*key).filter(|v| usable(v)));
        if let Some(value) = value {
            tags.insert(tag.to_owned(), value.clone());
        }
    }
    if !tags.contains_key("container") {
        let name = name
            .map(|n| n.trim_start_matches('/'))
            .filter(|n| usable(n));
        if let Some(name) = name {
            tags.insert("container".to_owned(), name.to_owned());
        }
    }
    for (key, value) in labels {
        let Some(tag) = key.strip_prefix(LABEL_PREFIX) else {
            continue;
        };
        if usable(tag) && usable(value) {
            tags.insert(tag.to_owned(), value.clone());
        }
    }
    if tags.len() > limits.max_socket_tags {
        let mut kept: BTreeMap<String, String> = FIRST
            .iter()
            .filter_map(|key| tags.remove_entry(*key))
            .collect();
        for (key, value) in tags {
            if kept.len() == limits.max_socket_tags {
                break;
            }
            kept.insert(key, value);
        }
        tags = kept;
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn labels_map_to_tags_and_explicit_ones_win() {
        let tags = workload_tags(
            Some("/billing-api"),
            &labels(&[
                ("app.kubernetes.io/name", "billing"),
                ("certfleet.owner", "billing@example.com"),
                ("certfleet.env", "prod"),
                ("com.docker.compose.project", "shop"),
                ("certfleet.", "no key"),
                ("certfleet.bad", "a\u{7}b"),
            ]),
        );
        assert_eq!(
            tags,
            labels(&[
                ("app", "billing"),
                ("container", "billing-api"),
                ("env", "prod"),
                ("owner", "billing@example.com"),
            ])
        );
        let tags = workload_tags(
            Some("/k8s_web_pod"),
            &labels(&[
                ("io.kubernetes.pod.namespace", "payments"),
                ("io.kubernetes.pod.name", "web-7d9f"),
                ("io.kubernetes.container.name", "web"),
                ("app.kubernetes.io/name", "derived"),
                ("certfleet.app", "explicit"),
            ]),
        );
        assert_eq!(
            tags,
            labels(&[
                ("app", "explicit"),
                ("container", "web"),
                ("namespace", "payments"),
                ("pod", "web-7d9f"),
            ])
        );
    }

    #[test]
    fn too_many_labels_keep_the_ones_that_decide_ownership() {
        let mut many: Vec<(String, String)> = (0..40)
            .map(|i| (format!("certfleet.a{i:02}"), "x".to_owned()))
            .collect();
        many.push(("certfleet.owner".into(), "o@example.com".into()));
        let many: BTreeMap<String, String> = many.into_iter().collect();
        let tags = workload_tags(Some("/c"), &many);
        assert_eq!(tags.len(), ReportLimits::default().max_socket_tags);
        assert_eq!(tags.get("owner").map(String::as_str), Some("o@example.com"));
        assert_eq!(tags.get("container").map(String::as_str), Some("c"));
    }

    #[test]
    fn ids_never_walk_the_file_system() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut state = RuntimeState::new(dir.path(), dir.path());
        for id in ["", "..", "../../etc", "a/b"] {
            assert_eq!(state.lookup(id), Lookup::Missing, "{id}");
        }
    }
}
