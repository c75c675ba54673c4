//! TURN credentials for browsers, minted per join with the "TURN REST API" scheme that coturn
//! implements as `use-auth-secret` (and that the embedded TURN server checks the same way):
//!
//! - username: `<expiry>:<peer>`, where `<expiry>` is a Unix time in seconds;
//! - password: base64(HMAC-SHA1(shared secret, username)).
//!
//! The TURN server needs only the shared secret to check a credential and its expiry, so the
//! signaling server and the TURN server share no state, and the secret never reaches a browser.
//!
//! [`EmbeddedTurn`] is a TURN server inside this process (`--turn-embedded`), from the `turn`
//! crate (webrtc-rs): a real relay socket per allocation, pluggable authentication (here the same
//! REST scheme), a port range for relays, and a clean shutdown. (`turn-server`, the other crate
//! considered, relays only between its own clients, never checks credential expiry, and cannot
//! be stopped from the outside.) Its username check ([`RestAuth`]) accepts `<expiry>:<peer>`,
//! which the crate's own `LongTermAuthHandler` does not.

use base64::Engine;
use confab_protocol::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Checks credentials on the embedded TURN server: the REST scheme, with expiry.
struct RestAuth {
    secret: String,
}

impl ::turn::auth::AuthHandler for RestAuth {
    fn auth_handle(&self, username: &str, realm: &str, _from: SocketAddr) -> Result<Vec<u8>, ::turn::Error> {
        let expiry: u64 = username.split(':').next().unwrap_or_default().parse()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if expiry < now {
            return Err(::turn::Error::Other(format!("expired TURN username {username}")));
        }
        Ok(::turn::auth::generate_auth_key(username, realm, &password_for(&self.secret, username)))
    }
}

/// How to run the embedded TURN server.
#[derive(Clone)]
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
}

/// A TURN server (RFC 5766, UDP) running inside this process, from the `turn` crate.
pub struct EmbeddedTurn {
    server: ::turn::server::Server,
    local: SocketAddr,
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
        let server = ::turn::server::Server::new(::turn::server::config::ServerConfig {
            conn_configs: vec![::turn::server::config::ConnConfig {
                conn: socket,
                relay_addr_generator: Box::new(::turn::relay::relay_range::RelayAddressGeneratorRanges {
                    relay_address: config.public_ip,
                    min_port: config.relay_ports.0,
                    max_port: config.relay_ports.1,
                    max_retries: 20,
                    address: relay_bind.to_string(),
                    net: Arc::new(webrtc_util::vnet::net::Net::new(None)),
                }),
            }],
            realm: config.realm,
            auth_handler: Arc::new(RestAuth { secret: config.secret }),
            channel_bind_timeout: Duration::ZERO,
            alloc_close_notify: None,
        })
        .await?;
        Ok(EmbeddedTurn { server, local })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How many allocations (relayed clients) exist now.
    pub async fn allocations(&self) -> usize {
        self.server.get_allocations_info(None).await.map_or(0, |a| a.len())
    }

    /// Stops the server.
    pub async fn close(&self) {
        if let Err(e) = self.server.close().await {
            tracing::warn!("closing the TURN server: {e}");
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
