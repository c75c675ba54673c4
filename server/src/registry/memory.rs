//! The in-memory registry, the embedded default: room state in this process, behind one lock.
//!
//! Its calls are those of [`super::Registry`] without the async and without failure. Delivery to
//! the members' sockets goes through [`Outboxes`], kept under the same lock, so that a change of
//! a room and the messages telling its members about it happen together.

use super::outboxes::Outboxes;
use super::password::{Guesses, Password};
use super::windows::Windows;
use super::{
    media_announcement, stamp_chat, welcome_chat, Frame, JoinError, Joined, Joiner, Limits, RelayError, CHAT_HISTORY,
    JOIN_WINDOW,
};
use confab_protocol::{ChatMessage, ListedRoom, MediaState, PeerId, PeerInfo, RoomName, ServerMsg};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One member of a room.
#[derive(Debug)]
struct Member {
    /// The member's id, name, key and media state.
    info: PeerInfo,
    /// The session number of the current attachment (attached while [`State::outboxes`] has
    /// it under this number, detached otherwise).
    session: u64,
    /// The client address whose place this is (the one that made it).
    ip: IpAddr,
}

/// One room.
#[derive(Debug, Default)]
struct Room {
    /// In the order they joined.
    members: Vec<Member>,
    /// Set by the member who created the room.
    password: Option<Password>,
    /// The last [`CHAT_HISTORY`] chat messages, each with its size as JSON.
    chat: VecDeque<(usize, ChatMessage)>,
    /// Shown on the start page.
    listed: bool,
    /// Wrong passwords given for this room.
    guesses: Guesses,
}

impl Room {
    fn member(&self, id: PeerId) -> Option<&Member> {
        self.members.iter().find(|m| m.info.id == id)
    }

    /// Everyone but `except`.
    fn others(&self, except: PeerId) -> impl Iterator<Item = PeerId> + '_ {
        self.members.iter().map(|m| m.info.id).filter(move |id| *id != except)
    }

    fn welcome_chat(&self) -> Vec<ChatMessage> {
        welcome_chat(self.chat.iter().map(|(bytes, m)| (*bytes, m.clone())))
    }
}

/// Everything behind the registry's lock.
#[derive(Debug)]
struct State {
    /// Rooms by name; a room exists only while it has members.
    rooms: HashMap<RoomName, Room>,
    /// The attached members' sockets.
    outboxes: Outboxes<()>,
    /// Members over all rooms.
    peers: usize,
    /// Members (attached or detached) by the client address that made each place.
    places: HashMap<IpAddr, usize>,
    /// Joins per client address in the last [`JOIN_WINDOW`].
    joins: Windows,
    /// Wrong passwords per client address in the last [`super::PasswordLimits::ip_window`].
    failed_passwords: Windows,
    /// The listed rooms in the start page's order, fullest first (then by name), so that a
    /// listing reads only what it answers.
    listed: BTreeSet<(Reverse<usize>, RoomName)>,
}

impl State {
    /// Sends `frame` to `to` in `room`, and removes from the room those who do not keep up.
    fn deliver(&mut self, room: &RoomName, to: Vec<PeerId>, frame: &Frame) {
        let slow = self.outboxes.deliver(to, frame);
        self.remove(room, slow.into_iter().map(|(id, _, ())| id).collect());
    }

    /// Removes `gone` from `room`, announces each removal to those who stay (which may find
    /// more slow members, removed in turn), and drops the room once empty.
    fn remove(&mut self, room: &RoomName, mut gone: Vec<PeerId>) {
        let State { rooms, outboxes, peers, places, listed, .. } = self;
        let Some(entry) = rooms.get_mut(room) else { return };
        while let Some(id) = gone.pop() {
            let Some(at) = entry.members.iter().position(|m| m.info.id == id) else { continue };
            let member = entry.members.remove(at);
            outboxes.detach(id, member.session);
            if entry.listed {
                relist(listed, room, entry.members.len() + 1, entry.members.len());
            }
            *peers -= 1;
            if let Some(n) = places.get_mut(&member.ip) {
                *n -= 1;
                if *n == 0 {
                    places.remove(&member.ip);
                }
            }
            let left = Frame::of(&ServerMsg::PeerLeft { id });
            for (slow, _, ()) in outboxes.deliver(entry.others(id), &left) {
                if !gone.contains(&slow) {
                    gone.push(slow);
                }
            }
        }
        if entry.members.is_empty() {
            rooms.remove(room);
        }
    }

