//! The signaling hub over real WebSockets: a server on port 0 and tungstenite clients that
//! assert on the protocol enums.
//!
//! Every test runs twice, on the in-memory registry (`memory::…`) and on a real Redis
//! (`redis::…`), so the two registries cannot drift: each is an `async fn(Backend)` listed in
//! [`on_both_backends!`] at the end (an unlisted one is dead code, which is denied here).
#![deny(dead_code)]

use crate::common::*;

async fn welcome_lists_the_peers_present_and_the_ice_servers(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut ada = server.connect().await;
    ada.send(&join_msg("  daily  ", " Ada ")).await;
    let ada_id = match ada.recv().await {
        ServerMsg::Welcome { id, room, peers, ice_servers, resumed, .. } => {
            assert!(!resumed);
            assert_eq!(room.as_str(), "daily", "the room name is trimmed");
            assert!(peers.is_empty());
            assert_eq!(
                ice_servers,
                vec![IceServer { urls: vec!["stun:stun.example:3478".into()], username: None, credential: None }]
            );
            id
        }
        other => panic!("expected welcome, got {other:?}"),
    };

    let mut bob = server.connect().await;
    bob.send(&join_msg("daily", "Bob")).await;
    let bob_id = match bob.recv().await {
        ServerMsg::Welcome { id, peers, .. } => {
            assert_eq!(peers.len(), 1);
            assert_eq!(peers[0].id, ada_id);
            assert_eq!(peers[0].name.as_str(), "Ada", "the display name is trimmed");
            id
        }
        other => panic!("expected welcome, got {other:?}"),
    };
    match ada.recv().await {
        ServerMsg::PeerJoined { peer: PeerInfo { id, name, .. } } => {
            assert_eq!(id, bob_id);
            assert_eq!(name.as_str(), "Bob");
        }
        other => panic!("expected peer_joined, got {other:?}"),
    }
}

async fn offer_answer_and_candidates_are_relayed_with_the_sender_filled_in(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (mut ada, ada_id) = server.join("r", "Ada").await;
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    assert!(matches!(ada.recv().await, ServerMsg::PeerJoined { .. }));

    ada.send(&ClientMsg::Signal { to: bob_id, signal: offer("v=0 offer") }).await;
    assert_eq!(bob.recv().await, ServerMsg::Signal { from: ada_id, signal: offer("v=0 offer") });

    let answer = Signal::Answer { sdp: "v=0 answer".into() };
    bob.send(&ClientMsg::Signal { to: ada_id, signal: answer.clone() }).await;
    assert_eq!(ada.recv().await, ServerMsg::Signal { from: bob_id, signal: answer });

    let candidate = Signal::Candidate(IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    });
    bob.send(&ClientMsg::Signal { to: ada_id, signal: candidate.clone() }).await;
    assert_eq!(ada.recv().await, ServerMsg::Signal { from: bob_id, signal: candidate });
}

