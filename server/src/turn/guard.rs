//! The embedded TURN server's front door: every datagram to the TURN port passes here before the
//! `turn` crate's request handling sees it.
//!
//! The crate implements TURN (allocations, permissions, channels, relaying) but trusts its
//! input more than a server on the open internet can: it keeps every nonce it hands out in a
//! map that only shrinks when the nonce comes back, relays to any peer address, has no
//! allocation quotas, stops its read loop on the first socket error and logs every bad datagram
//! at error level. This module owns the read loop instead and, per datagram:
//!
//! 1. ChannelData and Send indications go straight to the crate (it relays them only for an
//!    existing allocation, to a peer with a permission; the relay sockets check the peer and
//!    the bandwidth again, see [`super::relay`]).
//! 2. Requests are rate limited per source (IPv6 by /64) before anything is parsed further.
//! 3. Allocate, Refresh, CreatePermission and ChannelBind are authenticated here: a request
//!    without MESSAGE-INTEGRITY gets 401 with a **stateless nonce** (an expiry and an HMAC over
//!    it and the client's address, so a flood of bare requests costs no memory); a bad or
//!    expired nonce gets 438; bad credentials 401. Expired credentials may still refresh the
//!    allocation they made (a call outlives the credential's lifetime), never make a new one.
//! 4. Allocate is held to the quotas (per credential, per source address, in total): 486.
//! 5. CreatePermission and ChannelBind naming a peer the [`PeerPolicy`] refuses: 403.
//! 6. The authenticated request goes to the crate, whose nonce map now holds only nonces of
//!    requests that passed the integrity check; they are swept once they expire.
//!
//! Failures are counted and summarised in the log at most once per [`LOG_EVERY`].

use super::admission::{NonceMint, SourceLimiter};
use super::peers::{host_addresses, PeerPolicy};
use super::{rest_key, username_expiry, username_peer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stun::agent::TransactionId;
use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS};
use stun::error_code::{
    ErrorCode, ErrorCodeAttribute, CODE_ALLOC_QUOTA_REACHED, CODE_BAD_REQUEST, CODE_FORBIDDEN, CODE_STALE_NONCE,
    CODE_UNAUTHORIZED,
};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Message, MessageType, Setter, CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, MAGIC_COOKIE, METHOD_ALLOCATE,
    METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH,
};
use stun::textattrs::TextAttribute;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use turn::allocation::allocation_manager::Manager;
use turn::allocation::five_tuple::FiveTuple;
use turn::auth::AuthHandler;
use turn::proto::chandata::ChannelData;
use turn::proto::PROTO_UDP;
use turn::server::request::Request;
use webrtc_util::Conn;

/// How often failures are summarised in the log (when there were any).
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// How often expired nonces, idle rate-limit buckets and the host's addresses are refreshed.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// The largest datagram read (the crate reads the same).
const INBOUND_MTU: usize = 1500;

/// The most live allocations, per credential, per source address and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Allocations one participant's credential may hold (a browser makes one per peer
    /// connection and network interface).
    pub per_user: usize,
    /// Allocations from one source address (IPv6 by /64): several people behind one NAT share it.
    pub per_ip: usize,
    /// Allocations on the whole server (each holds a relay port and a file descriptor).
    pub total: usize,
}

impl Default for Quota {
    fn default() -> Self {
        Quota { per_user: 10, per_ip: 40, total: 2_000 }
    }
}

/// How many requests one source may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRate {
    /// Requests in a burst.
    pub burst: f64,
    /// Requests per second after it.
    pub per_second: f64,
}

impl Default for RequestRate {
    fn default() -> Self {
        RequestRate { burst: 256.0, per_second: 128.0 }
    }
}

/// What the guard counts (since start).
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests dropped by the per-source rate limit.
    pub rate_limited: AtomicU64,
    /// Requests answered 401 for lack of credentials (the first step of every client).
    pub challenged: AtomicU64,
    /// Requests answered 438: a nonce that expired or was not ours.
    pub stale_nonce: AtomicU64,
    /// Requests with wrong or expired credentials.
    pub bad_credentials: AtomicU64,
    /// CreatePermission and ChannelBind refused for their peer address.
    pub forbidden_peer: AtomicU64,
    /// Allocate refused by a quota.
    pub over_quota: AtomicU64,
    /// Datagrams that were not TURN, or not well formed.
    pub malformed: AtomicU64,
    /// Datagrams the TURN layer could not carry out (no allocation, no permission, ...).
    pub failed: AtomicU64,
}

