//! One collection pass: every listening TCP socket of every network namespace, with its
//! process, container and the addresses it can be reached at.
//!
//! 1. Every process's `ns/net` link groups processes by network namespace (the host's is
//!    that of pid 1, or the agent's own when pid 1 cannot be read).
//! 2. One member of each namespace has its `net/tcp` and `net/tcp6` read: the listeners.
//! 3. Processes whose namespace link cannot be read (an unprivileged agent cannot read
//!    other users' links) still have readable socket tables: a table whose listeners are
//!    already known belongs to a known namespace, any other is a namespace of its own
//!    (reported with `netns: null`).
//! 4. `fd/` links map socket inodes to processes, namespaces with listeners first, and the
//!    scan stops as soon as every listener has its process.
//! 5. Wildcard listeners are expanded to their namespace's addresses (`net/fib_trie`,
//!    `net/if_inet6`, read from outside the namespace).
//! 6. Each container with sockets gets its own tags from its runtime's state on the host
//!    (see [`crate::containers`]).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use certfleet_model::ReportLimits;
use serde::Serialize;

use crate::containers::{Lookup, RuntimeState};
use crate::proc::tcp::{Family, Listener};
use crate::proc::{text, ProcFs, Process};
use crate::sockets::{Collection, Entry, Names, NamespaceView};
use crate::Error;

/// What a pass reads and how much it keeps.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// The /proc root (`/proc`; `/host/proc` when the agent runs in a container).
    pub proc_root: PathBuf,
    /// Sockets in one report at most (the server's limit by default).
    pub max_sockets: usize,
    /// Docker's root, for containers' names and labels (`/var/lib/docker`); empty: off.
    pub docker_root: PathBuf,
    /// containerd's state directory, for the OCI specs of its running tasks
    /// (`/run/containerd`); empty: off.
    pub containerd_root: PathBuf,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            proc_root: PathBuf::from("/proc"),
            max_sockets: ReportLimits::default().max_sockets,
            docker_root: PathBuf::from("/var/lib/docker"),
            containerd_root: PathBuf::from("/run/containerd"),
        }
    }
}

/// How much of the host a pass could see. Sent beside the report (an extension the server
/// ignores today) and logged, so that an unprivileged agent says what it missed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Visibility {
    /// The agent's effective uid.
    pub uid: Option<u32>,
    /// Processes seen.
    pub processes: usize,
    /// Network namespaces with listeners, the host's included.
    pub namespaces: usize,
    /// Processes whose network namespace link could not be read (needs root or the same
    /// user); their namespaces were told apart by their socket tables instead.
    pub netns_unreadable: usize,
    /// Processes whose open files could not be listed (needs root or the same user).
    pub fds_unreadable: usize,
    /// Sockets reported without a process name.
    pub sockets_without_process: usize,
    /// Sockets left out of the report because of the size limit (at least this many: a
    /// table is not read past the limit).
    pub sockets_left_out: usize,
    /// Containers with reported sockets.
    pub containers: usize,
    /// Containers with no runtime state the agent reads (another runtime than Docker and
    /// containerd, or the root settings point elsewhere): their sockets have the host's
    /// tags only.
    pub container_state_missing: usize,
    /// Containers whose runtime state could not be used (unreadable, over 1 MiB, not the
    /// expected JSON): their sockets have the host's tags only.
    pub container_state_invalid: usize,
}

impl Visibility {
    /// Whether anything was hidden from the agent by missing privileges.
    pub fn is_partial(&self) -> bool {
        self.netns_unreadable > 0 || self.fds_unreadable > 0
    }
}

/// A network namespace with listeners, as far as this pass knows it.
#[derive(Debug, Default)]
struct Namespace {
    inode: Option<u64>,
    host: bool,
    /// Processes known to be in it (readable `ns/net`), ascending.
    members: Vec<u32>,
    /// Processes placed in it by their socket table only.
    guessed_members: Vec<u32>,
    /// The process whose tables were read.
    reader: Option<Process>,
    listeners: Vec<Listener>,
}