    fn session_of(&self, room: &RoomName, id: PeerId) -> Option<u64> {
        self.rooms.get(room)?.member(id).map(|m| m.session)
    }
}

/// Moves `room` in the start page's order from `before` members to `after` (0: not there).
fn relist(listed: &mut BTreeSet<(Reverse<usize>, RoomName)>, room: &RoomName, before: usize, after: usize) {
    if before > 0 {
        listed.remove(&(Reverse(before), room.clone()));
    }
    if after > 0 {
        listed.insert((Reverse(after), room.clone()));
    }
}

/// The in-memory registry of rooms.
#[derive(Debug)]
pub struct Rooms {
    state: Mutex<State>,
    limits: Limits,
    /// The next peer id (and session number) to hand out.
    next_id: AtomicU64,
}

impl Rooms {
    /// An empty registry whose rooms hold at most `capacity` members (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(Limits::rooms_of(capacity))
    }

    /// An empty registry with these limits.
    pub fn with_limits(limits: Limits) -> Self {
        let limits = limits.clamped();
        let state = State {
            rooms: HashMap::new(),
            outboxes: Outboxes::default(),
            peers: 0,
            places: HashMap::new(),
            joins: Windows::new(JOIN_WINDOW),
            failed_passwords: Windows::new(limits.passwords.ip_window),
            listed: BTreeSet::new(),
        };
        Rooms { state: Mutex::new(state), limits, next_id: AtomicU64::new(1) }
    }

    /// The most members one room may hold.
    pub fn capacity(&self) -> usize {
        self.limits.room_capacity
    }

    fn fresh(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// See [`super::Registry::join`].
    pub fn join(&self, room: &RoomName, joiner: Joiner) -> Result<Joined, JoinError> {
        let session = self.fresh();
        let mut state = self.lock();
        let state = &mut *state;
        let resumable = state.rooms.get_mut(room).and_then(|r| r.members.iter_mut().find(|m| m.info.key == joiner.key));
        if let Some(member) = resumable {
            // The key proves this tab was admitted before: no password asked again.
            let id = member.info.id;
            member.session = session;
            member.info.name = joiner.name;
            let announce = media_announcement(id, Some(member.info.media), joiner.media);
            member.info.media = joiner.media;
            state.outboxes.attach(id, session, joiner.outbox, ());
            let entry = &state.rooms[room];
            let peers = entry.members.iter().filter(|m| m.info.id != id).map(|m| m.info.clone()).collect();
            let (locked, chat) = (entry.password.is_some(), entry.welcome_chat());
            if let Some(announce) = announce {
                let others = entry.others(id).collect();
                state.deliver(room, others, &announce);
            }
            return Ok(Joined { id, session, peers, resumed: true, locked, chat });
        }
        // A new place: the joiner's address first, so that one host cannot use up what the
        // server has for everyone.
        let now = Instant::now();
        let ip = joiner.ip;
        let (joins, window_left) = state.joins.count(ip, now);
        if joins >= self.limits.max_joins_per_ip_per_sec {
            return Err(JoinError::TooManyJoins { retry_after: window_left });
        }
        state.joins.add(ip, now);
        if state.places.get(&ip).is_some_and(|n| *n >= self.limits.max_places_per_ip) {
            return Err(JoinError::TooManyPlaces { max: self.limits.max_places_per_ip });
        }
        if state.peers >= self.limits.max_peers {
            return Err(JoinError::ServerFull);
        }
        let password = joiner.password();
        let entry = match state.rooms.get_mut(room) {
            Some(entry) => {
                match (&entry.password, password) {
                    (Some(_), None) => return Err(JoinError::PasswordRequired),
                    (Some(expected), Some(given)) => {
                        let limits = &self.limits.passwords;
                        let (failed, window_left) = state.failed_passwords.count(ip, now);
                        if failed >= limits.failures_per_ip {
                            return Err(JoinError::TooManyAttempts { retry_after: window_left });
                        }
                        if let Some(wait) = entry.guesses.wait(now, limits) {
                            return Err(JoinError::TooManyAttempts { retry_after: wait });
                        }
                        if !expected.matches(given) {
                            entry.guesses.failed(now, limits);
                            state.failed_passwords.add(ip, now);
                            return Err(JoinError::WrongPassword);
                        }
                        entry.guesses = Guesses::default();
                    }
                    _ => {}
                }
                if entry.members.len() >= self.limits.room_capacity {
                    return Err(JoinError::Full { capacity: self.limits.room_capacity });
                }
                entry
            }
            None => {
                if state.rooms.len() >= self.limits.max_rooms {
                    return Err(JoinError::ServerFull);
                }
                let password = password.map(Password::new);
                let listed = joiner.listed;
                state.rooms.entry(room.clone()).or_insert(Room { password, listed, ..Room::default() })
            }
        };
        let id = PeerId(self.fresh());
        let info = PeerInfo { id, name: joiner.name, key: joiner.key, media: joiner.media };
        let peers = entry.members.iter().map(|m| m.info.clone()).collect();
        let (locked, chat) = (entry.password.is_some(), entry.welcome_chat());
        let others = entry.others(id).collect();
        entry.members.push(Member { info: info.clone(), session, ip });
        if entry.listed {
            relist(&mut state.listed, room, entry.members.len() - 1, entry.members.len());
        }
        state.peers += 1;
        *state.places.entry(ip).or_default() += 1;
        state.outboxes.attach(id, session, joiner.outbox, ());
        state.deliver(room, others, &Frame::of(&ServerMsg::PeerJoined { peer: info }));
        Ok(Joined { id, session, peers, resumed: false, locked, chat })
    }

    /// Delivers `frame` (a signal from `from`) to `to`, if both are in `room`. A detached
    /// receiver loses it (its client renegotiates after resuming).
    pub fn relay(&self, room: &RoomName, from: PeerId, to: PeerId, frame: Frame) -> Result<(), RelayError> {
        let mut state = self.lock();
        let both_there = state.rooms.get(room).is_some_and(|r| r.member(from).is_some() && r.member(to).is_some());
        if !both_there {
            return Err(RelayError::UnknownPeer(to));
        }
        state.deliver(room, vec![to], &frame);
        Ok(())
    }

    /// See [`super::Registry::chat`].
    pub fn chat(&self, room: &RoomName, id: PeerId, text: String, at_ms: u64) {
        let mut state = self.lock();
        let Some(entry) = state.rooms.get_mut(room) else { return };
        let Some(sender) = entry.member(id) else { return };
        let message = stamp_chat(&sender.info, text, at_ms);
        let frame = Frame::of(&ServerMsg::Chat { message: message.clone() });
        if entry.chat.len() == CHAT_HISTORY {
            entry.chat.pop_front();
        }
        let bytes = serde_json::to_string(&message).map_or(0, |json| json.len());
        entry.chat.push_back((bytes, message));
        let everyone = entry.members.iter().map(|m| m.info.id).collect();
        state.deliver(room, everyone, &frame);
    }

    /// See [`super::Registry::set_media`].
    pub fn set_media(&self, room: &RoomName, id: PeerId, media: MediaState) {
        let mut state = self.lock();
        let Some(entry) = state.rooms.get_mut(room) else { return };
        let Some(member) = entry.members.iter_mut().find(|m| m.info.id == id) else { return };
        let Some(announce) = media_announcement(id, Some(member.info.media), media) else { return };
        member.info.media = media;
        let others = entry.others(id).collect();
        state.deliver(room, others, &announce);
    }

    /// See [`super::Registry::leave`]. Removing a member that is not there does nothing.
    pub fn leave(&self, room: &RoomName, id: PeerId, session: u64) {
        let mut state = self.lock();
        if state.session_of(room, id) == Some(session) {
            state.remove(room, vec![id]);
        }
    }

    /// See [`super::Registry::detach`].
    pub fn detach(&self, room: &RoomName, id: PeerId, session: u64) -> bool {
        let mut state = self.lock();
        state.session_of(room, id) == Some(session) && state.outboxes.detach(id, session).is_some()
    }

    /// See [`super::Registry::expire`].
    pub fn expire(&self, room: &RoomName, id: PeerId, session: u64) {
        let mut state = self.lock();
        let attached = state.outboxes.get(id).is_some();
        if state.session_of(room, id) == Some(session) && !attached {
            state.remove(room, vec![id]);
        }
    }

    /// The session number of `id`'s current attachment (or of the one it was detached from), if
    /// it is in `room`.
    pub fn session_of(&self, room: &RoomName, id: PeerId) -> Option<u64> {
        self.lock().session_of(room, id)
    }

    /// The rooms listed on the start page, fullest first, at most `limit`.
    pub fn listed(&self, limit: usize) -> Vec<ListedRoom> {
        let state = self.lock();
        state
            .listed
            .iter()
            .take(limit)
            .map(|(Reverse(people), name)| ListedRoom {
                name: name.clone(),
                people: *people,
                locked: state.rooms.get(name).is_some_and(|r| r.password.is_some()),
            })
            .collect()
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// How many members all rooms have together, detached ones included.
    pub fn peer_count(&self) -> usize {
        self.lock().peers
    }

    /// How many members `room` has, detached ones included (0 if it does not exist).
    pub fn member_count(&self, room: &RoomName) -> usize {
        self.lock().rooms.get(room).map_or(0, |r| r.members.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated in a way later calls
        // would trip over (every update is a single push, removal or field write), so a poisoned
        // lock is usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{key_of, outbox_bounded, Inbox, Outbox, OUTBOX_BYTES};
    use super::*;
    use confab_protocol::{DisplayName, Signal};

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn outbox() -> (Outbox, Inbox) {
        super::super::outbox()
    }

    /// The next message queued for a member, if one is there now.
    fn got(inbox: &mut Inbox) -> Option<ServerMsg> {
        inbox.try_recv().map(|frame| frame.decode().expect("frames are server messages"))
    }

    fn relay(rooms: &Rooms, room: &RoomName, from: PeerId, to: PeerId, signal: Signal) -> Result<(), RelayError> {
        rooms.relay(room, from, to, Frame::of(&ServerMsg::Signal { from, signal }))
    }

    fn joiner(name: &str, outbox: Outbox) -> Joiner {
        Joiner {
            name: DisplayName::parse(name).unwrap(),
            key: key_of(&format!("secret-of-{name}-0123456789")),
            media: MediaState::default(),
            password: None,
            listed: false,
            outbox,
            ip: IpAddr::from([192, 0, 2, 1]),
        }
    }

    fn info(id: PeerId, name: &str) -> PeerInfo {
        let j = joiner(name, outbox().0);
        PeerInfo { id, name: j.name, key: j.key, media: j.media }
    }

    #[test]
    fn join_lists_earlier_members_and_announces_the_newcomer() {
        let rooms = Rooms::new(2);
        let (a_tx, mut a_rx) = outbox();
        let (b_tx, mut b_rx) = outbox();
        let a = rooms.join(&room("r"), joiner("Ada", a_tx)).unwrap();
        assert!(a.peers.is_empty());
        assert!(!a.resumed);
        let b = rooms.join(&room("r"), joiner("Bob", b_tx)).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(b.peers, vec![info(a.id, "Ada")]);
        assert_eq!(got(&mut a_rx).unwrap(), ServerMsg::PeerJoined { peer: info(b.id, "Bob") });
        assert!(got(&mut b_rx).is_none(), "the newcomer is not told about itself");
    }

    #[test]
    fn a_full_room_refuses_and_keeps_its_members() {
        let rooms = Rooms::new(2);
        let _a = rooms.join(&room("r"), joiner("A", outbox().0)).unwrap();
        let _b = rooms.join(&room("r"), joiner("B", outbox().0)).unwrap();
        let err = rooms.join(&room("r"), joiner("C", outbox().0)).unwrap_err();
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
        let a = rooms.join(&room("r"), joiner("A", a_tx)).unwrap().id;
        let b = rooms.join(&room("r"), joiner("B", b_tx)).unwrap().id;
        let _c = rooms.join(&room("r"), joiner("C", c_tx)).unwrap().id;
        let x = rooms.join(&room("elsewhere"), joiner("X", x_tx)).unwrap().id;
        while got(&mut b_rx).is_some() {}
        while got(&mut c_rx).is_some() {}

        let offer = Signal::Offer { sdp: "v=0".into() };
        relay(&rooms, &room("r"), a, b, offer.clone()).unwrap();
        assert_eq!(got(&mut b_rx).unwrap(), ServerMsg::Signal { from: a, signal: offer.clone() });
        assert!(got(&mut c_rx).is_none());

        assert_eq!(relay(&rooms, &room("r"), a, x, offer.clone()), Err(RelayError::UnknownPeer(x)));
        assert_eq!(relay(&rooms, &room("elsewhere"), x, a, offer), Err(RelayError::UnknownPeer(a)));
        assert!(got(&mut x_rx).is_none());
    }

    #[test]
    fn leave_announces_and_empty_rooms_disappear() {
        let rooms = Rooms::new(2);
        let (a_tx, mut a_rx) = outbox();
        let a = rooms.join(&room("r"), joiner("A", a_tx)).unwrap();
        let b = rooms.join(&room("r"), joiner("B", outbox().0)).unwrap();
        got(&mut a_rx);
        rooms.leave(&room("r"), b.id, b.session);
        assert_eq!(got(&mut a_rx).unwrap(), ServerMsg::PeerLeft { id: b.id });
        rooms.leave(&room("r"), b.id, b.session);
        assert!(got(&mut a_rx).is_none(), "a second leave announces nothing");
        assert_eq!(rooms.room_count(), 1);
        rooms.leave(&room("r"), a.id, a.session);
        assert_eq!(rooms.room_count(), 0);
    }

    #[test]
    fn a_refused_join_leaves_no_empty_room_behind() {
        let rooms = Rooms::new(1);
        let a = rooms.join(&room("r"), joiner("A", outbox().0)).unwrap();
        assert!(rooms.join(&room("r"), joiner("B", outbox().0)).is_err());
        rooms.leave(&room("r"), a.id, a.session);
        assert_eq!(rooms.room_count(), 0);
    }

    #[test]
    fn a_member_that_does_not_keep_up_is_removed_and_announced() {
        let rooms = Rooms::new(2);
        let (a_tx, mut a_rx) = outbox();
        let (slow_tx, _slow_rx) = outbox_bounded(1, OUTBOX_BYTES);
        let a = rooms.join(&room("r"), joiner("A", a_tx)).unwrap().id;
        let slow = rooms.join(&room("r"), joiner("Slow", slow_tx)).unwrap().id;
        got(&mut a_rx);
        let offer = Signal::Offer { sdp: "v=0".into() };
        relay(&rooms, &room("r"), a, slow, offer.clone()).unwrap();
        relay(&rooms, &room("r"), a, slow, offer).unwrap();
        assert_eq!(got(&mut a_rx).unwrap(), ServerMsg::PeerLeft { id: slow });
        assert_eq!(rooms.member_count(&room("r")), 1);
    }

    fn from_ip(name: &str, ip: [u8; 4]) -> Joiner {
        Joiner { ip: IpAddr::from(ip), ..joiner(name, outbox().0) }
    }

    #[test]
    fn places_per_address_count_held_places_and_free_up_when_they_go() {
        let rooms = Rooms::with_limits(Limits { max_places_per_ip: 2, ..Limits::rooms_of(4) });
        let a = rooms.join(&room("a"), from_ip("A", [10, 0, 0, 1])).unwrap();
        let b = rooms.join(&room("b"), from_ip("B", [10, 0, 0, 1])).unwrap();
        // A place held for a resume still counts.
        assert!(rooms.detach(&room("a"), a.id, a.session));
        assert_eq!(
            rooms.join(&room("c"), from_ip("C", [10, 0, 0, 1])).unwrap_err(),
            JoinError::TooManyPlaces { max: 2 }
        );
        // Another address is not affected, and the held place can still be resumed.
        rooms.join(&room("c"), from_ip("D", [10, 0, 0, 2])).unwrap();
        assert!(rooms.join(&room("a"), from_ip("A", [10, 0, 0, 9])).unwrap().resumed);
        rooms.leave(&room("b"), b.id, b.session);
        rooms.join(&room("c"), from_ip("C", [10, 0, 0, 1])).unwrap();
    }

    #[test]
    fn joins_per_address_are_counted_per_second_and_resumes_are_free() {
        let rooms = Rooms::with_limits(Limits { max_joins_per_ip_per_sec: 2, ..Limits::rooms_of(4) });
        let a = rooms.join(&room("r"), from_ip("A", [10, 0, 0, 1])).unwrap();
        rooms.join(&room("r"), from_ip("B", [10, 0, 0, 1])).unwrap();
        match rooms.join(&room("r"), from_ip("C", [10, 0, 0, 1])) {
            Err(JoinError::TooManyJoins { retry_after }) => assert!(retry_after <= JOIN_WINDOW),
            other => panic!("expected too many joins, got {other:?}"),
        }
        rooms.join(&room("r"), from_ip("C", [10, 0, 0, 2])).unwrap();
        assert!(rooms.detach(&room("r"), a.id, a.session));
        assert!(rooms.join(&room("r"), from_ip("A", [10, 0, 0, 1])).unwrap().resumed);
    }

    fn listed_joiner(name: &str) -> Joiner {
        Joiner { listed: true, ..joiner(name, outbox().0) }
    }

    #[test]
    fn the_listing_follows_joins_leaves_and_expiries_fullest_first() {
        let rooms = Rooms::new(4);
        let summary = |rooms: &Rooms, limit| {
            rooms.listed(limit).into_iter().map(|r| (r.name.to_string(), r.people)).collect::<Vec<_>>()
        };
        let b = rooms.join(&room("b"), listed_joiner("B1")).unwrap();
        rooms.join(&room("a"), listed_joiner("A1")).unwrap();
        rooms.join(&room("hidden"), joiner("H", outbox().0)).unwrap();
        // Later joiners cannot list a room, and their joins count.
        let b2 = rooms.join(&room("b"), joiner("B2", outbox().0)).unwrap();
        assert_eq!(summary(&rooms, 10), [("b".to_owned(), 2), ("a".to_owned(), 1)]);
        assert_eq!(summary(&rooms, 1), [("b".to_owned(), 2)]);
        rooms.leave(&room("b"), b2.id, b2.session);
        assert_eq!(summary(&rooms, 10), [("a".to_owned(), 1), ("b".to_owned(), 1)], "equal counts by name");
        assert!(rooms.detach(&room("b"), b.id, b.session));
        assert_eq!(summary(&rooms, 10).len(), 2, "a held place still counts");
        rooms.expire(&room("b"), b.id, b.session);
        assert_eq!(summary(&rooms, 10), [("a".to_owned(), 1)]);
    }

    #[test]
    fn ids_are_never_reused() {
        let rooms = Rooms::new(1);
        let first = rooms.join(&room("r"), joiner("A", outbox().0)).unwrap();
        rooms.leave(&room("r"), first.id, first.session);
        let second = rooms.join(&room("r"), joiner("A", outbox().0)).unwrap();
        assert_ne!(first.id, second.id);
    }

    #[test]
    fn a_detached_member_resumes_its_place_silently() {
        let rooms = Rooms::new(2);
        let (a_tx, mut a_rx) = outbox();
        let a = rooms.join(&room("r"), joiner("A", a_tx)).unwrap();
        let b = rooms.join(&room("r"), joiner("B", outbox().0)).unwrap();
        got(&mut a_rx);
        assert!(rooms.detach(&room("r"), b.id, b.session));
        // Messages to a detached member are dropped, not errors.
        relay(&rooms, &room("r"), a.id, b.id, Signal::Offer { sdp: "v=0".into() }).unwrap();
        let (b2_tx, _b2_rx) = outbox();
        let b2 = rooms.join(&room("r"), joiner("B", b2_tx)).unwrap();
        assert!(b2.resumed);
        assert_eq!(b2.id, b.id);
        assert_eq!(b2.peers, vec![info(a.id, "A")]);
        assert!(got(&mut a_rx).is_none(), "nobody is told of a resume");
        // The old session's late cleanup does nothing.
        rooms.expire(&room("r"), b.id, b.session);
        rooms.leave(&room("r"), b.id, b.session);
        assert!(!rooms.detach(&room("r"), b.id, b.session));
        assert_eq!(rooms.member_count(&room("r")), 2);
        assert_eq!(rooms.session_of(&room("r"), b.id), Some(b2.session));
    }

    #[test]
    fn a_member_not_resumed_in_time_expires_and_is_announced() {
        let rooms = Rooms::new(2);
        let (a_tx, mut a_rx) = outbox();
        let _a = rooms.join(&room("r"), joiner("A", a_tx)).unwrap();
        let b = rooms.join(&room("r"), joiner("B", outbox().0)).unwrap();
        got(&mut a_rx);
        assert!(rooms.detach(&room("r"), b.id, b.session));
        rooms.expire(&room("r"), b.id, b.session);
        assert_eq!(got(&mut a_rx).unwrap(), ServerMsg::PeerLeft { id: b.id });
        // Joining again now is a new arrival.
        let b2 = rooms.join(&room("r"), joiner("B", outbox().0)).unwrap();
        assert!(!b2.resumed);
        assert_ne!(b2.id, b.id);
    }

    #[test]
    fn a_resume_does_not_need_a_free_place() {
        let rooms = Rooms::new(2);
        let _a = rooms.join(&room("r"), joiner("A", outbox().0)).unwrap();
        let b = rooms.join(&room("r"), joiner("B", outbox().0)).unwrap();
        assert!(rooms.detach(&room("r"), b.id, b.session));
        assert!(rooms.join(&room("r"), joiner("C", outbox().0)).is_err(), "a held place is taken");
        assert!(rooms.join(&room("r"), joiner("B", outbox().0)).unwrap().resumed);
    }

    #[test]
    fn media_changes_are_announced_and_shown_to_late_joiners() {
        let rooms = Rooms::new(3);
        let (a_tx, mut a_rx) = outbox();
        let _a = rooms.join(&room("r"), joiner("A", a_tx)).unwrap();
        let b = rooms.join(&room("r"), joiner("B", outbox().0)).unwrap();
        got(&mut a_rx);
        let muted = MediaState { muted: true, camera_off: false, screen: false };
        rooms.set_media(&room("r"), b.id, muted);
        assert_eq!(got(&mut a_rx).unwrap(), ServerMsg::PeerMedia { id: b.id, media: muted });
        rooms.set_media(&room("r"), b.id, muted);
        assert!(got(&mut a_rx).is_none(), "no change, no message");
        let c = rooms.join(&room("r"), joiner("C", outbox().0)).unwrap();
        assert_eq!(c.peers.iter().find(|p| p.id == b.id).unwrap().media, muted);
    }
}