async fn a_forged_sender_is_ignored(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (mut ada, ada_id) = server.join("r", "Ada").await;
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);
    bob.send_raw(&format!(r#"{{"type":"signal","to":{ada_id},"from":999,"signal":{{"kind":"offer","sdp":"x"}}}}"#))
        .await;
    assert_eq!(ada.recv().await, ServerMsg::Signal { from: bob_id, signal: offer("x") });
}

async fn a_full_room_refuses_with_a_typed_error_and_the_socket_stays_usable(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (_ada, _) = server.join("pair", "Ada").await;
    let (_bob, _) = server.join("pair", "Bob").await;
    let mut cat = server.connect().await;
    cat.send(&join_msg("pair", "Cat")).await;
    cat.expect_error(ErrorCode::RoomFull).await;
    assert_eq!(server.hub.rooms.member_count(&RoomName::parse("pair").unwrap()).await.unwrap(), 2);
    cat.join("another", "Cat").await;
}

async fn capacity_is_configurable(backend: Backend) {
    let server = TestServer::with_on(backend, HubConfig { limits: Limits::rooms_of(3), ..HubConfig::default() }).await;
    let (_a, _) = server.join("trio", "A").await;
    let (_b, _) = server.join("trio", "B").await;
    let (_c, _) = server.join("trio", "C").await;
    let mut d = server.connect().await;
    d.send(&join_msg("trio", "D")).await;
    d.expect_error(ErrorCode::RoomFull).await;
}

async fn every_bad_input_before_joining_gets_a_typed_error_and_the_socket_stays_usable(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (_other, other_id) = server.join("elsewhere", "Other").await;
    let mut client = server.connect().await;

    client.send_raw("this is not json").await;
    client.expect_error(ErrorCode::BadMessage).await;
    client.send_raw(r#"{"type":"dance","moves":3}"#).await;
    client.expect_error(ErrorCode::BadMessage).await;
    client.send_raw(r#"{"type":"join","room":"r"}"#).await;
    client.expect_error(ErrorCode::BadMessage).await;
    client.ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
    client.expect_error(ErrorCode::BinaryFrame).await;
    client.send_raw(&"x".repeat(MAX_FRAME_BYTES + 1)).await;
    client.expect_error(ErrorCode::TooLarge).await;
    client.send(&ClientMsg::Signal { to: other_id, signal: offer("x") }).await;
    client.expect_error(ErrorCode::NotJoined).await;
    client.send(&ClientMsg::Leave).await;
    client.expect_error(ErrorCode::NotJoined).await;
    client.send(&join_msg("   ", "Ada")).await;
    client.expect_error(ErrorCode::InvalidRoom).await;
    client.send(&join_msg("r".repeat(65), "Ada")).await;
    client.expect_error(ErrorCode::InvalidRoom).await;
    client.send(&join_msg("r", "")).await;
    client.expect_error(ErrorCode::InvalidName).await;

    client.join("r", "Ada").await;
}

async fn names_with_bidi_overrides_or_zero_width_characters_are_refused_and_names_are_nfc(backend: Backend) {
    let server = TestServer::with_on(backend, HubConfig { limits: Limits::rooms_of(4), ..HubConfig::default() }).await;
    let (mut ada, _) = server.join("r", "Ada").await;
    let mut mallory = server.connect().await;
    // "Ada\u{202E}nimda" shows as "Adaadmin": refused, and nobody hears of it.
    for name in ["Ada\u{202E}nimda", "A\u{200B}da", "\u{2067}Ada", "Ada\u{FEFF}"] {
        mallory.send(&join_msg("r", name)).await;
        mallory.expect_error(ErrorCode::InvalidName).await;
    }
    mallory.send(&join_msg("r\u{202E}", "Mallory")).await;
    mallory.expect_error(ErrorCode::InvalidRoom).await;
    ada.expect_nothing_queued().await;
    // A decomposed "José" arrives as the precomposed one, for the welcome and for the others.
    mallory.join("r", "Jose\u{301}").await;
    match ada.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.name.as_str(), "Jos\u{e9}"),
        other => panic!("expected peer_joined, got {other:?}"),
    }
}

async fn every_bad_input_after_joining_gets_a_typed_error_and_the_socket_stays_usable(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (mut other, other_id) = server.join("elsewhere", "Other").await;
    let (mut client, id) = server.join("r", "Ada").await;

    client.send(&join_msg("r", "Ada")).await;
    client.expect_error(ErrorCode::AlreadyJoined).await;
    client.send(&join_msg("elsewhere", "Ada")).await;
    client.expect_error(ErrorCode::AlreadyJoined).await;
    client.send(&ClientMsg::Signal { to: other_id, signal: offer("x") }).await;
    client.expect_error(ErrorCode::UnknownPeer).await;
    client.send(&ClientMsg::Signal { to: PeerId(424242), signal: offer("x") }).await;
    client.expect_error(ErrorCode::UnknownPeer).await;
    client.send(&ClientMsg::Signal { to: id, signal: offer("x") }).await;
    client.expect_error(ErrorCode::UnknownPeer).await;
    client.send_raw(&"x".repeat(MAX_FRAME_BYTES + 1)).await;
    client.expect_error(ErrorCode::TooLarge).await;
    client.send_raw("[]").await;
    client.expect_error(ErrorCode::BadMessage).await;
    other.expect_nothing_queued().await;

    // Still in the room and working: a newcomer is announced and can be signalled.
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    match client.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.id, bob_id),
        other => panic!("expected peer_joined, got {other:?}"),
    }
    client.send(&ClientMsg::Signal { to: bob_id, signal: offer("v=0") }).await;
    assert_eq!(bob.recv().await, ServerMsg::Signal { from: id, signal: offer("v=0") });
}

