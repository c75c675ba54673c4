//! TURN credentials against real TURN servers: Debian's coturn (started here with
//! `use-auth-secret`, as a self-hoster would run it) and the embedded server. A TURN client
//! allocates a relay with credentials minted by the signaling server's code.

use confab_server::turn::{credentials, EmbeddedConfig, EmbeddedTurn, Quota, RequestRate};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stun::agent::TransactionId;
use stun::attributes::{ATTR_DATA, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::error_code::ErrorCodeAttribute;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageClass, MessageType, Method, Setter, CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST,
    METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND,
};
use stun::textattrs::TextAttribute;
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use turn::proto::channum::ChannelNumber;
use turn::proto::data::Data;
use turn::proto::lifetime::Lifetime;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::relayaddr::RelayedAddress;
use turn::proto::reqtrans::RequestedTransport;
use turn::proto::PROTO_UDP;

const SECRET: &str = "a-secret-shared-with-the-turn-server";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Asks `server` for a relay allocation with `username`/`password`.
async fn allocate(server: SocketAddr, username: &str, password: &str) -> Result<SocketAddr, String> {
    let conn = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.into(),
        password: password.into(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    client.listen().await.map_err(|e| e.to_string())?;
    let relay = tokio::time::timeout(Duration::from_secs(10), client.allocate()).await;
    let result = match relay {
        Ok(Ok(relay)) => webrtc_util::Conn::local_addr(&relay).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    };
    let _ = client.close().await;
    result
}

/// A free UDP port on loopback (the TURN server binds it right after).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// coturn on loopback, stopped when dropped.
struct Coturn {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Coturn {
    async fn start() -> Coturn {
        let port = free_udp_port();
        let dir = std::env::temp_dir().join(format!("confab-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("turnserver")
            // The configuration README recommends, with what differs on a test machine.
            .arg("-c")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/turnserver.conf"))
            .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--no-tls", "--no-dtls", "--no-tcp"])
            .arg(format!("--listening-port={port}"))
            .args(["--min-port=50000", "--max-port=50999", "--use-auth-secret", "--realm=confab.test"])
            .arg(format!("--static-auth-secret={SECRET}"))
            .args(["--allow-loopback-peers", "--no-cli", "--log-file=stdout", "--simple-log"])
            .arg(format!("--pidfile={}", dir.join("turnserver.pid").display()))
            .arg(format!("--db={}", dir.join("turndb").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("coturn's turnserver must be installed (scripts/install-tools.sh test does it)");
        let coturn = Coturn { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), _dir: TempDir(dir) };
        // Ready once it answers: retry an allocation with good credentials for a while.
        let (username, password) = credentials(SECRET, now() + 60, "probe");
        for _ in 0..50 {
            if allocate(coturn.addr, &username, &password).await.is_ok() {
                return coturn;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("coturn did not start on {}", coturn.addr);
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fresh credentials allocate; expired ones and ones from another secret do not.
async fn check_credentials(server: SocketAddr) {
    let (username, password) = credentials(SECRET, now() + 600, "0123456789abcdef0123456789abcdef");
    let relay = allocate(server, &username, &password).await.expect("fresh credentials allocate");
    assert_eq!(relay.ip(), std::net::IpAddr::from([127, 0, 0, 1]));

    let (username, password) = credentials(SECRET, now() - 5, "0123456789abcdef0123456789abcdef");
    assert!(allocate(server, &username, &password).await.is_err(), "expired credentials are refused");

    let (username, password) = credentials("another-secret", now() + 600, "peer");
    assert!(allocate(server, &username, &password).await.is_err(), "another secret's credentials are refused");
}

#[tokio::test]
async fn coturn_accepts_minted_credentials_and_refuses_expired_ones() {
    let coturn = Coturn::start().await;
    check_credentials(coturn.addr).await;
}

#[tokio::test]
async fn coturn_with_the_recommended_configuration_refuses_private_peers() {
    let coturn = Coturn::start().await;
    let (ada, ada_relay) = allocated(coturn.addr, [127, 0, 0, 1], "ada").await;
    for peer in ["10.1.2.3:9", "192.168.1.1:53", "169.254.169.254:80", "224.0.0.251:5353", "[::ffff:10.0.0.1]:9"] {
        let peer: SocketAddr = peer.parse().unwrap();
        if peer.is_ipv6() {
            continue; // an IPv4 allocation answers 443 (family mismatch) before the policy
        }
        assert_eq!(ada.permit(&[peer]).await, Some(403), "coturn relays to {peer}");
    }
    assert_eq!(ada.permit(&[ada_relay]).await, None, "relays on this host (loopback allowed in tests) still are");
}

#[tokio::test]
async fn the_embedded_server_accepts_minted_credentials_and_refuses_expired_ones() {
    let turn = embedded(51000, |_| {}).await;
    check_credentials(turn.local_addr()).await;
    turn.close().await;
}

/// The embedded server on loopback with relay ports from `first_port`, `tune`d for one test.
async fn embedded(first_port: u16, tune: impl FnOnce(&mut EmbeddedConfig)) -> EmbeddedTurn {
    let mut config = EmbeddedConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        [127, 0, 0, 1].into(),
        (first_port, first_port + 999),
        SECRET.into(),
    );
    config.realm = "confab.test".into();
    tune(&mut config);
    EmbeddedTurn::start(config).await.unwrap()
}

/// A TURN client written out request by request, to ask for what browsers never would.
struct Raw {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    realm: String,
    nonce: String,
    key: Vec<u8>,
}

/// The error code of an answer, `None` for success.
fn code(m: &Message) -> Option<u16> {
    (m.typ.class == CLASS_ERROR_RESPONSE).then(|| {
        let mut code = ErrorCodeAttribute::default();
        code.get_from(m).unwrap();
        code.code.0
    })
}

impl Raw {
    /// A client on a fresh port of `local` (any 127/8 address is this host's loopback).
    async fn new(server: SocketAddr, local: [u8; 4], username: &str) -> Raw {
        let socket = UdpSocket::bind(SocketAddr::from((local, 0))).await.unwrap();
        Raw { socket, server, username: username.into(), realm: String::new(), nonce: String::new(), key: Vec::new() }
    }

    /// Sends a request built from `attrs` (signed once a nonce is known) and waits for its
    /// answer (retransmitting as TURN clients do); `None` if there is none.
    async fn request(&self, method: Method, attrs: Vec<Box<dyn Setter>>) -> Option<Message> {
        let raw = self.build(method, CLASS_REQUEST, attrs);
        let id = TransactionId(raw[8..20].try_into().unwrap());
        for _ in 0..3 {
            self.socket.send_to(&raw, self.server).await.unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
            while let Ok(received) = tokio::time::timeout_at(deadline, self.recv()).await {
                match received {
                    Some(m) if m.transaction_id == id && m.typ.class != CLASS_INDICATION => return Some(m),
                    _ => continue,
                }
            }
        }
        None
    }

    fn build(&self, method: Method, class: MessageClass, attrs: Vec<Box<dyn Setter>>) -> Vec<u8> {
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(TransactionId::new()), Box::new(MessageType::new(method, class))];
        setters.extend(attrs);
        if !self.nonce.is_empty() && class == CLASS_REQUEST {
            setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, self.username.clone())));
            setters.push(Box::new(TextAttribute::new(ATTR_REALM, self.realm.clone())));
            setters.push(Box::new(TextAttribute::new(ATTR_NONCE, self.nonce.clone())));
            setters.push(Box::new(MessageIntegrity(self.key.clone())));
        }
        let mut m = Message::new();
        m.build(&setters).unwrap();
        m.raw
    }

    /// The next STUN message from the server, or `None` for anything else.
    async fn recv(&self) -> Option<Message> {
        let mut buf = vec![0u8; 2048];
        let (n, _) = self.socket.recv_from(&mut buf).await.ok()?;
        let mut m = Message { raw: buf[..n].to_vec(), ..Default::default() };
        m.decode().ok().map(|()| m)
    }

    /// Allocates a relay with `password`: the 401 challenge, then the signed request. The error
    /// code if refused.
    async fn allocate(&mut self, password: &str) -> Result<SocketAddr, u16> {
        let transport = || -> Vec<Box<dyn Setter>> { vec![Box::new(RequestedTransport { protocol: PROTO_UDP })] };
        if self.nonce.is_empty() {
            let challenge = self.request(METHOD_ALLOCATE, transport()).await.expect("a challenge");
            assert_eq!(code(&challenge), Some(401), "an unsigned Allocate is challenged");
            self.nonce = TextAttribute::get_from_as(&challenge, ATTR_NONCE).unwrap().text;
            self.realm = TextAttribute::get_from_as(&challenge, ATTR_REALM).unwrap().text;
            self.key = turn::auth::generate_auth_key(&self.username, &self.realm, password);
        }
        let answer = self.request(METHOD_ALLOCATE, transport()).await.expect("an answer");
        if let Some(code) = code(&answer) {
            return Err(code);
        }
        let mut relayed = RelayedAddress::default();
        relayed.get_from(&answer).unwrap();
        Ok(SocketAddr::new(relayed.ip, relayed.port))
    }

    /// CreatePermission for `peers` (in one request): the error code if refused.
    async fn permit(&self, peers: &[SocketAddr]) -> Option<u16> {
        let attrs =
            peers.iter().map(|p| Box::new(PeerAddress { ip: p.ip(), port: p.port() }) as Box<dyn Setter>).collect();
        code(&self.request(METHOD_CREATE_PERMISSION, attrs).await.expect("an answer"))
    }

    /// ChannelBind `number` to `peer`: the error code if refused.
    async fn bind_channel(&self, number: u16, peer: SocketAddr) -> Option<u16> {
        let attrs: Vec<Box<dyn Setter>> =
            vec![Box::new(ChannelNumber(number)), Box::new(PeerAddress { ip: peer.ip(), port: peer.port() })];
        code(&self.request(METHOD_CHANNEL_BIND, attrs).await.expect("an answer"))
    }

    /// Refresh with `lifetime` (0 deletes the allocation): the error code if refused.
    async fn refresh(&self, lifetime: Duration) -> Option<u16> {
        code(&self.request(METHOD_REFRESH, vec![Box::new(Lifetime(lifetime))]).await.expect("an answer"))
    }

    /// A Send indication: `data` to `peer` through the relay.
    async fn send(&self, peer: SocketAddr, data: &[u8]) {
        let attrs: Vec<Box<dyn Setter>> =
            vec![Box::new(PeerAddress { ip: peer.ip(), port: peer.port() }), Box::new(Data(data.to_vec()))];
        let raw = self.build(METHOD_SEND, CLASS_INDICATION, attrs);
        self.socket.send_to(&raw, self.server).await.unwrap();
    }

    /// Waits until the server has handled everything this client sent before (it handles
    /// datagrams in order): a Binding request answered.
    async fn sync(&self) {
        let answer = self.request(METHOD_BINDING, Vec::new()).await.expect("a Binding answer");
        assert_eq!(code(&answer), None);
    }

    /// The payload of the next Data indication (relayed from a peer).
    async fn relayed(&self) -> (SocketAddr, Vec<u8>) {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), self.recv()).await.expect("relayed data in time");
            let Some(m) = m.filter(|m| m.typ.class == CLASS_INDICATION) else { continue };
            let mut from = PeerAddress::default();
            from.get_from(&m).unwrap();
            return (SocketAddr::new(from.ip, from.port), m.get(ATTR_DATA).unwrap());
        }
    }
}

/// Credentials for a participant, valid for ten minutes.
fn minted(peer: &str) -> (String, String) {
    credentials(SECRET, now() + 600, peer)
}

async fn allocated(server: SocketAddr, local: [u8; 4], peer: &str) -> (Raw, SocketAddr) {
    let (username, password) = minted(peer);
    let mut client = Raw::new(server, local, &username).await;
    let relay = client.allocate(&password).await.expect("an allocation");
    (client, relay)
}

#[tokio::test]
async fn peers_inside_the_host_are_refused_while_relays_reach_each_other() {
    let turn = embedded(52000, |_| {}).await;
    let server = turn.local_addr();
    let (ada, ada_relay) = allocated(server, [127, 0, 0, 1], "ada").await;
    let (bob, bob_relay) = allocated(server, [127, 0, 0, 1], "bob").await;

    // A service on this host that only local programs should reach.
    let service = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let service_addr = service.local_addr().unwrap();
    let inside: Vec<SocketAddr> = [
        service_addr.to_string(),
        server.to_string(),
        "127.0.0.1:3000".into(),
        format!("127.0.0.2:{}", bob_relay.port()),
        "10.1.2.3:9".into(),
        "172.16.0.1:53".into(),
        "192.168.1.1:53".into(),
        "100.64.0.1:53".into(),
        "169.254.169.254:80".into(),
        "224.0.0.251:5353".into(),
        "255.255.255.255:9".into(),
        "0.0.0.0:9".into(),
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    for peer in &inside {
        assert_eq!(ada.permit(&[*peer]).await, Some(403), "CreatePermission for {peer}");
    }
    assert_eq!(ada.bind_channel(0x4000, service_addr).await, Some(403), "ChannelBind to a host service");
    assert_eq!(ada.permit(&[bob_relay, service_addr]).await, Some(403), "one refused peer refuses the request");
    assert_eq!(turn.counters().forbidden_peer.load(std::sync::atomic::Ordering::Relaxed), inside.len() as u64 + 2);

    // Nothing reaches the service: the server handled the Send indication before the sync, so a
    // datagram it relayed would be queued at the service before the marker sent after it.
    ada.send(service_addr, b"let me in").await;
    ada.sync().await;
    service.send_to(b"marker", service_addr).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = service.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"marker", "the service received nothing through the relay");

    // Two participants relayed by this server reach each other (the browsers' relay-to-relay
    // path: the host's own address, at a live relay port).
    assert_eq!(ada.permit(&[bob_relay]).await, None);
    assert_eq!(bob.permit(&[ada_relay]).await, None);
    ada.send(bob_relay, b"hello bob").await;
    assert_eq!(bob.relayed().await, (ada_relay, b"hello bob".to_vec()));
    assert_eq!(bob.bind_channel(0x4001, ada_relay).await, None);
    turn.close().await;
}

#[tokio::test]
async fn allocations_are_held_to_quotas() {
    let turn = embedded(53000, |c| c.quota = Quota { per_user: 2, per_ip: 3, total: 5 }).await;
    let server = turn.local_addr();
    let (user, password) = minted("carol");
    let mut carols = Vec::new();
    for i in 0..3 {
        let mut client = Raw::new(server, [127, 0, 0, 1], &user).await;
        let result = client.allocate(&password).await;
        match i {
            0 | 1 => assert!(result.is_ok(), "allocation {i} of one credential"),
            _ => assert_eq!(result, Err(486), "a third allocation of one credential"),
        }
        carols.push(client);
    }
    let (_dave, _) = allocated(server, [127, 0, 0, 1], "dave").await;
    let (user, password) = minted("erin");
    let mut erin = Raw::new(server, [127, 0, 0, 1], &user).await;
    assert_eq!(erin.allocate(&password).await, Err(486), "a fourth allocation from one address");
    let (_frank, _) = allocated(server, [127, 0, 0, 2], "frank").await;
    let (_grace, _) = allocated(server, [127, 0, 0, 2], "grace").await;
    let (user, password) = minted("heidi");
    let mut heidi = Raw::new(server, [127, 0, 0, 3], &user).await;
    assert_eq!(heidi.allocate(&password).await, Err(486), "a sixth allocation on the server");
    assert_eq!(turn.allocations().await, 5);

    // Quotas count live allocations: one deleted makes room.
    assert_eq!(carols[0].refresh(Duration::ZERO).await, None);
    assert_eq!(turn.allocations().await, 4);
    assert!(heidi.allocate(&password).await.is_ok());
    turn.close().await;
}

#[tokio::test]
async fn expired_credentials_keep_their_allocation_alive_but_make_no_new_one() {
    let turn = embedded(54000, |_| {}).await;
    let server = turn.local_addr();
    let expiry = now() + 2;
    let (username, password) = credentials(SECRET, expiry, "ivan");
    let mut ivan = Raw::new(server, [127, 0, 0, 1], &username).await;
    ivan.allocate(&password).await.expect("allocates while valid");
    while now() <= expiry {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ivan.refresh(Duration::from_secs(600)).await, None, "the call goes on");
    let mut again = Raw::new(server, [127, 0, 0, 1], &username).await;
    assert_eq!(again.allocate(&password).await, Err(401), "no new allocation with an expired credential");
    turn.close().await;
}

#[tokio::test]
async fn requests_are_rate_limited_per_source() {
    let turn = embedded(55000, |c| c.request_rate = RequestRate { burst: 20.0, per_second: 1.0 }).await;
    let server = turn.local_addr();
    let flooder = Raw::new(server, [127, 0, 0, 1], "").await;
    for _ in 0..100 {
        let raw = flooder.build(METHOD_BINDING, CLASS_REQUEST, Vec::new());
        flooder.socket.send_to(&raw, server).await.unwrap();
    }
    // Another source is answered, and once it is, everything before it was handled.
    let other = Raw::new(server, [127, 0, 0, 2], "").await;
    other.sync().await;
    let mut answered = 0;
    let mut buf = [0u8; 512];
    while flooder.socket.try_recv_from(&mut buf).is_ok() {
        answered += 1;
    }
    assert!((20..=25).contains(&answered), "{answered} of 100 requests answered (burst 20, 1/s)");
    assert!(turn.counters().rate_limited.load(std::sync::atomic::Ordering::Relaxed) >= 75);
    turn.close().await;
}

#[tokio::test]
async fn each_allocation_relays_at_most_its_bandwidth() {
    // 400 kbit/s = 50,000 bytes per second, and at most one second's worth at once.
    let turn = embedded(56000, |c| c.max_bps = 400_000).await;
    let server = turn.local_addr();
    let (ada, ada_relay) = allocated(server, [127, 0, 0, 1], "ada").await;
    let (bob, bob_relay) = allocated(server, [127, 0, 0, 1], "bob").await;
    assert_eq!(ada.permit(&[bob_relay]).await, None);
    assert_eq!(bob.permit(&[ada_relay]).await, None);
    let chunk = vec![7u8; 1000];
    for _ in 0..100 {
        ada.send(bob_relay, &chunk).await;
    }
    ada.sync().await;
    // The budget refills (the marker needs 3 bytes of it); the relay keeps order, so what Bob
    // receives before the marker is all that passed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ada.send(bob_relay, b"end").await;
    let mut passed = 0;
    loop {
        let (_, data) = bob.relayed().await;
        if data == b"end" {
            break;
        }
        passed += data.len();
    }
    // One second's worth, plus what refilled while the chunks were being sent.
    assert!(passed <= 70_000, "{passed} of 100,000 bytes relayed at once (cap: 50,000 per second)");
    assert!(passed >= 40_000, "{passed} bytes relayed: the budget is not zero");
    let (_, over_budget) = turn.relay_drops();
    assert!(over_budget >= 30, "{over_budget} datagrams dropped over the cap");
    turn.close().await;
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The body of `GET path` from the HTTP server at `addr`.
async fn get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response
}

/// The confab binary with an embedded TURN server on `port`, stopped when dropped.
struct ConfabProcess(Child);

impl Drop for ConfabProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_flood_of_unauthenticated_allocates_from_many_sources_holds_no_memory() {
    let port = free_udp_port();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let process = ConfabProcess(
        Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["--addr", &http.to_string(), "--turn-embedded", &format!("127.0.0.1:{port}")])
            .args(["--turn-relay-ports", "57000-57999", "--turn-realm", "confab.test", "--log", "warn"])
            .env("CONFAB_TURN_SECRET", SECRET)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let mut ready = false;
    for _ in 0..100 {
        let probe = Raw::new(server, [127, 0, 0, 1], "").await;
        let raw = probe.build(METHOD_BINDING, CLASS_REQUEST, Vec::new());
        probe.socket.send_to(&raw, server).await.unwrap();
        if tokio::time::timeout(Duration::from_millis(100), probe.recv()).await.is_ok() {
            ready = true;
            break;
        }
    }
    assert!(ready, "the TURN server answers");
    let (_warm, _) = allocated(server, [127, 0, 0, 1], "warm-up").await;
    let pid = process.0.id();
    let before = rss_kib(pid);

    // 200 source addresses (as spoofed ones would be), each sending bare Allocate requests as
    // fast as it can for five seconds; every answer would cost the crate a nonce in its table.
    let sources: Vec<UdpSocket> = {
        let mut sources = Vec::new();
        for i in 0..200u8 {
            sources.push(UdpSocket::bind(SocketAddr::from(([127, 0, 1, i], 0))).await.unwrap());
        }
        sources
    };
    let request = {
        let client = Raw::new(server, [127, 0, 0, 1], "").await;
        client.build(METHOD_ALLOCATE, CLASS_REQUEST, vec![Box::new(RequestedTransport { protocol: PROTO_UDP })])
    };
    let sources = Arc::new(sources);
    let answers = {
        let sources = sources.clone();
        tokio::spawn(async move {
            let mut answers = 0u64;
            let mut buf = [0u8; 1500];
            loop {
                let mut any = false;
                for s in sources.iter() {
                    while s.try_recv_from(&mut buf).is_ok() {
                        answers += 1;
                        any = true;
                    }
                }
                if !any {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // The flood is over once the test has let go of the sockets.
                if Arc::strong_count(&sources) == 1 {
                    return answers;
                }
            }
        })
    };
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(5) {
        for s in sources.iter() {
            let mut raw = request.clone();
            raw[8..20].copy_from_slice(&rand::random::<[u8; 12]>());
            if s.try_send_to(&raw, server).is_ok() {
                sent += 1;
            }
        }
        tokio::task::yield_now().await;
    }
    // Let the answers drain, then stop counting.
    let (_after_the_flood, _) = allocated(server, [127, 0, 0, 1], "after-the-flood").await;
    drop(sources);
    let answers = answers.await.unwrap();
    let after = rss_kib(pid);
    let metrics = get(http, "/metrics").await;
    let nonces = metrics.lines().find_map(|l| l.strip_prefix("confab_turn_nonces ")).unwrap().to_owned();
    println!(
        "flood: {sent} bare Allocates sent from 200 addresses in 5 s, {answers} answered; \
         RSS {before} KiB before, {after} KiB after; {nonces} nonces held"
    );
    assert!(answers > 10_000, "the flood was answered ({answers} answers): it measured something");
    // Only the nonces of the two participants that authenticated are held.
    assert_eq!(nonces, "2", "nonces held after the flood");
    // Flat within 2 MiB: the crate's own nonce table would hold every answer's nonce (about
    // 100 bytes each) for an hour.
    assert!(after < before + 2 * 1024, "RSS grew from {before} KiB to {after} KiB");
    // The server still serves: a participant allocates and creates a permission.
    let (other, other_relay) = allocated(server, [127, 0, 0, 1], "still-served").await;
    assert_eq!(other.permit(&[other_relay]).await, None);
    drop(process);
}
