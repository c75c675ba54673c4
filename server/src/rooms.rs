//! The room registry: who is in which room, and delivery of messages to them.
//!
//! This is the in-memory registry, the embedded default. Its surface is [`Rooms::join`],
//! [`Rooms::relay`], [`Rooms::set_media`], [`Rooms::leave`], [`Rooms::detach`] and
//! [`Rooms::expire`] (plus counters), so that another backend can take its place behind the
//! same calls.
//!
//! A member is identified by its id and its key (derived from the browser tab's secret). A
//! member whose socket dropped is *detached*: it keeps its place, messages to it are dropped,
//! and a join with the same key within the grace period takes the place back (same id, no
//! announcements). Each attachment has a session number, so a late cleanup of an old socket
//! cannot remove a member that a newer socket has resumed.
//!
//! Each attached member is reached through a bounded [`Outbox`] (at most [`OUTBOX_CAPACITY`]
//! messages and [`OUTBOX_BYTES`] bytes). A member whose outbox is full is not keeping up; it is
//! removed from its room (its session then ends) rather than letting its queue grow without limit
//! or silently losing part of a negotiation.

use confab_protocol::{
    ChatMessage, DisplayName, ListedRoom, MediaState, PeerId, PeerInfo, PeerKey, RoomName, ServerMsg, Signal,
};
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

/// How many recent chat messages a room keeps for those who join later or reconnect.
pub const CHAT_HISTORY: usize = 50;

/// The most bytes of chat history (JSON-encoded messages) one welcome carries: the newest
/// messages that fit (50 messages of 1,000 characters would be about 150 KB).
pub const WELCOME_CHAT_BYTES: usize = 32 * 1024;

/// How many messages may wait for one member before it counts as too slow.
pub const OUTBOX_CAPACITY: usize = 128;

/// How many bytes may wait for one member before it counts as too slow (see [`weight`]): 128
/// messages of up to 64 KiB would otherwise be 8 MiB per socket.
pub const OUTBOX_BYTES: usize = 1024 * 1024;

/// The sending half of one member's queue of outgoing messages, bounded by messages and by bytes.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<ServerMsg>,
    /// The weight of the messages queued now, shared with the [`Inbox`].
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The receiving half of a member's queue, read by its session.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<ServerMsg>,
    queued: Arc<AtomicUsize>,
}

/// A queue of [`OUTBOX_CAPACITY`] messages and [`OUTBOX_BYTES`] bytes.
pub fn outbox() -> (Outbox, Inbox) {
    outbox_bounded(OUTBOX_CAPACITY, OUTBOX_BYTES)
}