async fn repeated_abuse_closes_the_socket_with_a_policy_code(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (mut bystander, _) = server.join("r", "Calm").await;
    let mut abuser = server.connect().await;
    for _ in 0..=MAX_MISTAKES {
        abuser.send_raw("{").await;
    }
    for _ in 0..MAX_MISTAKES {
        abuser.expect_error(ErrorCode::BadMessage).await;
    }
    // The last mistake is answered, then the socket is closed.
    abuser.expect_error(ErrorCode::BadMessage).await;
    assert_eq!(abuser.expect_close().await, Some(close_code::POLICY));
    bystander.expect_nothing_queued().await;
}

async fn a_flood_is_rate_limited_then_closed_and_the_peer_it_targets_stays(backend: Backend) {
    // The default burst, and a refill too slow to matter while the test runs: how many messages
    // get through and how many are refused is then exact.
    let rate = RateLimit { burst: RATE_BURST, per_second: 0.01 };
    let server =
        TestServer::with_on(backend, HubConfig { rate, limits: Limits::rooms_of(2), ..HubConfig::default() }).await;
    let (mut victim, victim_id) = server.join("r", "Victim").await;
    let (mut flooder, flooder_id) = server.join("r", "Flooder").await;
    assert_eq!(victim.expect_peer_joined().await.id, flooder_id);
    let (mut bystander, _) = server.join("other", "Bystander").await;

    // The join took one message of the burst; the flood is the rest of it, then one message per
    // mistake a socket may make and the one that ends it, all sent before anything is read. The
    // server reads every one of them before it closes (closing with data unread would reset
    // the connection, and the answers and the close frame would be lost with it).
    let allowed = RATE_BURST as usize - 1;
    let refused = MAX_MISTAKES as usize + 1;
    let signal = Message::Text(ClientMsg::Signal { to: victim_id, signal: offer("v=0") }.to_json().into());
    for _ in 0..allowed + refused {
        flooder.ws.feed(signal.clone()).await.unwrap();
    }
    flooder.ws.flush().await.unwrap();
    let mut limited = 0;
    let code = loop {
        match tokio::time::timeout(PATIENCE, flooder.ws.next()).await.expect("the flood was never stopped") {
            Some(Ok(Message::Text(text))) => match ServerMsg::from_json(&text).unwrap() {
                ServerMsg::Error { code: ErrorCode::RateLimited, .. } => limited += 1,
                other => panic!("unexpected {other:?}"),
            },
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected rate_limited answers, then a close frame, got {other:?}"),
        }
    };
    assert_eq!(limited, refused, "every refused message is answered rate_limited");
    assert_eq!(code, Some(close_code::POLICY));

    // The target got what the burst let through and nothing refused, and is still in the room.
    let mut relayed = 0;
    loop {
        match victim.recv().await {
            ServerMsg::Signal { from, .. } if from == flooder_id => relayed += 1,
            ServerMsg::PeerLeft { id } if id == flooder_id => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(relayed, allowed, "{relayed} of {} relayed", allowed + refused);
    assert_eq!(server.hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 1);
    bystander.expect_nothing_queued().await;
}

async fn an_sdp_over_the_cap_is_refused_with_a_typed_error_and_not_relayed(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (mut ada, _) = server.join("r", "Ada").await;
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);
    for signal in [offer(&"v".repeat(MAX_SDP_BYTES + 1)), Signal::Answer { sdp: "v".repeat(MAX_SDP_BYTES + 1) }] {
        ada.send(&ClientMsg::Signal { to: bob_id, signal }).await;
        ada.expect_error(ErrorCode::TooLarge).await;
    }
    // Up to the cap is relayed, and is the first thing Bob gets: nothing refused came before it.
    let largest = offer(&"v".repeat(MAX_SDP_BYTES));
    ada.send(&ClientMsg::Signal { to: bob_id, signal: largest.clone() }).await;
    assert!(matches!(bob.recv().await, ServerMsg::Signal { signal, .. } if signal == largest));
}

async fn a_frame_over_the_transport_limit_ends_only_that_connection(backend: Backend) {
    // A broken connection is held like a dropped one; keep the grace period short.
    let server =
        TestServer::with_on(backend, HubConfig { resume_grace: Duration::from_millis(100), ..HubConfig::default() })
            .await;
    let (mut ada, ada_id) = server.join("r", "Ada").await;
    let (mut huge, huge_id) = server.join("r", "Huge").await;
    assert_eq!(ada.expect_peer_joined().await.id, huge_id);
    // (The server may reset the connection while the frame is still being sent.)
    let _ = huge.ws.send(Message::Text("x".repeat(HARD_FRAME_LIMIT + 1).into())).await;
    assert_eq!(ada.recv().await, ServerMsg::PeerLeft { id: huge_id });
    // Ada's connection still works both ways: she hears of a newcomer, signals and is signalled.
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);
    ada.send(&ClientMsg::Signal { to: bob_id, signal: offer("still here") }).await;
    assert_eq!(bob.recv().await, ServerMsg::Signal { from: ada_id, signal: offer("still here") });
    bob.send(&ClientMsg::Signal { to: ada_id, signal: Signal::Answer { sdp: "me too".into() } }).await;
    assert_eq!(ada.recv().await, ServerMsg::Signal { from: bob_id, signal: Signal::Answer { sdp: "me too".into() } });
}

