//! What a run counts and how it prints: latency percentiles, error tallies, sizes and times.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// Highest latency a histogram holds, in nanoseconds (a minute: anything slower is a failure
/// anyway, and is clamped to this).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency histogram many tasks record into at once: one lock per shard, so tasks on
/// different threads rarely wait for each other.
pub struct Latencies {
    /// The shards; a task always uses the one its number picks.
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Latencies {
    /// Empty histograms, `shards` of them, for 1 ns to a minute at three significant digits.
    pub fn new(shards: usize) -> Self {
        Latencies { shards: (0..shards.max(1)).map(|_| Mutex::new(histogram())).collect() }
    }

    /// Records one latency of `ns` nanoseconds in the shard of task `task`.
    pub fn record(&self, task: usize, ns: u64) {
        let mut shard = self.shards[task % self.shards.len()].lock().unwrap_or_else(|e| e.into_inner());
        shard.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// All shards added up.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            all.add(&*shard).expect("shards have the same bounds");
        }
        all
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// Percentiles of a latency histogram, in microseconds (two decimals).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct LatencySummary {
    /// How many latencies were recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl LatencySummary {
    /// The summary of `h` (nanoseconds); all zero if it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| round2(ns as f64 / 1000.0);
        LatencySummary {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: round2(h.mean() / 1000.0),
        }
    }
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p99 {}, p99.9 {}, max {} (mean {})",
            Micros(self.p50_us),
            Micros(self.p99_us),
            Micros(self.p999_us),
            Micros(self.max_us),
            Micros(self.mean_us)
        )
    }
}

/// A duration in microseconds, shown as `µs` below a millisecond and as `ms` from there, with
/// two decimals.
pub struct Micros(pub f64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1000.0 {
            write!(f, "{:.2} µs", self.0)
        } else {
            write!(f, "{:.2} ms", self.0 / 1000.0)
        }
    }
}

/// Rounds to two decimals (for JSON that people read).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Seconds of a duration, rounded to two decimals.
pub fn secs(d: Duration) -> f64 {
    round2(d.as_secs_f64())
}

/// Counts of what went wrong, by kind: `error:<code>` for an error frame, `close:<code>` for a
/// close frame from the server, `dropped` for a connection that ended without one, and so on.
#[derive(Debug, Default)]
pub struct Errors {
    /// Count by kind.
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Errors {
    /// Counts one error of `kind`.
    pub fn add(&self, kind: impl Into<String>) {
        self.count(kind.into());
    }

    /// Counts one error of `kind`, and prints `detail` on stderr if it is the first of its kind
    /// (so a run that fails ten thousand times the same way says why once).
    pub fn note(&self, kind: impl Into<String>, detail: impl fmt::Display) {
        let kind = kind.into();
        if self.count(kind.clone()) == 1 {
            eprintln!("first {kind}: {detail}");
        }
    }

    /// Adds one to `kind`; returns its new count.
    fn count(&self, kind: String) -> u64 {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(kind).or_default();
        *n += 1;
        *n
    }

    /// The counts so far, by kind.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Error counts as one line: `none`, or `kind n, kind n`.
pub fn error_line(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors.iter().map(|(kind, n)| format!("{kind} {n}")).collect::<Vec<_>>().join(", ")
}

/// The memory a server holds, in KiB, at the moments a run reads it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Rss {
    /// Before the first connection.
    pub before_kib: u64,
    /// With every connection open and joined.
    pub joined_kib: u64,
    /// At the end of the run, connections still open.
    pub end_kib: u64,
    /// (joined − before) / connections.
    pub per_connection_kib: f64,
}

impl Rss {
    /// The figures for `connections` connections.
    pub fn new(before_kib: u64, joined_kib: u64, end_kib: u64, connections: usize) -> Self {
        let per_connection_kib =
            if connections == 0 { 0.0 } else { round2((joined_kib as f64 - before_kib as f64) / connections as f64) };
        Rss { before_kib, joined_kib, end_kib, per_connection_kib }
    }
}

impl fmt::Display for Rss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |kib: u64| kib as f64 / 1024.0;
        write!(
            f,
            "before {:.1} MiB, all joined {:.1} MiB, end {:.1} MiB; {:.2} KiB per connection",
            mib(self.before_kib),
            mib(self.joined_kib),
            mib(self.end_kib),
            self.per_connection_kib
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_spread() {
        let lat = Latencies::new(4);
        // 1..=1000 µs, one each, spread over the shards.
        for (task, us) in (1..=1000u64).enumerate() {
            lat.record(task, us * 1000);
        }
        let s = LatencySummary::of(&lat.merged());
        assert_eq!(s.count, 1000);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.002 + 0.01;
        assert!(near(s.p50_us, 500.0), "{s:?}");
        assert!(near(s.p99_us, 990.0), "{s:?}");
        assert!(near(s.p999_us, 999.0), "{s:?}");
        assert!(near(s.max_us, 1000.0), "{s:?}");
        assert!(near(s.mean_us, 500.5), "{s:?}");
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        assert_eq!(LatencySummary::of(&Latencies::new(2).merged()), LatencySummary::default());
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let lat = Latencies::new(1);
        lat.record(0, u64::MAX);
        lat.record(0, 0);
        let s = LatencySummary::of(&lat.merged());
        assert_eq!(s.count, 2);
        assert!(s.max_us >= 59_000_000.0, "{s:?}");
    }

    #[test]
    fn durations_print_in_the_unit_that_fits() {
        assert_eq!(Micros(850.123).to_string(), "850.12 µs");
        assert_eq!(Micros(12_345.0).to_string(), "12.35 ms");
        let s =
            LatencySummary { count: 1, p50_us: 120.0, p99_us: 1500.0, p999_us: 2000.0, max_us: 3000.0, mean_us: 130.0 };
        assert_eq!(s.to_string(), "p50 120.00 µs, p99 1.50 ms, p99.9 2.00 ms, max 3.00 ms (mean 130.00 µs)");
    }

    #[test]
    fn errors_tally_by_kind() {
        let e = Errors::default();
        assert_eq!(error_line(&e.snapshot()), "none");
        e.add("close:1013");
        e.add("error:unknown_peer");
        e.add("close:1013");
        assert_eq!(error_line(&e.snapshot()), "close:1013 2, error:unknown_peer 1");
    }

    #[test]
    fn rss_per_connection() {
        let rss = Rss::new(10_000, 30_000, 31_000, 1000);
        assert_eq!(rss.per_connection_kib, 20.0);
        assert_eq!(Rss::new(1, 2, 3, 0).per_connection_kib, 0.0);
    }
}
