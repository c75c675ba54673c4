//! Room passwords: how they are kept (salted SHA-256, compared in constant time) and how
//! guessing them is slowed down, for both backends.

use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How password guessing is slowed down: a budget of wrong passwords per client address, and
/// per room a wait before each attempt that doubles with every wrong password beyond the first
/// few. While either holds, passwords are not checked at all (a right one is refused too), so
/// the answers reveal nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordLimits {
    /// Wrong passwords one client address may give, over all rooms, within `ip_window`.
    pub failures_per_ip: u32,
    /// The window of `failures_per_ip`, from the address's first wrong password.
    pub ip_window: Duration,
    /// Wrong passwords (from anyone) a room takes before each further attempt must wait.
    pub free_failures_per_room: u32,
    /// The first wait; it doubles with each further wrong password, up to `room_max_delay`.
    pub room_delay: Duration,
    /// The longest wait.
    pub room_max_delay: Duration,
    /// How long a room remembers its wrong passwords after the last one (a right password, or
    /// the room's end, forgets them at once).
    pub room_memory: Duration,
}

impl PasswordLimits {
    /// No budget and no waits.
    pub fn unlimited() -> Self {
        PasswordLimits {
            failures_per_ip: u32::MAX,
            ip_window: Duration::from_secs(60),
            free_failures_per_room: u32::MAX,
            room_delay: Duration::from_secs(1),
            room_max_delay: Duration::from_secs(60),
            room_memory: Duration::from_secs(600),
        }
    }

    /// The wait before the next attempt on a room that has had `failures` wrong passwords.
    pub fn room_wait(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.free_failures_per_room)?;
        Some(self.room_delay.saturating_mul(1 << beyond.min(30)).min(self.room_max_delay))
    }
}

impl Default for PasswordLimits {
    /// The server's defaults: 10 wrong passwords a minute per address; per room 3, then waits of
    /// 1 s, 2 s, 4 s … up to a minute, forgotten after 10 minutes without one.
    fn default() -> Self {
        PasswordLimits { failures_per_ip: 10, free_failures_per_room: 3, ..PasswordLimits::unlimited() }
    }
}

/// The digest a room password is kept as: SHA-256 over the salt and the password.
pub fn salted_digest(salt: &[u8; 16], plain: &str) -> [u8; 32] {
    Sha256::new().chain_update(salt).chain_update(plain.as_bytes()).finalize().into()
}

/// Whether `plain` is the password kept as `salt` and `digest`, compared in constant time.
pub fn matches(salt: &[u8; 16], digest: &[u8; 32], plain: &str) -> bool {
    salted_digest(salt, plain).ct_eq(digest).into()
}

/// A room password as the in-memory registry keeps it. The plain text is never stored. (Room
/// passwords live only as long as their room; a deliberately slow hash would make every join an
/// easy way to burn the server's CPU.)
pub struct Password {
    salt: [u8; 16],
    digest: [u8; 32],
}

impl Password {
    /// Keeps `plain` with a fresh random salt.
    pub fn new(plain: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        Password { salt, digest: salted_digest(&salt, plain) }
    }

    /// Whether `plain` is this password (in constant time).
    pub fn matches(&self, plain: &str) -> bool {
        matches(&self.salt, &self.digest, plain)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A room's recent wrong passwords (the in-memory registry's; the cluster keeps the same in
/// Redis, in `join.lua`).
#[derive(Debug, Default)]
pub struct Guesses {
    /// How many, since the room began, the last right password or `room_memory` of quiet.
    failures: u32,
    /// When the last one came.
    last: Option<Instant>,
    /// No password is checked before this.
    wait_until: Option<Instant>,
}

impl Guesses {
    /// How long until a password may be checked, if it may not be now.
    pub fn wait(&mut self, now: Instant, limits: &PasswordLimits) -> Option<Duration> {
        if self.last.is_some_and(|last| now.duration_since(last) >= limits.room_memory) {
            *self = Guesses::default();
        }
        self.wait_until.map(|until| until.saturating_duration_since(now)).filter(|wait| !wait.is_zero())
    }

    /// Counts one wrong password.
    pub fn failed(&mut self, now: Instant, limits: &PasswordLimits) {
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        self.wait_until = limits.room_wait(self.failures).map(|wait| now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_only_itself() {
        let password = Password::new("open sesame");
        assert!(password.matches("open sesame"));
        assert!(!password.matches("open sesame "));
        assert!(!password.matches(""));
        assert_eq!(format!("{password:?}"), "Password(..)", "never printed");
    }

    #[test]
    fn room_waits_double_up_to_the_longest() {
        let secs = Duration::from_secs;
        let limits = PasswordLimits {
            free_failures_per_room: 2,
            room_delay: secs(1),
            room_max_delay: secs(5),
            ..PasswordLimits::unlimited()
        };
        let waits: Vec<_> = (0..7).map(|failures| limits.room_wait(failures)).collect();
        assert_eq!(waits, [None, None, Some(secs(1)), Some(secs(2)), Some(secs(4)), Some(secs(5)), Some(secs(5))]);
        assert_eq!(limits.room_wait(u32::MAX), Some(secs(5)));
        assert_eq!(PasswordLimits::unlimited().room_wait(u32::MAX - 1), None);
    }

    #[test]
    fn a_room_forgets_its_wrong_passwords_after_a_quiet_while() {
        let limits = PasswordLimits {
            free_failures_per_room: 1,
            room_memory: Duration::from_secs(10),
            ..PasswordLimits::unlimited()
        };
        let mut guesses = Guesses::default();
        let t0 = Instant::now();
        assert_eq!(guesses.wait(t0, &limits), None);
        guesses.failed(t0, &limits);
        guesses.failed(t0, &limits);
        assert_eq!(guesses.wait(t0, &limits), Some(Duration::from_secs(2)));
        assert_eq!(guesses.wait(t0 + Duration::from_secs(2), &limits), None);
        assert_eq!(guesses.failures, 2, "the count stays after the wait");
        assert_eq!(guesses.wait(t0 + Duration::from_secs(10), &limits), None);
        assert_eq!(guesses.failures, 0, "forgotten after a quiet while");
    }
}
