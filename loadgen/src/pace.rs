//! The open-loop send schedule of `relay --rate`, and the thread that keeps it.
//!
//! A total rate of `rate` messages per second is spread evenly over `peers` peers: each sends
//! once every `peers / rate` seconds (its *interval*), starting at its own random *phase* in
//! `[0, interval)`, so the peers' sends are spread over the interval instead of arriving
//! together. [`Schedule::sends`] lists every send of the run in time order.
//!
//! The schedule is kept by one OS thread ([`spawn_pacer`]) with the operating system's sleep
//! (tens of microseconds late at worst on an idle machine), not by each peer's tokio timer, whose
//! millisecond ticks would add up to a millisecond to every latency. At each send's time it hands
//! the peer that send's scheduled time; the peer stamps the message with it, so a message the
//! generator sends late (because the peer was busy or the machine was) counts its lateness in its
//! latency instead of quietly moving the schedule (no coordinated omission).

use crate::payload::now_ns;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// Longest single sleep of the pacer, so that it notices a stop soon.
const MAX_SLEEP: Duration = Duration::from_millis(10);

/// When every peer sends, relative to the start of the traffic.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Nanoseconds between two sends of one peer.
    interval_ns: f64,
    /// Each peer's phase in nanoseconds (in `[0, interval_ns)`) and its number, by phase.
    order: Vec<(f64, usize)>,
}

impl Schedule {
    /// The schedule of `rate` messages per second in all over `peers` peers, with random phases
    /// drawn from `seed`.
    pub fn new(rate: f64, peers: usize, seed: u64) -> Self {
        assert!(rate > 0.0 && rate.is_finite() && peers > 0, "a positive rate and at least one peer");
        let interval_ns = peers as f64 * 1e9 / rate;
        let mut random = SplitMix64(seed);
        let mut order: Vec<(f64, usize)> = (0..peers).map(|peer| (random.unit() * interval_ns, peer)).collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        Schedule { interval_ns, order }
    }

    /// Time between two sends of one peer.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns as u64)
    }

    /// Peer `peer`'s phase: when it first sends, after the start.
    #[cfg(test)]
    pub fn phase(&self, peer: usize) -> Duration {
        let (phase, _) = self.order.iter().find(|(_, p)| *p == peer).expect("a peer of the schedule");
        Duration::from_nanos(*phase as u64)
    }

    /// Every send, in time order and without end: nanoseconds after the start, and which peer.
    /// Peer `p`'s `k`-th send is at `phase(p) + k × interval`.
    pub fn sends(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        (0u64..).flat_map(move |k| {
            let round = k as f64 * self.interval_ns;
            self.order.iter().map(move |&(phase, peer)| ((round + phase) as u64, peer))
        })
    }
}

/// Starts the thread that keeps `schedule` from `start_ns` (in [`now_ns`] time): at each send's
/// time it sends the scheduled time to that peer's channel in `peers` (a peer that is gone is
/// skipped). It ends once `stop` is cancelled.
pub fn spawn_pacer(
    schedule: Schedule,
    start_ns: u64,
    peers: Vec<UnboundedSender<u64>>,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("pacer".into()).spawn(move || {
        for (offset, peer) in schedule.sends() {
            let due = start_ns + offset;
            loop {
                if stop.is_cancelled() {
                    return;
                }
                let now = now_ns();
                if now >= due {
                    break;
                }
                std::thread::sleep(Duration::from_nanos(due - now).min(MAX_SLEEP));
            }
            let _ = peers[peer].send(due);
        }
    })
}

/// A seed that differs from run to run (clock and process id).
pub fn seed() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since_epoch.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
}