async fn leave_and_close_are_announced_at_once_and_empty_rooms_are_removed(backend: Backend) {
    // A long grace period: a clean close must not wait for it.
    let server =
        TestServer::with_on(backend, HubConfig { resume_grace: Duration::from_secs(60), ..HubConfig::default() }).await;
    let (mut ada, _) = server.join("r", "Ada").await;
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);

    bob.send(&ClientMsg::Leave).await;
    assert_eq!(ada.recv().await, ServerMsg::PeerLeft { id: bob_id });

    // The same socket may join again, as a new peer.
    let bob_again = bob.join("r", "Bob").await;
    assert_ne!(bob_again, bob_id);
    assert_eq!(ada.expect_peer_joined().await.id, bob_again);

    // Closing the tab sends a close frame: gone at once.
    bob.ws.close(None).await.unwrap();
    assert_eq!(ada.recv().await, ServerMsg::PeerLeft { id: bob_again });
    assert_eq!(server.hub.rooms.room_count().await.unwrap(), 1);

    ada.ws.close(None).await.unwrap();
    server.wait_for_room_count(0).await;
}

const BOB_SECRET: &str = "bob-tab-secret-0123456789abcdef";

async fn a_dropped_socket_resumed_within_the_grace_period_keeps_its_id_silently(backend: Backend) {
    let server =
        TestServer::with_on(backend, HubConfig { resume_grace: Duration::from_secs(30), ..HubConfig::default() }).await;
    let (mut ada, ada_id) = server.join("r", "Ada").await;
    let mut bob = server.connect().await;
    bob.send(&join_with_secret("r", "Bob", BOB_SECRET)).await;
    let (bob_id, bob_key) = match bob.recv().await {
        ServerMsg::Welcome { id, key, resumed: false, .. } => (id, key),
        other => panic!("expected a fresh welcome, got {other:?}"),
    };
    match ada.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.key, bob_key, "others see the derived key"),
        other => panic!("expected peer_joined, got {other:?}"),
    }
    assert_ne!(bob_key.0, BOB_SECRET, "the secret itself is never shown");

    // The network drops: no close frame. Once the server has ended Bob's session (it detached
    // him: a removal would make the count 1), his place is still counted.
    drop(bob);
    server.wait_for_connections(1).await;
    assert_eq!(server.hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 2, "the place is held");

    let mut bob = server.connect().await;
    bob.send(&join_with_secret("r", "Bob", BOB_SECRET)).await;
    match bob.recv().await {
        ServerMsg::Welcome { id, key, peers, resumed: true, .. } => {
            assert_eq!(id, bob_id);
            assert_eq!(key, bob_key);
            assert_eq!(peers.len(), 1);
            assert_eq!(peers[0].id, ada_id);
        }
        other => panic!("expected a resumed welcome, got {other:?}"),
    }
    // Ada heard of no leave or join: the next thing she gets is what Bob sends her now.
    bob.send(&ClientMsg::Signal { to: ada_id, signal: offer("back") }).await;
    assert_eq!(ada.recv().await, ServerMsg::Signal { from: bob_id, signal: offer("back") });
    ada.send(&ClientMsg::Signal { to: bob_id, signal: offer("v=0") }).await;
    assert_eq!(bob.recv().await, ServerMsg::Signal { from: ada_id, signal: offer("v=0") });
}

