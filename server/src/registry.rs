//! The room registry a hub uses: the in-memory one ([`Rooms`], the default) or the Redis-backed
//! one ([`Cluster`], with `--redis-url`). Both have the same calls; the cluster's can fail when
//! Redis cannot be reached ([`Unavailable`]), the in-memory one's cannot.

use crate::cluster::{Cluster, Ended, Unavailable};
use crate::rooms::{JoinError, Joined, Joiner, RelayError, Rooms};
use confab_protocol::{ListedRoom, MediaState, PeerId, RoomName, Signal};

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

/// Why the registry dropped a socket's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxEnd {
    /// A newer socket with the same key took the place.
    Replaced,
    /// The socket did not keep up (or its node lost the cluster).
    TooSlow,
}

impl Registry {
    /// The most members one room may hold.
    pub fn capacity(&self) -> usize {
        match self {
            Registry::Memory(rooms) => rooms.capacity(),
            Registry::Cluster(cluster) => cluster.capacity(),
        }
    }

    /// Adds a member to `room` or gives a held place back (see [`Rooms::join`]).
    pub async fn join(&self, room: &RoomName, joiner: Joiner) -> Result<Result<Joined, JoinError>, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.join(room, joiner)),
            Registry::Cluster(cluster) => cluster.join(room, joiner).await,
        }
    }

    /// Delivers `signal` from `from` to `to`, if both are in `room`.
    pub async fn relay(
        &self,
        room: &RoomName,
        from: PeerId,
        to: PeerId,
        signal: Signal,
    ) -> Result<Result<(), RelayError>, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.relay(room, from, to, signal)),
            Registry::Cluster(cluster) => cluster.relay(room, from, to, signal).await,
        }
    }

    /// Sends a chat message from `id` to its room and keeps it in the history.
    pub async fn chat(&self, room: &RoomName, id: PeerId, text: String, at_ms: u64) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(rooms) => {
                rooms.chat(room, id, text, at_ms);
                Ok(())
            }
            Registry::Cluster(cluster) => cluster.chat(room, id, text, at_ms).await,
        }
    }

    /// Records `id`'s mute and camera state and tells the others.
    pub async fn set_media(&self, room: &RoomName, id: PeerId, media: MediaState) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(rooms) => {
                rooms.set_media(room, id, media);
                Ok(())
            }
            Registry::Cluster(cluster) => cluster.set_media(room, id, media).await,
        }
    }

    /// Removes `id` from `room` if `session` is still its attachment.
    pub async fn leave(&self, room: &RoomName, id: PeerId, session: u64) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(rooms) => {
                rooms.leave(room, id, session);
                Ok(())
            }
            Registry::Cluster(cluster) => cluster.leave(room, id, session).await,
        }
    }

    /// Holds `id`'s place after its socket dropped; true if it is now detached.
    pub async fn detach(&self, room: &RoomName, id: PeerId, session: u64) -> Result<bool, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.detach(room, id, session)),
            Registry::Cluster(cluster) => cluster.detach(room, id, session).await,
        }
    }

    /// Removes `id` if it is still detached from `session`.
    pub async fn expire(&self, room: &RoomName, id: PeerId, session: u64) -> Result<(), Unavailable> {
        match self {
            Registry::Memory(rooms) => {
                rooms.expire(room, id, session);
                Ok(())
            }
            Registry::Cluster(cluster) => cluster.expire(room, id, session).await,
        }
    }

    /// Why the outbox of `id`, attached as `session`, was dropped.
    pub fn outbox_end(&self, room: &RoomName, id: PeerId, session: u64) -> OutboxEnd {
        match self {
            // Still in the room under another session: someone took the place.
            Registry::Memory(rooms) => match rooms.session_of(room, id) {
                Some(current) if current != session => OutboxEnd::Replaced,
                _ => OutboxEnd::TooSlow,
            },
            Registry::Cluster(cluster) => match cluster.ended(id, session) {
                Ended::Replaced => OutboxEnd::Replaced,
                Ended::Dropped => OutboxEnd::TooSlow,
            },
        }
    }

    /// The rooms listed on the start page, fullest first, at most `limit`.
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

    /// How many members all rooms have together (in the whole cluster).
    pub async fn peer_count(&self) -> Result<usize, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.peer_count()),
            Registry::Cluster(cluster) => cluster.peer_count().await,
        }
    }

    /// How many members `room` has.
    pub async fn member_count(&self, room: &RoomName) -> Result<usize, Unavailable> {
        match self {
            Registry::Memory(rooms) => Ok(rooms.member_count(room)),
            Registry::Cluster(cluster) => cluster.member_count(room).await,
        }
    }
}