/// A small, fast pseudo-random generator (SplitMix64): plenty for spreading phases.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first `n` sends of a schedule.
    fn first(schedule: &Schedule, n: usize) -> Vec<(u64, usize)> {
        schedule.sends().take(n).collect()
    }

    #[test]
    fn the_interval_spreads_the_total_rate_over_the_peers() {
        // 20,000 msg/s over 2,000 peers: each sends ten times a second.
        let s = Schedule::new(20_000.0, 2000, 1);
        assert_eq!(s.interval(), Duration::from_millis(100));
        assert_eq!(Schedule::new(5000.0, 2000, 1).interval(), Duration::from_millis(400));
    }

    #[test]
    fn every_peer_sends_once_per_interval_at_its_phase() {
        let (peers, interval) = (50, 10_000_000u64); // 5,000 msg/s: one send per peer every 10 ms
        let s = Schedule::new(5000.0, peers, 7);
        let sends = first(&s, peers * 20);
        for peer in 0..peers {
            let times: Vec<u64> = sends.iter().filter(|(_, p)| *p == peer).map(|(t, _)| *t).collect();
            assert_eq!(times.len(), 20, "peer {peer}");
            let phase = s.phase(peer).as_nanos() as u64;
            for (k, &t) in times.iter().enumerate() {
                let want = phase + k as u64 * interval;
                assert!(t.abs_diff(want) <= 1, "peer {peer} send {k}: {t} ns, want {want}");
            }
        }
    }

    #[test]
    fn sends_come_in_time_order_and_at_the_total_rate() {
        let s = Schedule::new(40_000.0, 2000, 3);
        let sends = first(&s, 400_000); // ten seconds
        assert!(sends.windows(2).all(|w| w[0].0 <= w[1].0), "not in time order");
        // Every whole second holds its 40,000 sends (give or take the peers whose phase sits on
        // the edge), and every 10 ms about 400.
        for second in 0..9u64 {
            let n = sends.iter().filter(|(t, _)| t / 1_000_000_000 == second).count();
            assert!(n.abs_diff(40_000) <= 1, "second {second}: {n} sends");
        }
        let per_10ms = |bucket: u64| sends.iter().filter(|(t, _)| t / 10_000_000 == bucket).count();
        for bucket in 0..100 {
            let n = per_10ms(bucket);
            assert!((280..=520).contains(&n), "10 ms bucket {bucket}: {n} sends, want about 400");
        }
    }

    #[test]
    fn phases_are_random_spread_over_the_interval_and_not_synchronized() {
        let peers = 2000;
        let s = Schedule::new(20_000.0, peers, 11);
        let interval = s.interval();
        let phases: Vec<Duration> = (0..peers).map(|p| s.phase(p)).collect();
        assert!(phases.iter().all(|&p| p < interval));
        // Spread evenly: each tenth of the interval holds about a tenth of the peers.
        let mut tenths = [0usize; 10];
        for p in &phases {
            tenths[(p.as_nanos() * 10 / interval.as_nanos()) as usize] += 1;
        }
        assert!(tenths.iter().all(|&n| (140..=260).contains(&n)), "{tenths:?}");
        // Not synchronized: hardly any two peers share a microsecond, and the two peers of a room
        // (numbers 2r and 2r + 1) are not in step.
        let mut micros: Vec<u128> = phases.iter().map(|p| p.as_micros()).collect();
        micros.sort_unstable();
        micros.dedup();
        assert!(micros.len() > peers * 95 / 100, "{} distinct of {peers}", micros.len());
        let in_step = (0..peers / 2).filter(|r| phases[2 * r] == phases[2 * r + 1]).count();
        assert_eq!(in_step, 0);
    }

    #[test]
    fn phases_change_with_the_seed_and_repeat_with_it() {
        let (a, b, a2) = (Schedule::new(1000.0, 100, 1), Schedule::new(1000.0, 100, 2), Schedule::new(1000.0, 100, 1));
        assert_ne!(a.phase(0), b.phase(0));
        assert_eq!(first(&a, 300), first(&a2, 300));
    }

    #[test]
    fn the_pacer_hands_each_peer_its_scheduled_times() {
        let (tx, mut rx): (Vec<_>, Vec<_>) = (0..4).map(|_| tokio::sync::mpsc::unbounded_channel()).unzip();
        let s = Schedule::new(400.0, 4, 5); // each peer every 10 ms
        let stop = CancellationToken::new();
        let start = now_ns();
        let pacer = spawn_pacer(s.clone(), start, tx, stop.clone()).expect("a thread");
        for (peer, rx) in rx.iter_mut().enumerate() {
            let phase = s.phase(peer).as_nanos() as u64;
            for k in 0..3 {
                let due = rx.blocking_recv().expect("the pacer runs");
                assert!(due.abs_diff(start + phase + k * 10_000_000) <= 1, "peer {peer} send {k}");
                // Never early (late only when the machine is busy).
                assert!(now_ns() >= due, "peer {peer} send {k} came early");
            }
        }
        stop.cancel();
        pacer.join().expect("the pacer ends");
    }
}
