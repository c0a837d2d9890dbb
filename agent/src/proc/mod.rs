//! Reading /proc, under a root that tests point at a fixture directory. Every read is
//! bounded (line length, line count, file size), and the parsing itself is done by the
//! pure functions of the submodules.
//!
//! What is read, per process: `ns/net` (link), `fd/` (links only, never the files),
//! `comm`, `cgroup`, and for one process per network namespace `net/tcp`, `net/tcp6`,
//! `net/fib_trie`, `net/if_inet6`. Never `cmdline` or `environ`: they hold secrets.

pub mod addrs;
pub mod tcp;
pub mod text;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use self::addrs::FibTrie;
use self::tcp::{Family, TcpTable};

/// Lines of `fib_trie` read at most: a full Internet routing table is about 5 million
/// lines; past this the namespace's IPv4 addresses may be incomplete.
const MAX_FIB_TRIE_LINES: usize = 2_000_000;
/// Lines of `if_inet6` read at most.
const MAX_IF_INET6_LINES: usize = 100_000;
/// Bytes of small files (`comm`, `cgroup`, `status`, `hostname`, `machine-id`).
const SMALL_FILE: u64 = 64 * 1024;
/// Longest line given to a parser; longer lines are reported as unreadable.
const MAX_LINE: usize = 4096;
/// Bytes asked for in each read.
const READ_BUFFER: usize = 16 * 1024;
/// The smallest buffer a seq_file fills per read (one page).
const SEQ_PAGE: usize = 4096;
/// Longer than any record of `net/tcp` or `net/tcp6` (150 and about 180 bytes).
const SEQ_MAX_RECORD: usize = 256;

/// A /proc seq_file that knows it has ended when a read comes back clearly short.
///
/// A seq_file read fills the caller's buffer with whole records and stops only when the
/// buffer is full, its page-sized (or larger) internal buffer cannot take the next record,
/// or there is no next record (`seq_read_iter` in `fs/seq_file.c`). So a read of a large
/// buffer that returns less than a page minus the longest record means the records ran
/// out. Asking again would return nothing, at a price: to find that out, the kernel walks
/// the whole established-connections hash of the host again (262,144 buckets on a host
/// with 24 GiB) for every namespace's `tcp` and `tcp6`, which is most of the cost of a pass.
pub struct SeqFile {
    file: File,
    ended: bool,
}

impl SeqFile {
    /// Opens a seq_file.
    pub fn open(path: &Path) -> io::Result<SeqFile> {
        Ok(SeqFile {
            file: File::open(path)?,
            ended: false,
        })
    }
}

impl Read for SeqFile {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let read = self.file.read(buffer)?;
        if read > 0 && buffer.len() >= SEQ_PAGE && read + SEQ_MAX_RECORD < SEQ_PAGE {
            self.ended = true;
        }
        Ok(read)
    }
}

/// A process directory under the /proc root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// `/proc/<pid>`.
    Pid(u32),
    /// `/proc/self`: the agent itself.
    Current,
}

/// /proc, or a directory laid out like it.
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
}

