//! The room registry as a state machine: any sequence of joins (with keys, passwords, rooms),
//! relays, media changes, leaves, detaches and expiries. After every step the registry agrees
//! with a model of who is where, no room is over capacity, nothing reaches a member that is not
//! about its own room, and a relay never crosses rooms.
//!
//! Shared by the `rooms` fuzz target (any sequence, in memory; `fuzz/` includes this file) and
//! by the drift test below it, which replays the fuzz corpus on both backends and requires the
//! same transcript from each, step by step.

use arbitrary::Arbitrary;
use confab_protocol::{DisplayName, MediaState, PeerId, PeerKey, RoomName, ServerMsg, Signal};
use confab_server::registry::{Inbox, JoinError, Joiner, Limits, Outbox, Outgoing, Registry};
use std::collections::HashMap;

const ROOMS: [&str; 3] = ["a", "b", "c"];
const CAPACITY: usize = 3;
const MAX_PEERS: usize = 7;
const MAX_ROOMS: usize = 2;
/// The most operations one run takes.
pub const MAX_OPS: usize = 200;

/// One step.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    Join {
        room: u8,
        key: u8,
        password: Option<u8>,
        muted: bool,
    },
    Relay {
        from: u8,
        to: u8,
    },
    Media {
        who: u8,
        muted: bool,
        camera_off: bool,
    },
    Leave {
        who: u8,
    },
    Detach {
        who: u8,
    },
    Expire {
        who: u8,
    },
    /// Reads a member's queued messages (a member that never reads becomes "too slow").
    Drain {
        who: u8,
    },
}

/// The limits the model is checked against.
pub fn limits() -> Limits {
    Limits { max_rooms: MAX_ROOMS, max_peers: MAX_PEERS, max_places_per_ip: 3, ..Limits::rooms_of(CAPACITY) }
}

/// One attachment the run made.
struct Attached {
    room: RoomName,
    id: PeerId,
    session: u64,
    inbox: Inbox,
    ended: bool,
    /// The how-manieth attachment of the run it is.
    serial: usize,
}

/// What a run observed, with peer ids numbered in the order the run first saw them (the
/// backends number peers differently).
#[derive(Default)]
struct Transcript {
    lines: Vec<String>,
    names: HashMap<PeerId, usize>,
}

impl Transcript {
    fn name(&mut self, id: PeerId) -> String {
        let next = self.names.len();
        format!("#{}", self.names.entry(id).or_insert(next))
    }
}

