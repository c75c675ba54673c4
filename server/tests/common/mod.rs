//! Helpers shared by the integration tests: a hub on port 0 (on either registry, see
//! [`Backend`]) and tungstenite clients that assert on the protocol enums.
//!
//! The tests reach the server's registry and session internals only through the re-exports
//! below, so that a move of those modules changes this file alone.
#![allow(dead_code, unused_imports)]

pub use confab_protocol::{
    ClientMsg, ErrorCode, IceCandidate, IceServer, MediaState, PeerId, PeerInfo, RoomName, ServerMsg, Signal,
    MAX_FRAME_BYTES, MAX_SDP_BYTES,
};
pub use confab_server::registry::{PasswordLimits, CHAT_HISTORY, OUTBOX_CAPACITY, WELCOME_CHAT_BYTES};
pub use confab_server::serve::{ServeConfig, Server};
pub use confab_server::session::{close_code, RateLimit, MAX_MISTAKES, RATE_BURST, RATE_PER_SECOND};
pub use confab_server::{Hub, HubConfig, Limits, HARD_FRAME_LIMIT};
pub use futures::{SinkExt, StreamExt};
pub use std::net::SocketAddr;
pub use std::sync::Arc;
pub use std::time::Duration;
use tokio::net::TcpStream;
pub use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
pub use tokio_util::sync::CancellationToken;

/// Long enough for anything that should happen on loopback; a test that waits this long failed.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Serves `router` with `server` (the binary's own accept loop and listen backlog) on a port of
/// its own, until the test ends.
pub async fn serve(router: axum::Router, server: Server) -> (SocketAddr, Arc<Server>) {
    let listener = confab_server::serve::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(server);
    tokio::spawn({
        let server = server.clone();
        async move { server.run(listener, router, CancellationToken::new()).await }
    });
    (addr, server)
}

/// Where a test server keeps its rooms: the in-memory registry of a single node, or a
/// `redis-server` of its own (a cluster of one node). The signaling tests run on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

/// The presence TTL of a one-node cluster: long enough that the node is never reaped in a test.
const SINGLE_NODE_PRESENCE_TTL: Duration = Duration::from_secs(10);

impl Backend {
    /// A hub with `config` on this backend, and the Redis it keeps its rooms in, if any.
    async fn hub(self, config: HubConfig) -> (Arc<Hub>, Option<Arc<Redis>>) {
        match self {
            Backend::Memory => (Arc::new(Hub::new(config, CancellationToken::new())), None),
            Backend::Redis => {
                let redis = Redis::start().await;
                let hub = cluster_hub(&redis, config, SINGLE_NODE_PRESENCE_TTL, CancellationToken::new()).await;
                (hub, Some(Arc::new(redis)))
            }
        }
    }
}

/// A hub whose rooms live in `redis`, with `shutdown` as its shutdown token (also the cluster's).
async fn cluster_hub(
    redis: &Redis,
    config: HubConfig,
    presence_ttl: Duration,
    shutdown: CancellationToken,
) -> Arc<Hub> {
    use confab_server::registry::{Cluster, ClusterConfig};
    let cluster =
        Cluster::connect(ClusterConfig { url: redis.url.clone(), presence_ttl }, config.limits, shutdown.clone())
            .await
            .unwrap();
    let registry = confab_server::registry::Registry::Cluster(cluster);
    Arc::new(Hub::with_registry(config, registry, shutdown))
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    /// The Redis of a [`Backend::Redis`] server, stopped when the last user drops it.
    redis: Option<Arc<Redis>>,
}

impl TestServer {
    /// A server on the in-memory registry: rooms of two, one STUN server.
    pub async fn start() -> Self {
        Self::start_on(Backend::Memory).await
    }

    /// Rooms of two, one STUN server, on `backend`.
    pub async fn start_on(backend: Backend) -> Self {
        Self::with_on(
            backend,
            HubConfig {
                stun_urls: vec!["stun:stun.example:3478".into()],
                limits: Limits::rooms_of(2),
                ..HubConfig::default()
            },
        )
        .await
    }

    /// A server with `config` on the in-memory registry.
    pub async fn with(config: HubConfig) -> Self {
        Self::with_on(Backend::Memory, config).await
    }

    pub async fn with_on(backend: Backend, config: HubConfig) -> Self {
        let (hub, redis) = backend.hub(config).await;
        Self::serve_with_send_buffer(hub, redis, None).await
    }

    /// Serves `hub`'s signaling routes on a port of its own.
    async fn serve(hub: Arc<Hub>) -> Self {
        Self::serve_with_send_buffer(hub, None, None).await
    }