impl ProcFs {
    /// /proc at `root` (`/proc` on a host; `/host/proc` for an agent in a container).
    pub fn new(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ids of every visible process, ascending.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        let mut pids: Vec<u32> = std::fs::read_dir(&self.root)?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name();
                let name = name.to_str()?;
                if !name.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                name.parse().ok()
            })
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    fn path(&self, process: Process, rest: &str) -> PathBuf {
        match process {
            Process::Pid(pid) => self.root.join(pid.to_string()).join(rest),
            Process::Current => self.root.join("self").join(rest),
        }
    }

    /// The inode of the process's network namespace (needs the right to ptrace-read it:
    /// root, or the same user).
    pub fn netns(&self, process: Process) -> io::Result<u64> {
        let target = std::fs::read_link(self.path(process, "ns/net"))?;
        text::netns_inode(target.as_os_str().as_bytes())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a netns link"))
    }

    /// The listeners of the TCP table of the process's network namespace (readable by
    /// anyone).
    pub fn tcp(&self, process: Process, family: Family, limit: usize) -> io::Result<TcpTable> {
        let name = match family {
            Family::V4 => "net/tcp",
            Family::V6 => "net/tcp6",
        };
        let mut table = TcpTable::default();
        let file = SeqFile::open(&self.path(process, name))?;
        for_each_line_in(file, usize::MAX, |line| match line {
            Some(line) => table.push_line(line, family, limit),
            None => {
                table.malformed += 1;
                true
            }
        })?;
        Ok(table)
    }

    /// The inode of the first listener (IPv4, else IPv6) of the process's namespace, read
    /// cheaply: a single small read, which the kernel answers from its listener hash
    /// without walking the connection hash when the namespace has two listeners or more.
    /// Enough to recognise a namespace already read through another process.
    pub fn first_listener(&self, process: Process) -> io::Result<Option<u64>> {
        for (name, family) in [("net/tcp", Family::V4), ("net/tcp6", Family::V6)] {
            let mut buffer = [0u8; 512];
            let read = File::open(self.path(process, name))?.read(&mut buffer)?;
            let text = String::from_utf8_lossy(&buffer[..read]);
            let complete = text.rfind('\n').map_or("", |end| &text[..end]);
            for line in complete.lines() {
                if let tcp::Line::Listener(listener) = tcp::parse_line(line, family) {
                    if listener.inode != 0 {
                        return Ok(Some(listener.inode));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The usable addresses of the process's network namespace, IPv4 first. `Err` only
    /// when neither the IPv4 nor the IPv6 list could be read.
    pub fn addresses(&self, process: Process) -> io::Result<Vec<IpAddr>> {
        let mut trie = FibTrie::default();
        let v4 = for_each_line(
            &self.path(process, "net/fib_trie"),
            MAX_FIB_TRIE_LINES,
            |l| {
                if let Some(line) = l {
                    trie.push_line(line);
                }
                true
            },
        );
        if let Ok(true) = v4 {
            tracing::warn!(path = %self.path(process, "net/fib_trie").display(),
                "routing table too large: its IPv4 addresses may be incomplete");
        }
        let mut inet6 = BTreeSet::new();
        let v6 = for_each_line(
            &self.path(process, "net/if_inet6"),
            MAX_IF_INET6_LINES,
            |l| {
                inet6.extend(l.and_then(addrs::if_inet6_line));
                true
            },
        );
        let mut addresses: Vec<IpAddr> = trie.finish().into_iter().map(IpAddr::V4).collect();
        addresses.extend(inet6.into_iter().map(IpAddr::V6));
        match (v4, v6) {
            (Err(error), Err(_)) => Err(error),
            _ => Ok(addresses),
        }
    }

    /// Calls `found` with the inode of every socket the process has open (needs the right
    /// to ptrace-read it). Reads the links only, never the files.
    pub fn for_each_socket(&self, pid: u32, mut found: impl FnMut(u64)) -> io::Result<()> {
        for entry in std::fs::read_dir(self.path(Process::Pid(pid), "fd"))? {
            let Ok(entry) = entry else { continue };
            // A descriptor closed since the listing is simply gone.
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            if let Some(inode) = text::socket_inode(target.as_os_str().as_bytes()) {
                found(inode);
            }
        }
        Ok(())
    }

    /// The process's name (`comm`), made safe to report.
    pub fn comm(&self, pid: u32) -> Option<String> {
        let bytes = read_small(&self.path(Process::Pid(pid), "comm")).ok()?;
        text::process_name(&bytes)
    }

    /// The id of the container the process runs in, from its `cgroup`.
    pub fn container(&self, pid: u32) -> Option<String> {
        let bytes = read_small(&self.path(Process::Pid(pid), "cgroup")).ok()?;
        text::container_id(&String::from_utf8_lossy(&bytes))
    }

    /// The agent's own `status` text.
    pub fn own_status(&self) -> Option<String> {
        let bytes = read_small(&self.path(Process::Current, "status")).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The host name of the agent's UTS namespace (`sys/kernel/hostname`).
    pub fn hostname(&self) -> Option<String> {
        let bytes = read_small(&self.root.join("sys/kernel/hostname")).ok()?;
        text::process_name(&bytes)
    }
}

/// A small file, at most [`SMALL_FILE`] bytes of it.
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(SMALL_FILE).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Feeds the file to `each` one line at a time (without the newline; `None` for a line that
/// is too long or not UTF-8) until `each` returns `false`, the file ends, or `max_lines`
/// lines were read. Returns whether it stopped at `max_lines`. Memory stays bounded
/// whatever the file holds.
pub fn for_each_line(
    path: &Path,
    max_lines: usize,
    each: impl FnMut(Option<&str>) -> bool,
) -> io::Result<bool> {
    for_each_line_in(File::open(path)?, max_lines, each)
}

/// [`for_each_line`] over any reader.
pub fn for_each_line_in(
    source: impl Read,
    max_lines: usize,
    mut each: impl FnMut(Option<&str>) -> bool,
) -> io::Result<bool> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, source);
    let mut buffer = Vec::with_capacity(256);
    for _ in 0..max_lines {
        buffer.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buffer)?;
        if read == 0 {
            return Ok(false);
        }
        let line = if buffer.last() == Some(&b'\n') {
            buffer.pop();
            std::str::from_utf8(&buffer).ok()
        } else if buffer.len() > MAX_LINE {
            reader.skip_until(b'\n')?;
            None
        } else {
            std::str::from_utf8(&buffer).ok()
        };
        if !each(line) {
            return Ok(false);
        }
    }
    // Truncated only if something is left.
    Ok(!reader.fill_buf()?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clearly_short_read_of_a_seq_file_ends_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("short");
        std::fs::write(&path, "a\nb\n").expect("write");
        let mut file = SeqFile::open(&path).expect("open");
        let mut buffer = vec![0u8; READ_BUFFER];
        assert_eq!(file.read(&mut buffer).expect("read"), 4);
        assert!(file.ended);
        assert_eq!(file.read(&mut buffer).expect("read"), 0);
        // A full page may be followed by more: no conclusion from it.
        std::fs::write(&path, "x".repeat(SEQ_PAGE * 3)).expect("write");
        let mut file = SeqFile::open(&path).expect("open");
        let mut page = vec![0u8; SEQ_PAGE];
        assert_eq!(file.read(&mut page).expect("read"), SEQ_PAGE);
        assert!(!file.ended);
        let mut small = [0u8; 100];
        assert_eq!(file.read(&mut small).expect("read"), 100);
        assert!(!file.ended, "a small buffer proves nothing");
    }

    #[test]
    fn lines_are_bounded_in_length_and_count() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("table");
        let long = "x".repeat(MAX_LINE * 3);
        let text = format!("first\n{long}\n\u{e9}t\u{e9}\nlast-without-newline");
        std::fs::write(&path, text.as_bytes()).expect("write");
        let mut seen = Vec::new();
        let truncated = for_each_line(&path, 100, |line| {
            seen.push(line.map(str::to_owned));
            true
        })
        .expect("read");
        assert!(!truncated);
        let expected = [
            Some("first"),
            None,
            Some("\u{e9}t\u{e9}"),
            Some("last-without-newline"),
        ];
        assert_eq!(seen, expected.map(|l| l.map(str::to_owned)));
        let mut count = 0;
        assert!(for_each_line(&path, 2, |_| {
            count += 1;
            true
        })
        .expect("read"));
        assert_eq!(count, 2);
        std::fs::write(&path, [0xff, 0xfe, b'\n']).expect("write");
        let mut lines = Vec::new();
        for_each_line(&path, 10, |line| {
            lines.push(line.is_some());
            true
        })
        .expect("read");
        assert_eq!(lines, vec![false]);
    }
}