/// A queue of at most `messages` messages weighing at most `bytes` together.
pub fn outbox_bounded(messages: usize, bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(messages.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    (Outbox { tx, queued: queued.clone(), max_bytes: bytes }, Inbox { rx, queued })
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The queue is at one of its bounds: the member does not keep up.
    Full,
    /// The member's session is gone.
    Closed,
}

impl Outbox {
    /// Queues `msg`, unless that would pass either bound or the session is gone.
    pub fn try_send(&self, msg: ServerMsg) -> Result<(), SendError> {
        let weight = weight(&msg);
        let before = self.queued.fetch_add(weight, Ordering::AcqRel);
        if before + weight > self.max_bytes {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            return Err(SendError::Full);
        }
        self.tx.try_send(msg).map_err(|e| {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            match e {
                TrySendError::Full(_) => SendError::Full,
                TrySendError::Closed(_) => SendError::Closed,
            }
        })
    }
}

impl Inbox {
    /// The next queued message; `None` once every [`Outbox`] is gone.
    pub async fn recv(&mut self) -> Option<ServerMsg> {
        let msg = self.rx.recv().await?;
        self.queued.fetch_sub(weight(&msg), Ordering::AcqRel);
        Some(msg)
    }

    /// The next queued message, if one is there now.
    pub fn try_recv(&mut self) -> Result<ServerMsg, TryRecvError> {
        let msg = self.rx.try_recv()?;
        self.queued.fetch_sub(weight(&msg), Ordering::AcqRel);
        Ok(msg)
    }
}

/// What a queued message counts for against [`OUTBOX_BYTES`]: the text it carries (SDP,
/// candidate, chat, names and keys) plus a fixed 64 bytes for the rest.
pub fn weight(msg: &ServerMsg) -> usize {
    let carried = match msg {
        ServerMsg::Signal { signal: Signal::Offer { sdp } | Signal::Answer { sdp }, .. } => sdp.len(),
        ServerMsg::Signal { signal: Signal::Candidate(c), .. } => {
            c.candidate.len() + c.sdp_mid.as_ref().map_or(0, String::len)
        }
        ServerMsg::Chat { message } => message.text.len() + message.name.as_str().len() + message.from.0.len(),
        ServerMsg::PeerJoined { peer } => peer.name.as_str().len() + peer.key.0.len(),
        ServerMsg::PeerLeft { .. } | ServerMsg::PeerMedia { .. } => 0,
        // Not queued by the registry; counted as sent.
        ServerMsg::Welcome { .. } | ServerMsg::Error { .. } | ServerMsg::IceServers { .. } => msg.to_json().len(),
    };
    carried + 64
}

/// The chat a welcome carries, oldest first: the newest messages of `history` (oldest first,
/// each with its size in bytes) that fit in [`WELCOME_CHAT_BYTES`] together.
pub(crate) fn welcome_chat<T>(history: impl DoubleEndedIterator<Item = (usize, T)>) -> Vec<T> {
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

/// Derives the public key of a join secret: the first 128 bits of its SHA-256, in hex.
pub fn key_of(secret: &str) -> PeerKey {
    let digest = Sha256::digest(secret.as_bytes());
    PeerKey(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// A key for a member that gave no secret: random, so it can never be resumed.
pub fn random_key() -> PeerKey {
    key_of(&format!("{:032x}", rand::random::<u128>()))
}

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

/// The window over which [`Limits::max_joins_per_ip_per_sec`] counts.
pub const JOIN_WINDOW: Duration = Duration::from_secs(1);

/// Counts events per client address in fixed windows, each starting with the address's first
/// event; ended windows are forgotten as time passes, so memory follows the addresses seen in
/// the last window only.
#[derive(Debug)]
struct Windows {
    length: Duration,
    by_ip: HashMap<IpAddr, (Instant, u32)>,
    /// When each window began, oldest first.
    started: VecDeque<(Instant, IpAddr)>,
}

impl Windows {
    fn new(length: Duration) -> Self {
        Windows { length, by_ip: HashMap::new(), started: VecDeque::new() }
    }

    fn forget_ended(&mut self, now: Instant) {
        while let Some(&(start, ip)) = self.started.front() {
            if now.duration_since(start) < self.length {
                break;
            }
            self.started.pop_front();
            if self.by_ip.get(&ip).is_some_and(|(s, _)| *s == start) {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// The events of `ip` in its current window, and how long until that window ends.
    fn count(&mut self, ip: IpAddr, now: Instant) -> (u32, Duration) {
        self.forget_ended(now);
        match self.by_ip.get(&ip) {
            Some((start, n)) => (*n, self.length.saturating_sub(now.duration_since(*start))),
            None => (0, self.length),
        }
    }

    /// Counts one event of `ip`.
    fn add(&mut self, ip: IpAddr, now: Instant) {
        self.forget_ended(now);
        let started = &mut self.started;
        self.by_ip
            .entry(ip)
            .or_insert_with(|| {
                started.push_back((now, ip));
                (now, 0)
            })
            .1 += 1;
    }
}

/// A room password as the registry keeps it: salted SHA-256, compared in constant time. The
/// plain text is never stored. (Room passwords live only as long as their room, in memory; a
/// deliberately slow hash would make every join an easy way to burn the server's CPU.)
struct Password {
    salt: [u8; 16],
    digest: [u8; 32],
}

impl Password {
    fn new(plain: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        Password { salt, digest: Self::hash(&salt, plain) }
    }

    fn hash(salt: &[u8; 16], plain: &str) -> [u8; 32] {
        salted_digest(salt, plain)
    }

    fn matches(&self, plain: &str) -> bool {
        Self::hash(&self.salt, plain).ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// The digest a room password is kept as: SHA-256 over the salt and the password.
pub(crate) fn salted_digest(salt: &[u8; 16], plain: &str) -> [u8; 32] {
    Sha256::new().chain_update(salt).chain_update(plain.as_bytes()).finalize().into()
}

/// Why a relay was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// No member with that id is in the sender's room.
    #[error("peer {0} is not in this room")]
    UnknownPeer(PeerId),
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
    /// none.
    pub password: Option<String>,
    /// List the room on the start page (only when it creates the room).
    pub listed: bool,
    /// Where its messages go.
    pub outbox: Outbox,
    /// Its client address, as per-address limits count it ([`crate::addr::ip_group`]).
    pub ip: IpAddr,
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

/// One member of a room.
#[derive(Debug)]
struct Member {
    /// The member's id, name, key and media state.
    info: PeerInfo,
    /// The member's queue of outgoing messages; `None` while detached.
    outbox: Option<Outbox>,
    /// The session number of the current attachment.
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

/// A room's recent wrong passwords.
#[derive(Debug, Default)]
struct Guesses {
    /// How many, since the room began, the last right password or `room_memory` of quiet.
    failures: u32,
    /// When the last one came.
    last: Option<Instant>,
    /// No password is checked before this.
    wait_until: Option<Instant>,
}

impl Guesses {
    /// How long until a password may be checked, if it may not be now.
    fn wait(&mut self, now: Instant, limits: &PasswordLimits) -> Option<Duration> {
        if self.last.is_some_and(|last| now.duration_since(last) >= limits.room_memory) {
            *self = Guesses::default();
        }
        self.wait_until.map(|until| until.saturating_duration_since(now)).filter(|wait| !wait.is_zero())
    }

    fn failed(&mut self, now: Instant, limits: &PasswordLimits) {
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        self.wait_until = limits.room_wait(self.failures).map(|wait| now + wait);
    }
}

/// Everything behind the registry's lock.
#[derive(Debug)]
struct State {
    /// Rooms by name; a room exists only while it has members.
    rooms: HashMap<RoomName, Room>,
    /// Members over all rooms.
    peers: usize,
    /// Members (attached or detached) by the client address that made each place.
    places: HashMap<IpAddr, usize>,
    /// Joins per client address in the last [`JOIN_WINDOW`].
    joins: Windows,
    /// Wrong passwords per client address in the last [`PasswordLimits::ip_window`].
    failed_passwords: Windows,
    /// The listed rooms in the start page's order, fullest first (then by name), so that a
    /// listing reads only what it answers.
    listed: BTreeSet<(Reverse<usize>, RoomName)>,
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
        let limits = Limits { room_capacity: limits.room_capacity.max(1), ..limits };
        let state = State {
            rooms: HashMap::new(),
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

    /// Adds a member to `room` (creating the room if needed) and tells the others; or, if a
    /// member with the same key is there (detached, or attached through an older socket), gives
    /// its place to this socket without telling anyone. The older socket's outbox is dropped,
    /// which ends its session.
    pub fn join(&self, room: &RoomName, joiner: Joiner) -> Result<Joined, JoinError> {
        let session = self.fresh();
        let mut state = self.lock();
        let state = &mut *state;
        let password = joiner.password.filter(|p| !p.is_empty());
        let existing = state.rooms.get_mut(room);
        if let Some(member) = existing.and_then(|r| r.members.iter_mut().find(|m| m.info.key == joiner.key)) {
            // The key proves this tab was admitted before: no password asked again.
            member.outbox = Some(joiner.outbox);
            member.session = session;
            member.info.name = joiner.name;
            let id = member.info.id;
            let media_changed = member.info.media != joiner.media;
            member.info.media = joiner.media;
            let entry = &state.rooms[room];
            let peers = entry.members.iter().filter(|m| m.info.id != id).map(|m| m.info.clone()).collect();
            let locked = entry.password.is_some();
            let chat = welcome_chat(entry.chat.iter().map(|(bytes, m)| (*bytes, m.clone())));
            if media_changed {
                let slow = deliver_to_all_but(&entry.members, id, &ServerMsg::PeerMedia { id, media: joiner.media });
                remove(state, room, slow);
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
        let entry = match state.rooms.get_mut(room) {
            Some(entry) => {
                match (&entry.password, &password) {
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
                let password = password.as_deref().map(Password::new);
                let listed = joiner.listed;
                state.rooms.entry(room.clone()).or_insert(Room {
                    members: Vec::new(),
                    password,
                    chat: VecDeque::new(),
                    listed,
                    guesses: Guesses::default(),
                })
            }
        };
        let id = PeerId(self.fresh());
        let info = PeerInfo { id, name: joiner.name, key: joiner.key, media: joiner.media };
        let peers = entry.members.iter().map(|m| m.info.clone()).collect();
        let locked = entry.password.is_some();
        let chat = welcome_chat(entry.chat.iter().map(|(bytes, m)| (*bytes, m.clone())));
        entry.members.push(Member { info: info.clone(), outbox: Some(joiner.outbox), session, ip });
        if entry.listed {
            relist(&mut state.listed, room, entry.members.len() - 1, entry.members.len());
        }
        let slow = deliver_to_all_but(&entry.members, id, &ServerMsg::PeerJoined { peer: info });
        state.peers += 1;
        *state.places.entry(ip).or_default() += 1;
        remove(state, room, slow);
        Ok(Joined { id, session, peers, resumed: false, locked, chat })
    }

    /// Delivers `signal` from `from` to `to`, if both are in `room`. A detached receiver loses
    /// it (its client renegotiates after resuming).
    pub fn relay(&self, room: &RoomName, from: PeerId, to: PeerId, signal: Signal) -> Result<(), RelayError> {
        let mut state = self.lock();
        let Some(members) = state.rooms.get(room).map(|r| &r.members) else {
            return Err(RelayError::UnknownPeer(to));
        };
        if to == from || !members.iter().any(|m| m.info.id == from) {
            return Err(RelayError::UnknownPeer(to));
        }
        let target = members.iter().find(|m| m.info.id == to).ok_or(RelayError::UnknownPeer(to))?;
        if deliver(target, ServerMsg::Signal { from, signal }) == Delivery::TooSlow {
            remove(&mut state, room, vec![to]);
        }
        Ok(())
    }

    /// Stamps `text` as a chat message from `id`, keeps it in the room's history and sends it to
    /// every member, `id` included. Does nothing if `id` is not in `room`.
    pub fn chat(&self, room: &RoomName, id: PeerId, text: String, at_ms: u64) {
        // Random, not sequential: ids stay unique across server restarts, and browsers keep the
        // messages they have through a restart.
        let message_id = rand::random();
        let mut state = self.lock();
        let Some(entry) = state.rooms.get_mut(room) else { return };
        let Some(sender) = entry.members.iter().find(|m| m.info.id == id) else { return };
        let message =
            ChatMessage { id: message_id, from: sender.info.key.clone(), name: sender.info.name.clone(), text, at_ms };
        if entry.chat.len() == CHAT_HISTORY {
            entry.chat.pop_front();
        }
        let bytes = serde_json::to_string(&message).map_or(0, |json| json.len());
        entry.chat.push_back((bytes, message.clone()));
        let msg = ServerMsg::Chat { message };
        let slow: Vec<PeerId> =
            entry.members.iter().filter(|m| deliver(m, msg.clone()) == Delivery::TooSlow).map(|m| m.info.id).collect();
        remove(&mut state, room, slow);
    }

    /// Records `id`'s mute and camera state and tells the others.
    pub fn set_media(&self, room: &RoomName, id: PeerId, media: MediaState) {
        let mut state = self.lock();
        let Some(members) = state.rooms.get_mut(room).map(|r| &mut r.members) else { return };
        let Some(member) = members.iter_mut().find(|m| m.info.id == id) else { return };
        if member.info.media == media {
            return;
        }
        member.info.media = media;
        let slow = deliver_to_all_but(members, id, &ServerMsg::PeerMedia { id, media });
        remove(&mut state, room, slow);
    }

    /// Removes `id` from `room` and tells the others, if `session` is still its attachment;
    /// drops the room when it is empty. Removing a member that is not there does nothing.
    pub fn leave(&self, room: &RoomName, id: PeerId, session: u64) {
        let mut state = self.lock();
        if current_session(&state, room, id) == Some(session) {
            remove(&mut state, room, vec![id]);
        }
    }

    /// Keeps `id`'s place after its socket dropped, if `session` is still its attachment.
    /// Returns true if the member is now detached (the caller then calls [`Rooms::expire`] after
    /// the grace period).
    pub fn detach(&self, room: &RoomName, id: PeerId, session: u64) -> bool {
        let mut state = self.lock();
        let Some(member) = state.rooms.get_mut(room).and_then(|r| r.members.iter_mut().find(|m| m.info.id == id))
        else {
            return false;
        };
        if member.session != session {
            return false;
        }
        member.outbox = None;
        true
    }

    /// Removes `id` if it is still detached from `session` (nobody resumed it).
    pub fn expire(&self, room: &RoomName, id: PeerId, session: u64) {
        let mut state = self.lock();
        let still_detached = state
            .rooms
            .get(room)
            .and_then(|r| r.members.iter().find(|m| m.info.id == id))
            .is_some_and(|m| m.session == session && m.outbox.is_none());
        if still_detached {
            remove(&mut state, room, vec![id]);
        }
    }

    /// The session number of `id`'s current attachment, if it is in `room`.
    pub fn session_of(&self, room: &RoomName, id: PeerId) -> Option<u64> {
        current_session(&self.lock(), room, id)
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

fn current_session(state: &State, room: &RoomName, id: PeerId) -> Option<u64> {
    state.rooms.get(room)?.members.iter().find(|m| m.info.id == id).map(|m| m.session)
}

#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Queued,
    /// The receiver is detached, or its session has ended and removes itself.
    Gone,
    TooSlow,
}

fn deliver(member: &Member, msg: ServerMsg) -> Delivery {
    let Some(outbox) = &member.outbox else { return Delivery::Gone };
    match outbox.try_send(msg) {
        Ok(()) => Delivery::Queued,
        Err(SendError::Closed) => Delivery::Gone,
        Err(SendError::Full) => {
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
fn remove(state: &mut State, room: &RoomName, mut gone: Vec<PeerId>) {
    let State { rooms, peers, places, listed, .. } = state;
    let Some(entry) = rooms.get_mut(room) else { return };
    let members = &mut entry.members;
    while let Some(id) = gone.pop() {
        let Some(at) = members.iter().position(|m| m.info.id == id) else { continue };
        let member = members.remove(at);
        if entry.listed {
            relist(listed, room, members.len() + 1, members.len());
        }
        *peers -= 1;
        if let Some(n) = places.get_mut(&member.ip) {
            *n -= 1;
            if *n == 0 {
                places.remove(&member.ip);
            }
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

    fn outbox() -> (Outbox, Inbox) {
        super::outbox()
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
    fn keys_are_derived_not_copied() {
        let key = key_of("a-secret-of-the-tab");
        assert_eq!(key, key_of("a-secret-of-the-tab"));
        assert_ne!(key, key_of("another-secret-of-a-tab"));
        assert_eq!(key.0.len(), 32);
        assert!(!key.0.contains("secret"));
        assert_ne!(random_key(), random_key());
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
        assert_eq!(a_rx.try_recv().unwrap(), ServerMsg::PeerJoined { peer: info(b.id, "Bob") });
        assert!(b_rx.try_recv().is_err(), "the newcomer is not told about itself");
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
        let a = rooms.join(&room("r"), joiner("A", a_tx)).unwrap();
        let b = rooms.join(&room("r"), joiner("B", outbox().0)).unwrap();
        let _ = a_rx.try_recv();
        rooms.leave(&room("r"), b.id, b.session);
        assert_eq!(a_rx.try_recv().unwrap(), ServerMsg::PeerLeft { id: b.id });
        rooms.leave(&room("r"), b.id, b.session);
        assert!(a_rx.try_recv().is_err(), "a second leave announces nothing");
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
        let _ = a_rx.try_recv();
        let offer = Signal::Offer { sdp: "v=0".into() };
        rooms.relay(&room("r"), a, slow, offer.clone()).unwrap();
        rooms.relay(&room("r"), a, slow, offer).unwrap();
        assert_eq!(a_rx.try_recv().unwrap(), ServerMsg::PeerLeft { id: slow });
        assert_eq!(rooms.member_count(&room("r")), 1);
    }

    #[test]
    fn an_outbox_is_full_at_its_message_bound_or_its_byte_bound() {
        let (tx, mut rx) = outbox_bounded(3, 2 * (1000 + 64));
        let offer = |n: usize| ServerMsg::Signal { from: PeerId(1), signal: Signal::Offer { sdp: "v".repeat(n) } };
        tx.try_send(offer(1000)).unwrap();
        tx.try_send(offer(1000)).unwrap();
        assert!(matches!(tx.try_send(offer(1)), Err(SendError::Full)), "over the byte bound");
        // Reading frees its bytes.
        rx.try_recv().unwrap();
        tx.try_send(offer(1)).unwrap();
        tx.try_send(offer(1)).unwrap();
        assert!(matches!(tx.try_send(offer(1)), Err(SendError::Full)), "over the message bound");
        drop(rx);
        assert!(matches!(tx.try_send(offer(1)), Err(SendError::Closed)));
    }

    #[test]
    fn a_welcome_carries_the_newest_chat_that_fits() {
        let history = (0..10).map(|i| (WELCOME_CHAT_BYTES / 4, i));
        assert_eq!(welcome_chat(history), vec![6, 7, 8, 9]);
        assert_eq!(welcome_chat([(WELCOME_CHAT_BYTES + 1, 0)].into_iter()), Vec::<i32>::new());
        assert_eq!(welcome_chat([(10, 'a'), (10, 'b')].into_iter()), vec!['a', 'b']);
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

    #[test]
    fn windows_end_and_are_forgotten() {
        let mut windows = Windows::new(Duration::from_secs(1));
        let (ip, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        windows.add(ip, t0);
        windows.add(ip, t0 + Duration::from_millis(300));
        windows.add(other, t0 + Duration::from_millis(500));
        assert_eq!(windows.count(ip, t0 + Duration::from_millis(600)), (2, Duration::from_millis(400)));
        assert_eq!(windows.count(ip, t0 + Duration::from_millis(1000)), (0, Duration::from_secs(1)));
        assert_eq!(windows.by_ip.len(), 1, "the ended window is forgotten");
        assert_eq!(windows.count(other, t0 + Duration::from_millis(1000)).0, 1);
        assert_eq!(windows.count(other, t0 + Duration::from_millis(1600)).0, 0);
        assert!(windows.by_ip.is_empty() && windows.started.is_empty());
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
        let _ = a_rx.try_recv();
        assert!(rooms.detach(&room("r"), b.id, b.session));
        // Messages to a detached member are dropped, not errors.
        rooms.relay(&room("r"), a.id, b.id, Signal::Offer { sdp: "v=0".into() }).unwrap();
        let (b2_tx, _b2_rx) = outbox();
        let b2 = rooms.join(&room("r"), joiner("B", b2_tx)).unwrap();
        assert!(b2.resumed);
        assert_eq!(b2.id, b.id);
        assert_eq!(b2.peers, vec![info(a.id, "A")]);
        assert!(a_rx.try_recv().is_err(), "nobody is told of a resume");
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
        let _ = a_rx.try_recv();
        assert!(rooms.detach(&room("r"), b.id, b.session));
        rooms.expire(&room("r"), b.id, b.session);
        assert_eq!(a_rx.try_recv().unwrap(), ServerMsg::PeerLeft { id: b.id });
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
        let _ = a_rx.try_recv();
        let muted = MediaState { muted: true, camera_off: false, screen: false };
        rooms.set_media(&room("r"), b.id, muted);
        assert_eq!(a_rx.try_recv().unwrap(), ServerMsg::PeerMedia { id: b.id, media: muted });
        rooms.set_media(&room("r"), b.id, muted);
        assert!(a_rx.try_recv().is_err(), "no change, no message");
        let c = rooms.join(&room("r"), joiner("C", outbox().0)).unwrap();
        assert_eq!(c.peers.iter().find(|p| p.id == b.id).unwrap().media, muted);
    }
}
