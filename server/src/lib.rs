//! The confab server: serves the Leptos app (server-side rendered, then hydrated) and is the
//! WebSocket signaling hub that introduces browsers to each other. Media never passes through it.
//!
//! # Layout
//! - [`Hub`]: what every connection shares — the room registry, the ICE servers handed to
//!   browsers, the heartbeat period and the shutdown signal.
//! - [`registry`]: where rooms live — in memory (join, relay, leave), or the same in Redis so
//!   that several nodes serve the same rooms — and delivery to this node's sockets.
//! - [`session`]: one WebSocket from upgrade to close.
//! - [`addr`]: client addresses as per-address limits count them (IPv6 by /64), and the
//!   trusted proxies whose forwarding headers name them.
//! - [`serve`]: the accept loop for HTTP and HTTPS (header-read and idle timeouts, the cap on
//!   connections that are not WebSockets); [`headers`]: the security headers of every page.
//! - [`app`] / [`signaling_routes`]: the axum routers; `main.rs` is only configuration glue.

// The pages' view types (from confab-app) are deeply nested; rendering them needs more room.
#![recursion_limit = "256"]

pub mod addr;
pub mod assets;
pub mod headers;
pub mod metrics;
pub mod registry;
pub mod serve;
pub mod session;
pub mod tls;
pub mod turn;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use confab_protocol::{IceServer, IceTransportPolicy, PeerKey, WS_PATH};
use leptos::config::LeptosOptions;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use registry::Limits;
pub use turn::TurnConfig;

/// The transport's hard limit on one WebSocket message or frame, in bytes. Frames between
/// [`confab_protocol::MAX_FRAME_BYTES`] and this are answered with a `too_large` error and the
/// socket stays usable; anything larger ends the connection.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;

/// Per-socket read buffer. tungstenite's default (128 KiB) is held by every idle connection;
/// signaling messages are a few KiB, and the buffer grows for the rare larger one.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Per-socket write buffer: frames queued together are written with one system call (flushed at
/// the end of each batch, see `session`); it grows only as far as a batch needs.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// What every signaling connection shares.
#[derive(Debug)]
pub struct Hub {
    /// Who is in which room.
    pub rooms: registry::Registry,
    /// What the server counts.
    pub metrics: metrics::Metrics,
    /// The STUN servers every welcome carries.
    stun: Option<IceServer>,
    /// The TURN servers, whose credentials are minted per join.
    turn: Option<TurnConfig>,
    /// Which candidates browsers may use.
    pub ice_transport_policy: IceTransportPolicy,
    /// How often the server pings each socket; a socket silent for three periods is dropped.
    pub heartbeat: Duration,
    /// How long the place of a socket that dropped without closing is held for a resume.
    pub resume_grace: Duration,
    /// How many messages one socket may send.
    pub rate: session::RateLimit,
    /// Cancelled when the server shuts down; every session then closes its socket.
    pub shutdown: CancellationToken,
    /// The sessions' tasks.
    sessions: TaskTracker,
    /// Who may open a signaling socket.
    origins: Origins,
    /// Open sessions, in all and per client address.
    connections: Mutex<Connections>,
    max_connections: usize,
    max_connections_per_ip: usize,
    /// Whose `X-Forwarded-For`/`Forwarded` headers name the client.
    pub trusted_proxies: addr::TrustedProxies,
    /// The embedded TURN server, when there is one (for its allocation count).
    embedded_turn: std::sync::OnceLock<Arc<turn::EmbeddedTurn>>,
    /// The HTTP server's count of connections that are not WebSockets, once attached.
    http_connections: std::sync::OnceLock<serve::HttpConnections>,
    /// The media server for rooms past the mesh, when there is one.
    pub sfu: Option<Sfu>,
}

/// The selective forwarding unit the hub hands browsers to in larger rooms.
#[derive(Debug, Clone)]
pub struct Sfu {
    /// The media engine.
    pub media: confab_media::MediaHandle,
    /// Rooms of this many people or more use it (told to browsers in the welcome).
    pub from: u16,
}