async fn a_dropped_socket_not_resumed_is_announced_after_the_grace_period(backend: Backend) {
    let grace = Duration::from_millis(300);
    let server = TestServer::with_on(backend, HubConfig { resume_grace: grace, ..HubConfig::default() }).await;
    let (mut ada, _) = server.join("r", "Ada").await;
    let mut bob = server.connect().await;
    bob.send(&join_with_secret("r", "Bob", BOB_SECRET)).await;
    let bob_id = match bob.recv().await {
        ServerMsg::Welcome { id, .. } => id,
        other => panic!("expected welcome, got {other:?}"),
    };
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);
    let dropped = std::time::Instant::now();
    drop(bob);
    assert_eq!(ada.recv().await, ServerMsg::PeerLeft { id: bob_id });
    assert!(dropped.elapsed() >= grace, "announced before the grace period: {:?}", dropped.elapsed());

    // Coming back later is a new arrival with a new id.
    let mut bob = server.connect().await;
    bob.send(&join_with_secret("r", "Bob", BOB_SECRET)).await;
    match bob.recv().await {
        ServerMsg::Welcome { id, resumed: false, .. } => {
            assert_ne!(id, bob_id);
            assert_eq!(ada.expect_peer_joined().await.id, id);
        }
        other => panic!("expected a fresh welcome, got {other:?}"),
    }
}

async fn a_second_connection_with_the_same_secret_replaces_the_first(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (mut ada, ada_id) = server.join("r", "Ada").await;
    let mut old = server.connect().await;
    old.send(&join_with_secret("r", "Bob", BOB_SECRET)).await;
    let bob_id = old.expect_welcome().await;
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);
    let mut new = server.connect().await;
    new.send(&join_with_secret("r", "Bob", BOB_SECRET)).await;
    assert!(matches!(new.recv().await, ServerMsg::Welcome { id, resumed: true, .. } if id == bob_id));
    assert_eq!(old.expect_close().await, Some(close_code::REPLACED));
    // Ada heard of no leave or join: the next thing she gets is what the new socket sends her.
    new.send(&ClientMsg::Signal { to: ada_id, signal: offer("from the new tab") }).await;
    assert_eq!(ada.recv().await, ServerMsg::Signal { from: bob_id, signal: offer("from the new tab") });
    assert_eq!(server.hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 2);
}

async fn an_invalid_secret_is_refused(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut client = server.connect().await;
    client.send(&join_with_secret("r", "Bob", "short")).await;
    client.expect_error(ErrorCode::InvalidSecret).await;
    client.send(&join_with_secret("r", "Bob", &"é".repeat(20))).await;
    client.expect_error(ErrorCode::InvalidSecret).await;
    client.join("r", "Bob").await;
}

async fn mute_and_camera_state_reach_the_room_and_late_joiners(backend: Backend) {
    let server = TestServer::with_on(backend, HubConfig { limits: Limits::rooms_of(3), ..HubConfig::default() }).await;
    let (mut ada, ada_id) = server.join("r", "Ada").await;
    let mut bob = server.connect().await;
    bob.send(&ClientMsg::Join {
        room: "r".into(),
        name: "Bob".into(),
        secret: None,
        password: None,
        listed: false,
        media: MediaState { muted: true, camera_off: false, screen: false },
    })
    .await;
    let bob_id = match bob.recv().await {
        ServerMsg::Welcome { id, .. } => id,
        other => panic!("expected welcome, got {other:?}"),
    };
    match ada.recv().await {
        ServerMsg::PeerJoined { peer } => {
            assert_eq!(peer.media, MediaState { muted: true, camera_off: false, screen: false })
        }
        other => panic!("expected peer_joined, got {other:?}"),
    }
    let both_off = MediaState { muted: true, camera_off: true, screen: false };
    ada.send(&ClientMsg::Media(both_off)).await;
    assert_eq!(bob.recv().await, ServerMsg::PeerMedia { id: ada_id, media: both_off });

    let mut cat = server.connect().await;
    cat.send(&join_msg("r", "Cat")).await;
    match cat.recv().await {
        ServerMsg::Welcome { peers, .. } => {
            let media = |id| peers.iter().find(|p| p.id == id).unwrap().media;
            assert_eq!(media(ada_id), both_off);
            assert_eq!(media(bob_id), MediaState { muted: true, camera_off: false, screen: false });
        }
        other => panic!("expected welcome, got {other:?}"),
    }
    let mut lobby = server.connect().await;
    lobby.send(&ClientMsg::Media(both_off)).await;
    lobby.expect_error(ErrorCode::NotJoined).await;
}

