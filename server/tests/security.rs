//! What protects the server and its users on the open internet, over real sockets: origins,
//! per-address and server-wide limits, room passwords, TURN credentials in the welcome, the
//! operator endpoints, and churn that must leave nothing behind.
//!
//! (Floods, oversized frames and forged senders are in `signaling.rs`.)

use crate::common::*;
use confab_protocol::IceTransportPolicy;
use confab_server::{Origins, TurnConfig};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Opens a WebSocket to `server` as a page of `origin` would; the HTTP status if refused.
async fn connect_from(server: &TestServer, origin: &str) -> Result<Client, u16> {
    let mut request = format!("ws://{}/ws", server.addr).into_client_request().unwrap();
    request.headers_mut().insert("Origin", HeaderValue::from_str(origin).unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("unexpected handshake failure: {e}"),
    }
}

/// A plain HTTP GET; returns the status and body.
async fn get(server: &TestServer, path: &str) -> (u16, String) {
    server.http_get(path).await
}

fn join_with_password(room: &str, name: &str, password: Option<&str>) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        secret: None,
        password: password.map(Into::into),
        listed: false,
        media: MediaState::default(),
    }
}

#[tokio::test]
async fn only_pages_of_this_server_may_open_the_socket_by_default() {
    let server = TestServer::start().await;
    assert_eq!(connect_from(&server, "https://evil.example").await.err(), Some(403));
    assert_eq!(connect_from(&server, "null").await.err(), Some(403));
    // Same host and port as the request: admitted, and usable.
    let mut own = connect_from(&server, &format!("http://{}", server.addr)).await.unwrap();
    own.join("r", "Ada").await;
    // Clients that are not browsers send no Origin and are admitted (see `Origins`).
    server.join("r", "Bob").await;
}

#[tokio::test]
async fn configured_origins_are_the_only_ones_admitted() {
    let server = TestServer::with(HubConfig {
        origins: Origins::List(vec!["https://meet.example.org".into()]),
        ..HubConfig::default()
    })
    .await;
    assert!(connect_from(&server, "https://meet.example.org").await.is_ok());
    assert_eq!(connect_from(&server, &format!("http://{}", server.addr)).await.err(), Some(403));
    assert_eq!(connect_from(&server, "https://meet.example.org.evil.example").await.err(), Some(403));
}

#[tokio::test]
async fn connections_from_one_address_are_capped() {
    let server = TestServer::with(HubConfig { max_connections_per_ip: 3, ..HubConfig::default() }).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(server.connect().await);
    }
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr)).await;
    assert!(matches!(refused, Err(tungstenite::Error::Http(r)) if r.status() == 429));
    // A closed connection frees its place.
    let mut first = open.remove(0);
    first.ws.close(None).await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        while server.hub.connections() != 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    server.connect().await.join("r", "Ada").await;
}

#[tokio::test]
async fn the_first_joiner_sets_the_room_password() {
    let server = TestServer::with(HubConfig { limits: Limits::rooms_of(4), ..HubConfig::default() }).await;
    let mut ada = server.connect().await;
    ada.send(&join_with_password("locked", "Ada", Some("correct horse"))).await;
    assert!(matches!(ada.recv().await, ServerMsg::Welcome { locked: true, .. }));

    let mut bob = server.connect().await;
    bob.send(&join_msg("locked", "Bob")).await;
    bob.expect_error(ErrorCode::PasswordRequired).await;
    bob.send(&join_with_password("locked", "Bob", Some("correct horse "))).await;
    bob.expect_error(ErrorCode::WrongPassword).await;
    bob.send(&join_with_password("locked", "Bob", Some(&"x".repeat(129)))).await;
    bob.expect_error(ErrorCode::InvalidPassword).await;
    ada.expect_nothing_queued().await;
    bob.send(&join_with_password("locked", "Bob", Some("correct horse"))).await;
    assert!(matches!(bob.recv().await, ServerMsg::Welcome { locked: true, .. }));
    assert!(matches!(ada.recv().await, ServerMsg::PeerJoined { .. }));

    // A room without a password stays open, whatever later joiners send.
    let (_cat, _) = server.join("open", "Cat").await;
    let mut dan = server.connect().await;
    dan.send(&join_with_password("open", "Dan", Some("anything"))).await;
    assert!(matches!(dan.recv().await, ServerMsg::Welcome { locked: false, .. }));

    // The password goes with the room: once everyone has left, the name is free again.
    ada.send(&ClientMsg::Leave).await;
    bob.send(&ClientMsg::Leave).await;
    server.wait_for_room_count(1).await;
    let mut eve = server.connect().await;
    eve.send(&join_msg("locked", "Eve")).await;
    assert!(matches!(eve.recv().await, ServerMsg::Welcome { locked: false, .. }));
}