/// Runs one pass over the /proc root.
pub fn collect(options: &CollectOptions) -> Result<Collection, Error> {
    let proc = ProcFs::new(&options.proc_root);
    let pids = proc.pids().map_err(|source| Error::Proc {
        path: options.proc_root.clone(),
        error: source,
    })?;
    let mut visibility = Visibility {
        uid: proc.own_status().as_deref().and_then(text::effective_uid),
        processes: pids.len(),
        ..Visibility::default()
    };
    let limit = options.max_sockets;
    let (mut namespaces, unknown) = group_by_link(&proc, &pids);
    visibility.netns_unreadable = unknown.len();

    // 2. Their tables; the agent's own stand in for the host when nothing else can.
    let mut sockets: HashMap<u64, Socket> = HashMap::new();
    for (index, ns) in namespaces.iter_mut().enumerate() {
        let mut readers: Vec<Process> = ns.members.iter().map(|&p| Process::Pid(p)).collect();
        if ns.host {
            readers.push(Process::Current);
        }
        for reader in readers {
            if let Ok(listeners) = read_tables(&proc, reader, limit) {
                ns.reader = Some(reader);
                ns.listeners = listeners;
                break;
            }
        }
        register(&mut sockets, &ns.listeners, index);
    }

    // 3. Processes whose link is hidden: tell namespaces apart by their tables.
    for &pid in &unknown {
        let first = proc.first_listener(Process::Pid(pid)).ok().flatten();
        if let Some(socket) = first.and_then(|inode| sockets.get(&inode)) {
            namespaces[socket.namespace].guessed_members.push(pid);
            continue;
        }
        let Ok(listeners) = read_tables(&proc, Process::Pid(pid), limit) else {
            continue;
        };
        let Some(first) = listeners.iter().find(|l| l.inode != 0) else {
            continue;
        };
        match sockets.get(&first.inode) {
            Some(socket) => namespaces[socket.namespace].guessed_members.push(pid),
            None => {
                register(&mut sockets, &listeners, namespaces.len());
                namespaces.push(Namespace {
                    guessed_members: vec![pid],
                    reader: Some(Process::Pid(pid)),
                    listeners,
                    ..Namespace::default()
                });
            }
        }
    }

    // 4. Owners: members of namespaces with listeners first; stop when all are found.
    let mut unowned = sockets.len();
    let (busy, idle): (Vec<&Namespace>, Vec<&Namespace>) =
        namespaces.iter().partition(|ns| !ns.listeners.is_empty());
    let order = busy
        .iter()
        .chain(idle.iter())
        .flat_map(|ns| ns.members.iter());
    for &pid in order {
        if unowned == 0 {
            break;
        }
        let scanned = proc.for_each_socket(pid, |inode| {
            if let Some(socket) = sockets.get_mut(&inode) {
                if socket.owner.is_none() {
                    socket.owner = Some(pid);
                    unowned -= 1;
                }
            }
        });
        if let Err(error) = scanned {
            if error.kind() == io::ErrorKind::PermissionDenied {
                visibility.fds_unreadable += 1;
            }
        }
    }
    visibility.fds_unreadable += unknown.len();

    // 5. Sockets, with their processes, containers and namespace addresses.
    let mut collection = Collection::default();
    let mut lookups = Lookups::new(&proc);
    for (index, ns) in namespaces.iter().enumerate() {
        let reader = ns.reader.or(ns.host.then_some(Process::Current));
        let needed = ns.host || !ns.listeners.is_empty();
        let addresses = match reader {
            Some(reader) if needed => proc.addresses(reader).ok(),
            _ => None,
        };
        if ns.host {
            collection.host_addresses = addresses.clone().unwrap_or_default();
        }
        let container = (!ns.host)
            .then(|| {
                let all = ns.members.iter().chain(&ns.guessed_members);
                all.copied().find_map(|pid| lookups.container(pid))
            })
            .flatten();
        collection.namespaces.push(NamespaceView {
            inode: ns.inode,
            addresses,
        });
        if !ns.listeners.is_empty() {
            visibility.namespaces += 1;
        }
        for listener in ns.listeners.iter().filter(|l| l.port != 0) {
            let owner = sockets.get(&listener.inode).and_then(|s| s.owner);
            collection.entries.push(Entry {
                namespace: u32::try_from(index).unwrap_or(u32::MAX),
                address: listener.address,
                port: listener.port,
                process: owner.and_then(|pid| lookups.process(pid)),
                container: owner.and_then(|pid| lookups.container(pid)).or(container),
            });
        }
    }
    // One socket per (namespace, address, port): SO_REUSEPORT twins are one endpoint, the
    // one with a process first.
    let entries = &mut collection.entries;
    entries.sort_by_key(|e| (e.namespace, e.address, e.port, e.process.is_none()));
    entries.dedup_by_key(|e| (e.namespace, e.address, e.port));
    visibility.sockets_left_out = entries.len().saturating_sub(limit);
    entries.truncate(limit);
    entries.shrink_to_fit();
    visibility.sockets_without_process = entries.iter().filter(|e| e.process.is_none()).count();

    // 6. The containers' own tags, from their runtime's state, once per container.
    let mut runtime = RuntimeState::new(&options.docker_root, &options.containerd_root);
    let mut containers: Vec<u32> = entries.iter().filter_map(|e| e.container).collect();
    containers.sort_unstable();
    containers.dedup();
    visibility.containers = containers.len();
    for id in containers {
        match runtime.lookup(lookups.names.get(id)) {
            Lookup::Tags(tags) if tags.is_empty() => {}
            Lookup::Tags(tags) => {
                collection.container_tags.insert(id, tags);
            }
            Lookup::Missing => visibility.container_state_missing += 1,
            Lookup::Invalid => visibility.container_state_invalid += 1,
        }
    }
    collection.names = lookups.names;
    collection.visibility = visibility;
    Ok(collection)
}

