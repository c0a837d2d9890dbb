//! PTR names of probed addresses, a name to present like any other. Looked up once per
//! address and kept for an hour (a bounded cache: a round over a /16 asks each address
//! once, not once per port and name).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use certfleet_prober::Resolver;

/// How long a PTR answer (or its absence) is kept.
const KEEP_FOR: Duration = Duration::from_secs(3600);
/// Most addresses remembered; the cache starts over when full.
const MAX_ENTRIES: usize = 65_536;
/// Deadline of one lookup; a slow resolver costs a name, never a probe.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

pub struct PtrNames {
    resolver: Resolver,
    cache: Mutex<HashMap<IpAddr, (Instant, Vec<String>)>>,
}

impl PtrNames {
    pub fn new(resolver: Resolver) -> PtrNames {
        PtrNames {
            resolver,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The PTR names of `address` (none on failure: logged at debug, tried again in an
    /// hour).
    pub async fn of(&self, address: IpAddr) -> Vec<String> {
        // hickory answers every loopback PTR query itself with `localhost` (RFC 6761).
        if address.is_loopback() {
            return Vec::new();
        }
        if let Some((at, names)) = self.lock().get(&address) {
            if at.elapsed() < KEEP_FOR {
                return names.clone();
            }
        }
        let names = match self.resolver.reverse(address, LOOKUP_TIMEOUT).await {
            Ok(names) => names
                .into_iter()
                .filter(|name| !is_localhost(name))
                .collect(),
            Err(error) => {
                tracing::debug!(%address, %error, "no PTR name");
                Vec::new()
            }
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(address, (Instant::now(), names.clone()));
        names
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, Vec<String>)>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.starts_with("localhost.")
}