#[tokio::test]
async fn password_guessing_is_closed_like_any_other_abuse() {
    let server = TestServer::start().await;
    let mut ada = server.connect().await;
    ada.send(&join_with_password("r", "Ada", Some("secret"))).await;
    assert!(matches!(ada.recv().await, ServerMsg::Welcome { locked: true, .. }));
    let mut guesser = server.connect().await;
    for guess in 0..=MAX_GUESSES {
        guesser.send(&join_with_password("r", "Mallory", Some(&format!("guess{guess}")))).await;
    }
    let mut wrong = 0;
    let code = loop {
        match guesser.ws.next().await {
            Some(Ok(Message::Text(text))) => {
                assert!(matches!(
                    ServerMsg::from_json(&text).unwrap(),
                    ServerMsg::Error { code: ErrorCode::WrongPassword, .. }
                ));
                wrong += 1;
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected errors then a close, got {other:?}"),
        }
    };
    assert_eq!(code, Some(close_code::POLICY));
    assert_eq!(wrong, MAX_GUESSES + 1);
}

/// `session::MAX_MISTAKES`: wrong passwords count as mistakes.
const MAX_GUESSES: u32 = MAX_MISTAKES;

#[tokio::test]
async fn server_wide_limits_refuse_with_a_typed_error() {
    let server = TestServer::with(HubConfig {
        limits: Limits { max_rooms: 2, max_peers: 3, ..Limits::rooms_of(6) },
        ..HubConfig::default()
    })
    .await;
    let (_a, _) = server.join("one", "A").await;
    let (_b, _) = server.join("two", "B").await;
    let mut c = server.connect().await;
    c.send(&join_msg("three", "C")).await;
    c.expect_error(ErrorCode::ServerFull).await;
    c.join("one", "C").await;
    let mut d = server.connect().await;
    d.send(&join_msg("two", "D")).await;
    d.expect_error(ErrorCode::ServerFull).await;
}

#[tokio::test]
async fn the_welcome_carries_fresh_turn_credentials_and_the_policy() {
    let server = TestServer::with(HubConfig {
        stun_urls: vec![],
        turn: Some(TurnConfig {
            urls: vec!["turn:turn.example:3478?transport=udp".into()],
            secret: "shared-secret".into(),
            ttl: Duration::from_secs(600),
        }),
        ice_transport_policy: IceTransportPolicy::Relay,
        ..HubConfig::default()
    })
    .await;
    let mut ada = server.connect().await;
    ada.send(&join_msg("r", "Ada")).await;
    let ServerMsg::Welcome { key, ice_servers, ice_transport_policy, .. } = ada.recv().await else {
        panic!("expected a welcome")
    };
    assert_eq!(ice_transport_policy, IceTransportPolicy::Relay);
    let [turn] = &ice_servers[..] else { panic!("expected one TURN entry, got {ice_servers:?}") };
    let username = turn.username.clone().unwrap();
    let (expiry, peer) = username.split_once(':').unwrap();
    assert_eq!(peer, key.0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 610).contains(&expiry), "expiry {expiry} is not 600 s after {now}");
    assert_eq!(turn.credential.as_deref(), Some(&*confab_server::turn::password_for("shared-secret", &username)));
    assert!(!serde_json::to_string(&ice_servers).unwrap().contains("shared-secret"));
}

