//! TURN credentials for browsers, minted per join with the "TURN REST API" scheme that coturn
//! implements as `use-auth-secret` (and that the embedded TURN server checks the same way):
//!
//! - username: `<expiry>:<peer>`, where `<expiry>` is a Unix time in seconds;
//! - password: base64(HMAC-SHA1(shared secret, username)).
//!
//! The TURN server needs only the shared secret to check a credential and its expiry, so the
//! signaling server and the TURN server share no state, and the secret never reaches a browser.

use base64::Engine;
use confab_protocol::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;
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