impl Counters {
    /// Every counter with its name (`/metrics` labels).
    pub fn by_reason(&self) -> Vec<(&'static str, u64)> {
        const NAMES: [&str; 8] = [
            "rate_limited",
            "challenged",
            "stale_nonce",
            "bad_credentials",
            "forbidden_peer",
            "over_quota",
            "malformed",
            "failed",
        ];
        NAMES.into_iter().zip(self.all()).collect()
    }

    fn all(&self) -> [u64; 8] {
        [
            &self.rate_limited,
            &self.challenged,
            &self.stale_nonce,
            &self.bad_credentials,
            &self.forbidden_peer,
            &self.over_quota,
            &self.malformed,
            &self.failed,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The crate's nonce table: nonces of authenticated requests, swept when they expire.
pub type CrateNonces = Arc<tokio::sync::Mutex<HashMap<String, tokio::time::Instant>>>;

/// Everything the read loop needs.
pub struct Guard {
    /// The TURN listening socket.
    pub conn: Arc<UdpSocket>,
    /// The crate's allocations.
    pub manager: Arc<Manager>,
    /// The crate's nonce table.
    pub crate_nonces: CrateNonces,
    /// The crate's view of authentication (the same REST scheme as [`rest_key`]).
    pub auth: Arc<dyn AuthHandler + Send + Sync>,
    /// The shared secret of the REST scheme.
    pub secret: String,
    /// The TURN realm.
    pub realm: String,
    /// Where relays may send.
    pub policy: Arc<PeerPolicy>,
    /// Addresses of this host besides its interfaces (the advertised relay address).
    pub extra_own: Vec<IpAddr>,
    /// Allocation quotas.
    pub quota: Quota,
    /// Requests per source.
    pub rate: RequestRate,
    /// How long a nonce stays valid.
    pub nonce_lifetime: Duration,
    /// What happened, for logs, metrics and tests.
    pub counters: Arc<Counters>,
}

/// Why a request was answered by the guard itself.
struct Refusal {
    code: ErrorCode,
    reason: &'static str,
    /// Send a fresh nonce and the realm (401, 438).
    challenge: bool,
    /// The key to sign the answer with, when the request was authenticated.
    key: Option<Vec<u8>>,
}

/// An authenticated request.
struct Authed {
    username: String,
    key: Vec<u8>,
    expired: bool,
    nonce: String,
}

impl Guard {
    /// Reads datagrams until `shutdown`, then closes every allocation.
    pub async fn run(self, shutdown: CancellationToken) {
        let local = match self.conn.local_addr() {
            Ok(local) => local,
            Err(e) => {
                tracing::error!("TURN socket without an address: {e}");
                return;
            }
        };
        let dyn_conn: Arc<dyn Conn + Send + Sync> = self.conn.clone();
        let mut state = LoopState {
            local,
            dyn_conn,
            mint: NonceMint::new(self.nonce_lifetime),
            limiter: SourceLimiter::new(self.rate),
            logged: self.counters.all(),
            logged_at: Instant::now(),
        };
        let mut buf = vec![0u8; INBOUND_MTU];
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = sweep.tick() => self.sweep(&mut state).await,
                received = self.conn.recv_from(&mut buf) => match received {
                    Ok((n, from)) => self.handle(&mut state, &buf[..n], from).await,
                    Err(e) => {
                        // One bad receive (an ICMP error surfacing, say) must not stop the server.
                        tracing::debug!("TURN receive: {e}");
                        bump(&self.counters.failed);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                },
            }
        }
        if let Err(e) = self.manager.close().await {
            tracing::debug!("closing TURN allocations: {e}");
        }
    }

    async fn sweep(&self, state: &mut LoopState) {
        let now = Instant::now();
        state.limiter.sweep(now);
        let keep = self.nonce_lifetime + SWEEP_EVERY;
        self.crate_nonces.lock().await.retain(|_, issued| issued.elapsed() < keep);
        self.policy.set_own(host_addresses().into_iter().chain(self.extra_own.iter().copied()));
        if now.duration_since(state.logged_at) >= LOG_EVERY {
            let counts = self.counters.all();
            let delta: Vec<u64> = counts.iter().zip(state.logged).map(|(now, then)| now - then).collect();
            // Challenges are every client's first step, not a failure.
            if delta.iter().enumerate().any(|(i, &d)| i != 1 && d > 0) {
                tracing::info!(
                    rate_limited = delta[0],
                    stale_nonce = delta[2],
                    bad_credentials = delta[3],
                    forbidden_peer = delta[4],
                    over_quota = delta[5],
                    malformed = delta[6],
                    failed = delta[7],
                    "TURN datagrams refused in the last {} s",
                    now.duration_since(state.logged_at).as_secs()
                );
            }
            state.logged = counts;
            state.logged_at = now;
        }
    }

    async fn handle(&self, state: &mut LoopState, datagram: &[u8], from: SocketAddr) {
        if ChannelData::is_channel_data(datagram) {
            return self.pass(state, datagram, from).await;
        }
        let Some(m) = decode(datagram) else {
            bump(&self.counters.malformed);
            return;
        };
        if m.typ.class == CLASS_INDICATION {
            return self.pass(state, datagram, from).await;
        }
        if m.typ.class != CLASS_REQUEST {
            bump(&self.counters.malformed);
            return;
        }
        if !state.limiter.allow(crate::addr::ip_group(from.ip()), Instant::now()) {
            bump(&self.counters.rate_limited);
            return;
        }
        let method = m.typ.method;
        if method == METHOD_BINDING {
            return self.pass(state, datagram, from).await;
        }
        if ![METHOD_ALLOCATE, METHOD_REFRESH, METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND].contains(&method) {
            bump(&self.counters.malformed);
            let refusal = Refusal { code: CODE_BAD_REQUEST, reason: "Bad Request", challenge: false, key: None };
            return self.refuse(state, &m, from, refusal).await;
        }
        match self.admit(state, &m, from).await {
            Ok(nonce) => {
                self.crate_nonces.lock().await.entry(nonce).or_insert_with(tokio::time::Instant::now);
                self.pass(state, datagram, from).await;
            }
            Err(refusal) => self.refuse(state, &m, from, refusal).await,
        }
    }

    /// Authentication, expiry, quotas and peer addresses of one request; the nonce to let
    /// through on success.
    async fn admit(&self, state: &mut LoopState, m: &Message, from: SocketAddr) -> Result<String, Refusal> {
        let authed = self.authenticate(state, m, from)?;
        let method = m.typ.method;
        let five_tuple = FiveTuple { src_addr: from, dst_addr: state.local, protocol: PROTO_UDP };
        let existing = self.manager.get_allocations_info(Some(vec![five_tuple])).await.remove(&five_tuple);
        if authed.expired {
            // A call outlives its credential: the allocation made with it may be kept alive.
            let own_allocation = existing.as_ref().is_some_and(|a| a.username == authed.username);
            if method == METHOD_ALLOCATE || !own_allocation {
                bump(&self.counters.bad_credentials);
                return Err(Refusal { code: CODE_UNAUTHORIZED, reason: "Expired", challenge: true, key: None });
            }
        }
        if method == METHOD_ALLOCATE && existing.is_none() {
            self.check_quota(&authed, from).await.map_err(|reason| {
                bump(&self.counters.over_quota);
                Refusal { code: CODE_ALLOC_QUOTA_REACHED, reason, challenge: false, key: Some(authed.key.clone()) }
            })?;
        }
        if method == METHOD_CREATE_PERMISSION || method == METHOD_CHANNEL_BIND {
            let Some(peers) = peer_addresses(m) else {
                bump(&self.counters.malformed);
                return Err(Refusal {
                    code: CODE_BAD_REQUEST,
                    reason: "Bad Request",
                    challenge: false,
                    key: Some(authed.key),
                });
            };
            if let Some(refused) = peers.iter().find(|p| !self.policy.allows(**p)) {
                tracing::debug!(%from, peer = %refused, "TURN peer refused");
                bump(&self.counters.forbidden_peer);
                return Err(Refusal {
                    code: CODE_FORBIDDEN,
                    reason: "Forbidden",
                    challenge: false,
                    key: Some(authed.key),
                });
            }
        }
        Ok(authed.nonce)
    }

    /// The long-term credential mechanism, with our stateless nonces.
    fn authenticate(&self, state: &mut LoopState, m: &Message, from: SocketAddr) -> Result<Authed, Refusal> {
        let challenge = |code, reason| Refusal { code, reason, challenge: true, key: None };
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            bump(&self.counters.challenged);
            return Err(challenge(CODE_UNAUTHORIZED, "Unauthorized"));
        }
        let text = |attr| TextAttribute::get_from_as(m, attr).map(|t| t.text).ok();
        let (Some(nonce), Some(username), Some(realm)) = (text(ATTR_NONCE), text(ATTR_USERNAME), text(ATTR_REALM))
        else {
            bump(&self.counters.malformed);
            return Err(Refusal { code: CODE_BAD_REQUEST, reason: "Bad Request", challenge: false, key: None });
        };
        if !state.mint.valid(&nonce, from.ip(), unix_now()) {
            bump(&self.counters.stale_nonce);
            return Err(challenge(CODE_STALE_NONCE, "Stale Nonce"));
        }
        let Some(expiry) = username_expiry(&username).filter(|_| realm == self.realm) else {
            bump(&self.counters.bad_credentials);
            return Err(challenge(CODE_UNAUTHORIZED, "Unauthorized"));
        };
        let key = rest_key(&self.secret, &username, &realm);
        let checked = std::panic::catch_unwind(|| MessageIntegrity(key.clone()).check(&mut m.clone()).is_ok());
        if !matches!(checked, Ok(true)) {
            bump(&self.counters.bad_credentials);
            return Err(challenge(CODE_UNAUTHORIZED, "Unauthorized"));
        }
        Ok(Authed { username, key, expired: expiry < unix_now(), nonce })
    }

    async fn check_quota(&self, authed: &Authed, from: SocketAddr) -> Result<(), &'static str> {
        let all = self.manager.get_allocations_info(None).await;
        if all.len() >= self.quota.total {
            return Err("Allocation Quota Reached (server)");
        }
        let group = crate::addr::ip_group(from.ip());
        let from_ip = all.keys().filter(|t| crate::addr::ip_group(t.src_addr.ip()) == group).count();
        if from_ip >= self.quota.per_ip {
            return Err("Allocation Quota Reached (address)");
        }
        let peer = username_peer(&authed.username);
        let of_user = all.values().filter(|a| username_peer(&a.username) == peer).count();
        if of_user >= self.quota.per_user {
            return Err("Allocation Quota Reached");
        }
        Ok(())
    }