#[tokio::test]
async fn joined_participants_get_fresh_turn_credentials_every_half_lifetime() {
    let server = TestServer::with(HubConfig {
        stun_urls: vec![],
        turn: Some(TurnConfig {
            urls: vec!["turn:turn.example:3478?transport=udp".into()],
            secret: "shared-secret".into(),
            ttl: Duration::from_secs(2),
        }),
        ..HubConfig::default()
    })
    .await;
    let mut ada = server.connect().await;
    ada.send(&join_msg("r", "Ada")).await;
    let ServerMsg::Welcome { key, ice_servers, .. } = ada.recv().await else { panic!("expected a welcome") };
    let expiry_of = |servers: &[confab_protocol::IceServer]| -> u64 {
        let username = servers[0].username.clone().unwrap();
        let (expiry, peer) = username.split_once(':').unwrap();
        assert_eq!(peer, key.0, "minted for the same participant");
        assert_eq!(
            servers[0].credential.as_deref(),
            Some(&*confab_server::turn::password_for("shared-secret", &username))
        );
        expiry.parse().unwrap()
    };
    let mut last = expiry_of(&ice_servers);
    for _ in 0..2 {
        let ServerMsg::IceServers { ice_servers } = ada.recv().await else { panic!("expected fresh ICE servers") };
        let expiry = expiry_of(&ice_servers);
        assert!(expiry >= last, "fresh credentials do not expire sooner ({expiry} < {last})");
        last = expiry;
    }
    assert!(last > expiry_of(&ice_servers), "two refreshes (a second apart) moved the expiry on");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start().await;
    assert_eq!(get(&server, "/healthz").await, (200, "ok".into()));
    assert_eq!(get(&server, "/readyz").await, (200, "ready".into()));

    let (mut ada, ada_id) = server.join("r", "Ada").await;
    let (mut bob, bob_id) = server.join("r", "Bob").await;
    assert_eq!(ada.expect_peer_joined().await.id, bob_id);
    let offer = Signal::Offer { sdp: "v=0".into() };
    ada.send(&ClientMsg::Signal { to: bob_id, signal: offer.clone() }).await;
    assert_eq!(bob.recv().await, ServerMsg::Signal { from: ada_id, signal: offer });
    let answer = Signal::Answer { sdp: "v=0".into() };
    bob.send(&ClientMsg::Signal { to: ada_id, signal: answer.clone() }).await;
    assert_eq!(ada.recv().await, ServerMsg::Signal { from: bob_id, signal: answer });
    bob.send_raw("{nonsense").await;
    bob.expect_error(ErrorCode::BadMessage).await;
    assert_eq!(connect_from(&server, "https://evil.example").await.err(), Some(403));

    let (status, text) = get(&server, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "confab_messages_total{type=\"join\"} 2",
        "confab_messages_total{type=\"offer\"} 1",
        "confab_messages_total{type=\"answer\"} 1",
        "confab_errors_total{code=\"bad_message\"} 1",
        "confab_connections_refused_total{reason=\"origin\"} 1",
        "confab_joins_total 2",
        "confab_connections 2",
        "confab_rooms 1",
        "confab_peers 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
    }

    server.hub.shutdown.cancel();
    assert_eq!(get(&server, "/readyz").await.0, 503);
    assert_eq!(ada.expect_close().await, Some(close_code::GOING_AWAY));
}

#[tokio::test]
async fn only_rooms_their_creators_listed_appear_on_the_start_page() {
    let server = TestServer::with(HubConfig { limits: Limits::rooms_of(4), ..HubConfig::default() }).await;
    let join = |room: &str, name: &str, listed: bool, password: Option<&str>| ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        secret: None,
        password: password.map(Into::into),
        listed,
        media: MediaState::default(),
    };
    let mut ada = server.connect().await;
    ada.send(&join("standup", "Ada", true, None)).await;
    ada.expect_welcome().await;
    // Later joiners cannot change it.
    let mut bob = server.connect().await;
    bob.send(&join("standup", "Bob", false, None)).await;
    bob.expect_welcome().await;
    let mut cat = server.connect().await;
    cat.send(&join("private", "Cat", false, None)).await;
    cat.expect_welcome().await;
    let mut dan = server.connect().await;
    dan.send(&join("locked", "Dan", true, Some("pw"))).await;
    dan.expect_welcome().await;
    let mut eve = server.connect().await;
    eve.send(&join("private", "Eve", true, None)).await;
    eve.expect_welcome().await;

    let (status, body) = get(&server, confab_protocol::ROOMS_PATH).await;
    assert_eq!(status, 200);
    let listed: Vec<confab_protocol::ListedRoom> = serde_json::from_str(&body).unwrap();
    let summary: Vec<_> = listed.iter().map(|r| (r.name.as_str(), r.people, r.locked)).collect();
    assert_eq!(summary, vec![("standup", 2, false), ("locked", 1, true)]);

    for client in [&mut ada, &mut bob] {
        client.send(&ClientMsg::Leave).await;
    }
    server.wait_for_room_count(2).await;
    let (_, body) = get(&server, confab_protocol::ROOMS_PATH).await;
    let listed: Vec<confab_protocol::ListedRoom> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["locked"]);
}

