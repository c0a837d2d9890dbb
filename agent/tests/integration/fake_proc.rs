//! The collector over a /proc tree the test builds: links as real (dangling) symbolic
//! links, tables written in the kernel's format. Covers what a live host cannot be made to
//! show on demand: containers of every runtime, unreadable namespace links, exited
//! processes, SO_REUSEPORT twins, kernel-held sockets, established connections amid the
//! table, and the size limit.

use std::net::IpAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use certfleet_agent::proc::tcp::format_line;
use certfleet_agent::{collect, CollectOptions, Collection};
use certfleet_model::{SocketInfo, SocketScope};

const HOST_NS: u64 = 4026531840;
const CONTAINER_NS: u64 = 4026532000;
pub(crate) const DOCKER_ID: &str =
    "3f4e1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
const CRIO_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub(crate) const LISTEN: u8 = 0x0A;
const ESTABLISHED: u8 = 0x01;

pub(crate) struct FakeProc {
    _dir: tempfile::TempDir,
    pub(crate) root: PathBuf,
}

impl FakeProc {
    fn new() -> FakeProc {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("proc");
        write(&root.join("sys/kernel/hostname"), "fixture-host\n");
        FakeProc { _dir: dir, root }
    }

    pub(crate) fn process(&self, pid: u32, comm: &str, netns: &str, cgroup: &str) -> PathBuf {
        let dir = self.root.join(pid.to_string());
        write(&dir.join("comm"), &format!("{comm}\n"));
        write(&dir.join("cgroup"), &format!("{cgroup}\n"));
        write(
            &dir.join("status"),
            "Name:\tx\nUid:\t0\t0\t0\t0\nVmHWM:\t 100 kB\n",
        );
        std::fs::create_dir_all(dir.join("ns")).expect("ns dir");
        symlink(netns, dir.join("ns/net")).expect("ns link");
        std::fs::create_dir_all(dir.join("fd")).expect("fd dir");
        dir
    }

    pub(crate) fn fds(&self, pid: u32, targets: &[&str]) {
        for (fd, target) in targets.iter().enumerate() {
            let link = self.root.join(format!("{pid}/fd/{}", fd + 3));
            symlink(target, link).expect("fd link");
        }
    }

    pub(crate) fn tables(
        &self,
        pid: u32,
        v4: &[(&str, u16, u8, u64)],
        v6: &[(&str, u16, u8, u64)],
    ) {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                      retrnsmt   uid  timeout inode\n";
        for (name, rows) in [("tcp", v4), ("tcp6", v6)] {
            let mut text = header.to_owned();
            for (slot, (address, port, state, inode)) in rows.iter().enumerate() {
                let address: IpAddr = address.parse().expect("fixture address");
                text.push_str(&format_line(slot, address, *port, *state, *inode));
                text.push('\n');
            }
            write(&self.root.join(format!("{pid}/net/{name}")), &text);
        }
    }

    pub(crate) fn addresses(&self, pid: u32, v4: &[&str], inet6: &[&str]) {
        let mut trie = String::from("Main:\n  +-- 0.0.0.0/0 3 0 5\n");
        for address in v4.iter().chain(["127.0.0.1"].iter()) {
            trie.push_str(&format!("     |-- {address}\n        /32 host LOCAL\n"));
        }
        write(&self.root.join(format!("{pid}/net/fib_trie")), &trie);
        write(
            &self.root.join(format!("{pid}/net/if_inet6")),
            &inet6.join("\n"),
        );
    }

    pub(crate) fn collect(&self, max_sockets: usize) -> Collection {
        collect(&CollectOptions {
            proc_root: self.root.clone(),
            max_sockets,
            docker_root: self.docker_root(),
            containerd_root: self.containerd_root(),
        })
        .expect("the fixture is readable")
    }

    /// Stands for `/var/lib/docker`.
    pub(crate) fn docker_root(&self) -> PathBuf {
        self.root.with_file_name("var-lib-docker")
    }