/// Runs `ops` (at most [`MAX_OPS`]) on `registry` (made with [`limits`], empty, its rooms named
/// `<prefix>a`, `<prefix>b`, `<prefix>c`), with outboxes from `outbox`; panics where the
/// registry breaks the model, and leaves it empty. Returns the transcript.
pub async fn run(registry: &Registry, prefix: &str, ops: Vec<Op>, outbox: impl Fn() -> (Outbox, Inbox)) -> Vec<String> {
    let rooms: Vec<RoomName> = ROOMS.iter().map(|r| RoomName::parse(&format!("{prefix}{r}")).unwrap()).collect();
    let mut attached: Vec<Attached> = Vec::new();
    // Which room each id ever joined: a message about an id must come from that room.
    let mut room_of: HashMap<PeerId, RoomName> = HashMap::new();
    let mut seen = Transcript::default();
    // Every attachment made, for the cleanup at the end.
    let mut sessions: Vec<(RoomName, PeerId, u64)> = Vec::new();
    for op in ops.into_iter().take(MAX_OPS) {
        let pick = |who: u8, n: usize| (n > 0).then(|| usize::from(who) % n);
        match op {
            Op::Join { room, key, password, muted } => {
                let room = rooms[usize::from(room) % rooms.len()].clone();
                let (outbox, inbox) = outbox();
                let joiner = Joiner {
                    name: DisplayName::parse("fuzz").unwrap(),
                    key: PeerKey(format!("key-{}", key % 8)),
                    media: MediaState { muted, camera_off: false, screen: false },
                    password: password.map(|p| format!("pw{}", p % 3)),
                    listed: key % 2 == 0,
                    outbox,
                    ip: std::net::IpAddr::from([192, 0, 2, key % 4]),
                };
                let line = match registry.join(&room, joiner).await.unwrap() {
                    Ok(joined) => {
                        assert!(joined.peers.len() < CAPACITY);
                        if let Some(earlier) = room_of.insert(joined.id, room.clone()) {
                            assert_eq!(earlier, room, "an id never moves to another room");
                        }
                        let peers: Vec<String> = joined.peers.iter().map(|p| seen.name(p.id)).collect();
                        let line = format!(
                            "join {room}: {} (attachment {}) resumed {} locked {} peers {peers:?}",
                            seen.name(joined.id),
                            sessions.len(),
                            joined.resumed,
                            joined.locked
                        );
                        sessions.push((room.clone(), joined.id, joined.session));
                        attached.push(Attached {
                            room,
                            id: joined.id,
                            session: joined.session,
                            inbox,
                            ended: false,
                            serial: sessions.len() - 1,
                        });
                        line
                    }
                    Err(e) => {
                        match e {
                            JoinError::Full { capacity } => assert_eq!(capacity, CAPACITY),
                            JoinError::PasswordRequired
                            | JoinError::WrongPassword
                            | JoinError::ServerFull
                            | JoinError::TooManyJoins { .. }
                            | JoinError::TooManyPlaces { .. }
                            | JoinError::TooManyAttempts { .. } => {}
                        }
                        // The refusal's kind, without the times some refusals carry.
                        let kind = format!("{e:?}");
                        format!("join {room}: refused {}", kind.split([' ', '{']).next().unwrap_or_default())
                    }
                };
                seen.lines.push(line);
            }
            Op::Relay { from, to } => {
                let (Some(f), Some(t)) = (pick(from, attached.len()), pick(to, attached.len())) else { continue };
                let (room, from, to) = (attached[f].room.clone(), attached[f].id, attached[t].id);
                let ok = registry.relay(&room, from, to, Signal::Offer { sdp: "v=0".into() }).await.unwrap().is_ok();
                if ok {
                    assert_eq!(room_of[&to], room, "a relay reached another room");
                }
                let line = format!("relay {}→{}: {ok}", seen.name(from), seen.name(to));
                seen.lines.push(line);
            }
            Op::Media { who, muted, camera_off } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                let media = MediaState { muted, camera_off, screen: false };
                registry.set_media(&attached[i].room, attached[i].id, media).await.unwrap();
                let line = format!("media {}", seen.name(attached[i].id));
                seen.lines.push(line);
            }
            Op::Leave { who } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                let a = attached.remove(i);
                registry.leave(&a.room, a.id, a.session).await.unwrap();
                let line = format!("leave {} (attachment {})", seen.name(a.id), a.serial);
                seen.lines.push(line);
            }
            Op::Detach { who } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                let a = &attached[i];
                let detached = registry.detach(&a.room, a.id, a.session).await.unwrap();
                let line = format!("detach {} (attachment {}): {detached}", seen.name(a.id), a.serial);
                seen.lines.push(line);
            }
            Op::Expire { who } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                let a = &attached[i];
                registry.expire(&a.room, a.id, a.session).await.unwrap();
                let line = format!("expire {} (attachment {})", seen.name(a.id), a.serial);
                seen.lines.push(line);
            }
            Op::Drain { who } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                registry.flush().await.unwrap();
                let a = &mut attached[i];
                let mut got = Vec::new();
                while !a.ended {
                    let Some(next) = a.inbox.try_next() else { break };
                    let frame = match next {
                        Outgoing::Frame(frame) => frame,
                        Outgoing::End(reason) => {
                            a.ended = true;
                            got.push(format!("end {reason:?}"));
                            break;
                        }
                    };
                    let msg = frame.decode().expect("the registry queues server messages");
                    let (about, what) = match msg {
                        ServerMsg::PeerJoined { peer } => (peer.id, "joined"),
                        ServerMsg::PeerLeft { id } => (id, "left"),
                        ServerMsg::PeerMedia { id, .. } => (id, "media"),
                        ServerMsg::Signal { from, .. } => (from, "signal"),
                        other => panic!("the registry queued {other:?}"),
                    };
                    assert_eq!(room_of[&about], a.room, "a message crossed rooms");
                    got.push(format!("{what} {}", seen.name(about)));
                }
                let line = format!("drain {} (attachment {}): {got:?}", seen.name(attached[i].id), attached[i].serial);
                seen.lines.push(line);
            }
        }
        // The registry's counts agree with each other and with the limits.
        let mut per_room = Vec::new();
        for room in &rooms {
            let n = registry.member_count(room).await.unwrap();
            assert!(n <= CAPACITY);
            per_room.push(n);
        }
        let peers = registry.peer_count().await.unwrap();
        let room_count = registry.room_count().await.unwrap();
        assert_eq!(per_room.iter().sum::<usize>(), peers);
        assert!(peers <= MAX_PEERS && room_count <= MAX_ROOMS);
        // The start page's list agrees with the rooms, fullest first.
        let listed = registry.listed(rooms.len()).await.unwrap();
        for r in &listed {
            assert_eq!(r.people, registry.member_count(&r.name).await.unwrap(), "a listed count is stale");
        }
        assert!(listed.windows(2).all(|w| (w[1].people, &w[0].name) < (w[0].people, &w[1].name)));
        let listed: Vec<String> = listed.iter().map(|r| format!("{} {} {}", r.name, r.people, r.locked)).collect();
        seen.lines.push(format!("  rooms {room_count} people {per_room:?} listed {listed:?}"));
    }
    // Everyone leaves: nothing is left behind.
    for a in attached.drain(..) {
        registry.leave(&a.room, a.id, a.session).await.unwrap();
    }
    // Detached members whose sockets are gone expire (each place under the session it was
    // detached from: every session the run made is tried).
    for (room, id, session) in &sessions {
        registry.detach(room, *id, *session).await.unwrap();
        registry.expire(room, *id, *session).await.unwrap();
    }
    assert_eq!(registry.peer_count().await.unwrap(), 0, "people left behind");
    assert_eq!(registry.room_count().await.unwrap(), 0, "rooms left behind");
    seen.lines
}
