//! What probe intervals that follow the certificate cost a fleet: probes per day for N
//! endpoints with and without them, and how soon rotations are seen, simulated over one
//! day with the store's own [`ProbeSchedule`] (no database). `bench/adaptive-load.sh`.
//!
//! The mix (the seed fleet's, with the short-lived share): 30 % of endpoints serve
//! short-lived certificates (a third each of 1, 3 and 6 days' lifetime, renewed at two
//! thirds of their life, as cert-manager does), 70 % long-lived ones (398 days) whose days
//! left are spread like `bench/seed_lookup.sql`'s: uniform from 30 days past expiry to 370
//! days ahead, renewed 30 days before their end. Every endpoint starts the day at a random
//! point of its certificate's life and of its probe interval.
//!
//! `cargo run -p certfleet-store --example adaptive_load -- [ENDPOINTS]`

use certfleet_model::ProbeStatus;
use certfleet_store::{ProbeSchedule, Validity};
use time::{Duration, OffsetDateTime};

const DAY: Duration = Duration::days(1);

/// A certificate kind of the mix: lifetime, and when before its end it is renewed.
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    lifetime: Duration,
    renew_before_end: Duration,
}

/// What one simulated day gave for a share of the fleet.
#[derive(Default, Clone, Copy)]
struct Tally {
    endpoints: u64,
    probes: u64,
    rotations: u64,
    latency_seconds: f64,
    worst_latency_seconds: f64,
}

/// xorshift64*: a deterministic stream of numbers, so that runs compare.
struct Noise(u64);

impl Noise {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() {
    let endpoints: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(1_000_000);
    let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let adaptive = ProbeSchedule::default();
    let fixed = ProbeSchedule {
        lifetime_fraction: 0.0,
        ..ProbeSchedule::default()
    };
    let short = |name, days: i64| Kind {
        name,
        lifetime: Duration::days(days),
        renew_before_end: Duration::days(days) / 3,
    };
    let long = Kind {
        name: "398-day",
        lifetime: Duration::days(398),
        renew_before_end: Duration::days(30),
    };
    let kinds = [
        short("1-day", 1),
        short("3-day", 3),
        short("6-day", 6),
        long,
    ];
    println!("endpoints: {endpoints}; one simulated day; probe.interval 24h, min_interval 1h, lifetime_fraction 0.1, thresholds 30/14/7/3/1 days");
    println!(
        "{:<9} {:>9} {:>12} {:>12} {:>10} {:>14} {:>14}",
        "schedule", "kind", "endpoints", "probes/day", "rotations", "mean latency", "worst latency"
    );
    let mut totals = Vec::new();
    for (label, schedule) in [("fixed", &fixed), ("adaptive", &adaptive)] {
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let mut tallies = [Tally::default(); 4];
        for id in 0..endpoints {
            let pick = noise.unit();
            let kind = if pick < 0.1 {
                0
            } else if pick < 0.2 {
                1
            } else if pick < 0.3 {
                2
            } else {
                3
            };
            let tally = &mut tallies[kind];
            simulate(schedule, kinds[kind], id as i64, start, &mut noise, tally);
        }
        let mut total = Tally::default();
        for (kind, tally) in kinds.iter().zip(&tallies) {
            print_row(label, kind.name, tally);
            total.endpoints += tally.endpoints;
            total.probes += tally.probes;
            total.rotations += tally.rotations;
            total.latency_seconds += tally.latency_seconds;
            total.worst_latency_seconds =
                total.worst_latency_seconds.max(tally.worst_latency_seconds);
        }
        print_row(label, "all", &total);
        totals.push(total.probes);
    }
    let (fixed_probes, adaptive_probes) = (totals[0], totals[1]);
    let extra = adaptive_probes as i64 - fixed_probes as i64;
    println!(
        "adaptive intervals add {extra} probes/day ({:+.1} %): {:.1} probes/s on average across all probers, against {:.1}",
        100.0 * extra as f64 / fixed_probes as f64,
        adaptive_probes as f64 / 86_400.0,
        fixed_probes as f64 / 86_400.0
    );
}

fn print_row(label: &str, kind: &str, tally: &Tally) {
    let mean = if tally.rotations == 0 {
        0.0
    } else {
        tally.latency_seconds / tally.rotations as f64
    };
    println!(
        "{label:<9} {kind:>9} {:>12} {:>12} {:>10} {:>13.1}h {:>13.1}h",
        tally.endpoints,
        tally.probes,
        tally.rotations,
        mean / 3600.0,
        tally.worst_latency_seconds / 3600.0
    );
}

/// One endpoint through one day: probes as `schedule` would plan them, its certificate
/// renewed on time, each rotation's latency from the last probe that saw the old
/// certificate to the first that saw the new one.
fn simulate(
    schedule: &ProbeSchedule,
    kind: Kind,
    id: i64,
    start: OffsetDateTime,
    noise: &mut Noise,
    tally: &mut Tally,
) {
    tally.endpoints += 1;
    let renewal_age = kind.lifetime - kind.renew_before_end;
    // The certificate served at the start: long-lived ones spread like the seed's days
    // left (-30 to 370), short-lived ones anywhere before their renewal.
    let not_before = if kind.name == "398-day" {
        let left = Duration::seconds_f64((noise.unit() * 400.0 - 30.0) * 86_400.0);
        start + left - kind.lifetime
    } else {
        start - renewal_age * noise.unit()
    };
    let mut served = Validity {
        not_before,
        not_after: not_before + kind.lifetime,
    };
    // Long-lived certificates already past their renewal point stay as they are (the
    // seed's expired and expiring ones); the others renew at it.
    let renews = |v: Validity| v.not_before + renewal_age;
    let renewing = kind.name != "398-day" || renews(served) > start;
    // The probe before the day: the steady state puts the day's start anywhere in the
    // interval that probe planned.
    let mut seen = served;
    let first_wait = schedule.next_probe_at(id, ProbeStatus::Ok, 0, start, Some(served)) - start;
    let mut at = start + first_wait * noise.unit();
    let mut last_seen_at = at - first_wait;
    while at < start + DAY {
        while renewing && renews(served) <= at {
            let renewed_at = renews(served);
            served = Validity {
                not_before: renewed_at,
                not_after: renewed_at + kind.lifetime,
            };
        }
        tally.probes += 1;
        if served != seen {
            tally.rotations += 1;
            let latency = (at - last_seen_at).as_seconds_f64();
            tally.latency_seconds += latency;
            tally.worst_latency_seconds = tally.worst_latency_seconds.max(latency);
            seen = served;
        }
        last_seen_at = at;
        at = schedule.next_probe_at(id, ProbeStatus::Ok, 0, at, Some(served));
    }
}