async fn rooms_are_isolated(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (mut a1, a1_id) = server.join("alpha", "A1").await;
    let (mut a2, a2_id) = server.join("alpha", "A2").await;
    let (mut b1, b1_id) = server.join("beta", "B1").await;
    let (mut b2, _) = server.join("beta", "B2").await;
    assert_eq!(a1.expect_peer_joined().await.id, a2_id);
    assert_eq!(b1.expect_peer_joined().await.name.as_str(), "B2");

    b1.send(&ClientMsg::Signal { to: a1_id, signal: offer("intrusion") }).await;
    b1.expect_error(ErrorCode::UnknownPeer).await;
    a1.send(&ClientMsg::Signal { to: b1_id, signal: offer("leak") }).await;
    a1.expect_error(ErrorCode::UnknownPeer).await;
    b1.send(&ClientMsg::Leave).await;
    assert_eq!(b2.recv().await, ServerMsg::PeerLeft { id: b1_id });
    // Alpha heard nothing of beta: the next thing both get is a chat of their own room.
    a2.send(&ClientMsg::Chat { text: "only alpha".into() }).await;
    for client in [&mut a1, &mut a2] {
        match client.recv().await {
            ServerMsg::Chat { message } if message.text == "only alpha" => {}
            other => panic!("expected alpha's chat, got {other:?}"),
        }
    }
}

async fn a_silent_socket_is_dropped_by_the_heartbeat_and_its_room_told(backend: Backend) {
    let heartbeat = Duration::from_millis(100);
    let server = TestServer::with_on(backend, HubConfig { heartbeat, ..HubConfig::default() }).await;
    let (mut ada, _) = server.join("r", "Ada").await;
    // A client that stops reading never answers pings: like a tab whose machine went to sleep.
    let (_frozen, frozen_id) = server.join("r", "Frozen").await;
    assert_eq!(ada.expect_peer_joined().await.id, frozen_id);
    let started = std::time::Instant::now();
    // Ada keeps reading (and so answering pings); Frozen is dropped after three silent periods.
    assert_eq!(ada.recv().await, ServerMsg::PeerLeft { id: frozen_id });
    assert!(started.elapsed() >= heartbeat * 2, "dropped too early: {:?}", started.elapsed());
    assert_eq!(server.hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 1);
}