/// Which pages may open `/ws` (browsers send an `Origin` header; other clients do not, and are
/// let through: the check protects people's browsers from other sites, not the server from
/// scripts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Only pages served by this server: the `Origin`'s host must be the request's `Host`.
    SameOrigin,
    /// These origins exactly (`https://meet.example.org`), or any with `*`.
    List(Vec<String>),
}

impl Origins {
    /// Whether a request with these headers may upgrade.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else { return true };
        let Ok(origin) = origin.to_str() else { return false };
        match self {
            Origins::SameOrigin => {
                let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
                let origin_host = origin.split_once("://").map(|(_, rest)| rest);
                matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
            }
            Origins::List(list) => list.iter().any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin)),
        }
    }
}

#[derive(Debug, Default)]
struct Connections {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// How to set up a [`Hub`].
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Room capacity, server-wide totals and per-address limits.
    pub limits: Limits,
    /// STUN server URLs for the browsers.
    pub stun_urls: Vec<String>,
    /// TURN servers and their shared secret.
    pub turn: Option<TurnConfig>,
    /// Which candidates browsers may use.
    pub ice_transport_policy: IceTransportPolicy,
    /// The heartbeat period.
    pub heartbeat: Duration,
    /// How long a dropped socket's place is held for a resume.
    pub resume_grace: Duration,
    /// How many messages one socket may send.
    pub rate: session::RateLimit,
    /// Who may open a signaling socket.
    pub origins: Origins,
    /// The most open signaling sockets.
    pub max_connections: usize,
    /// The most open signaling sockets from one IP address (IPv6: one /64).
    pub max_connections_per_ip: usize,
    /// The reverse proxies whose forwarding headers are believed.
    pub trusted_proxies: addr::TrustedProxies,
    /// Every session runs as a task of this tracker, so that shutdown can wait for them to send
    /// their close frames (the HTTP server does not wait for upgraded connections).
    pub sessions: TaskTracker,
    /// The SFU, if rooms past a size are to use one.
    pub sfu: Option<Sfu>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            limits: Limits::default(),
            stun_urls: vec!["stun:stun.l.google.com:19302".into(), "stun:stun1.l.google.com:19302".into()],
            turn: None,
            ice_transport_policy: IceTransportPolicy::All,
            heartbeat: Duration::from_millis(2500),
            resume_grace: Duration::from_secs(5),
            rate: session::RateLimit::default(),
            origins: Origins::SameOrigin,
            max_connections: 20_000,
            max_connections_per_ip: 32,
            trusted_proxies: addr::TrustedProxies::default(),
            sessions: TaskTracker::new(),
            sfu: None,
        }
    }
}

/// Why an upgrade was refused before it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The page's origin is not allowed.
    #[error("this page's origin may not use this server")]
    Origin,
    /// Too many sockets from one address.
    #[error("too many connections from your address")]
    PerIp,
    /// Too many sockets in all.
    #[error("the server has too many connections; try again later")]
    Connections,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::Origin => "origin",
            Refused::PerIp => "per_ip",
            Refused::Connections => "connections",
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let status = match self {
            Refused::Origin => StatusCode::FORBIDDEN,
            Refused::PerIp => StatusCode::TOO_MANY_REQUESTS,
            Refused::Connections => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, self.to_string()).into_response()
    }
}

impl Hub {
    /// A hub whose rooms live in this process.
    pub fn new(config: HubConfig, shutdown: CancellationToken) -> Self {
        let rooms = registry::Registry::Memory(registry::Rooms::with_limits(config.limits));
        Self::with_registry(config, rooms, shutdown)
    }

