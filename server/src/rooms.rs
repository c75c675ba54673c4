//! The room registry: who is in which room, and delivery of messages to them.
//!
//! This is the in-memory registry, the embedded default. Its whole surface is [`Rooms::join`],
//! [`Rooms::relay`] and [`Rooms::leave`] (plus counters), so that another backend can take its
//! place behind the same calls.
//!
//! Each member is reached through a bounded [`Outbox`]. A member whose outbox is full is not
//! keeping up; it is removed from its room (its session then ends, see `session.rs`) rather than
//! letting its queue grow without limit or silently losing part of a negotiation.

use confab_protocol::{DisplayName, PeerId, PeerInfo, RoomName, ServerMsg, Signal};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Messages queued for one member's socket.
pub type Outbox = mpsc::Sender<ServerMsg>;

/// How many messages may wait for one member before it counts as too slow.
pub const OUTBOX_CAPACITY: usize = 128;

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The room has reached the configured capacity.
    #[error("the room is full ({capacity} people)")]
    Full {
        /// The configured capacity.
        capacity: usize,
    },
}

/// Why a relay was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// No member with that id is in the sender's room.
    #[error("peer {0} is not in this room")]
    UnknownPeer(PeerId),
}

/// A successful join.
#[derive(Debug)]
pub struct Joined {
    /// The id the registry assigned.
    pub id: PeerId,
    /// The members who were already in the room, in the order they joined.
    pub peers: Vec<PeerInfo>,
}

/// One member of a room.
#[derive(Debug)]
struct Member {
    /// The member's id and name.
    info: PeerInfo,
    /// The member's queue of outgoing messages.
    outbox: Outbox,
}

/// The in-memory registry of rooms.
#[derive(Debug)]
pub struct Rooms {
    /// Rooms by name; a room exists only while it has members.
    rooms: Mutex<HashMap<RoomName, Vec<Member>>>,
    /// The most members one room may hold.
    capacity: usize,
    /// The next peer id to hand out.
    next_id: AtomicU64,
}

impl Rooms {
    /// An empty registry whose rooms hold at most `capacity` members (at least one).
    pub fn new(capacity: usize) -> Self {
        Rooms { rooms: Mutex::default(), capacity: capacity.max(1), next_id: AtomicU64::new(1) }
    }

    /// The most members one room may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a member to `room`, creating the room if needed, and tells the others.
    pub fn join(&self, room: &RoomName, name: DisplayName, outbox: Outbox) -> Result<Joined, JoinError> {
        let mut rooms = self.lock();
        let members = rooms.entry(room.clone()).or_default();
        if members.len() >= self.capacity {
            return Err(JoinError::Full { capacity: self.capacity });
        }
        let id = PeerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let info = PeerInfo { id, name };
        let peers = members.iter().map(|m| m.info.clone()).collect();
        members.push(Member { info: info.clone(), outbox });
        let slow = deliver_to_all_but(members, id, &ServerMsg::PeerJoined { peer: info });
        remove_slow(&mut rooms, room, slow);
        Ok(Joined { id, peers })
    }

    /// Delivers `signal` from `from` to `to`, if both are in `room`.
    pub fn relay(&self, room: &RoomName, from: PeerId, to: PeerId, signal: Signal) -> Result<(), RelayError> {
        let mut rooms = self.lock();
        let Some(members) = rooms.get(room) else {
            return Err(RelayError::UnknownPeer(to));
        };
        if to == from || !members.iter().any(|m| m.info.id == from) {
            return Err(RelayError::UnknownPeer(to));
        }
        let target = members.iter().find(|m| m.info.id == to).ok_or(RelayError::UnknownPeer(to))?;
        if deliver(target, ServerMsg::Signal { from, signal }) == Delivery::TooSlow {
            remove_slow(&mut rooms, room, vec![to]);
        }
        Ok(())
    }

    /// Removes `id` from `room` and tells the others; drops the room when it is empty. Removing
    /// a member that is not there does nothing.
    pub fn leave(&self, room: &RoomName, id: PeerId) {
        let mut rooms = self.lock();
        remove_slow(&mut rooms, room, vec![id]);
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.lock().len()
    }

