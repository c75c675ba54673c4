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
        if state.outboxes.get(id).is_none() {
            return;
        }
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
        if state.outboxes.get(id).is_none() {
            return;
        }
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
mod tests;
