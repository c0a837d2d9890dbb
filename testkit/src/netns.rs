//! Network namespaces made the way a container runtime makes them (`ip netns add`, a veth
//! pair, addresses in 198.18.0.0/15), with real listeners started inside. Everything is
//! removed when the [`Netns`] is dropped, panics included. Needs root and the `ip` binary;
//! without them the tests that use it print why and skip.
//!
//! Only addresses of 198.18.0.0/15 (the benchmarking range) are used: traffic to them stays
//! on the veth pair, never leaves the machine.

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::random_hex;

/// A network namespace `cf-test-<random>` linked to the host by a veth pair.
pub struct Netns {
    pub name: String,
    /// The namespace's inode, as `/proc/<pid>/ns/net` links name it.
    pub inode: u64,
    /// The address inside the namespace.
    pub address: Ipv4Addr,
    host_link: String,
    children: Vec<Child>,
}

impl Netns {
    /// Creates the namespace, or says why it cannot (not root, no `ip`, not permitted).
    pub fn create() -> Result<Netns, String> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(2))
            == Some("0");
        if !root {
            return Err("not running as root".into());
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Err("no `ip` binary (iproute2)".into());
        }
        let id = random_hex(4);
        // A /30 inside 198.18.0.0/15: .1 on the host side, .2 inside.
        let block = u32::from_str_radix(&id[..4], 16).unwrap_or(0) % (1 << 15);
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + block * 4;
        let mut netns = Netns {
            name: format!("cf-test-{id}"),
            inode: 0,
            address: Ipv4Addr::from(base + 2),
            host_link: format!("cfh{id}"),
            children: Vec::new(),
        };
        let inner = format!("cfn{id}");
        let host_address = format!("{}/30", Ipv4Addr::from(base + 1));
        let inner_address = format!("{}/30", netns.address);
        ip(&["netns", "add", &netns.name])?;
        let steps: [&[&str]; 6] = [
            &[
                "link",
                "add",
                &netns.host_link,
                "type",
                "veth",
                "peer",
                "name",
                &inner,
            ],
            &["link", "set", &inner, "netns", &netns.name],
            &["addr", "add", &host_address, "dev", &netns.host_link],
            &["link", "set", &netns.host_link, "up"],
            &[
                "-n",
                &netns.name,
                "addr",
                "add",
                &inner_address,
                "dev",
                &inner,
            ],
            &["-n", &netns.name, "link", "set", &inner, "up"],
        ];
        for step in steps {
            ip(step)?;
        }
        ip(&["-n", &netns.name, "link", "set", "lo", "up"])?;
        let path = Path::new("/run/netns").join(&netns.name);
        netns.inode = std::fs::metadata(&path)
            .map_err(|error| format!("{}: {error}", path.display()))?
            .ino();
        Ok(netns)
    }

    /// Starts `program ARGS...` inside the namespace (`ip netns exec` execs it, so the pid
    /// is the program's); returns its pid. Killed when the namespace is dropped.
    pub fn spawn(&mut self, program: &str, args: &[&str], log: &Path) -> u32 {
        let log = std::fs::File::create(log).expect("child log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start a program in the namespace");
        let pid = child.id();
        self.children.push(child);
        pid
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_link]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("ip {}: {error}", args.join(" ")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// The namespace, or `None` after printing why the calling test is skipped.
pub fn netns_or_skip(test: &str) -> Option<Netns> {
    match Netns::create() {
        Ok(netns) => Some(netns),
        Err(reason) => {
            crate::skip(&format!(
                "{test}: cannot create a network namespace: {reason}"
            ));
            None
        }
    }
}
