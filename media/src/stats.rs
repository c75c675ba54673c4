//! The engine's counters: one per outcome of a datagram, and the forwarding totals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters the engine updates and anyone holding a [`crate::MediaHandle`] reads.
#[derive(Debug, Default)]
pub struct MediaStats {
    /// Datagrams read from the socket.
    pub datagrams: AtomicU64,
    /// Datagrams that are not STUN, DTLS, RTP or RTCP (RFC 7983's first-byte ranges), or empty.
    pub garbage: AtomicU64,
    /// WebRTC-looking datagrams no participant's connection accepts (unknown source, wrong ICE
    /// credentials): normal for a few packets while a connection starts.
    pub unowned: AtomicU64,
    /// Datagrams handed to a participant's connection.
    pub delivered: AtomicU64,
    /// Participants dropped because their connection reported an error.
    pub errors: AtomicU64,
    /// Frames (video) and packets (audio) written towards subscribers.
    pub forwarded: AtomicU64,
    /// Frames a subscriber did not get because the layer it wants is not the one that arrived,
    /// its video is off, or a layer switch waits for a keyframe.
    pub skipped: AtomicU64,
    /// Datagrams the socket would not take (a full send buffer) or refused.
    pub send_errors: AtomicU64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: AtomicU64,
    /// Participants currently joined.
    pub participants: AtomicU64,
    /// How long forwarded packets spent in the engine: from reading the packet off the socket
    /// to sending its last copy (recorded once a turn).
    pub forwarding: Mutex<Latency>,
}

impl MediaStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A histogram of times in 100 µs steps up to 50 ms (beyond that: the last).
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    buckets: Vec<u32>,
    pub max_us: u64,
    pub count: u64,
}

const LATENCY_STEP_US: u64 = 100;
const LATENCY_BUCKETS: usize = 501;

impl Default for Latency {
    fn default() -> Self {
        Latency { buckets: vec![0; LATENCY_BUCKETS], max_us: 0, count: 0 }
    }
}

impl Latency {
    pub fn record(&mut self, us: u64) {
        let bucket = ((us / LATENCY_STEP_US) as usize).min(LATENCY_BUCKETS - 1);
        self.buckets[bucket] += 1;
        self.max_us = self.max_us.max(us);
        self.count += 1;
    }

    /// The upper edge of the bucket holding the `p`-th percentile (0–100), in microseconds.
    pub fn percentile_us(&self, p: f64) -> u64 {
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return (i as u64 + 1) * LATENCY_STEP_US;
            }
        }
        self.max_us
    }

    /// What was recorded after `earlier` (a copy of this histogram taken before); the maximum
    /// stays the overall one.
    pub fn since(&self, earlier: &Latency) -> Latency {
        let buckets: Vec<u32> = self.buckets.iter().zip(&earlier.buckets).map(|(a, b)| a.saturating_sub(*b)).collect();
        Latency { buckets, max_us: self.max_us, count: self.count.saturating_sub(earlier.count) }
    }

    pub fn merge(&mut self, other: &Latency) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.max_us = self.max_us.max(other.max_us);
        self.count += other.count;
    }
}
