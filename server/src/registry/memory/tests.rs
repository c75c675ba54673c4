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
    assert_eq!(rooms.join(&room("c"), from_ip("C", [10, 0, 0, 1])).unwrap_err(), JoinError::TooManyPlaces { max: 2 });
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
