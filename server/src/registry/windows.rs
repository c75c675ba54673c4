//! Events counted per client address in fixed windows (joins per second, wrong passwords per
//! minute), for the in-memory registry; the cluster keeps the same counters in Redis as keys
//! that expire with their windows.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Counts events per client address in fixed windows, each starting with the address's first
/// event; ended windows are forgotten as time passes, so memory follows the addresses seen in
/// the last window only.
#[derive(Debug)]
pub struct Windows {
    length: Duration,
    by_ip: HashMap<IpAddr, (Instant, u32)>,
    /// When each window began, oldest first.
    started: VecDeque<(Instant, IpAddr)>,
}

impl Windows {
    /// Windows of `length`.
    pub fn new(length: Duration) -> Self {
        Windows { length, by_ip: HashMap::new(), started: VecDeque::new() }
    }

    fn forget_ended(&mut self, now: Instant) {
        while let Some(&(start, ip)) = self.started.front() {
            if now.duration_since(start) < self.length {
                break;
            }
            self.started.pop_front();
            if self.by_ip.get(&ip).is_some_and(|(s, _)| *s == start) {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// The events of `ip` in its current window, and how long until that window ends.
    pub fn count(&mut self, ip: IpAddr, now: Instant) -> (u32, Duration) {
        self.forget_ended(now);
        match self.by_ip.get(&ip) {
            Some((start, n)) => (*n, self.length.saturating_sub(now.duration_since(*start))),
            None => (0, self.length),
        }
    }

    /// Counts one event of `ip`.
    pub fn add(&mut self, ip: IpAddr, now: Instant) {
        self.forget_ended(now);
        let started = &mut self.started;
        self.by_ip
            .entry(ip)
            .or_insert_with(|| {
                started.push_back((now, ip));
                (now, 0)
            })
            .1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_and_are_forgotten() {
        let mut windows = Windows::new(Duration::from_secs(1));
        let (ip, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        windows.add(ip, t0);
        windows.add(ip, t0 + Duration::from_millis(300));
        windows.add(other, t0 + Duration::from_millis(500));
        assert_eq!(windows.count(ip, t0 + Duration::from_millis(600)), (2, Duration::from_millis(400)));
        assert_eq!(windows.count(ip, t0 + Duration::from_millis(1000)), (0, Duration::from_secs(1)));
        assert_eq!(windows.by_ip.len(), 1, "the ended window is forgotten");
        assert_eq!(windows.count(other, t0 + Duration::from_millis(1000)).0, 1);
        assert_eq!(windows.count(other, t0 + Duration::from_millis(1600)).0, 0);
        assert!(windows.by_ip.is_empty() && windows.started.is_empty());
    }
}