    async fn refuse(&self, state: &mut LoopState, m: &Message, from: SocketAddr, refusal: Refusal) {
        let nonce = refusal.challenge.then(|| state.mint.issue(from.ip(), unix_now()));
        match error_answer(m, &refusal, nonce, &self.realm) {
            Ok(answer) => {
                if let Err(e) = self.conn.send_to(&answer, from).await {
                    tracing::debug!("TURN answer to {from}: {e}");
                }
            }
            Err(e) => tracing::debug!("TURN answer to {from} not built: {e}"),
        }
    }

    async fn pass(&self, state: &mut LoopState, datagram: &[u8], from: SocketAddr) {
        let mut request = Request {
            conn: state.dyn_conn.clone(),
            src_addr: from,
            buff: datagram.to_vec(),
            allocation_manager: self.manager.clone(),
            nonces: self.crate_nonces.clone(),
            auth_handler: self.auth.clone(),
            realm: self.realm.clone(),
            channel_bind_timeout: turn::proto::lifetime::DEFAULT_LIFETIME,
        };
        if let Err(e) = request.handle_request().await {
            tracing::trace!(%from, "TURN datagram not carried out: {e}");
            bump(&self.counters.failed);
        }
    }
}

/// The read loop's own state.
struct LoopState {
    local: SocketAddr,
    dyn_conn: Arc<dyn Conn + Send + Sync>,
    mint: NonceMint,
    limiter: SourceLimiter,
    /// The counters when they were last logged.
    logged: [u64; 8],
    logged_at: Instant,
}