/// A join with a secret (so that a dropped connection's place is held for its return).
fn held_join(room: &str, name: &str, secret: &str) -> ClientMsg {
    join_with_secret(room, name, &format!("{secret}-0123456789abcdef"))
}

#[tokio::test]
async fn churn_from_one_address_cannot_fill_the_server_and_other_hosts_still_join() {
    // connect → join a fresh room → drop, in a loop from one host: each dropped place (and its
    // room) is held for the grace period while the connection is free again at once.
    let server = TestServer::with(HubConfig {
        limits: Limits { max_rooms: 20, max_peers: 40, max_places_per_ip: 4, ..Limits::rooms_of(6) },
        resume_grace: Duration::from_secs(60),
        ..HubConfig::default()
    })
    .await;
    let mut welcomed = 0;
    let mut refused = 0;
    for i in 0..50 {
        let mut churner = server.connect_from_ip("127.0.0.2").await;
        churner.send(&held_join(&format!("churn-{i}"), "Churn", &format!("churn-{i}"))).await;
        match churner.recv().await {
            ServerMsg::Welcome { .. } => welcomed += 1,
            ServerMsg::Error { code: ErrorCode::TooManyPlaces, .. } => refused += 1,
            other => panic!("expected a welcome or too_many_places, got {other:?}"),
        }
        drop(churner);
    }
    assert_eq!((welcomed, refused), (4, 46));
    // The places are held, not lost: each one can still be taken back by its tab.
    let mut back = server.connect_from_ip("127.0.0.2").await;
    back.send(&held_join("churn-0", "Churn", "churn-0")).await;
    assert!(matches!(back.recv().await, ServerMsg::Welcome { resumed: true, .. }));
    // Everyone else still gets in.
    for (i, host) in ["127.0.0.3", "127.0.0.4", "127.0.0.5"].into_iter().enumerate() {
        let mut other = server.connect_from_ip(host).await;
        other.join(&format!("fresh-{i}"), "Someone").await;
    }
}

#[tokio::test]
async fn joins_from_one_address_are_limited_per_second_and_others_are_not() {
    let server = TestServer::with(HubConfig {
        limits: Limits { max_joins_per_ip_per_sec: 3, ..Limits::rooms_of(6) },
        ..HubConfig::default()
    })
    .await;
    let mut hasty = server.connect_from_ip("127.0.0.2").await;
    let mut joins = 0;
    let retry_after = loop {
        assert!(joins < 30, "{joins} joins in a row were taken");
        hasty.send(&join_msg(format!("room-{joins}"), "Hasty")).await;
        match hasty.recv().await {
            ServerMsg::Welcome { .. } => {
                joins += 1;
                hasty.send(&ClientMsg::Leave).await;
            }
            ServerMsg::Error { code: ErrorCode::TooManyJoins, retry_after_ms, .. } => break retry_after_ms,
            other => panic!("expected a welcome or too_many_joins, got {other:?}"),
        }
    };
    assert!(joins >= 3, "refused after {joins} joins");
    let retry_after = retry_after.expect("too_many_joins says when to try again");
    assert!((1..=1000).contains(&retry_after), "retry after {retry_after} ms");
    // Another host is not held up, and the socket stays usable: after the wait it joins.
    server.connect_from_ip("127.0.0.3").await.join("elsewhere", "Patient").await;
    tokio::time::sleep(Duration::from_millis(retry_after)).await;
    hasty.join("at-last", "Hasty").await;
}

