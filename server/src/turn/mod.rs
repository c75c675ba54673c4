//! TURN credentials for browsers, minted per join with the "TURN REST API" scheme that coturn
//! implements as `use-auth-secret` (and that the embedded TURN server checks the same way):
//!
//! - username: `<expiry>:<peer>`, where `<expiry>` is a Unix time in seconds;
//! - password: base64(HMAC-SHA1(shared secret, username)).
//!
//! The TURN server needs only the shared secret to check a credential and its expiry, so the
//! signaling server and the TURN server share no state, and the secret never reaches a browser.
//!
//! [`EmbeddedTurn`] is a TURN server inside this process (`--turn-embedded`). The `turn` crate
//! (webrtc-rs) carries out TURN itself: allocations, permissions, channels and a real relay
//! socket per allocation. What a server on the open internet needs on top of it lives here,
//! in front of and around the crate rather than in a fork of it (its request handling, allocation
//! manager and relay generator are public, so the read loop and the relay sockets can be ours):
//!
//! - [`guard`]: the read loop — per-source rate limit, stateless nonces, credential expiry,
//!   allocation quotas, refusal (403) of peer addresses inside the host's networks, failures
//!   counted and logged in summaries;
//! - [`peers`]: which peer addresses are internal (loopback, private, link-local, ...);
//! - [`relay`]: relay sockets that check the peer again and cap each allocation's bandwidth.
//!
//! (`turn-server`, the other crate considered, relays only between its own clients, never checks
//! credential expiry, and cannot be stopped from the outside.)

use base64::Engine;
use confab_protocol::IceServer;
use guard::Guard;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use peers::{PeerPolicy, RelayPorts};
use relay::{GuardedRelays, RelayShared};
use sha1::Sha1;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use turn::allocation::allocation_manager::{Manager, ManagerConfig};

mod admission;
pub mod guard;
pub mod peers;
pub mod relay;

pub use guard::{Counters, Quota, RequestRate};

/// How the server hands out TURN servers.
#[derive(Clone)]
pub struct TurnConfig {
    /// `turn:`/`turns:` URLs, e.g. `turn:turn.example.org:3478?transport=udp`.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    pub secret: String,
    /// How long a minted credential stays valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig").field("urls", &self.urls).field("secret", &"..").field("ttl", &self.ttl).finish()
    }
}

impl TurnConfig {
    /// The ICE server entry for one participant, valid for [`TurnConfig::ttl`] from `now`.
    pub fn ice_server(&self, peer: &str, now: SystemTime) -> IceServer {
        let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + self.ttl;
        let (username, password) = credentials(&self.secret, expiry.as_secs(), peer);
        IceServer { urls: self.urls.clone(), username: Some(username), credential: Some(password) }
    }
}

/// The username and password for `peer`, expiring at `expiry` (Unix seconds).
pub fn credentials(secret: &str, expiry: u64, peer: &str) -> (String, String) {
    let username = format!("{expiry}:{peer}");
    let password = password_for(secret, &username);
    (username, password)
}

/// base64(HMAC-SHA1(`secret`, `username`)): the password a TURN server expects for `username`.
pub fn password_for(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The message-integrity key of the long-term credential mechanism for a REST-scheme
/// `username` in `realm`: MD5(username ":" realm ":" password).
pub fn rest_key(secret: &str, username: &str, realm: &str) -> Vec<u8> {
    ::turn::auth::generate_auth_key(username, realm, &password_for(secret, username))
}

/// The expiry (Unix seconds) a REST-scheme username names, if it is one.
pub fn username_expiry(username: &str) -> Option<u64> {
    username.split_once(':').map_or(username, |(expiry, _)| expiry).parse().ok()
}

/// The participant a REST-scheme username was minted for (the part after the expiry): one
/// participant's credentials share their quota whatever their expiry.
pub fn username_peer(username: &str) -> &str {
    username.split_once(':').map_or("", |(_, peer)| peer)
}

/// The keys the `turn` crate checks requests with. Expiry is checked before, by the
/// [`guard`], which knows whether the request keeps an existing allocation alive.
struct RestAuth {
    secret: String,
}

impl ::turn::auth::AuthHandler for RestAuth {
    fn auth_handle(&self, username: &str, realm: &str, _from: SocketAddr) -> Result<Vec<u8>, ::turn::Error> {
        username_expiry(username).ok_or(::turn::Error::ErrNoSuchUser)?;
        Ok(rest_key(&self.secret, username, realm))
    }
}

/// How to run the embedded TURN server.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// The UDP address to listen on, e.g. `0.0.0.0:3478`.
    pub listen: SocketAddr,
    /// The address browsers reach this machine at; put into relay candidates.
    pub public_ip: IpAddr,
    /// Relay ports are taken from this range (inclusive), for firewall rules.
    pub relay_ports: (u16, u16),
    /// The TURN realm.
    pub realm: String,
    /// The shared secret of the REST scheme.
    pub secret: String,
    /// Internal ranges the relay may send to after all (`--turn-allow-peers`); see [`peers`].
    pub allow_peers: Vec<IpNet>,
    /// Live allocations per credential, per source address and in all.
    pub quota: Quota,
    /// Bits per second one allocation may relay in each direction; 0 for no cap.
    pub max_bps: u64,
    /// Requests per source address (IPv6 by /64), before they are parsed further.
    pub request_rate: RequestRate,
}

impl EmbeddedConfig {
    /// A server on `listen` for `secret`, advertising `public_ip`, with the default limits.
    pub fn new(listen: SocketAddr, public_ip: IpAddr, relay_ports: (u16, u16), secret: String) -> Self {
        EmbeddedConfig {
            listen,
            public_ip,
            relay_ports,
            realm: "confab".into(),
            secret,
            allow_peers: Vec::new(),
            quota: Quota::default(),
            max_bps: DEFAULT_MAX_BPS,
            request_rate: RequestRate::default(),
        }
    }
}