    /// A hub whose rooms live in `rooms` (the limits in `config` are the registry's own).
    pub fn with_registry(config: HubConfig, rooms: registry::Registry, shutdown: CancellationToken) -> Self {
        let stun: Vec<String> = config.stun_urls.into_iter().filter(|u| !u.trim().is_empty()).collect();
        let stun = (!stun.is_empty()).then_some(IceServer { urls: stun, username: None, credential: None });
        Hub {
            rooms,
            metrics: metrics::Metrics::default(),
            stun,
            turn: config.turn.filter(|t| !t.urls.is_empty()),
            ice_transport_policy: config.ice_transport_policy,
            heartbeat: config.heartbeat,
            resume_grace: config.resume_grace,
            rate: config.rate,
            shutdown,
            sessions: config.sessions,
            origins: config.origins,
            connections: Mutex::default(),
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            trusted_proxies: config.trusted_proxies,
            embedded_turn: std::sync::OnceLock::new(),
            http_connections: std::sync::OnceLock::new(),
            sfu: config.sfu,
        }
    }

    /// The ICE servers for the participant with `key`: the STUN servers, and the TURN servers
    /// with credentials minted for it now.
    pub fn ice_servers_for(&self, key: &PeerKey) -> Vec<IceServer> {
        let turn = self.turn.as_ref().map(|t| t.ice_server(&key.0, SystemTime::now()));
        self.stun.iter().cloned().chain(turn).collect()
    }

    /// How often a joined participant gets fresh TURN credentials (half their lifetime), if
    /// there are TURN servers.
    pub fn credential_refresh(&self) -> Option<Duration> {
        self.turn.as_ref().map(|t| t.ttl / 2)
    }

    /// After `shutdown` is cancelled: waits until every session has closed its socket, at most
    /// `within`. True if they all did.
    pub async fn sessions_closed(&self, within: Duration) -> bool {
        self.sessions.close();
        tokio::time::timeout(within, self.sessions.wait()).await.is_ok()
    }

    /// How many WebSocket sessions are open.
    pub fn connections(&self) -> usize {
        self.lock_connections().total
    }

    /// Lets `/metrics` report the embedded TURN server's allocations.
    pub fn attach_turn(&self, turn: Arc<turn::EmbeddedTurn>) {
        let _ = self.embedded_turn.set(turn);
    }

    /// Lets `/metrics` report the HTTP server's connections that are not WebSockets.
    pub fn attach_http(&self, connections: serve::HttpConnections) {
        let _ = self.http_connections.set(connections);
    }

    /// What `/metrics` reports now.
    pub async fn snapshot(&self) -> metrics::Snapshot {
        let (turn_allocations, turn_nonces, turn_refused) = match self.embedded_turn.get() {
            Some(turn) => (turn.allocations().await, turn.nonces_held().await, turn.refused()),
            None => (0, 0, Vec::new()),
        };
        let (rooms, peers) = match (self.rooms.room_count().await, self.rooms.peer_count().await) {
            (Ok(rooms), Ok(peers)) => (rooms, peers),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("metrics without room counts: {e}");
                (0, 0)
            }
        };
        let http_connections = self.http_connections.get().map_or(0, serve::HttpConnections::get);
        metrics::Snapshot {
            connections: self.connections(),
            http_connections,
            rooms,
            peers,
            turn_allocations,
            turn_nonces,
            turn_refused,
        }
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a session from `ip` (an [`addr::ip_group`]) as open until the guard is dropped,
    /// if the limits allow.
    fn open_connection(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionGuard, Refused> {
        let mut connections = self.lock_connections();
        if connections.total >= self.max_connections {
            return Err(Refused::Connections);
        }
        let from_ip = connections.by_ip.entry(ip).or_default();
        if *from_ip >= self.max_connections_per_ip {
            return Err(Refused::PerIp);
        }
        *from_ip += 1;
        connections.total += 1;
        Ok(ConnectionGuard { hub: self.clone(), ip })
    }
}

/// Keeps one session counted in [`Hub::connections`].
struct ConnectionGuard {
    hub: Arc<Hub>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut connections = self.hub.lock_connections();
        connections.total -= 1;
        if let Some(n) = connections.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                connections.by_ip.remove(&self.ip);
            }
        }
    }
}