/// A room created by Ada (from 127.0.0.1) with `password`, and the socket that holds it.
async fn locked_room(server: &TestServer, room: &str, password: &str) -> Client {
    let mut ada = server.connect().await;
    ada.send(&join_with_password(room, "Ada", Some(password))).await;
    assert!(matches!(ada.recv().await, ServerMsg::Welcome { locked: true, .. }));
    ada
}

/// Tries `password` for `room` from `ip` on a new connection; the answer.
async fn attempt(server: &TestServer, ip: &str, room: &str, password: &str) -> ServerMsg {
    let mut client = server.connect_from_ip(ip).await;
    client.send(&join_with_password(room, "Guess", Some(password))).await;
    client.recv().await
}

#[tokio::test]
async fn wrong_passwords_from_one_address_have_a_budget_that_reconnecting_does_not_reset() {
    let passwords =
        PasswordLimits { failures_per_ip: 3, ip_window: Duration::from_secs(3600), ..PasswordLimits::unlimited() };
    let server =
        TestServer::with(HubConfig { limits: Limits { passwords, ..Limits::rooms_of(6) }, ..HubConfig::default() })
            .await;
    let _ada = locked_room(&server, "vault", "correct horse").await;
    let _other = locked_room(&server, "other-vault", "battery staple").await;
    for guess in 0..3 {
        assert!(is_wrong(&attempt(&server, "127.0.0.2", "vault", &format!("guess-{guess}")).await));
    }
    // Spent, over every room, and the right password is not even checked.
    for (room, password) in [("vault", "guess-3"), ("other-vault", "guess"), ("vault", "correct horse")] {
        let wait = retry_after_of(&attempt(&server, "127.0.0.2", room, password).await);
        assert!((1..=3_600_000).contains(&wait), "retry after {wait} ms");
    }
    // Rooms without a password, and other hosts, are not held up.
    server.connect_from_ip("127.0.0.2").await.join("open", "Guess").await;
    assert!(matches!(attempt(&server, "127.0.0.3", "vault", "correct horse").await, ServerMsg::Welcome { .. }));
}

#[tokio::test]
async fn a_room_under_guessing_makes_each_further_attempt_wait_twice_as_long() {
    let passwords = PasswordLimits {
        free_failures_per_room: 2,
        room_delay: Duration::from_millis(400),
        room_max_delay: Duration::from_millis(1600),
        ..PasswordLimits::unlimited()
    };
    let server =
        TestServer::with(HubConfig { limits: Limits { passwords, ..Limits::rooms_of(6) }, ..HubConfig::default() })
            .await;
    let _ada = locked_room(&server, "vault", "correct horse").await;
    // Guesses from ever new addresses: the room itself slows them down.
    let mut hosts = (2..200).map(|n| format!("127.0.0.{n}"));
    let mut host = move || hosts.next().unwrap();
    assert!(is_wrong(&attempt(&server, &host(), "vault", "one").await));
    assert!(is_wrong(&attempt(&server, &host(), "vault", "two").await));
    for expected in [400, 800, 1600, 1600] {
        // The right password, right after a wrong one, is refused unchecked.
        let wait = retry_after_of(&attempt(&server, &host(), "vault", "correct horse").await);
        assert!(wait <= expected && wait > expected / 2, "waited {wait} ms where {expected} ms was due");
        tokio::time::sleep(Duration::from_millis(wait)).await;
        assert!(is_wrong(&attempt(&server, &host(), "vault", "wrong again").await));
    }
    // Another room is not held up.
    let _bob = locked_room(&server, "other", "pw").await;
    assert!(is_wrong(&attempt(&server, &host(), "other", "nope").await));
    // Once the wait is over, the right password gets in and the room forgets its failures.
    let wait = retry_after_of(&attempt(&server, &host(), "vault", "correct horse").await);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert!(matches!(attempt(&server, &host(), "vault", "correct horse").await, ServerMsg::Welcome { .. }));
    assert!(is_wrong(&attempt(&server, &host(), "vault", "after").await));
    assert!(is_wrong(&attempt(&server, &host(), "vault", "after").await));
}