/// Bits per second one allocation relays in each direction by default: a call's camera, screen
/// share and audio with room to spare.
pub const DEFAULT_MAX_BPS: u64 = 5_000_000;

/// How long a nonce handed out by the embedded server stays valid.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(600);

/// A TURN server (RFC 5766, UDP) running inside this process: the `turn` crate's allocations
/// and relaying behind confab's own read loop ([`guard`]) and relay sockets ([`relay`]).
pub struct EmbeddedTurn {
    local: SocketAddr,
    manager: Arc<Manager>,
    nonces: guard::CrateNonces,
    counters: Arc<Counters>,
    relays: Arc<RelayShared>,
    shutdown: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for EmbeddedTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedTurn").field("local", &self.local).finish()
    }
}

impl EmbeddedTurn {
    /// Binds and starts the server.
    pub async fn start(config: EmbeddedConfig) -> Result<Self, ::turn::Error> {
        let socket = Arc::new(tokio::net::UdpSocket::bind(config.listen).await?);
        let local = socket.local_addr()?;
        let relay_bind = if config.listen.ip().is_unspecified() { config.listen.ip() } else { config.public_ip };
        let ports = Arc::new(RelayPorts::default());
        let extra_own: Vec<IpAddr> =
            [config.public_ip, config.listen.ip()].into_iter().filter(|ip| !ip.is_unspecified()).collect();
        let policy = Arc::new(PeerPolicy::new(
            config.allow_peers,
            peers::host_addresses().into_iter().chain(extra_own.iter().copied()),
            ports.clone(),
        ));
        let relays = Arc::new(RelayShared {
            policy: policy.clone(),
            ports,
            max_bps: config.max_bps,
            refused_peer: Default::default(),
            over_budget: Default::default(),
        });
        let generator = GuardedRelays {
            inner: ::turn::relay::relay_range::RelayAddressGeneratorRanges {
                relay_address: config.public_ip,
                min_port: config.relay_ports.0,
                max_port: config.relay_ports.1,
                max_retries: 20,
                address: relay_bind.to_string(),
                net: Arc::new(webrtc_util::vnet::net::Net::new(None)),
            },
            shared: relays.clone(),
        };
        ::turn::relay::RelayAddressGenerator::validate(&generator)?;
        let manager = Arc::new(Manager::new(ManagerConfig {
            relay_addr_generator: Box::new(generator),
            alloc_close_notify: None,
        }));
        let nonces = guard::CrateNonces::default();
        let counters = Arc::new(Counters::default());
        let guard = Guard {
            conn: socket,
            manager: manager.clone(),
            crate_nonces: nonces.clone(),
            auth: Arc::new(RestAuth { secret: config.secret.clone() }),
            secret: config.secret,
            realm: config.realm,
            policy,
            extra_own,
            quota: config.quota,
            rate: config.request_rate,
            nonce_lifetime: NONCE_LIFETIME,
            counters: counters.clone(),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(guard.run(shutdown.clone()));
        Ok(EmbeddedTurn { local, manager, nonces, counters, relays, shutdown, task: Mutex::new(Some(task)) })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Lets relays reach `port` on this host (the SFU's media port), which they otherwise refuse
    /// like every other port of the host's own addresses.
    pub fn allow_own_port(&self, port: u16) {
        self.relays.policy.allow_own_port(port);
    }

    /// How many allocations (relayed clients) exist now.
    pub async fn allocations(&self) -> usize {
        self.manager.get_allocations_info(None).await.len()
    }

    /// How many nonces the server holds (only those of authenticated requests, until they
    /// expire).
    pub async fn nonces_held(&self) -> usize {
        self.nonces.lock().await.len()
    }

    /// What the server refused and dropped so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// What the server refused or dropped since start, by reason (for `/metrics`).
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        let (refused_peer, over_budget) = self.relay_drops();
        let mut all = self.counters.by_reason();
        all.extend([("relay_refused_peer", refused_peer), ("relay_over_bandwidth", over_budget)]);
        all
    }

    /// Datagrams the relay sockets dropped: (to or from a refused peer, over the bandwidth cap).
    pub fn relay_drops(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.relays.refused_peer.load(Relaxed), self.relays.over_budget.load(Relaxed))
    }

    /// Stops the server and closes its allocations.
    pub async fn close(&self) {
        self.shutdown.cancel();
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!("the TURN server's loop ended badly: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known answer, computed independently with
    /// `printf '%s' 1700000000:alice | openssl dgst -sha1 -hmac north-wind -binary | base64`.
    #[test]
    fn password_matches_the_rest_scheme() {
        let (username, password) = credentials("north-wind", 1_700_000_000, "alice");
        assert_eq!(username, "1700000000:alice");
        assert_eq!(password, "Oko4dt8u/EbTRjRUJWQDFm/zTCc=");
    }

    #[test]
    fn credentials_expire_ttl_after_now() {
        let config = TurnConfig {
            urls: vec!["turn:turn.example:3478".into()],
            secret: "s3cret".into(),
            ttl: Duration::from_secs(3600),
        };
        let server = config.ice_server("k1", UNIX_EPOCH + Duration::from_secs(1_000));
        assert_eq!(server.urls, config.urls);
        let username = server.username.unwrap();
        assert_eq!(username, "4600:k1");
        assert_eq!(server.credential.unwrap(), password_for("s3cret", &username));
        assert!(!format!("{config:?}").contains("s3cret"), "the secret stays out of logs");
    }
}
