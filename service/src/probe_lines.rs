//! What keeps one prober process polite without letting one address hold up the others:
//! a line of leased endpoints per address, at most `max_per_address` of them probed at
//! once, and probe slots given only to endpoints whose address has room. An endpoint
//! waiting for its address takes no slot: a host with 2,000 ports that never answer
//! occupies `max_per_address` slots, and every other address keeps the rest.
//!
//! A line holds at most `max_waiting` endpoints; the leaser's next ones for a full line
//! are handed back to the store, due when the line is expected to reach them (their
//! place in the line times the address's mean probe time over `max_per_address`). So
//! leases are never spent waiting in memory, and an address with thousands of endpoints
//! costs a bounded amount of memory.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use certfleet_store::LeasedEndpoint;
use tokio::time::Instant;

/// The lines of every address with endpoints waiting or being probed.
pub struct ProbeLines {
    max_per_address: usize,
    max_waiting: usize,
    lines: HashMap<IpAddr, Line>,
    /// Addresses with an endpoint waiting and room for another probe, each once.
    ready: VecDeque<IpAddr>,
    waiting: usize,
    /// Mean probe time over every address: the guess for an address without one yet.
    mean: Duration,
}

#[derive(Default)]
struct Line {
    waiting: VecDeque<LeasedEndpoint>,
    running: usize,
    /// Mean probe time at this address (exponentially weighted), once one has ended.
    mean: Option<Duration>,
    /// Endpoints handed back since the line was last full, for their place in it.
    handed_back: u32,
}

impl ProbeLines {
    pub fn new(max_per_address: usize, max_waiting: usize) -> ProbeLines {
        ProbeLines {
            max_per_address: max_per_address.max(1),
            max_waiting: max_waiting.max(1),
            lines: HashMap::new(),
            ready: VecDeque::new(),
            waiting: 0,
            mean: Duration::from_millis(100),
        }
    }

    /// Endpoints waiting (not being probed), all addresses.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Queues `endpoint` at its address, or, when that line is full, says how long from
    /// now the line should take to reach it (hand it back, due then).
    pub fn push(&mut self, endpoint: LeasedEndpoint) -> Result<(), (LeasedEndpoint, Duration)> {
        let address = endpoint.address;
        let line = self.lines.entry(address).or_default();
        if line.waiting.len() >= self.max_waiting {
            line.handed_back = line.handed_back.saturating_add(1);
            let ahead = line.waiting.len() as u32 + line.running as u32 + line.handed_back;
            let mean = line.mean.unwrap_or(self.mean);
            let per_address = self.max_per_address as u32;
            return Err((endpoint, mean * ahead / per_address));
        }
        line.waiting.push_back(endpoint);
        self.waiting += 1;
        if line.waiting.len() == 1 && line.running < self.max_per_address {
            self.ready.push_back(address);
        }
        Ok(())
    }

    /// The next endpoint to probe, taking turns between the addresses with room; it
    /// counts as running at its address until [`done`](Self::done).
    pub fn start_next(&mut self) -> Option<LeasedEndpoint> {
        let address = self.ready.pop_front()?;
        let line = self.lines.get_mut(&address)?;
        let endpoint = line.waiting.pop_front()?;
        line.running += 1;
        self.waiting -= 1;
        if line.waiting.is_empty() {
            line.handed_back = 0;
        } else if line.running < self.max_per_address {
            self.ready.push_back(address);
        }
        Some(endpoint)
    }

    /// A probe at `address` that started at `started` has ended.
    pub fn done(&mut self, address: IpAddr, started: Instant) {
        let took = started.elapsed();
        self.mean = (self.mean * 7 + took) / 8;
        let Some(line) = self.lines.get_mut(&address) else {
            return;
        };
        line.mean = Some(line.mean.map_or(took, |mean| (mean * 7 + took) / 8));
        line.running = line.running.saturating_sub(1);
        if line.running + 1 == self.max_per_address && !line.waiting.is_empty() {
            // It was full, so not among the ready ones.
            self.ready.push_back(address);
        }
        if line.running == 0 && line.waiting.is_empty() {
            self.lines.remove(&address);
        }
    }

