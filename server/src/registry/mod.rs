//! The room registry: who is in which room, and delivery of messages to them.
//!
//! Rooms live in one of two backends with the same calls: [`memory::Rooms`] in this process (the
//! default), or [`cluster::Cluster`] in Redis (`--redis-url`), so that any node serves any room.
//! The cluster's calls can fail when Redis cannot be reached ([`Unavailable`]); the in-memory
//! one's cannot. Sessions talk to [`Registry`] alone and never know which backend it is.
//!
//! This module is the contract both backends keep, and owns what they share:
//! - [`Joiner`], [`Joined`], [`JoinError`], [`RelayError`], [`Limits`] and the chat bounds;
//! - [`identity`]: keys derived from join secrets; [`password`]: how passwords are kept and
//!   guessing slowed; [`windows`]: per-address counters;
//! - [`outboxes`]: delivery of encoded frames to this node's sockets, the "does not keep up"
//!   rule, and why an outbox ended ([`EndReason`], read by the session after the last frame);
//! - the pieces of a change both apply the same way: chat stamping ([`stamp_chat`]), the
//!   media-changed announcement ([`media_announcement`]), the chat a welcome carries
//!   ([`welcome_chat`]), and the checks made before a backend is asked at all (a relay to
//!   oneself; an empty password is none; a capacity of at least one).
//!
//! A member is identified by its id and its key (derived from the browser tab's secret). A
//! member whose socket dropped is *detached*: it keeps its place, messages to it are dropped,
//! and a join with the same key within the grace period takes the place back (same id, no
//! announcements). Each attachment has a session number, so a late cleanup of an old socket
//! cannot remove a member that a newer socket has resumed.

pub mod cluster;
pub mod identity;
pub mod memory;
pub mod outboxes;
pub mod password;
pub mod windows;

pub use cluster::{Cluster, ClusterConfig};
pub use identity::{key_of, random_key};
pub use memory::Rooms;
pub use outboxes::{outbox, outbox_bounded, EndReason, Frame, Inbox, Outbox, Outgoing, OUTBOX_BYTES, OUTBOX_CAPACITY};
pub use password::PasswordLimits;

use confab_protocol::{
    ChatMessage, DisplayName, ListedRoom, MediaState, PeerId, PeerInfo, PeerKey, RoomName, ServerMsg, Signal,
};
use std::net::IpAddr;
use std::time::Duration;

/// How many recent chat messages a room keeps for those who join later or reconnect.
pub const CHAT_HISTORY: usize = 50;

/// The most bytes of chat history (JSON-encoded messages) one welcome carries: the newest
/// messages that fit (50 messages of 1,000 characters would be about 150 KB).
pub const WELCOME_CHAT_BYTES: usize = 32 * 1024;

/// The window over which [`Limits::max_joins_per_ip_per_sec`] counts.
pub const JOIN_WINDOW: Duration = Duration::from_secs(1);

/// The registry could not reach its store (Redis).
#[derive(Debug, thiserror::Error)]
#[error("the room store is unavailable: {0}")]
pub struct Unavailable(pub String);

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The room has reached the configured capacity.
    #[error("the room is full ({capacity} people)")]
    Full {
        /// The configured capacity.
        capacity: usize,
    },
    /// The room has a password and none was given.
    #[error("this room has a password")]
    PasswordRequired,
    /// The password given is not the room's.
    #[error("wrong password for this room")]
    WrongPassword,
    /// The server holds as many rooms, or people, as it is configured for.
    #[error("the server is full; try again later")]
    ServerFull,
    /// The joiner's address made as many joins in the last second as it may.
    #[error("too many joins from your address; try again in {} ms", retry_after.as_millis())]
    TooManyJoins {
        /// When the next join from the address is taken.
        retry_after: Duration,
    },
    /// The joiner's address holds as many places in rooms as it may (held places included).
    #[error("your address already holds {max} places in rooms on this server")]
    TooManyPlaces {
        /// The configured most.
        max: usize,
    },
    /// Too many wrong passwords from the joiner's address, or for this room: the password was
    /// not checked.
    #[error("too many wrong passwords; try again in {} s", retry_after.as_millis().div_ceil(1000))]
    TooManyAttempts {
        /// When a password will be checked again.
        retry_after: Duration,
    },
}