/// What is known of a listening socket while the pass runs.
struct Socket {
    namespace: usize,
    owner: Option<u32>,
}

/// Processes grouped by their `ns/net` link (the host's namespace first), and the
/// processes whose link could not be read.
fn group_by_link(proc: &ProcFs, pids: &[u32]) -> (Vec<Namespace>, Vec<u32>) {
    let host_inode = proc
        .netns(Process::Pid(1))
        .or_else(|_| proc.netns(Process::Current))
        .ok();
    let mut namespaces = vec![Namespace {
        inode: host_inode,
        host: true,
        ..Namespace::default()
    }];
    let mut by_inode: HashMap<u64, usize> = HashMap::new();
    if let Some(inode) = host_inode {
        by_inode.insert(inode, 0);
    }
    let mut unknown = Vec::new();
    for &pid in pids {
        match proc.netns(Process::Pid(pid)) {
            Ok(inode) => {
                let index = *by_inode.entry(inode).or_insert_with(|| {
                    namespaces.push(Namespace {
                        inode: Some(inode),
                        ..Namespace::default()
                    });
                    namespaces.len() - 1
                });
                namespaces[index].members.push(pid);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {} // exited meanwhile
            Err(_) => unknown.push(pid),
        }
    }
    (namespaces, unknown)
}

/// The listeners of both tables of a process's namespace; `Err` when neither is readable.
fn read_tables(proc: &ProcFs, reader: Process, limit: usize) -> io::Result<Vec<Listener>> {
    let v4 = proc.tcp(reader, Family::V4, limit);
    let v6 = proc.tcp(reader, Family::V6, limit);
    match (v4, v6) {
        (Err(error), Err(_)) => Err(error),
        (v4, v6) => {
            let mut listeners = Vec::new();
            for table in [v4, v6].into_iter().flatten() {
                if table.malformed > 0 {
                    tracing::debug!(?reader, lines = table.malformed, "malformed tcp lines");
                }
                if table.truncated {
                    tracing::warn!(?reader, limit, "more listeners than a report may hold");
                }
                listeners.extend(table.listeners);
            }
            Ok(listeners)
        }
    }
}

fn register(sockets: &mut HashMap<u64, Socket>, listeners: &[Listener], namespace: usize) {
    for listener in listeners.iter().filter(|l| l.inode != 0) {
        sockets.entry(listener.inode).or_insert(Socket {
            namespace,
            owner: None,
        });
    }
}

/// Process names and container ids, each read once per pass and stored once.
struct Lookups<'a> {
    proc: &'a ProcFs,
    names: Names,
    processes: HashMap<u32, Option<u32>>,
    containers: HashMap<u32, Option<u32>>,
}

impl<'a> Lookups<'a> {
    fn new(proc: &'a ProcFs) -> Self {
        Lookups {
            proc,
            names: Names::default(),
            processes: HashMap::new(),
            containers: HashMap::new(),
        }
    }

    fn process(&mut self, pid: u32) -> Option<u32> {
        if let Some(&id) = self.processes.get(&pid) {
            return id;
        }
        let id = self.proc.comm(pid).map(|name| self.names.intern(name));
        self.processes.insert(pid, id);
        id
    }

    fn container(&mut self, pid: u32) -> Option<u32> {
        if let Some(&id) = self.containers.get(&pid) {
            return id;
        }
        let id = self.proc.container(pid).map(|name| self.names.intern(name));
        self.containers.insert(pid, id);
        id
    }
}