/// The signaling endpoint and the operator's endpoints: `GET /ws` upgrades to a WebSocket;
/// `/healthz`, `/readyz` and `/metrics`. Serve it with [`serve::Server`] (the per-address limit
/// needs the peer address it attaches to every request).
pub fn signaling_routes(hub: Arc<Hub>) -> Router {
    Router::new()
        .route(WS_PATH, get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(confab_protocol::ROOMS_PATH, get(listed_rooms))
        .with_state(hub)
}

async fn upgrade(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let client = hub.trusted_proxies.client_ip(peer.ip(), &headers);
    let admitted =
        if hub.origins.allows(&headers) { hub.open_connection(addr::ip_group(client)) } else { Err(Refused::Origin) };
    let counted = match admitted {
        Ok(guard) => guard,
        Err(refused) => {
            hub.metrics.refused(refused.label());
            tracing::info!(%client, %peer, origin = ?headers.get(header::ORIGIN), "upgrade refused: {refused}");
            return refused.into_response();
        }
    };
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| {
            let tasks = hub.sessions.clone();
            tasks.track_future(
                async move {
                    let _counted = counted;
                    session::run(socket, hub.clone(), client).await
                }
                .instrument(tracing::info_span!("session", %client)),
            )
        })
}

/// Ready while the server takes new sessions; 503 once it is shutting down, so that a load
/// balancer stops sending people here.
async fn ready(State(hub): State<Arc<Hub>>) -> Response {
    if hub.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else {
        "ready".into_response()
    }
}

/// The most rooms the start page lists.
const LISTED_ROOMS: usize = 50;

async fn listed_rooms(State(hub): State<Arc<Hub>>) -> Response {
    match hub.rooms.listed(LISTED_ROOMS).await {
        Ok(rooms) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(rooms)).into_response(),
        Err(e) => {
            tracing::warn!("cannot list rooms: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "the room list is unavailable").into_response()
        }
    }
}

async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], hub.metrics.render(hub.snapshot().await)).into_response()
}

/// The whole site: the server-rendered pages, the compiled assets under `site_root`, and `/ws`.
/// Assets go out precompressed where the build left `.br`/`.gz` files and with cache headers
/// (see [`assets`]); everything else is compressed on the fly. Every response carries the
/// security headers, pages a Content-Security-Policy with a nonce per request (see [`headers`]).
pub fn app(hub: Arc<Hub>, leptos_options: LeptosOptions) -> Router {
    use leptos_axum::{generate_route_list, LeptosRoutes};
    let routes = generate_route_list(confab_app::server_routes);
    let pkg = assets::pkg_routes(&leptos_options);
    let start = assets::start_bundle(&leptos_options);
    match &start {
        Some(start) => tracing::info!("the start page has its own bundle (from {})", start.options.hash_file),
        None => tracing::info!("the start page loads the full bundle (no start-hash.txt matching the site)"),
    }
    let split_loader = assets::split_loader(&leptos_options);
    let context = move || {
        headers::provide_csp_nonce();
        if let Some(start) = start.clone() {
            leptos::prelude::provide_context(start);
        }
        if let Some(loader) = split_loader.clone() {
            leptos::prelude::provide_context(loader);
        }
    };
    let pages = Router::new()
        .leptos_routes_with_context(&leptos_options, routes, context, {
            let options = leptos_options.clone();
            move || confab_app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context(headers::provide_csp_nonce, confab_app::shell))
        .with_state(leptos_options);
    let proxies = hub.trusted_proxies.clone();
    let span = move |request: &axum::extract::Request| {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
        let client = peer.map(|peer| proxies.client_ip(peer, request.headers()));
        tracing::debug_span!(
            "request",
            method = %request.method(),
            uri = %request.uri(),
            version = ?request.version(),
            client = client.map(tracing::field::display),
        )
    };
    signaling_routes(hub)
        .merge(pages)
        .merge(pkg)
        .layer(axum::middleware::from_fn(assets::cache_headers))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(span))
}