impl JoinError {
    /// How long until a join refused this way may be taken, for refusals that time lifts.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JoinError::TooManyJoins { retry_after } | JoinError::TooManyAttempts { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Why a relay was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// No member with that id is in the sender's room (or it is the sender).
    #[error("peer {0} is not in this room")]
    UnknownPeer(PeerId),
}

/// How much one registry holds, and how much of it one client address may take. Addresses are
/// counted as [`crate::addr::ip_group`] gives them (an IPv6 address by its /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most members one room may hold (at least one).
    pub room_capacity: usize,
    /// The most rooms at once.
    pub max_rooms: usize,
    /// The most members at once, over all rooms (detached ones included).
    pub max_peers: usize,
    /// The most places one client address may hold at once, attached or held for a resume.
    pub max_places_per_ip: usize,
    /// The most joins one client address may make in a second (counted from its first; a resume
    /// does not count).
    pub max_joins_per_ip_per_sec: u32,
    /// How password guessing is slowed down.
    pub passwords: PasswordLimits,
}

impl Limits {
    /// Rooms of `room_capacity`, with no server-wide or per-address limit.
    pub fn rooms_of(room_capacity: usize) -> Self {
        Limits {
            room_capacity,
            max_rooms: usize::MAX,
            max_peers: usize::MAX,
            max_places_per_ip: usize::MAX,
            max_joins_per_ip_per_sec: u32::MAX,
            passwords: PasswordLimits::unlimited(),
        }
    }

    /// These limits with a room capacity of at least one, as both backends hold them.
    pub fn clamped(self) -> Self {
        Limits { room_capacity: self.room_capacity.max(1), ..self }
    }
}

impl Default for Limits {
    /// The server's defaults (`confab --help`).
    fn default() -> Self {
        Limits {
            room_capacity: 6,
            max_rooms: 10_000,
            max_peers: 20_000,
            max_places_per_ip: 32,
            max_joins_per_ip_per_sec: 10,
            passwords: PasswordLimits::default(),
        }
    }
}

/// What a joiner brings.
#[derive(Debug)]
pub struct Joiner {
    /// The name to show.
    pub name: DisplayName,
    /// The key derived from its secret.
    pub key: PeerKey,
    /// Its mute and camera state.
    pub media: MediaState,
    /// The room password it gave (sets the password of a room it creates); `None` or empty for
    /// none (see [`Joiner::password`]).
    pub password: Option<String>,
    /// List the room on the start page (only when it creates the room).
    pub listed: bool,
    /// Where its messages go.
    pub outbox: Outbox,
    /// Its client address, as per-address limits count it ([`crate::addr::ip_group`]).
    pub ip: IpAddr,
}

impl Joiner {
    /// The password given, if any: an empty one is none.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref().filter(|p| !p.is_empty())
    }
}

/// A successful join.
#[derive(Debug)]
pub struct Joined {
    /// The member's id (the old one when resumed).
    pub id: PeerId,
    /// This attachment's session number; pass it to `leave` and `detach`.
    pub session: u64,
    /// The other members, in the order they joined.
    pub peers: Vec<PeerInfo>,
    /// A place the registry still held was taken back.
    pub resumed: bool,
    /// The room has a password.
    pub locked: bool,
    /// The room's recent chat, oldest first.
    pub chat: Vec<ChatMessage>,
}

/// The chat a welcome carries, oldest first: the newest messages of `history` (oldest first,
/// each with its size in bytes) that fit in [`WELCOME_CHAT_BYTES`] together.
pub fn welcome_chat<T>(history: impl DoubleEndedIterator<Item = (usize, T)>) -> Vec<T> {
    let mut total = 0;
    let mut kept: Vec<T> = history
        .rev()
        .take_while(|(bytes, _)| {
            total += bytes;
            total <= WELCOME_CHAT_BYTES
        })
        .map(|(_, message)| message)
        .collect();
    kept.reverse();
    kept
}

