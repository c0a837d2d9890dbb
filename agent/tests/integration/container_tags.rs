//! Per-container tags from the runtimes' own state on the host, laid out as Docker and
//! containerd write it: Docker's `containers/<id>/config.v2.json` (one line of JSON, the
//! container's environment included) and containerd's running task bundles,
//! `io.containerd.runtime.v2.task/<namespace>/<id>/config.json` (an OCI runtime spec
//! whose annotations the CRI plugin fills in).

use std::collections::BTreeMap;
use std::path::Path;

use certfleet_agent::{AgentConfig, Collected, Collection, MAX_STATE_FILE};
use certfleet_model::SocketInfo;

use crate::fake_proc::{fleet_host, net, write, FakeProc, DOCKER_ID, LISTEN};

const POD_NS: u64 = 4026532100;
const CONTAINERD_ID: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9";
const SANDBOX_ID: &str = "5555555555555555555555555555555555555555555555555555555555555555";
const GARBLED_ID: &str = "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd";

/// Docker's `config.v2.json` for a running container, as dockerd writes it (one line).
fn docker_config(id: &str, name: &str, labels: &str) -> String {
    format!(
        r#"{{"StreamConfig":{{}},"State":{{"Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"RemovalInProgress":false,"Dead":false,"Pid":200,"ExitCode":0,"Error":"","StartedAt":"2026-11-27T09:58:01.123456789Z","FinishedAt":"0001-01-01T00:00:00Z","Health":null}},"ID":"{id}","Created":"2026-11-27T09:58:00.512345678Z","Managed":false,"Path":"java","Args":["-jar","/app.jar"],"Config":{{"Hostname":"3f4e1a2b3c4d","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{{"8443/tcp":{{}}}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["DB_PASSWORD=hunter2","PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["java","-jar","/app.jar"],"Image":"registry.example.com/billing-api:1.4","Volumes":null,"WorkingDir":"/","Entrypoint":null,"OnBuild":null,"Labels":{labels}}},"Image":"sha256:4b2c7e0f1a3d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7","ImageManifest":null,"NetworkSettings":{{"Bridge":"","SandboxID":"c1d2e3f4","SandboxKey":"/var/run/docker/netns/c1d2e3f4","HairpinMode":false,"LinkLocalIPv6Address":"","LinkLocalIPv6PrefixLen":0,"Networks":{{"bridge":{{"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"n1","EndpointID":"e1","Gateway":"172.17.0.1","IPAddress":"172.17.0.2","IPPrefixLen":16,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"02:42:ac:11:00:02","DriverOpts":null,"IPAMOperational":false}}}},"Service":null,"Ports":{{"8443/tcp":null}},"SecondaryIPAddresses":null,"SecondaryIPv6Addresses":null,"IsAnonymousEndpoint":false,"HasSwarmEndpoint":false}},"LogPath":"/var/lib/docker/containers/{id}/{id}-json.log","Name":"{name}","Driver":"overlay2","OS":"linux","RestartCount":0,"HasBeenStartedBefore":false,"HasBeenManuallyStopped":false,"MountPoints":{{}},"SecretReferences":null,"ConfigReferences":null,"MountLabel":"","ProcessLabel":"","AppArmorProfile":"docker-default","SeccompProfile":"","NoNewPrivileges":false,"HostnamePath":"/var/lib/docker/containers/{id}/hostname","HostsPath":"/var/lib/docker/containers/{id}/hosts","ShmPath":"/var/lib/docker/containers/{id}/mounts/shm","ResolvConfPath":"/var/lib/docker/containers/{id}/resolv.conf","LocalNodeAppliedNetworks":null}}"#
    )
}

/// containerd's OCI runtime spec of a Kubernetes container (CRI plugin annotations).
fn oci_spec(annotations: &str) -> String {
    format!(
        r#"{{"ociVersion":"1.1.0","process":{{"user":{{"uid":999,"gid":999,"additionalGids":[999]}},"args":["redis-server","--tls-port","6380"],"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","REDIS_PASSWORD=s3cret","HOSTNAME=cache-0"],"cwd":"/data","capabilities":{{"bounding":["CAP_CHOWN","CAP_NET_BIND_SERVICE"],"effective":["CAP_CHOWN","CAP_NET_BIND_SERVICE"],"permitted":["CAP_CHOWN","CAP_NET_BIND_SERVICE"]}},"apparmorProfile":"cri-containerd.apparmor.d","oomScoreAdj":1000}},"root":{{"path":"rootfs"}},"mounts":[{{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]}}],"annotations":{annotations},"linux":{{"resources":{{"devices":[{{"allow":false,"access":"rwm"}}],"memory":{{"limit":268435456}},"cpu":{{"shares":102,"quota":50000,"period":100000}}}},"cgroupsPath":"kubepods-burstable-pod1f2e.slice:cri-containerd:{CONTAINERD_ID}","namespaces":[{{"type":"pid"}},{{"type":"ipc","path":"/proc/600/ns/ipc"}},{{"type":"uts","path":"/proc/600/ns/uts"}},{{"type":"mount"}},{{"type":"network","path":"/proc/600/ns/net"}}],"maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/bus"]}}}}"#
    )
}