    /// Like [`TestServer::with_on`], with accepted sockets' kernel send buffers fixed at about
    /// `bytes` (no autotuning): what a client does not read then waits in the server's queues
    /// rather than in the kernel.
    pub async fn with_send_buffer_on(backend: Backend, config: HubConfig, bytes: usize) -> Self {
        let (hub, redis) = backend.hub(config).await;
        Self::serve_with_send_buffer(hub, redis, Some(bytes)).await
    }

    async fn serve_with_send_buffer(hub: Arc<Hub>, redis: Option<Arc<Redis>>, send_buffer: Option<usize>) -> Self {
        use axum::serve::ListenerExt;
        let Some(bytes) = send_buffer else {
            let (addr, _) =
                serve(confab_server::signaling_routes(hub.clone()), Server::new(ServeConfig::default())).await;
            return TestServer { addr, hub, redis };
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.tap_io(move |tcp| {
            socket2::SockRef::from(&*tcp).set_send_buffer_size(bytes).unwrap();
        });
        let app = confab_server::signaling_routes(hub.clone());
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer { addr, hub, redis }
    }

    pub async fn connect(&self) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.addr)).await.unwrap();
        Client { ws }
    }

    /// Connects from another host: a loopback address other than 127.0.0.1 (Linux routes all of
    /// 127/8 to the loopback interface), so that per-address limits see a different client.
    pub async fn connect_from_ip(&self, ip: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
        self.connect_with(socket).await
    }

    /// Connects through `socket` (bound or tuned by the caller).
    pub async fn connect_with(&self, socket: tokio::net::TcpSocket) -> Client {
        let stream = socket.connect(self.addr).await.unwrap();
        let url = format!("ws://{}/ws", self.addr);
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.unwrap();
        Client { ws }
    }

    /// Connects and joins `room`; returns the client and its id, with the welcome checked.
    pub async fn join(&self, room: &str, name: &str) -> (Client, PeerId) {
        let mut client = self.connect().await;
        let id = client.join(room, name).await;
        (client, id)
    }

    /// A plain HTTP GET of `path`; the status and the body.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response)).await.unwrap().unwrap();
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("an HTTP status line");
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    /// Joins `room` as a room its creator listed on the start page (or a later joiner of it).
    pub async fn join_listed(&self, room: &str, name: &str) -> Client {
        let mut client = self.connect().await;
        client
            .send(&ClientMsg::Join {
                room: room.into(),
                name: name.into(),
                secret: None,
                password: None,
                listed: true,
                media: MediaState::default(),
            })
            .await;
        assert!(matches!(client.recv().await, ServerMsg::Welcome { .. }));
        client
    }

    /// Waits until `n` WebSocket sessions are open: a session ends only after its place was
    /// left, held (detached) or handed over, so this is also "the server has dealt with it".
    pub async fn wait_for_connections(&self, n: usize) {
        tokio::time::timeout(PATIENCE, async {
            while self.hub.connections() != n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} sessions open, not {n}", self.hub.connections()));
    }

    /// Waits until the registry has `n` rooms (cleanup after a disconnect is asynchronous).
    pub async fn wait_for_room_count(&self, n: usize) {
        tokio::time::timeout(PATIENCE, async {
            while self.hub.rooms.room_count().await.unwrap() != n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("room count did not become {n}"));
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_raw(&msg.to_json()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn join(&mut self, room: &str, name: &str) -> PeerId {
        self.send(&join_msg(room, name)).await;
        match self.recv().await {
            ServerMsg::Welcome { id, room: joined, .. } => {
                assert_eq!(joined.as_str(), room.trim());
                id
            }
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// The next protocol message (pings are answered by tungstenite and skipped).
    pub async fn recv(&mut self) -> ServerMsg {
        let frame = tokio::time::timeout(PATIENCE, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(text))) => return text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("expected a text frame, got {other:?}"),
                }
            }
        })
        .await
        .expect("no message from the server");
        ServerMsg::from_json(&frame).unwrap()
    }

    pub async fn expect_error(&mut self, code: ErrorCode) {
        match self.recv().await {
            ServerMsg::Error { code: got, message, .. } => {
                assert_eq!(got, code, "error message was: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected a {code:?} error, got {other:?}"),
        }
    }

    /// The next message, which must be a `peer_joined`: the peer that joined.
    pub async fn expect_peer_joined(&mut self) -> PeerInfo {
        match self.recv().await {
            ServerMsg::PeerJoined { peer } => peer,
            other => panic!("expected peer_joined, got {other:?}"),
        }
    }

    /// The next message, which must be a welcome: the id it gives.
    pub async fn expect_welcome(&mut self) -> PeerId {
        match self.recv().await {
            ServerMsg::Welcome { id, .. } => id,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Asserts that nothing is waiting for this (joined) client, without waiting a fixed time:
    /// sends a chat message as a marker and requires it to be the next message. The marker takes
    /// the path of everything a room sends (the registry puts it in each member's outbox, in
    /// order, on either backend), so whatever was queued for this client before it comes first.
    /// The room's other members get the marker too.
    pub async fn expect_nothing_queued(&mut self) {
        let text = format!("marker-{:x}", rand_u64());
        self.send(&ClientMsg::Chat { text: text.clone() }).await;
        match self.recv().await {
            ServerMsg::Chat { message } if message.text == text => {}
            other => panic!("expected nothing before the marker, got {other:?}"),
        }
    }

    /// Waits for the server to close the socket; returns the close code it sent, if any.
    pub async fn expect_close(&mut self) -> Option<u16> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
        .expect("the server did not close the socket")
    }
}

/// A join without a secret (the place cannot be resumed).
pub fn join_msg(room: impl Into<String>, name: impl Into<String>) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        secret: None,
        password: None,
        listed: false,
        media: MediaState::default(),
    }
}