async fn a_peer_that_stops_reading_is_dropped_and_its_session_ends(backend: Backend) {
    let heartbeat = Duration::from_millis(200);
    let server = TestServer::with_on(backend, HubConfig { heartbeat, ..HubConfig::default() }).await;
    let (mut sender, _) = server.join("r", "Sender").await;
    let (_stuck, stuck_id) = server.join("r", "Stuck").await;
    assert_eq!(sender.expect_peer_joined().await.id, stuck_id);
    assert_eq!(server.hub.connections(), 2);
    // The sender reads (and so answers pings) while it sends large signals, within the rate
    // limit, to a peer that never reads: that peer's socket buffers fill, then its queue, until
    // the server gives up on it.
    let (mut tx, mut rx) = sender.ws.split();
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = rx.next().await {
            if let Message::Text(text) = frame {
                if ServerMsg::from_json(&text).unwrap() == (ServerMsg::PeerLeft { id: stuck_id }) {
                    return true;
                }
            }
        }
        false
    });
    let big =
        Message::Text(ClientMsg::Signal { to: stuck_id, signal: offer(&"v".repeat(MAX_SDP_BYTES)) }.to_json().into());
    let pace = Duration::from_secs_f64(1.0 / RATE_PER_SECOND) * 2;
    let left = tokio::time::timeout(Duration::from_secs(60), async {
        while !reader.is_finished() {
            tx.send(big.clone()).await.unwrap();
            tokio::time::sleep(pace).await;
        }
        reader.await.unwrap()
    })
    .await
    .expect("the peer that does not read was never dropped");
    assert!(left, "no peer_left for the peer that does not read");
    assert_eq!(server.hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 1);
    tokio::time::timeout(PATIENCE, async {
        while server.hub.connections() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stuck session never ended");
}

async fn a_peer_that_stops_reading_is_dropped_once_its_queue_passes_its_byte_bound(backend: Backend) {
    // Long heartbeats: the peer that does not read is dropped for its queue, not for silence.
    let rate = RateLimit { burst: 10_000.0, per_second: 10_000.0 };
    let config = HubConfig { heartbeat: Duration::from_secs(20), rate, ..HubConfig::default() };
    // Small socket buffers on both ends, so that little of what is sent to the stuck peer waits
    // in the kernel: the rest waits in its queue on the server.
    let server = TestServer::with_send_buffer_on(backend, config, 16 * 1024).await;
    let (mut sender, _) = server.join("r", "Sender").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = server.connect_with(socket).await;
    let stuck_id = stuck.join("r", "Stuck").await;
    assert_eq!(sender.expect_peer_joined().await.id, stuck_id);

    // Offers of 30 KB: a queue bounded only by its 128 messages would hold 3.8 MB of them.
    let big = Message::Text(ClientMsg::Signal { to: stuck_id, signal: offer(&"v".repeat(30_000)) }.to_json().into());
    let (mut tx, mut rx) = sender.ws.split();
    // What the sender hears (relays after the drop are refused as `unknown_peer`) does not matter.
    tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let mut sent = 0;
    tokio::time::timeout(PATIENCE, async {
        while server.hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap() == 2 {
            assert!(sent < 4 * OUTBOX_CAPACITY, "never dropped after {sent} offers");
            if tx.send(big.clone()).await.is_err() {
                break;
            }
            sent += 1;
        }
    })
    .await
    .expect("the peer that does not read was never dropped");
    // Its session hands over what was queued before the drop, then closes with 1013.
    let received = tokio::time::timeout(PATIENCE, async {
        let mut received = 0;
        loop {
            match stuck.ws.next().await {
                Some(Ok(Message::Text(text))) => match ServerMsg::from_json(&text).unwrap() {
                    ServerMsg::Signal { .. } => received += 1,
                    other => panic!("unexpected {other:?}"),
                },
                Some(Ok(Message::Close(frame))) => {
                    assert_eq!(frame.map(|f| u16::from(f.code)), Some(close_code::TRY_AGAIN_LATER));
                    return received;
                }
                Some(Ok(_)) => continue,
                other => panic!("expected offers then a close, got {other:?}"),
            }
        }
    })
    .await
    .expect("the stuck session never ended");
    println!("dropped after {received} offers of 30 KB were queued or sent ({sent} sent)");
    // The byte bound (1 MiB: 35 offers) came long before the message bound.
    assert!(received < OUTBOX_CAPACITY, "{received} offers were taken before the drop");
}

async fn shutdown_closes_sockets_with_going_away_and_announces_no_leaves(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let (mut ada, _) = server.join("r", "Ada").await;
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);
    let mut lobby = server.connect().await;
    server.hub.shutdown.cancel();
    // Nobody is told that the others left: their calls go on peer to peer while the server
    // restarts, and they rejoin it.
    for client in [&mut ada, &mut bob] {
        let next = tokio::time::timeout(PATIENCE, async {
            loop {
                match client.ws.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => return other,
                }
            }
        })
        .await
        .unwrap();
        match next {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), close_code::GOING_AWAY);
                assert_eq!(frame.reason.as_str(), "server restarting");
            }
            other => panic!("expected a close frame first, got {other:?}"),
        }
    }
    assert_eq!(lobby.expect_close().await, Some(close_code::GOING_AWAY));
}

async fn chat_reaches_everyone_and_late_joiners_get_the_history(backend: Backend) {
    let server = TestServer::with_on(backend, HubConfig { limits: Limits::rooms_of(3), ..HubConfig::default() }).await;
    let (mut ada, _) = server.join("r", "Ada").await;
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);
    let (mut other, _) = server.join("other", "Eve").await;

    ada.send(&ClientMsg::Chat { text: "  <b>hi</b> all\n  ".into() }).await;
    let mut seen = Vec::new();
    for client in [&mut ada, &mut bob] {
        match client.recv().await {
            ServerMsg::Chat { message } => seen.push(message),
            other => panic!("expected chat, got {other:?}"),
        }
    }
    assert_eq!(seen[0], seen[1], "the sender gets the same stamped message");
    assert_eq!(seen[0].text, "<b>hi</b> all", "trimmed, otherwise as sent");
    assert_eq!(seen[0].name.as_str(), "Ada");
    other.expect_nothing_queued().await;

    for bad in [String::new(), "   ".into(), "x".repeat(confab_protocol::CHAT_MAX_CHARS + 1), "bell\u{7}".into()] {
        bob.send(&ClientMsg::Chat { text: bad }).await;
        bob.expect_error(ErrorCode::InvalidChat).await;
    }
    let longest = "é".repeat(confab_protocol::CHAT_MAX_CHARS);
    bob.send(&ClientMsg::Chat { text: longest.clone() }).await;
    assert!(matches!(bob.recv().await, ServerMsg::Chat { message } if message.text == longest));

    let mut cat = server.connect().await;
    cat.send(&join_msg("r", "Cat")).await;
    match cat.recv().await {
        ServerMsg::Welcome { chat, .. } => {
            assert_eq!(chat.len(), 2);
            assert_eq!(chat[0], seen[0]);
            assert_eq!(chat[1].name.as_str(), "Bob");
        }
        other => panic!("expected welcome, got {other:?}"),
    }

    let mut lobby = server.connect().await;
    lobby.send(&ClientMsg::Chat { text: "hello?".into() }).await;
    lobby.expect_error(ErrorCode::NotJoined).await;
}

