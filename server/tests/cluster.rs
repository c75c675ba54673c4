//! The cluster registry over a real `redis-server`: two or three nodes (hubs on their own ports,
//! sharing one Redis) serve the same rooms.

use crate::common::*;

const TTL: Duration = Duration::from_millis(800);

struct Cluster {
    redis: Redis,
    nodes: Vec<(TestServer, CancellationToken)>,
}

impl Cluster {
    async fn start(n: usize, config: HubConfig) -> Self {
        let redis = Redis::start().await;
        let mut nodes = Vec::new();
        for _ in 0..n {
            let shutdown = CancellationToken::new();
            nodes.push((TestServer::node(&redis, config.clone(), TTL, shutdown.clone()).await, shutdown));
        }
        Cluster { redis, nodes }
    }

    fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i].0
    }
}

fn config(capacity: usize) -> HubConfig {
    HubConfig {
        limits: Limits::rooms_of(capacity),
        stun_urls: vec![],
        resume_grace: Duration::from_millis(500),
        ..HubConfig::default()
    }
}

fn secret_join(room: &str, name: &str, secret: &str, password: Option<&str>) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        secret: Some(secret.into()),
        password: password.map(Into::into),
        listed: false,
        media: MediaState::default(),
    }
}

fn welcome(msg: ServerMsg) -> (PeerId, Vec<PeerInfo>, bool) {
    match msg {
        ServerMsg::Welcome { id, peers, resumed, .. } => (id, peers, resumed),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn peers_on_two_nodes_meet_signal_chat_and_leave() {
    let cluster = Cluster::start(2, config(4)).await;
    let (mut ada, ada_id) = cluster.node(0).join("across", "Ada").await;
    let (mut bob, bob_id) = cluster.node(1).join("across", "Bob").await;
    match ada.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!((peer.id, peer.name.as_str()), (bob_id, "Bob")),
        other => panic!("expected Bob's arrival, got {other:?}"),
    }

    ada.send(&ClientMsg::Signal { to: bob_id, signal: offer("v=0 offer") }).await;
    assert_eq!(bob.recv().await, ServerMsg::Signal { from: ada_id, signal: offer("v=0 offer") });
    let answer = Signal::Answer { sdp: "v=0 answer".into() };
    bob.send(&ClientMsg::Signal { to: ada_id, signal: answer.clone() }).await;
    assert_eq!(ada.recv().await, ServerMsg::Signal { from: bob_id, signal: answer });

    let muted = MediaState { muted: true, ..MediaState::default() };
    bob.send(&ClientMsg::Media(muted)).await;
    assert_eq!(ada.recv().await, ServerMsg::PeerMedia { id: bob_id, media: muted });

    ada.send(&ClientMsg::Chat { text: "hello from node one".into() }).await;
    for client in [&mut ada, &mut bob] {
        match client.recv().await {
            ServerMsg::Chat { message } => assert_eq!(message.text, "hello from node one"),
            other => panic!("expected the chat message, got {other:?}"),
        }
    }
    // A late joiner on the second node gets the history and both earlier members, in order.
    let (mut cy, answer) = cluster.node(1).send_join(&join_msg("across", "Cy")).await;
    match answer {
        ServerMsg::Welcome { peers, chat, .. } => {
            assert_eq!(peers.iter().map(|p| p.id).collect::<Vec<_>>(), vec![ada_id, bob_id]);
            assert_eq!(peers[1].media, muted);
            assert_eq!(chat.len(), 1);
            assert_eq!(chat[0].text, "hello from node one");
        }
        other => panic!("expected a welcome, got {other:?}"),
    }
    assert!(matches!(ada.recv().await, ServerMsg::PeerJoined { .. }));
    assert!(matches!(bob.recv().await, ServerMsg::PeerJoined { .. }));
    assert_eq!(cluster.node(0).hub.rooms.room_count().await.unwrap(), 1);
    assert_eq!(cluster.node(1).hub.rooms.peer_count().await.unwrap(), 3);

    bob.send(&ClientMsg::Leave).await;
    assert_eq!(ada.recv().await, ServerMsg::PeerLeft { id: bob_id });
    assert_eq!(cy.recv().await, ServerMsg::PeerLeft { id: bob_id });
    ada.send(&ClientMsg::Leave).await;
    assert_eq!(cy.recv().await, ServerMsg::PeerLeft { id: ada_id });
    // A socket that drops is held for the grace period, then removed.
    drop(cy);
    cluster.node(1).wait_for_room_count(0).await;
    assert_eq!(cluster.node(0).hub.rooms.peer_count().await.unwrap(), 0);
}

#[tokio::test]
async fn signals_do_not_cross_rooms_or_reach_strangers() {
    let cluster = Cluster::start(2, config(4)).await;
    let (mut ada, _) = cluster.node(0).join("one", "Ada").await;
    let (mut eve, eve_id) = cluster.node(1).join("two", "Eve").await;
    ada.send(&ClientMsg::Signal { to: eve_id, signal: offer("x") }).await;
    ada.expect_error(ErrorCode::UnknownPeer).await;
    eve.expect_nothing_queued().await;
    ada.send(&ClientMsg::Signal { to: PeerId(999_999), signal: offer("x") }).await;
    ada.expect_error(ErrorCode::UnknownPeer).await;
}

#[tokio::test]
async fn capacity_and_passwords_hold_across_nodes() {
    let cluster = Cluster::start(3, config(2)).await;
    let (_ada, answer) =
        cluster.node(0).send_join(&secret_join("locked", "Ada", "ada-secret-0123456789", Some("pw"))).await;
    assert!(matches!(answer, ServerMsg::Welcome { locked: true, .. }), "{answer:?}");

    let (_b, answer) = cluster.node(1).send_join(&secret_join("locked", "Bob", "bob-secret-0123456789", None)).await;
    assert!(matches!(answer, ServerMsg::Error { code: ErrorCode::PasswordRequired, .. }), "{answer:?}");
    let (_b, answer) =
        cluster.node(1).send_join(&secret_join("locked", "Bob", "bob-secret-0123456789", Some("nope"))).await;
    assert!(matches!(answer, ServerMsg::Error { code: ErrorCode::WrongPassword, .. }), "{answer:?}");
    let (_bob, answer) =
        cluster.node(1).send_join(&secret_join("locked", "Bob", "bob-secret-0123456789", Some("pw"))).await;
    assert!(matches!(answer, ServerMsg::Welcome { locked: true, .. }), "{answer:?}");
    // Two people in a room of two, counted over all nodes.
    let (_cy, answer) =
        cluster.node(2).send_join(&secret_join("locked", "Cy", "cy-secret-01234567890", Some("pw"))).await;
    assert!(matches!(answer, ServerMsg::Error { code: ErrorCode::RoomFull, .. }), "{answer:?}");
    assert_eq!(cluster.node(2).hub.rooms.peer_count().await.unwrap(), 2);
}

#[tokio::test]
async fn the_server_wide_limits_are_cluster_wide() {
    let config = HubConfig { limits: Limits { max_rooms: 2, max_peers: 3, ..Limits::rooms_of(4) }, ..config(4) };
    let cluster = Cluster::start(2, config).await;
    let (_a, _) = cluster.node(0).join("a", "A").await;
    let (_b, _) = cluster.node(1).join("b", "B").await;
    let (_c, answer) = cluster.node(0).send_join(&join_msg("c", "C")).await;
    assert!(matches!(answer, ServerMsg::Error { code: ErrorCode::ServerFull, .. }), "a third room: {answer:?}");
    let (_d, _) = cluster.node(1).join("a", "D").await;
    let (_e, answer) = cluster.node(0).send_join(&join_msg("b", "E")).await;
    assert!(matches!(answer, ServerMsg::Error { code: ErrorCode::ServerFull, .. }), "a fourth person: {answer:?}");
}

#[tokio::test]
async fn a_tab_takes_its_place_back_on_another_node() {
    let cluster = Cluster::start(2, config(4)).await;
    let secret = "ada-tab-secret-0123456789";
    let (mut ada_on_0, answer) = cluster.node(0).send_join(&secret_join("r", "Ada", secret, None)).await;
    let (ada_id, _, _) = welcome(answer);
    let (mut bob, bob_id) = cluster.node(1).join("r", "Bob").await;
    assert!(matches!(ada_on_0.recv().await, ServerMsg::PeerJoined { .. }));

    // The same tab on the other node (its node died, or the balancer moved it).
    let (mut ada_on_1, answer) = cluster.node(1).send_join(&secret_join("r", "Ada", secret, None)).await;
    let (id, peers, resumed) = welcome(answer);
    assert_eq!((id, resumed), (ada_id, true));
    assert_eq!(peers.iter().map(|p| p.id).collect::<Vec<_>>(), vec![bob_id]);
    assert_eq!(ada_on_0.expect_close().await, Some(close_code::REPLACED));
    // Bob heard of no leave or join: the next thing he gets is what Ada sends from node 1.
    ada_on_1.send(&ClientMsg::Signal { to: bob_id, signal: offer("moved") }).await;
    assert_eq!(bob.recv().await, ServerMsg::Signal { from: ada_id, signal: offer("moved") });

    bob.send(&ClientMsg::Signal { to: ada_id, signal: offer("again") }).await;
    assert_eq!(ada_on_1.recv().await, ServerMsg::Signal { from: bob_id, signal: offer("again") });
    assert_eq!(cluster.node(0).hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 2);
}

#[tokio::test]
async fn a_dead_nodes_people_are_announced_as_left_after_its_presence_expires() {
    let cluster = Cluster::start(2, config(4)).await;
    let (mut grace, _) = cluster.node(0).join("r", "Grace").await;
    let (_linus, linus_id) = cluster.node(1).join("r", "Linus").await;
    assert!(matches!(grace.recv().await, ServerMsg::PeerJoined { .. }));

    // Node 1 stops: no leave is announced at once (its people may resume elsewhere), then its
    // presence expires and node 0 removes them.
    let stopped = tokio::time::Instant::now();
    cluster.nodes[1].1.cancel();
    assert_eq!(grace.recv().await, ServerMsg::PeerLeft { id: linus_id });
    let after = stopped.elapsed();
    assert!(after >= TTL / 2, "announced after {after:?}, before the presence could expire");
    assert_eq!(cluster.node(0).hub.rooms.peer_count().await.unwrap(), 1);
    drop(cluster.redis);
}

#[tokio::test]
async fn a_slow_socket_on_one_node_is_dropped_and_announced_on_the_other() {
    let rate = RateLimit { burst: 10_000.0, per_second: 10_000.0 };
    let cluster = Cluster::start(2, HubConfig { rate, ..config(4) }).await;
    let (mut ada, ada_id) = cluster.node(0).join("r", "Ada").await;
    // Bob never reads: his outbox on node 1 fills up.
    let (_bob, bob_id) = cluster.node(1).join("r", "Bob").await;
    assert!(matches!(ada.recv().await, ServerMsg::PeerJoined { .. }));
    let big = "x".repeat(30_000);
    let mut left = false;
    for _ in 0..400 {
        ada.send(&ClientMsg::Signal { to: bob_id, signal: offer(&big) }).await;
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_millis(5), ada.ws.next()).await {
            match ServerMsg::from_json(&text).unwrap() {
                ServerMsg::PeerLeft { id } => {
                    assert_eq!(id, bob_id);
                    left = true;
                    break;
                }
                ServerMsg::Error { code: ErrorCode::UnknownPeer | ErrorCode::RateLimited, .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    if !left {
        assert_eq!(ada.recv().await, ServerMsg::PeerLeft { id: bob_id });
    }
    let _ = ada_id;
}

#[tokio::test]
async fn every_node_lists_the_clusters_open_rooms() {
    let cluster = Cluster::start(2, config(4)).await;
    let listed = |name: &str, password: Option<&str>| ClientMsg::Join {
        room: "open-house".into(),
        name: name.into(),
        secret: None,
        password: password.map(Into::into),
        listed: true,
        media: MediaState::default(),
    };
    let (_ada, answer) = cluster.node(0).send_join(&listed("Ada", Some("pw"))).await;
    assert!(matches!(answer, ServerMsg::Welcome { .. }), "{answer:?}");
    let (_bob, answer) = cluster.node(1).send_join(&listed("Bob", Some("pw"))).await;
    assert!(matches!(answer, ServerMsg::Welcome { .. }), "{answer:?}");
    let (_eve, _) = cluster.node(1).join("unlisted", "Eve").await;
    let rooms = cluster.node(1).hub.rooms.listed(50).await.unwrap();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!((rooms[0].name.as_str(), rooms[0].people, rooms[0].locked), ("open-house", 2, true));
    assert_eq!(cluster.node(0).hub.rooms.listed(50).await.unwrap(), rooms);
}

#[tokio::test]
async fn the_chat_history_in_a_welcome_is_bounded_by_bytes_on_every_node() {
    let cluster = Cluster::start(2, config(4)).await;
    let (mut ada, _) = cluster.node(0).join("r", "Ada").await;
    let mut sent = Vec::new();
    for i in 0..CHAT_HISTORY {
        let text = format!("{i:03}{}", "가".repeat(confab_protocol::CHAT_MAX_CHARS - 3));
        ada.send(&ClientMsg::Chat { text }).await;
        match ada.recv().await {
            ServerMsg::Chat { message } => sent.push(message),
            other => panic!("expected chat, got {other:?}"),
        }
    }
    let (_bob, answer) = cluster.node(1).send_join(&join_msg("r", "Bob")).await;
    let ServerMsg::Welcome { chat, .. } = answer else { panic!("expected a welcome, got {answer:?}") };
    let bytes: usize = chat.iter().map(|m| serde_json::to_string(m).unwrap().len()).sum();
    assert!(bytes <= WELCOME_CHAT_BYTES, "{bytes} bytes of chat in a welcome");
    assert!(!chat.is_empty() && chat.len() < sent.len());
    assert_eq!(chat[..], sent[sent.len() - chat.len()..], "the newest, oldest first");
}

#[tokio::test]
async fn places_per_address_are_counted_over_all_nodes_held_places_included() {
    let limits = Limits { max_rooms: 20, max_peers: 40, max_places_per_ip: 3, ..Limits::rooms_of(4) };
    let config = HubConfig { limits, resume_grace: Duration::from_secs(60), ..config(4) };
    let cluster = Cluster::start(2, config).await;
    // One host churns through both nodes: join a fresh room, drop the connection.
    let mut welcomed = 0;
    for i in 0..12 {
        let mut churner = cluster.node(i % 2).connect_from_ip("127.0.0.2").await;
        let secret = format!("churn-secret-{i:04}-0123456789");
        churner.send(&secret_join(&format!("churn-{i}"), "Churn", &secret, None)).await;
        match churner.recv().await {
            ServerMsg::Welcome { .. } => welcomed += 1,
            ServerMsg::Error { code: ErrorCode::TooManyPlaces, .. } => {}
            other => panic!("expected a welcome or too_many_places, got {other:?}"),
        }
    }
    assert_eq!(welcomed, 3);
    assert_eq!(cluster.node(0).hub.rooms.room_count().await.unwrap(), 3);
    // Others get in on either node.
    cluster.node(0).connect_from_ip("127.0.0.3").await.join("fresh", "Other").await;
    cluster.node(1).connect_from_ip("127.0.0.4").await.join("fresh", "Another").await;
    // A place that goes frees its count, wherever it was made.
    let mut kept = cluster.node(1).connect_from_ip("127.0.0.2").await;
    kept.send(&secret_join("churn-0", "Churn", "churn-secret-0000-0123456789", None)).await;
    assert!(matches!(kept.recv().await, ServerMsg::Welcome { resumed: true, .. }));
    kept.send(&ClientMsg::Leave).await;
    cluster.node(0).wait_for_room_count(3).await;
    let mut again = cluster.node(0).connect_from_ip("127.0.0.2").await;
    again.join("one-more", "Churn").await;
}

#[tokio::test]
async fn joins_per_address_per_second_are_counted_over_all_nodes() {
    let limits = Limits { max_joins_per_ip_per_sec: 3, ..Limits::rooms_of(4) };
    let cluster = Cluster::start(2, HubConfig { limits, ..config(4) }).await;
    let mut joins = 0;
    let retry_after = loop {
        assert!(joins < 30, "{joins} joins in a row were taken");
        let (mut hasty, answer) = {
            let mut client = cluster.node(joins % 2).connect_from_ip("127.0.0.2").await;
            client.send(&join_msg(format!("room-{joins}"), "Hasty")).await;
            let answer = client.recv().await;
            (client, answer)
        };
        match answer {
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
    cluster.node(1).connect_from_ip("127.0.0.3").await.join("elsewhere", "Patient").await;
}

fn password_join(room: &str, password: &str) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        name: "Guess".into(),
        secret: None,
        password: Some(password.into()),
        listed: false,
        media: MediaState::default(),
    }
}

/// Tries `password` for `room` on `node` from `ip`, on a new connection; the answer.
async fn attempt(node: &TestServer, ip: &str, room: &str, password: &str) -> ServerMsg {
    let mut client = node.connect_from_ip(ip).await;
    client.send(&password_join(room, password)).await;
    client.recv().await
}

#[tokio::test]
async fn the_wrong_password_budget_of_an_address_is_cluster_wide() {
    let passwords =
        PasswordLimits { failures_per_ip: 3, ip_window: Duration::from_secs(3600), ..PasswordLimits::unlimited() };
    let cluster =
        Cluster::start(2, HubConfig { limits: Limits { passwords, ..Limits::rooms_of(6) }, ..config(6) }).await;
    let (_ada, answer) =
        cluster.node(0).send_join(&secret_join("vault", "Ada", "ada-secret-0123456789", Some("pw"))).await;
    assert!(matches!(answer, ServerMsg::Welcome { locked: true, .. }), "{answer:?}");
    for guess in 0..3 {
        assert!(is_wrong(&attempt(cluster.node(guess % 2), "127.0.0.2", "vault", "nope").await));
    }
    for node in 0..2 {
        let wait = retry_after_of(&attempt(cluster.node(node), "127.0.0.2", "vault", "pw").await);
        assert!((1..=3_600_000).contains(&wait), "retry after {wait} ms");
    }
    assert!(matches!(attempt(cluster.node(1), "127.0.0.3", "vault", "pw").await, ServerMsg::Welcome { .. }));
}

#[tokio::test]
async fn a_room_under_guessing_makes_attempts_wait_on_every_node() {
    let passwords = PasswordLimits {
        free_failures_per_room: 2,
        room_delay: Duration::from_millis(400),
        room_max_delay: Duration::from_millis(1600),
        ..PasswordLimits::unlimited()
    };
    let cluster =
        Cluster::start(2, HubConfig { limits: Limits { passwords, ..Limits::rooms_of(6) }, ..config(6) }).await;
    let (_ada, answer) =
        cluster.node(0).send_join(&secret_join("vault", "Ada", "ada-secret-0123456789", Some("pw"))).await;
    assert!(matches!(answer, ServerMsg::Welcome { locked: true, .. }), "{answer:?}");
    let mut hosts = (2..200).map(|n| format!("127.0.0.{n}"));
    let mut host = move || hosts.next().unwrap();
    assert!(is_wrong(&attempt(cluster.node(0), &host(), "vault", "one").await));
    assert!(is_wrong(&attempt(cluster.node(1), &host(), "vault", "two").await));
    for (i, expected) in [400, 800, 1600].into_iter().enumerate() {
        let wait = retry_after_of(&attempt(cluster.node(i % 2), &host(), "vault", "pw").await);
        assert!(wait <= expected && wait > expected / 2, "waited {wait} ms where {expected} ms was due");
        tokio::time::sleep(Duration::from_millis(wait)).await;
        assert!(is_wrong(&attempt(cluster.node((i + 1) % 2), &host(), "vault", "wrong again").await));
    }
    let wait = retry_after_of(&attempt(cluster.node(1), &host(), "vault", "pw").await);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert!(matches!(attempt(cluster.node(1), &host(), "vault", "pw").await, ServerMsg::Welcome { .. }));
    // The right password made the room forget its failures.
    assert!(is_wrong(&attempt(cluster.node(0), &host(), "vault", "after").await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_guessing_from_one_host_slows_to_the_stated_rate_in_a_cluster() {
    let cluster = Arc::new(Cluster::start(2, HubConfig::default()).await);
    let (ada, answer) =
        cluster.node(0).send_join(&secret_join("vault", "Ada", "ada-secret-0123456789", Some("correct horse"))).await;
    assert!(matches!(answer, ServerMsg::Welcome { locked: true, .. }), "{answer:?}");
    let (_ada_tx, mut ada_rx) = ada.ws.split();
    tokio::spawn(async move { while let Some(Ok(_)) = ada_rx.next().await {} });
    let duration = Duration::from_secs(3);
    let (answered, wrong) = guess_for(
        duration,
        {
            let cluster = cluster.clone();
            move |worker| {
                let cluster = cluster.clone();
                async move { cluster.node(worker % 2).connect_from_ip("127.0.0.2").await }
            }
        },
        |worker, guess| password_join("vault", &format!("guess-{worker}-{guess}")),
    )
    .await;
    println!(
        "two nodes, one host, 16 sockets, {} s: {answered} answers, {wrong} passwords checked ({:.1} a second)",
        duration.as_secs(),
        wrong as f64 / duration.as_secs_f64()
    );
    let limits = PasswordLimits::default();
    assert!(wrong <= u64::from(limits.failures_per_ip.min(limits.free_failures_per_room + 2)), "{wrong} checked");
}

/// The commands Redis has run since its statistics were last reset (scripts' own included).
async fn redis_calls(redis: &Redis) -> u64 {
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut c).await.unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:") && !l.starts_with("cmdstat_config"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

async fn reset_redis_stats(redis: &Redis) {
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut c).await.unwrap();
}

#[tokio::test]
async fn listing_open_rooms_costs_redis_what_it_answers_not_what_is_listed() {
    let cluster = Cluster::start(2, HubConfig { max_connections_per_ip: 1000, ..config(6) }).await;
    let mut clients = Vec::new();
    for i in 0..150 {
        clients.push(cluster.node(i % 2).join_listed(&format!("room-{i:03}"), "One").await);
    }
    for name in ["A", "B", "C"] {
        clients.push(cluster.node(1).join_listed("zeta", name).await);
    }
    reset_redis_stats(&cluster.redis).await;
    let (status, body) = cluster.node(0).http_get(confab_protocol::ROOMS_PATH).await;
    let calls = redis_calls(&cluster.redis).await;
    assert_eq!(status, 200);
    let listed: Vec<confab_protocol::ListedRoom> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.len(), 50);
    assert_eq!((listed[0].name.as_str(), listed[0].people), ("zeta", 3));
    let expected: Vec<String> = (0..49).map(|i| format!("room-{i:03}")).collect();
    assert_eq!(listed[1..].iter().map(|r| r.name.to_string()).collect::<Vec<_>>(), expected);
    // One script: a range of the sorted set and the 50 rooms' password flags (and the nodes'
    // own presence traffic meanwhile); not two commands for each of the 151 listed rooms.
    println!("one listing of 50 of 151 rooms: {calls} Redis commands");
    assert!(calls <= 50 + 20, "{calls} Redis commands for one listing");
    // It follows leaves.
    clients.pop().unwrap().send(&ClientMsg::Leave).await;
    clients.pop().unwrap().send(&ClientMsg::Leave).await;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let listed = cluster.node(1).hub.rooms.listed(50).await.unwrap();
            if listed.iter().all(|r| r.people == 1) && listed[0].name.as_str() == "room-000" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("zeta never fell back in line");
}