    /// How many members `room` has (0 if it does not exist).
    pub fn member_count(&self, room: &RoomName) -> usize {
        self.lock().get(room).map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, Vec<Member>>> {
        // A panic while holding the lock cannot leave the map half-updated in a way later calls
        // would trip over (every update is a single push or retain), so a poisoned lock is usable.
        self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Queued,
    /// The receiver's session has ended; it removes itself.
    Gone,
    TooSlow,
}

fn deliver(member: &Member, msg: ServerMsg) -> Delivery {
    match member.outbox.try_send(msg) {
        Ok(()) => Delivery::Queued,
        Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Gone,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(peer = %member.info.id, "outbox full: removing a peer that does not keep up");
            Delivery::TooSlow
        }
    }
}

/// Sends `msg` to every member but `except`; returns those that are too slow.
fn deliver_to_all_but(members: &[Member], except: PeerId, msg: &ServerMsg) -> Vec<PeerId> {
    members
        .iter()
        .filter(|m| m.info.id != except)
        .filter(|m| deliver(m, msg.clone()) == Delivery::TooSlow)
        .map(|m| m.info.id)
        .collect()
}

/// Removes `gone` from `room`, announces each removal to those who stay (which may find more
/// slow members, removed in turn), and drops the room once empty.
fn remove_slow(rooms: &mut HashMap<RoomName, Vec<Member>>, room: &RoomName, mut gone: Vec<PeerId>) {
    let Some(members) = rooms.get_mut(room) else { return };
    while let Some(id) = gone.pop() {
        let before = members.len();
        members.retain(|m| m.info.id != id);
        if members.len() == before {
            continue;
        }
        for slow in deliver_to_all_but(members, id, &ServerMsg::PeerLeft { id }) {
            if !gone.contains(&slow) {
                gone.push(slow);
            }
        }
    }
    if members.is_empty() {
        rooms.remove(room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn name(n: &str) -> DisplayName {
        DisplayName::parse(n).unwrap()
    }

    fn outbox() -> (Outbox, mpsc::Receiver<ServerMsg>) {
        mpsc::channel(OUTBOX_CAPACITY)
    }

    #[test]
    fn join_lists_earlier_members_and_announces_the_newcomer() {
        let rooms = Rooms::new(2);
        let (a_tx, mut a_rx) = outbox();
        let (b_tx, mut b_rx) = outbox();
        let a = rooms.join(&room("r"), name("Ada"), a_tx).unwrap();
        assert!(a.peers.is_empty());
        let b = rooms.join(&room("r"), name("Bob"), b_tx).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(b.peers, vec![PeerInfo { id: a.id, name: name("Ada") }]);
        assert_eq!(a_rx.try_recv().unwrap(), ServerMsg::PeerJoined { peer: PeerInfo { id: b.id, name: name("Bob") } });
        assert!(b_rx.try_recv().is_err(), "the newcomer is not told about itself");
    }

    #[test]
    fn a_full_room_refuses_and_keeps_its_members() {
        let rooms = Rooms::new(2);
        let _a = rooms.join(&room("r"), name("A"), outbox().0).unwrap();
        let _b = rooms.join(&room("r"), name("B"), outbox().0).unwrap();
        let err = rooms.join(&room("r"), name("C"), outbox().0).unwrap_err();
        assert_eq!(err, JoinError::Full { capacity: 2 });
        assert_eq!(rooms.member_count(&room("r")), 2);
    }

    #[test]
    fn relay_reaches_only_the_addressed_member_of_the_same_room() {
        let rooms = Rooms::new(3);
        let (a_tx, _a_rx) = outbox();
        let (b_tx, mut b_rx) = outbox();
        let (c_tx, mut c_rx) = outbox();
        let (x_tx, mut x_rx) = outbox();
        let a = rooms.join(&room("r"), name("A"), a_tx).unwrap().id;
        let b = rooms.join(&room("r"), name("B"), b_tx).unwrap().id;
        let _c = rooms.join(&room("r"), name("C"), c_tx).unwrap().id;
        let x = rooms.join(&room("elsewhere"), name("X"), x_tx).unwrap().id;
        while b_rx.try_recv().is_ok() {}
        while c_rx.try_recv().is_ok() {}

        let offer = Signal::Offer { sdp: "v=0".into() };
        rooms.relay(&room("r"), a, b, offer.clone()).unwrap();
        assert_eq!(b_rx.try_recv().unwrap(), ServerMsg::Signal { from: a, signal: offer.clone() });
        assert!(c_rx.try_recv().is_err());

        assert_eq!(rooms.relay(&room("r"), a, x, offer.clone()), Err(RelayError::UnknownPeer(x)));
        assert_eq!(rooms.relay(&room("r"), a, a, offer.clone()), Err(RelayError::UnknownPeer(a)));
        assert_eq!(rooms.relay(&room("elsewhere"), x, a, offer), Err(RelayError::UnknownPeer(a)));
        assert!(x_rx.try_recv().is_err());
    }

    #[test]
    fn leave_announces_and_empty_rooms_disappear() {
        let rooms = Rooms::new(2);
        let (a_tx, mut a_rx) = outbox();
        let a = rooms.join(&room("r"), name("A"), a_tx).unwrap().id;
        let b = rooms.join(&room("r"), name("B"), outbox().0).unwrap().id;
        let _ = a_rx.try_recv();
        rooms.leave(&room("r"), b);
        assert_eq!(a_rx.try_recv().unwrap(), ServerMsg::PeerLeft { id: b });
        rooms.leave(&room("r"), b);
        assert!(a_rx.try_recv().is_err(), "a second leave announces nothing");
        assert_eq!(rooms.room_count(), 1);
        rooms.leave(&room("r"), a);
        assert_eq!(rooms.room_count(), 0);
    }

    #[test]
    fn a_member_that_does_not_keep_up_is_removed_and_announced() {
        let rooms = Rooms::new(2);
        let (a_tx, mut a_rx) = outbox();
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let a = rooms.join(&room("r"), name("A"), a_tx).unwrap().id;
        let slow = rooms.join(&room("r"), name("Slow"), slow_tx).unwrap().id;
        let _ = a_rx.try_recv();
        let offer = Signal::Offer { sdp: "v=0".into() };
        rooms.relay(&room("r"), a, slow, offer.clone()).unwrap();
        rooms.relay(&room("r"), a, slow, offer).unwrap();
        assert_eq!(a_rx.try_recv().unwrap(), ServerMsg::PeerLeft { id: slow });
        assert_eq!(rooms.member_count(&room("r")), 1);
    }

    #[test]
    fn ids_are_never_reused() {
        let rooms = Rooms::new(1);
        let first = rooms.join(&room("r"), name("A"), outbox().0).unwrap().id;
        rooms.leave(&room("r"), first);
        let second = rooms.join(&room("r"), name("A"), outbox().0).unwrap().id;
        assert_ne!(first, second);
    }
}
