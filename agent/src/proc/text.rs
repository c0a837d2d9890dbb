//! Small pure parsers of /proc texts: symbolic link targets, `cgroup`, `comm`, `status`.

/// Bytes of a container id: the 64 lowercase hex digits every runtime uses.
const CONTAINER_ID_LEN: usize = 64;

/// Runtime prefixes of a cgroup directory that holds a container (systemd cgroup driver:
/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`).
const CONTAINER_PREFIXES: [&str; 6] = [
    "docker-",
    "cri-containerd-",
    "containerd-",
    "crio-",
    "cri-o-",
    "libpod-",
];

/// Prefixes of runtime helper processes that live beside a container, not inside it.
const HELPER_PREFIXES: [&str; 2] = ["crio-conmon-", "libpod-conmon-"];

/// The inode in a `/proc/<pid>/fd/<n>` link target `socket:[12345]`; `None` for files,
/// pipes and anything else.
pub fn socket_inode(target: &[u8]) -> Option<u64> {
    bracketed(target, b"socket:[")
}

/// The namespace inode in a `/proc/<pid>/ns/net` link target `net:[4026531840]`.
pub fn netns_inode(target: &[u8]) -> Option<u64> {
    bracketed(target, b"net:[")
}

fn bracketed(target: &[u8], prefix: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(prefix)?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The id of the container a process runs in, from its `/proc/<pid>/cgroup`, for the
/// docker, containerd, cri-o, podman and kubepods (cgroupfs and systemd driver) layouts:
///
/// ```text
/// 0::/system.slice/docker-<id>.scope
/// 0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
/// 12:memory:/kubepods/besteffort/pod<uid>/<id>
/// 4:cpu:/docker/<id>
/// ```
///
/// The deepest path segment that names a container wins.
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.rsplit('/').find_map(container_segment)
    })
}

fn container_segment(segment: &str) -> Option<String> {
    if HELPER_PREFIXES.iter().any(|p| segment.starts_with(p)) {
        return None;
    }
    let segment = segment.strip_suffix(".scope").unwrap_or(segment);
    let id = CONTAINER_PREFIXES
        .iter()
        .find_map(|prefix| segment.strip_prefix(prefix))
        .unwrap_or(segment);
    let is_id = id.len() == CONTAINER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    is_id.then(|| id.to_owned())
}

/// A process name from `comm` bytes, safe to report: a process chooses its own name (up to
/// 15 bytes, any bytes but NUL), so invalid UTF-8 and control characters are replaced.
/// `None` when nothing is left.
pub fn process_name(comm: &[u8]) -> Option<String> {
    let comm = comm.strip_suffix(b"\n").unwrap_or(comm);
    let comm = &comm[..comm.len().min(64)];
    let name: String = String::from_utf8_lossy(comm)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The effective uid from a `/proc/<pid>/status` text (`Uid: real effective saved fs`).
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_ascii_whitespace().nth(2)?.parse().ok()
}

/// `VmHWM` (peak resident set) in KiB from a `/proc/<pid>/status` text.
pub fn peak_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";

    #[test]
    fn link_targets_give_their_inodes_and_nothing_else() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(netns_inode(b"net:[4026531840]"), Some(4026531840));
        for hostile in [
            &b"socket:[]"[..],
            b"socket:[12",
            b"socket:[-1]",
            b"socket:[1 2]",
            b"pipe:[123]",
            b"/dev/null",
            b"socket:[99999999999999999999999]",
            b"socket:[\xff]",
        ] {
            assert_eq!(socket_inode(hostile), None, "{hostile:?}");
        }
        assert_eq!(netns_inode(b"socket:[1]"), None);
    }

    #[test]
    fn every_runtime_layout_gives_the_container_id() {
        let layouts = [
            format!("0::/system.slice/docker-{ID}.scope"),
            format!("12:memory:/docker/{ID}\n0::/"),
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice/\
                 cri-containerd-{ID}.scope"
            ),
            format!("11:cpu,cpuacct:/kubepods/besteffort/pod0a1b-2c3d/{ID}"),
            format!("0::/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"),
            format!("0::/machine.slice/libpod-{ID}.scope/container"),
        ];
        for cgroup in &layouts {
            assert_eq!(container_id(cgroup).as_deref(), Some(ID), "{cgroup}");
        }
    }

    #[test]
    fn hosts_helpers_and_garbage_have_no_container() {
        let cases = [
            String::from("0::/"),
            String::from("0::/user.slice/user-1000.slice/session-3.scope"),
            String::from("4:memory:/process_api/3d0426775196b9ac082cdf58caa9bdb1"),
            format!("0::/machine.slice/crio-conmon-{ID}.scope"),
            format!("0::/system.slice/docker-{}.scope", ID.to_uppercase()),
            format!("0::/system.slice/docker-{}.scope", &ID[1..]),
            String::from("no colons here"),
            String::from("\u{0}\u{1}:::///"),
            "x".repeat(100_000),
        ];
        for cgroup in &cases {
            assert_eq!(container_id(cgroup), None, "{cgroup:.80}");
        }
    }

    #[test]
    fn process_names_are_made_safe() {
        assert_eq!(process_name(b"openssl\n").as_deref(), Some("openssl"));
        assert_eq!(
            process_name(b"evil\x1b[31m\n").as_deref(),
            Some("evil?[31m")
        );
        assert_eq!(process_name(b"caf\xc3\xa9").as_deref(), Some("caf\u{e9}"));
        assert_eq!(
            process_name(b"\xff\xfe").as_deref(),
            Some("\u{fffd}\u{fffd}")
        );
        assert_eq!(process_name(b"\n"), None);
        assert_eq!(process_name(&[b'a'; 10_000]).map(|n| n.len()), Some(64));
    }

    #[test]
    fn status_lines_give_uid_and_peak_rss() {
        let status = "Name:\tcertfleet\nUid:\t1000\t0\t0\t0\nVmHWM:\t    6144 kB\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(peak_rss_kib(status), Some(6144));
        assert_eq!(effective_uid("Uid:\n"), None);
        assert_eq!(peak_rss_kib("garbage"), None);
    }
}
