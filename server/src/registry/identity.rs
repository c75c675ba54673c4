//! Who a member is: the public key derived from the join secret a browser tab keeps, which is
//! what lets a tab take its place back after a dropped socket.

use confab_protocol::PeerKey;
use sha2::{Digest, Sha256};

/// Derives the public key of a join secret: the first 128 bits of its SHA-256, in hex.
pub fn key_of(secret: &str) -> PeerKey {
    let digest = Sha256::digest(secret.as_bytes());
    PeerKey(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// A key for a member that gave no secret: random, so it can never be resumed.
pub fn random_key() -> PeerKey {
    key_of(&format!("{:032x}", rand::random::<u128>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_derived_not_copied() {
        let key = key_of("a-secret-of-the-tab");
        assert_eq!(key, key_of("a-secret-of-the-tab"));
        assert_ne!(key, key_of("another-secret-of-a-tab"));
        assert_eq!(key.0.len(), 32);
        assert!(!key.0.contains("secret"));
        assert_ne!(random_key(), random_key());
    }
}
