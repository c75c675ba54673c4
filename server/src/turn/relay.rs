//! The relay sockets of the embedded TURN server: one UDP socket per allocation from the
//! configured port range, each wrapped so that it
//!
//! - sends to and takes datagrams from allowed peers only ([`PeerPolicy`]), whatever
//!   permissions the allocation holds: a second line behind the refusal of CreatePermission and
//!   ChannelBind;
//! - carries at most a set number of bits per second in each direction (a token bucket per
//!   direction; datagrams over the budget are dropped, as a congested link would);
//! - keeps its port in [`RelayPorts`] while it lives, so relays of this server may reach each
//!   other.

use super::peers::{PeerPolicy, RelayPorts};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use turn::relay::relay_range::RelayAddressGeneratorRanges;
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

/// What every relay socket shares.
#[derive(Debug)]
pub struct RelayShared {
    /// Where relays may send.
    pub policy: Arc<PeerPolicy>,
    /// The ports of live relays.
    pub ports: Arc<RelayPorts>,
    /// Bits per second each relay may carry in each direction; 0 for no cap.
    pub max_bps: u64,
    /// Datagrams dropped for a refused peer.
    pub refused_peer: AtomicU64,
    /// Datagrams dropped over the bandwidth cap.
    pub over_budget: AtomicU64,
}

/// Binds relay sockets in the port range and wraps them in [`GuardedRelay`].
pub struct GuardedRelays {
    /// The crate's generator for the port range.
    pub inner: RelayAddressGeneratorRanges,
    /// What the relays share.
    pub shared: Arc<RelayShared>,
}

#[async_trait]
impl RelayAddressGenerator for GuardedRelays {
    fn validate(&self) -> Result<(), turn::Error> {
        self.inner.validate()
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let (conn, relayed) = self.inner.allocate_conn(use_ipv4, requested_port).await?;
        let port = conn.local_addr()?.port();
        self.shared.ports.insert(port);
        let budget = |shared: &RelayShared| Mutex::new(Bucket::new(shared.max_bps));
        let relay = GuardedRelay {
            inner: conn,
            port,
            to_peers: budget(&self.shared),
            from_peers: budget(&self.shared),
            shared: self.shared.clone(),
        };
        Ok((Arc::new(relay), relayed))
    }
}

/// One allocation's relay socket.
pub struct GuardedRelay {
    inner: Arc<dyn Conn + Send + Sync>,
    port: u16,
    to_peers: Mutex<Bucket>,
    from_peers: Mutex<Bucket>,
    shared: Arc<RelayShared>,
}

impl Drop for GuardedRelay {
    fn drop(&mut self) {
        self.shared.ports.remove(self.port);
    }
}

impl GuardedRelay {
    fn within_budget(bucket: &Mutex<Bucket>, bytes: usize) -> bool {
        bucket.lock().unwrap_or_else(PoisonError::into_inner).take(bytes, Instant::now())
    }
}

#[async_trait]
impl Conn for GuardedRelay {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            if !self.shared.policy.allows(from) {
                self.shared.refused_peer.fetch_add(1, Ordering::Relaxed);
            } else if !Self::within_budget(&self.from_peers, n) {
                self.shared.over_budget.fetch_add(1, Ordering::Relaxed);
            } else {
                return Ok((n, from));
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.shared.policy.allows(target) {
            self.shared.refused_peer.fetch_add(1, Ordering::Relaxed);
            return Err(webrtc_util::Error::Other(format!("relaying to {target} is not allowed")));
        }
        if !Self::within_budget(&self.to_peers, buf.len()) {
            // Dropped as a congested link drops it; the sender's congestion control adapts.
            self.shared.over_budget.fetch_add(1, Ordering::Relaxed);
            return Ok(buf.len());
        }
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// A token bucket of bytes: `rate` bytes per second, holding at most one second's worth.
#[derive(Debug)]
pub struct Bucket {
    /// Bytes per second; 0 for no limit.
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket for `bits_per_second` (0: unlimited).
    pub fn new(bits_per_second: u64) -> Self {
        let rate = bits_per_second as f64 / 8.0;
        Bucket { rate, tokens: rate, at: Instant::now() }
    }

    /// Takes `bytes` at `now` if the budget has them.
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_holds_one_second_and_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket { rate: 1000.0, tokens: 1000.0, at: start };
        assert!(bucket.take(600, start));
        assert!(!bucket.take(600, start), "only 400 left");
        assert!(bucket.take(400, start));
        assert!(!bucket.take(1, start));
        assert!(bucket.take(500, start + Duration::from_millis(500)), "half a second refills 500");
        assert!(!bucket.take(1001, start + Duration::from_secs(60)), "never more than one second's worth");
        assert!(bucket.take(1000, start + Duration::from_secs(60)));
    }

    #[test]
    fn zero_means_unlimited() {
        let mut bucket = Bucket::new(0);
        assert!(bucket.take(usize::MAX / 2, Instant::now()));
    }
}
