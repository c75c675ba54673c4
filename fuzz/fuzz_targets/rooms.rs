//! The room registry as a state machine: any sequence of joins (with keys, passwords, rooms),
//! relays, media changes, leaves, detaches and expiries. After every step the registry agrees
//! with a model of who is where, no room is over capacity, nothing reaches a member that is not
//! about its own room, and a relay never crosses rooms.
#![no_main]

use arbitrary::Arbitrary;
use confab_protocol::{DisplayName, MediaState, PeerId, PeerKey, RoomName, ServerMsg, Signal};
use confab_server::registry::{outbox, Frame, Inbox, JoinError, Joiner, Limits, Rooms};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

const ROOMS: [&str; 3] = ["a", "b", "c"];
const CAPACITY: usize = 3;

#[derive(Arbitrary, Debug)]
enum Op {
    Join { room: u8, key: u8, password: Option<u8>, muted: bool },
    Relay { from: u8, to: u8 },
    Media { who: u8, muted: bool, camera_off: bool },
    Leave { who: u8 },
    Detach { who: u8 },
    Expire { who: u8 },
    /// Reads a member's queued messages (a member that never reads becomes "too slow").
    Drain { who: u8 },
}

/// One attachment the fuzzer made.
struct Attached {
    room: RoomName,
    id: PeerId,
    session: u64,
    inbox: Inbox,
}

fuzz_target!(|ops: Vec<Op>| {
    let rooms =
        Rooms::with_limits(Limits { max_rooms: 2, max_peers: 7, max_places_per_ip: 3, ..Limits::rooms_of(CAPACITY) });
    // Every attachment made, in order; `who` picks one.
    let mut attached: Vec<Attached> = Vec::new();
    // Which room each id ever joined: a message about an id must come from that room.
    let mut room_of: HashMap<PeerId, RoomName> = HashMap::new();
    for op in ops.into_iter().take(200) {
        let pick = |who: u8, n: usize| (n > 0).then(|| usize::from(who) % n);
        match op {
            Op::Join { room, key, password, muted } => {
                let room = RoomName::parse(ROOMS[usize::from(room) % ROOMS.len()]).unwrap();
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
                match rooms.join(&room, joiner) {
                    Ok(joined) => {
                        assert!(joined.peers.len() < CAPACITY);
                        if let Some(earlier) = room_of.insert(joined.id, room.clone()) {
                            assert_eq!(earlier, room, "an id never moves to another room");
                        }
                        attached.push(Attached { room, id: joined.id, session: joined.session, inbox });
                    }
                    Err(JoinError::Full { capacity }) => assert_eq!(capacity, CAPACITY),
                    Err(
                        JoinError::PasswordRequired
                        | JoinError::WrongPassword
                        | JoinError::ServerFull
                        | JoinError::TooManyJoins { .. }
                        | JoinError::TooManyPlaces { .. }
                        | JoinError::TooManyAttempts { .. },
                    ) => {}
                }
            }
            Op::Relay { from, to } => {
                let (Some(f), Some(t)) = (pick(from, attached.len()), pick(to, attached.len())) else { continue };
                let (room, from, to) = (attached[f].room.clone(), attached[f].id, attached[t].id);
                let frame = Frame::of(&ServerMsg::Signal { from, signal: Signal::Offer { sdp: "v=0".into() } });
                let ok = rooms.relay(&room, from, to, frame).is_ok();
                if ok {
                    assert_eq!(room_of[&to], room, "a relay reached another room");
                }
            }
            Op::Media { who, muted, camera_off } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                rooms.set_media(&attached[i].room, attached[i].id, MediaState { muted, camera_off, screen: false });
            }
            Op::Leave { who } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                let a = attached.remove(i);
                rooms.leave(&a.room, a.id, a.session);
            }
            Op::Detach { who } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                let a = &attached[i];
                rooms.detach(&a.room, a.id, a.session);
            }
            Op::Expire { who } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                let a = &attached[i];
                rooms.expire(&a.room, a.id, a.session);
            }
            Op::Drain { who } => {
                let Some(i) = pick(who, attached.len()) else { continue };
                let a = &mut attached[i];
                while let Some(frame) = a.inbox.try_recv() {
                    let about = match frame.decode().expect("the registry queues server messages") {
                        ServerMsg::PeerJoined { peer } => peer.id,
                        ServerMsg::PeerLeft { id } | ServerMsg::PeerMedia { id, .. } => id,
                        ServerMsg::Signal { from, .. } => from,
                        other => panic!("the registry queued {other:?}"),
                    };
                    assert_eq!(room_of[&about], a.room, "a message crossed rooms");
                }
            }
        }
        // The registry's counts agree with each other and with the limits.
        let per_room: usize = ROOMS.iter().map(|r| rooms.member_count(&RoomName::parse(r).unwrap())).sum();
        assert_eq!(per_room, rooms.peer_count());
        assert!(rooms.peer_count() <= 7 && rooms.room_count() <= 2);
        for r in ROOMS {
            assert!(rooms.member_count(&RoomName::parse(r).unwrap()) <= CAPACITY);
        }
        // The start page's list agrees with the rooms, fullest first.
        let listed = rooms.listed(ROOMS.len());
        for r in &listed {
            assert_eq!(r.people, rooms.member_count(&r.name), "a listed count is stale");
        }
        assert!(listed.windows(2).all(|w| (w[1].people, &w[0].name) < (w[0].people, &w[1].name)));
    }
    // Everyone leaves: nothing is left behind.
    for a in attached.drain(..) {
        rooms.leave(&a.room, a.id, a.session);
    }
    // Detached members whose sockets are gone expire.
    for (id, room) in &room_of {
        if let Some(session) = rooms.session_of(room, *id) {
            rooms.detach(room, *id, session);
            rooms.expire(room, *id, session);
        }
    }
    assert_eq!(rooms.peer_count(), 0);
    assert_eq!(rooms.room_count(), 0);
});