/// `text` as a chat message from `sender`, sent at `at_ms`.
pub fn stamp_chat(sender: &PeerInfo, text: String, at_ms: u64) -> ChatMessage {
    // Random, not sequential: ids stay unique across server restarts, and browsers keep the
    // messages they have through a restart.
    ChatMessage { id: rand::random(), from: sender.key.clone(), name: sender.name.clone(), text, at_ms }
}

/// What to tell the others when `id`'s media state goes from `before` (unknown: `None`) to
/// `now`: nothing if it did not change.
pub fn media_announcement(id: PeerId, before: Option<MediaState>, now: MediaState) -> Option<Frame> {
    (before != Some(now)).then(|| Frame::of(&ServerMsg::PeerMedia { id, media: now }))
}

/// Where rooms live.
// One per process: the in-memory variant being larger costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Registry {
    /// In this process: one node serves every room.
    Memory(Rooms),
    /// In Redis: any node of the cluster serves any room.
    Cluster(Cluster),
}

impl Registry {
    /// The most members one room may hold.
    pub fn capacity(&self) -> usize {
        match self {
            Registry::Memory(rooms) => rooms.capacity(),
            Registry::Cluster(cluster) => cluster.capacity(),
        }
    }

    /// Adds a member to `room` (creating the room if needed) and tells the others; or, if a
    /// member with the same key is there (detached, or attached through an older socket), gives
    /// its place to this socket without telling anyone. The older socket's outbox ends as
    /// [`EndReason::Replaced`].
    pub async fn join(&self, room: &RoomName, joiner: Joiner) -> Result<Result<Joined, JoinError>, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.join(room, joiner)),
            Registry::Cluster(cluster) => cluster.join(room, joiner).await,
        }
    }

    /// Delivers `signal` from `from` to `to`, if both are in `room` (and are not the same). A
    /// detached receiver loses it (its client renegotiates after resuming).
    pub async fn relay(
        &self,
        room: &RoomName,
        from: PeerId,
        to: PeerId,
        signal: Signal,
    ) -> Result<Result<(), RelayError>, Unavailable> {
        if from == to {
            return Ok(Err(RelayError::UnknownPeer(to)));
        }
        // Encoded once, here; every backend forwards these bytes.
        let frame = Frame::of(&ServerMsg::Signal { from, signal });
        match self {
            Registry::Memory(rooms) => Ok(rooms.relay(room, from, to, frame)),
            Registry::Cluster(cluster) => cluster.relay(room, from, to, frame).await,
        }
    }

    /// Stamps `text` as a chat message from `id`, keeps it in the room's history and sends it to
    /// every member, `id` included. Does nothing if `id` is not in `room`, or not attached to a
    /// socket of this node (a session that was replaced or dropped speaks no more).
    pub async fn chat(&self, room: &RoomName, id: PeerId, text: String, at_ms: u64) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(rooms) => {
                rooms.chat(room, id, text, at_ms);
                Ok(())
            }
            Registry::Cluster(cluster) => cluster.chat(room, id, text, at_ms).await,
        }
    }

    /// Records `id`'s mute and camera state and tells the others (if it changed). Like
    /// [`Registry::chat`], only from a member attached to a socket of this node.
    pub async fn set_media(&self, room: &RoomName, id: PeerId, media: MediaState) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(rooms) => {
                rooms.set_media(room, id, media);
                Ok(())
            }
            Registry::Cluster(cluster) => cluster.set_media(room, id, media).await,
        }
    }

    /// Removes `id` from `room` and tells the others, if `session` is still its attachment;
    /// the room goes when it is empty.
    pub async fn leave(&self, room: &RoomName, id: PeerId, session: u64) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(rooms) => {
                rooms.leave(room, id, session);
                Ok(())
            }
            Registry::Cluster(cluster) => cluster.leave(room, id, session).await,
        }
    }

    /// Holds `id`'s place after its socket dropped; true if it is now detached (call
    /// [`Registry::expire`] after the grace period).
    pub async fn detach(&self, room: &RoomName, id: PeerId, session: u64) -> Result<bool, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.detach(room, id, session)),
            Registry::Cluster(cluster) => cluster.detach(room, id, session).await,
        }
    }

    /// Removes `id` if it is still detached from `session` (nobody resumed it).
    pub async fn expire(&self, room: &RoomName, id: PeerId, session: u64) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(rooms) => {
                rooms.expire(room, id, session);
                Ok(())
            }
            Registry::Cluster(cluster) => cluster.expire(room, id, session).await,
        }
    }

    /// Waits until every delivery already on its way to this node's sockets has been queued
    /// for them (in memory, it always has). For tests that compare the backends step by step.
    pub async fn flush(&self) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(_) => Ok(()),
            Registry::Cluster(cluster) => cluster.flush().await,
        }
    }

    /// The rooms listed on the start page, fullest first (equal counts by name), at most
    /// `limit`.
    pub async fn listed(&self, limit: usize) -> Result<Vec<ListedRoom>, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.listed(limit)),
            Registry::Cluster(cluster) => cluster.listed(limit).await,
        }
    }

    /// How many rooms exist (in the whole cluster).
    pub async fn room_count(&self) -> Result<usize, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.room_count()),
            Registry::Cluster(cluster) => cluster.room_count().await,
        }
    }

    /// How many members all rooms have together (in the whole cluster), detached ones included.
    pub async fn peer_count(&self) -> Result<usize, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.peer_count()),
            Registry::Cluster(cluster) => cluster.peer_count().await,
        }
    }

    /// How many members `room` has, detached ones included (0 if it does not exist).
    pub async fn member_count(&self, room: &RoomName) -> Result<usize, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.member_count(room)),
            Registry::Cluster(cluster) => cluster.member_count(room).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_welcome_carries_the_newest_chat_that_fits() {
        let history = (0..10).map(|i| (WELCOME_CHAT_BYTES / 4, i));
        assert_eq!(welcome_chat(history), vec![6, 7, 8, 9]);
        assert_eq!(welcome_chat([(WELCOME_CHAT_BYTES + 1, 0)].into_iter()), Vec::<i32>::new());
        assert_eq!(welcome_chat([(10, 'a'), (10, 'b')].into_iter()), vec!['a', 'b']);
    }

    #[test]
    fn media_is_announced_only_when_it_changed() {
        let muted = MediaState { muted: true, camera_off: false, screen: false };
        assert_eq!(media_announcement(PeerId(3), Some(muted), muted), None);
        let told = media_announcement(PeerId(3), Some(MediaState::default()), muted).unwrap();
        assert_eq!(told.decode(), Some(ServerMsg::PeerMedia { id: PeerId(3), media: muted }));
        assert!(media_announcement(PeerId(3), None, MediaState::default()).is_some(), "unknown before");
    }

    #[tokio::test]
    async fn a_relay_to_oneself_is_refused_before_any_backend() {
        let registry = Registry::Memory(Rooms::new(2));
        let (tx, mut rx) = outbox();
        let joiner = Joiner {
            name: DisplayName::parse("Ada").unwrap(),
            key: random_key(),
            media: MediaState::default(),
            password: None,
            listed: false,
            outbox: tx,
            ip: IpAddr::from([127, 0, 0, 1]),
        };
        let room = RoomName::parse("r").unwrap();
        let ada = registry.join(&room, joiner).await.unwrap().unwrap().id;
        let offer = Signal::Offer { sdp: "v=0".into() };
        assert_eq!(registry.relay(&room, ada, ada, offer).await.unwrap(), Err(RelayError::UnknownPeer(ada)));
        assert_eq!(rx.try_recv(), None, "nothing reached the sender");
    }

    #[test]
    fn an_empty_password_is_none_and_capacity_is_at_least_one() {
        let joiner = |password: Option<&str>| Joiner {
            name: DisplayName::parse("Ada").unwrap(),
            key: random_key(),
            media: MediaState::default(),
            password: password.map(str::to_owned),
            listed: false,
            outbox: outbox().0,
            ip: IpAddr::from([127, 0, 0, 1]),
        };
        assert_eq!(joiner(Some("")).password(), None);
        assert_eq!(joiner(None).password(), None);
        assert_eq!(joiner(Some("pw")).password(), Some("pw"));
        assert_eq!(Limits::rooms_of(0).clamped().room_capacity, 1);
        assert_eq!(Limits::rooms_of(4).clamped().room_capacity, 4);
    }
}