fn cri_annotations(kind: &str, container: Option<&str>) -> String {
    let mut pairs = vec![
        ("io.kubernetes.cri.container-type", kind.to_owned()),
        ("io.kubernetes.cri.sandbox-id", SANDBOX_ID.to_owned()),
        (
            "io.kubernetes.cri.sandbox-log-directory",
            "/var/log/pods/payments_cache-0_1f2e".to_owned(),
        ),
        ("io.kubernetes.cri.sandbox-name", "cache-0".to_owned()),
        ("io.kubernetes.cri.sandbox-namespace", "payments".to_owned()),
        (
            "io.kubernetes.cri.sandbox-uid",
            "1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718".to_owned(),
        ),
    ];
    if let Some(container) = container {
        pairs.push(("io.kubernetes.cri.container-name", container.to_owned()));
        pairs.push((
            "io.kubernetes.cri.image-name",
            "docker.io/library/redis:7.2".to_owned(),
        ));
    }
    let map: BTreeMap<&str, String> = pairs.into_iter().collect();
    serde_json::to_string(&map).expect("json")
}

/// A task bundle as containerd's runc shim leaves it: the spec, and beside it the pid,
/// the shim's address and the rootfs mount point.
fn task_bundle(root: &Path, namespace: &str, id: &str, spec: &str) {
    let dir = root
        .join("io.containerd.runtime.v2.task")
        .join(namespace)
        .join(id);
    write(&dir.join("config.json"), spec);
    write(&dir.join("init.pid"), "600");
    write(&dir.join("address"), "unix:///run/containerd/s/0123abcd");
    std::fs::create_dir_all(dir.join("rootfs")).expect("rootfs");
}

/// The fleet host, its Docker container described by dockerd, and a Kubernetes pod run
/// by containerd's CRI plugin (`cri-containerd-<id>.scope`), whose sandbox is in the
/// same namespace.
fn container_host() -> FakeProc {
    let fake = fleet_host();
    let labels = r#"{"app.kubernetes.io/name":"billing","certfleet.env":"prod","certfleet.owner":"billing-team@example.com","com.docker.compose.project":"shop","com.docker.compose.service":"billing-api"}"#;
    write(
        &fake
            .docker_root()
            .join(format!("containers/{DOCKER_ID}/config.v2.json")),
        &docker_config(DOCKER_ID, "/billing-api", labels),
    );
    write(
        &fake
            .docker_root()
            .join(format!("containers/{DOCKER_ID}/hostconfig.json")),
        "{}",
    );

    let cgroup = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e.slice/\
         cri-containerd-{CONTAINERD_ID}.scope"
    );
    fake.process(600, "redis-server", &net(POD_NS), &cgroup);
    fake.fds(600, &["socket:[6001]"]);
    fake.tables(600, &[("0.0.0.0", 6380, LISTEN, 6001)], &[]);
    fake.addresses(600, &["10.244.2.7"], &[]);
    let root = fake.containerd_root();
    std::fs::create_dir_all(root.join("io.containerd.runtime.v2.task/moby")).expect("moby");
    task_bundle(
        &root,
        "k8s.io",
        SANDBOX_ID,
        &oci_spec(&cri_annotations("sandbox", None)),
    );
    task_bundle(
        &root,
        "k8s.io",
        CONTAINERD_ID,
        &oci_spec(&cri_annotations("container", Some("redis"))),
    );
    fake
}