/// The error response to `m` for `refusal`, with `nonce` and the realm for a challenge.
fn error_answer(m: &Message, refusal: &Refusal, nonce: Option<String>, realm: &str) -> Result<Vec<u8>, stun::Error> {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(TransactionIdSetter(m.transaction_id)),
        Box::new(MessageType::new(m.typ.method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute { code: refusal.code, reason: refusal.reason.as_bytes().to_vec() }),
    ];
    if let Some(nonce) = nonce {
        setters.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce)));
        setters.push(Box::new(TextAttribute::new(ATTR_REALM, realm.to_owned())));
    }
    if let Some(key) = &refusal.key {
        setters.push(Box::new(MessageIntegrity(key.clone())));
    }
    setters.push(Box::new(FINGERPRINT));
    let mut answer = Message::new();
    answer.build(&setters)?;
    Ok(answer.raw)
}

/// Sets a message's transaction id (as the crate does with a bare `Message`).
struct TransactionIdSetter(TransactionId);

impl Setter for TransactionIdSetter {
    fn add_to(&self, m: &mut Message) -> Result<(), stun::Error> {
        m.transaction_id = self.0;
        m.write_transaction_id();
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// A STUN message, or `None` for anything else (the parser never takes the loop down).
fn decode(datagram: &[u8]) -> Option<Message> {
    if !stun::message::is_message(datagram) {
        return None;
    }
    std::panic::catch_unwind(|| {
        let mut m = Message { raw: datagram.to_vec(), ..Default::default() };
        m.decode().ok().map(|()| m)
    })
    .ok()
    .flatten()
}

/// What the guard reads from a datagram before the crate sees it: the message type and the peer
/// addresses (for the fuzz target: any input must come back without a panic).
pub fn inspect(datagram: &[u8]) -> Option<(MessageType, Option<Vec<SocketAddr>>)> {
    if ChannelData::is_channel_data(datagram) {
        return None;
    }
    let m = decode(datagram)?;
    Some((m.typ, peer_addresses(&m)))
}

/// Every XOR-PEER-ADDRESS of `m` (RFC 5766 §14.3), or `None` if one is malformed.
fn peer_addresses(m: &Message) -> Option<Vec<SocketAddr>> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut peers = Vec::new();
    for attr in m.attributes.0.iter().filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS) {
        let v = &attr.value;
        if v.len() < 4 {
            return None;
        }
        let port = u16::from_be_bytes([v[2] ^ cookie[0], v[3] ^ cookie[1]]);
        let ip = match (v[1], v.len()) {
            (0x01, 8) => {
                let mut octets = [0u8; 4];
                for (i, o) in octets.iter_mut().enumerate() {
                    *o = v[4 + i] ^ cookie[i];
                }
                IpAddr::from(octets)
            }
            (0x02, 20) => {
                let mut mask = [0u8; 16];
                mask[..4].copy_from_slice(&cookie);
                mask[4..].copy_from_slice(&m.transaction_id.0);
                let mut octets = [0u8; 16];
                for (i, o) in octets.iter_mut().enumerate() {
                    *o = v[4 + i] ^ mask[i];
                }
                IpAddr::from(octets)
            }
            _ => return None,
        };
        peers.push(SocketAddr::new(ip, port));
    }
    Some(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_are_read_from_every_attribute() {
        use stun::xoraddr::XorMappedAddress;
        let peers: [SocketAddr; 3] =
            ["8.8.8.8:53".parse().unwrap(), "127.0.0.1:22".parse().unwrap(), "[2001:db8::1]:443".parse().unwrap()];
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(TransactionId::new()), Box::new(MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST))];
        for p in peers {
            setters.push(Box::new(PeerAttr(XorMappedAddress { ip: p.ip(), port: p.port() })));
        }
        let mut m = Message::new();
        m.build(&setters).unwrap();
        let decoded = decode(&m.raw).unwrap();
        assert_eq!(peer_addresses(&decoded).unwrap(), peers);
        assert!(decode(b"GET / HTTP/1.1\r\n\r\n").is_none());
        assert!(decode(&m.raw[..m.raw.len() - 3]).is_none(), "truncated");
    }

    /// XOR-PEER-ADDRESS, written as XOR-MAPPED-ADDRESS is.
    struct PeerAttr(stun::xoraddr::XorMappedAddress);

    impl Setter for PeerAttr {
        fn add_to(&self, m: &mut Message) -> Result<(), stun::Error> {
            self.0.add_to_as(m, ATTR_XOR_PEER_ADDRESS)
        }
    }
}