    /// Every waiting endpoint, taken out of the lines (at shutdown: to hand back).
    pub fn take_waiting(&mut self) -> Vec<LeasedEndpoint> {
        let mut taken = Vec::with_capacity(self.waiting);
        for line in self.lines.values_mut() {
            taken.extend(line.waiting.drain(..));
        }
        self.lines.retain(|_, line| line.running > 0);
        self.ready.clear();
        self.waiting = 0;
        taken
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lines.len()
    }
}

/// An optional pace of new connections per second, for the whole process.
pub struct Pace {
    every: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pace {
    pub fn new(connections_per_second: u32) -> Pace {
        Pace {
            every: (connections_per_second > 0)
                .then(|| Duration::from_secs(1) / connections_per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this connection's turn.
    pub async fn wait(&self) {
        let Some(every) = self.every else {
            return;
        };
        let slot = {
            // A poisoned lock only means another probe task panicked; the time is sound.
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + every;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certfleet_store::EndpointId;

    fn endpoint(id: i64, address: [u8; 4]) -> LeasedEndpoint {
        LeasedEndpoint {
            id: EndpointId(id),
            address: address.into(),
            port: 443,
            sni: None,
            sni_source: None,
            starttls: None,
            failures: 0,
            lease_until: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn a_busy_address_leaves_the_slots_to_the_others() {
        let mut lines = ProbeLines::new(2, 100);
        for id in 0..50 {
            lines.push(endpoint(id, [10, 0, 0, 1])).expect("room");
        }
        for n in 0..10 {
            lines
                .push(endpoint(50 + i64::from(n), [10, 0, 1, n]))
                .expect("room");
        }
        // Two probes go to the busy address, one to each other address, whatever the order.
        let started: Vec<LeasedEndpoint> = std::iter::from_fn(|| lines.start_next()).collect();
        let busy = started
            .iter()
            .filter(|e| e.address == IpAddr::from([10, 0, 0, 1]))
            .count();
        assert_eq!((busy, started.len()), (2, 12));
        assert!(lines.start_next().is_none(), "the busy address has no room");
        assert_eq!(lines.waiting(), 48);
        // One probe ends there: one more may start.
        lines.done([10, 0, 0, 1].into(), Instant::now());
        let next = lines.start_next().expect("room again");
        assert_eq!(next.address, IpAddr::from([10, 0, 0, 1]));
        assert!(lines.start_next().is_none());
    }

    #[tokio::test]
    async fn a_full_line_hands_back_with_later_and_later_turns_and_empty_lines_go() {
        let mut lines = ProbeLines::new(2, 4);
        for id in 0..4 {
            lines.push(endpoint(id, [10, 0, 0, 1])).expect("room");
        }
        let (first, second) = match (
            lines.push(endpoint(4, [10, 0, 0, 1])),
            lines.push(endpoint(5, [10, 0, 0, 1])),
        ) {
            (Err((a, first)), Err((b, second))) => {
                assert_eq!((a.id, b.id), (EndpointId(4), EndpointId(5)));
                (first, second)
            }
            other => panic!("a full line takes no more: {other:?}"),
        };
        assert!(
            first > Duration::ZERO && second > first,
            "{first:?} {second:?}"
        );
        let mut running = Vec::new();
        while let Some(endpoint) = lines.start_next() {
            running.push(endpoint);
            if running.len() == 2 {
                for endpoint in running.drain(..) {
                    lines.done(endpoint.address, Instant::now());
                }
            }
        }
        for endpoint in running.drain(..) {
            lines.done(endpoint.address, Instant::now());
        }
        assert_eq!(lines.waiting(), 0);
        assert_eq!(lines.tracked(), 0, "addresses without probes are forgotten");
    }

    #[tokio::test]
    async fn waiting_endpoints_can_be_taken_back() {
        let mut lines = ProbeLines::new(1, 10);
        for id in 0..3 {
            lines.push(endpoint(id, [10, 0, 0, 1])).expect("room");
        }
        let running = lines.start_next().expect("one runs");
        assert_eq!(lines.take_waiting().len(), 2);
        assert!(lines.start_next().is_none());
        lines.done(running.address, Instant::now());
        assert_eq!(lines.tracked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_are_paced() {
        let pace = Pace::new(10);
        let started = Instant::now();
        for _ in 0..5 {
            pace.wait().await;
        }
        // Five connections at ten per second: the fifth starts 400 ms after the first.
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }
}