/// Guesses the password of `room` from 127.0.0.2 with 16 sockets for `duration` (a new socket
/// whenever one is closed); returns the answers and how many of them were `wrong_password` (a
/// password checked).
async fn guess_from_one_host(server: &Arc<TestServer>, room: &'static str, duration: Duration) -> (u64, u64) {
    guess_for(
        duration,
        {
            let server = server.clone();
            move |_| {
                let server = server.clone();
                async move { server.connect_from_ip("127.0.0.2").await }
            }
        },
        move |worker, guess| join_with_password(room, "Mallory", Some(&format!("guess-{worker}-{guess}"))),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_guessing_from_one_host_slows_to_the_stated_rate() {
    // The defaults: 10 wrong passwords a minute per address; per room 3, then waits from 1 s.
    let server = Arc::new(TestServer::with(HubConfig::default()).await);
    let ada = locked_room(&server, "vault", "correct horse battery staple").await;
    // Ada stays in the room (reading answers the server's pings), so the room stays the same.
    let (_ada_tx, mut ada_rx) = ada.ws.split();
    tokio::spawn(async move { while let Some(Ok(_)) = ada_rx.next().await {} });
    // CONFAB_GUESS_SECS=65 shows the rate past the first minute.
    let secs = std::env::var("CONFAB_GUESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let duration = Duration::from_secs(secs);
    let (answered, wrong) = guess_from_one_host(&server, "vault", duration).await;
    println!(
        "one host, 16 sockets, {} s: {answered} answers, {wrong} passwords checked ({:.1} a second)",
        duration.as_secs(),
        wrong as f64 / duration.as_secs_f64()
    );
    // However fast the loop, no more than the per-room allowance (3, then one after each wait:
    // 1 s, 2 s, 4 s …) and the per-address budget (10 a minute) are checked.
    let limits = PasswordLimits::default();
    let mut allowed = u64::from(limits.free_failures_per_room);
    let mut at = Duration::ZERO;
    for failures in limits.free_failures_per_room.. {
        at += limits.room_wait(failures).unwrap();
        if at > duration {
            break;
        }
        allowed += 1;
    }
    let windows = duration.as_secs().div_ceil(limits.ip_window.as_secs());
    let allowed = allowed.min(windows * u64::from(limits.failures_per_ip));
    assert!(wrong <= allowed, "{wrong} passwords checked where {allowed} were allowed");
    assert_eq!(server.hub.rooms.member_count(&RoomName::parse("vault").unwrap()).await.unwrap(), 1);
    assert!(answered > wrong, "the refusals are answered");
}

/// `GET /api/rooms`, decoded: (name, people) in the order given.
async fn listing(server: &TestServer) -> Vec<(String, usize)> {
    let (status, body) = server.http_get(confab_protocol::ROOMS_PATH).await;
    assert_eq!(status, 200);
    let listed: Vec<confab_protocol::ListedRoom> = serde_json::from_str(&body).unwrap();
    listed.into_iter().map(|r| (r.name.to_string(), r.people)).collect()
}

#[tokio::test]
async fn the_start_page_lists_the_fifty_fullest_rooms_and_follows_joins_and_leaves() {
    let server = TestServer::with(HubConfig {
        limits: Limits::rooms_of(6),
        max_connections_per_ip: 1000,
        resume_grace: Duration::from_millis(100),
        ..HubConfig::default()
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..60 {
        clients.push(server.join_listed(&format!("room-{i:02}"), "One").await);
    }
    let mut zeta = Vec::new();
    for name in ["A", "B", "C"] {
        zeta.push(server.join_listed("zeta", name).await);
    }
    let names = |range: std::ops::Range<usize>| range.map(|i| (format!("room-{i:02}"), 1)).collect::<Vec<_>>();
    let listed = listing(&server).await;
    assert_eq!(listed[0], ("zeta".to_owned(), 3));
    assert_eq!(listed[1..], names(0..49)[..]);
    // Two leave zeta (one closes, one drops and is held, then expires): it falls back in line.
    zeta[0].send(&ClientMsg::Leave).await;
    drop(zeta.remove(1));
    tokio::time::timeout(PATIENCE, async {
        while listing(&server).await != names(0..50) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("zeta never fell back in line");
    // An emptied room goes from the list.
    clients[0].send(&ClientMsg::Leave).await;
    tokio::time::timeout(PATIENCE, async {
        while listing(&server).await != names(1..51) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the emptied room stayed listed");
}