/// A join with a secret, as the browser sends it.
pub fn join_with_secret(room: &str, name: &str, secret: &str) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        secret: Some(secret.into()),
        password: None,
        listed: false,
        media: MediaState::default(),
    }
}

pub fn offer(sdp: &str) -> Signal {
    Signal::Offer { sdp: sdp.into() }
}

/// A real `redis-server` (Debian's) on a Unix socket of its own, stopped when dropped.
pub struct Redis {
    child: std::process::Child,
    dir: std::path::PathBuf,
    pub url: String,
}

impl Redis {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("confab-redis-{:x}", rand_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("redis.sock");
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; make test installs it)");
        let url = format!("redis+unix://{}", socket.display());
        let client = redis::Client::open(url.as_str()).unwrap();
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                    if redis::cmd("PING").query_async::<String>(&mut c).await.is_ok() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("redis-server did not start");
        Redis { child, dir, url }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    h.finish()
}

impl TestServer {
    /// A node of a cluster on `redis`, with its own shutdown token (cancel it to stop the node).
    pub async fn node(redis: &Redis, config: HubConfig, presence_ttl: Duration, shutdown: CancellationToken) -> Self {
        Self::serve(cluster_hub(redis, config, presence_ttl, shutdown).await).await
    }

    /// Connects and sends `msg` (a join), returning the client and the server's answer.
    pub async fn send_join(&self, msg: &ClientMsg) -> (Client, ServerMsg) {
        let mut client = self.connect().await;
        client.send(msg).await;
        let answer = client.recv().await;
        (client, answer)
    }
}

/// The wait a `too_many_attempts` answer asks for, in milliseconds.
pub fn retry_after_of(answer: &ServerMsg) -> u64 {
    match answer {
        ServerMsg::Error { code: ErrorCode::TooManyAttempts, retry_after_ms: Some(ms), .. } => *ms,
        other => panic!("expected too_many_attempts with a retry-after, got {other:?}"),
    }
}

/// Whether `answer` says a password was checked and was wrong.
pub fn is_wrong(answer: &ServerMsg) -> bool {
    matches!(answer, ServerMsg::Error { code: ErrorCode::WrongPassword, .. })
}

/// Guesses a room's password from 16 sockets for `duration`: each sends `guess(worker, n)` as
/// fast as the answers come back and connects again through `connect(worker)` whenever the
/// server closes it. Returns the answers and how many were `wrong_password` (a password checked).
pub async fn guess_for<C, F, G>(duration: Duration, connect: C, guess: G) -> (u64, u64)
where
    C: Fn(usize) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = Client> + Send,
    G: Fn(usize, u64) -> ClientMsg + Clone + Send + 'static,
{
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|worker| {
            let (connect, guess) = (connect.clone(), guess.clone());
            tokio::spawn(async move {
                let (mut answered, mut wrong, mut n) = (0u64, 0u64, 0u64);
                'connect: while started.elapsed() < duration {
                    let mut guesser = connect(worker).await;
                    while started.elapsed() < duration {
                        n += 1;
                        if guesser.ws.send(Message::Text(guess(worker, n).to_json().into())).await.is_err() {
                            continue 'connect;
                        }
                        loop {
                            match guesser.ws.next().await {
                                Some(Ok(Message::Text(text))) => {
                                    answered += 1;
                                    wrong += u64::from(is_wrong(&ServerMsg::from_json(&text).unwrap()));
                                    break;
                                }
                                Some(Ok(Message::Close(_)) | Err(_)) | None => continue 'connect,
                                Some(Ok(_)) => continue,
                            }
                        }
                    }
                }
                (answered, wrong)
            })
        })
        .collect();
    let (mut answered, mut wrong) = (0, 0);
    for task in tasks {
        let (a, w) = task.await.unwrap();
        answered += a;
        wrong += w;
    }
    (answered, wrong)
}