    /// Stands for `/run/containerd`.
    pub(crate) fn containerd_root(&self) -> PathBuf {
        self.root.with_file_name("run-containerd")
    }
}

pub(crate) fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write fixture");
}

pub(crate) fn net(inode: u64) -> String {
    format!("net:[{inode}]")
}

/// A host, a docker container with a sidecar, and a pod whose processes' namespace
/// links cannot be read (as for an unprivileged agent).
pub(crate) fn fleet_host() -> FakeProc {
    let fake = FakeProc::new();
    fake.process(1, "systemd", &net(HOST_NS), "0::/init.scope");
    symlink("1", fake.root.join("self")).expect("self link");
    fake.fds(1, &["socket:[1004]", "/dev/null"]);
    fake.tables(
        1,
        &[
            ("0.0.0.0", 443, LISTEN, 1001),
            ("0.0.0.0", 443, LISTEN, 1002),
            ("127.0.0.1", 5432, LISTEN, 1003),
            ("0.0.0.0", 2049, LISTEN, 0),
            ("10.0.0.5", 443, ESTABLISHED, 1005),
            ("0.0.0.0", 9999, LISTEN, 1006),
        ],
        &[("::", 22, LISTEN, 1004)],
    );
    fake.addresses(
        1,
        &["10.0.0.5"],
        &[
            "20010db8000000000000000000000005 02 40 00 80 eth0",
            "fe800000000000000000000000000001 02 40 20 80 eth0",
        ],
    );
    fake.process(
        100,
        "nginx",
        &net(HOST_NS),
        "0::/system.slice/nginx.service",
    );
    fake.fds(
        100,
        &["socket:[1001]", "socket:[1002]", "/var/log/x", "pipe:[5]"],
    );

    let docker = format!("0::/system.slice/docker-{DOCKER_ID}.scope");
    fake.process(200, "java", &net(CONTAINER_NS), &docker);
    fake.fds(200, &["socket:[2001]"]);
    fake.tables(
        200,
        &[
            ("0.0.0.0", 8443, LISTEN, 2001),
            ("127.0.0.1", 9000, LISTEN, 2002),
        ],
        &[],
    );
    fake.addresses(200, &["172.17.0.2"], &[]);
    fake.process(201, "envoy", &net(CONTAINER_NS), "0::/");
    fake.fds(201, &["socket:[2002]"]);

    let crio = format!("0::/kubepods.slice/kubepods-pod1.slice/crio-{CRIO_ID}.scope");
    for pid in [300, 301] {
        fake.process(pid, "redis-server", "not a namespace link", &crio);
        fake.tables(pid, &[], &[("::", 6379, LISTEN, 3001)]);
        fake.addresses(pid, &["10.244.1.5"], &[]);
    }
    // Exited between the listing and the reads: a directory with nothing in it.
    std::fs::create_dir_all(fake.root.join("400")).expect("mkdir");
    fake
}

fn find(collection: &Collection, address: &str, port: u16) -> SocketInfo {
    let address: IpAddr = address.parse().expect("literal");
    let sockets: Vec<SocketInfo> = collection.sockets().collect();
    sockets
        .iter()
        .find(|s| s.address == address && s.port == port)
        .cloned()
        .unwrap_or_else(|| panic!("no socket {address}:{port} in {sockets:#?}"))
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| t.parse().expect("literal")).collect()
}