fn on_port(collection: &Collection, port: u16) -> SocketInfo {
    collection
        .sockets()
        .find(|s| s.port == port)
        .unwrap_or_else(|| panic!("no socket on port {port}"))
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn docker_and_containerd_containers_carry_their_own_tags() {
    let collection = container_host().collect(20_000);

    let java = on_port(&collection, 8443);
    assert_eq!(java.container.as_deref(), Some(DOCKER_ID));
    assert_eq!(
        java.tags,
        tags(&[
            ("app", "billing"),
            ("container", "billing-api"),
            ("env", "prod"),
            ("owner", "billing-team@example.com"),
        ])
    );
    let sidecar = on_port(&collection, 9000);
    assert_eq!(
        sidecar.tags, java.tags,
        "the sidecar is in the same container"
    );

    let redis = on_port(&collection, 6380);
    assert_eq!(redis.container.as_deref(), Some(CONTAINERD_ID));
    assert_eq!(
        redis.tags,
        tags(&[
            ("container", "redis"),
            ("namespace", "payments"),
            ("pod", "cache-0")
        ])
    );

    assert!(
        on_port(&collection, 443).tags.is_empty(),
        "host sockets: the host's tags"
    );
    let crio = on_port(&collection, 6379);
    assert!(
        crio.tags.is_empty(),
        "cri-o's state is not read: the host's tags"
    );

    let seen = &collection.visibility;
    assert_eq!(
        (
            seen.containers,
            seen.container_state_missing,
            seen.container_state_invalid
        ),
        (3, 1, 0)
    );
}

#[test]
fn the_report_carries_socket_tags_and_never_the_containers_environment() {
    let collection = container_host().collect(20_000);
    let config = AgentConfig {
        hostname: "docker-1".into(),
        machine_id_file: "/nonexistent/machine-id".into(),
        tags: tags(&[("owner", "platform@example.com"), ("env", "staging")]),
        ..AgentConfig::default()
    };
    let collected = Collected::new(&config, collection);
    let mut json = Vec::new();
    collected.write_json(&mut json).expect("encode");
    let text = String::from_utf8(json).expect("UTF-8");
    for secret in [
        "hunter2",
        "s3cret",
        "DB_PASSWORD",
        "redis-server\",\"--tls-port",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the report");
    }
    let report = collected.report();
    assert_eq!(report.validate(), Ok(()));
    let java = report
        .sockets
        .iter()
        .find(|s| s.port == 8443)
        .expect("java");
    assert_eq!(
        report.socket_tag(java, "owner"),
        Some("billing-team@example.com")
    );
    assert_eq!(report.socket_tag(java, "env"), Some("prod"));
    let redis = report
        .sockets
        .iter()
        .find(|s| s.port == 6380)
        .expect("redis");
    assert_eq!(
        report.socket_tag(redis, "owner"),
        Some("platform@example.com")
    );
    assert_eq!(report.socket_tag(redis, "namespace"), Some("payments"));
}

#[test]
fn missing_oversized_and_garbled_state_leaves_the_hosts_tags_and_is_counted() {
    let fake = container_host();
    // The Docker container's file cut short (dockerd died mid-write, or a bad disk).
    let docker = docker_config(
        DOCKER_ID,
        "/billing-api",
        r#"{"certfleet.owner":"x@example.com"}"#,
    );
    write(
        &fake
            .docker_root()
            .join(format!("containers/{DOCKER_ID}/config.v2.json")),
        &docker[..docker.len() / 2],
    );
    // The containerd spec over the size bound (valid JSON padded with white space).
    let root = fake.containerd_root();
    let spec = oci_spec(&cri_annotations("container", Some("redis")));
    let padding = " ".repeat(usize::try_from(MAX_STATE_FILE).expect("fits"));
    task_bundle(&root, "k8s.io", CONTAINERD_ID, &format!("{spec}{padding}"));
    // A third container whose file is binary garbage.
    let cgroup = format!("0::/system.slice/docker-{GARBLED_ID}.scope");
    fake.process(700, "nginx", &net(POD_NS + 1), &cgroup);
    fake.fds(700, &["socket:[7001]"]);
    fake.tables(700, &[("0.0.0.0", 8444, LISTEN, 7001)], &[]);
    fake.addresses(700, &["172.17.0.3"], &[]);
    write(
        &fake
            .docker_root()
            .join(format!("containers/{GARBLED_ID}/config.v2.json")),
        "\u{0}\u{1}\u{2}{{{{\"Name\":",
    );

    let collection = fake.collect(20_000);
    for port in [8443, 6380, 8444] {
        assert!(on_port(&collection, port).tags.is_empty(), "port {port}");
    }
    let seen = &collection.visibility;
    assert_eq!(
        (
            seen.containers,
            seen.container_state_missing,
            seen.container_state_invalid
        ),
        (4, 1, 3)
    );
}

#[test]
fn runtime_state_is_not_read_when_its_root_is_empty() {
    let fake = container_host();
    let collection = certfleet_agent::collect(&certfleet_agent::CollectOptions {
        proc_root: fake.root.clone(),
        docker_root: "".into(),
        containerd_root: "".into(),
        ..certfleet_agent::CollectOptions::default()
    })
    .expect("collect");
    assert!(collection.sockets().all(|s| s.tags.is_empty()));
    assert_eq!(collection.visibility.container_state_missing, 3);
}