/// Sends `n` chat messages of 1,000 Korean characters (3,000 bytes each) and reads them back.
async fn chat_long_messages(client: &mut Client, n: usize) -> Vec<confab_protocol::ChatMessage> {
    let mut sent = Vec::new();
    for i in 0..n {
        let text = format!("{i:03}{}", "가".repeat(confab_protocol::CHAT_MAX_CHARS - 3));
        client.send(&ClientMsg::Chat { text }).await;
        match client.recv().await {
            ServerMsg::Chat { message } => sent.push(message),
            other => panic!("expected chat, got {other:?}"),
        }
    }
    sent
}

async fn the_chat_history_in_a_welcome_is_bounded_by_bytes_and_keeps_the_newest(backend: Backend) {
    let server = TestServer::with_on(backend, HubConfig { limits: Limits::rooms_of(3), ..HubConfig::default() }).await;
    let (mut ada, _) = server.join("r", "Ada").await;
    let sent = chat_long_messages(&mut ada, CHAT_HISTORY).await;
    let mut bob = server.connect().await;
    bob.send(&join_msg("r", "Bob")).await;
    let ServerMsg::Welcome { chat, .. } = bob.recv().await else { panic!("expected a welcome") };
    let bytes: usize = chat.iter().map(|m| serde_json::to_string(m).unwrap().len()).sum();
    println!("the welcome carries {} of {} messages, {bytes} bytes", chat.len(), sent.len());
    assert!(bytes <= WELCOME_CHAT_BYTES, "{bytes} bytes of chat in a welcome");
    assert!(!chat.is_empty() && chat.len() < sent.len());
    assert_eq!(chat[..], sent[sent.len() - chat.len()..], "the newest, oldest first");
}

/// Expands each test into `memory::<name>` and `redis::<name>`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $test() {
                super::$test(crate::common::Backend::Memory).await
            })*
        }
        mod redis {
            $(#[tokio::test]
            async fn $test() {
                super::$test(crate::common::Backend::Redis).await
            })*
        }
    };
}

on_both_backends!(
    welcome_lists_the_peers_present_and_the_ice_servers,
    offer_answer_and_candidates_are_relayed_with_the_sender_filled_in,
    a_forged_sender_is_ignored,
    a_full_room_refuses_with_a_typed_error_and_the_socket_stays_usable,
    capacity_is_configurable,
    every_bad_input_before_joining_gets_a_typed_error_and_the_socket_stays_usable,
    names_with_bidi_overrides_or_zero_width_characters_are_refused_and_names_are_nfc,
    every_bad_input_after_joining_gets_a_typed_error_and_the_socket_stays_usable,
    repeated_abuse_closes_the_socket_with_a_policy_code,
    a_flood_is_rate_limited_then_closed_and_the_peer_it_targets_stays,
    an_sdp_over_the_cap_is_refused_with_a_typed_error_and_not_relayed,
    a_frame_over_the_transport_limit_ends_only_that_connection,
    leave_and_close_are_announced_at_once_and_empty_rooms_are_removed,
    a_dropped_socket_resumed_within_the_grace_period_keeps_its_id_silently,
    a_dropped_socket_not_resumed_is_announced_after_the_grace_period,
    a_second_connection_with_the_same_secret_replaces_the_first,
    an_invalid_secret_is_refused,
    mute_and_camera_state_reach_the_room_and_late_joiners,
    rooms_are_isolated,
    a_silent_socket_is_dropped_by_the_heartbeat_and_its_room_told,
    a_peer_that_stops_reading_is_dropped_and_its_session_ends,
    a_peer_that_stops_reading_is_dropped_once_its_queue_passes_its_byte_bound,
    shutdown_closes_sockets_with_going_away_and_announces_no_leaves,
    chat_reaches_everyone_and_late_joiners_get_the_history,
    the_chat_history_in_a_welcome_is_bounded_by_bytes_and_keeps_the_newest,
);