#[test]
fn every_namespace_is_reported_with_processes_containers_and_addresses() {
    let collection = fleet_host().collect(20_000);
    assert_eq!(collection.host_addresses, ips(&["10.0.0.5", "2001:db8::5"]));

    let https = find(&collection, "0.0.0.0", 443);
    assert_eq!(https.process.as_deref(), Some("nginx"));
    assert_eq!(
        (https.netns, https.scope),
        (Some(HOST_NS), SocketScope::Host)
    );
    assert_eq!(https.reachable, ips(&["10.0.0.5"]));
    assert_eq!(https.container, None);
    let ssh = find(&collection, "::", 22);
    assert_eq!(ssh.process.as_deref(), Some("systemd"));
    assert_eq!(ssh.reachable, ips(&["10.0.0.5", "2001:db8::5"]));
    let postgres = find(&collection, "127.0.0.1", 5432);
    assert_eq!(
        (postgres.scope, postgres.process.as_deref()),
        (SocketScope::Loopback, None)
    );
    assert_eq!(find(&collection, "0.0.0.0", 2049).process, None);

    let java = find(&collection, "0.0.0.0", 8443);
    assert_eq!(java.process.as_deref(), Some("java"));
    assert_eq!(java.container.as_deref(), Some(DOCKER_ID));
    assert_eq!(
        (java.netns, java.reachable.clone()),
        (Some(CONTAINER_NS), ips(&["172.17.0.2"]))
    );
    let sidecar = find(&collection, "127.0.0.1", 9000);
    assert_eq!(sidecar.process.as_deref(), Some("envoy"));
    assert_eq!(
        sidecar.container.as_deref(),
        Some(DOCKER_ID),
        "the namespace's container"
    );
    assert_eq!(sidecar.scope, SocketScope::Loopback);

    let redis = find(&collection, "::", 6379);
    assert_eq!((redis.netns, redis.process.as_deref()), (None, None));
    assert_eq!(redis.container.as_deref(), Some(CRIO_ID));
    assert_eq!(redis.reachable, ips(&["10.244.1.5"]));

    let ports: Vec<u16> = collection.sockets().map(|s| s.port).collect();
    assert!(
        !ports.contains(&9999),
        "a listener after a connection line is not read"
    );
    assert_eq!(collection.len(), 7, "SO_REUSEPORT twins are one socket");

    let seen = &collection.visibility;
    assert_eq!(
        (seen.processes, seen.namespaces, seen.netns_unreadable),
        (7, 3, 2)
    );
    assert_eq!(seen.sockets_without_process, 3);
    assert_eq!(seen.uid, Some(0));
    assert!(seen.is_partial());
}

#[test]
fn the_socket_limit_cuts_the_report_and_says_so() {
    let collection = fleet_host().collect(2);
    assert_eq!(collection.len(), 2);
    assert!(collection.visibility.sockets_left_out >= 1);
}

#[test]
fn garbage_in_proc_is_survived() {
    let fake = FakeProc::new();
    fake.process(1, "init", &net(HOST_NS), "0::/");
    symlink("1", fake.root.join("self")).expect("self link");
    let mut table = String::from("garbage\n\u{0}\u{1}\u{2}\n");
    table.push_str(&"z".repeat(1 << 20));
    table.push('\n');
    table.push_str(&format_line(
        0,
        "0.0.0.0".parse().expect("ip"),
        80,
        LISTEN,
        7,
    ));
    table.push('\n');
    write(&fake.root.join("1/net/tcp"), &table);
    write(
        &fake.root.join("1/net/fib_trie"),
        &"|-- 1.2.3\n/32 host LOCAL\n".repeat(1000),
    );
    fake.fds(1, &["socket:[7", "socket:[]", "socket:[7]"]);
    write(&fake.root.join("1/comm"), "\u{1b}[31mevil\n");
    std::fs::create_dir_all(fake.root.join("notapid")).expect("mkdir");
    let collection = fake.collect(100);
    let socket = find(&collection, "0.0.0.0", 80);
    assert_eq!(socket.process.as_deref(), Some("?[31mevil"));
    assert_eq!(
        socket.scope,
        SocketScope::Loopback,
        "no usable address in that namespace"
    );
    assert!(collection.host_addresses.is_empty());
}

#[test]
fn a_missing_proc_root_is_an_error_naming_it() {
    let error = collect(&CollectOptions {
        proc_root: "/nonexistent/proc".into(),
        ..CollectOptions::default()
    })
    .expect_err("nothing to read");
    assert!(error.to_string().contains("/nonexistent/proc"), "{error}");
}
