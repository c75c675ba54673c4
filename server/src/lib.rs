//! The confab server: serves the Leptos app (server-side rendered, then hydrated) and is the
//! WebSocket signaling hub that introduces browsers to each other. Media never passes through it.
//!
//! # Layout
//! - [`Hub`]: what every connection shares — the room registry, the ICE servers handed to
//!   browsers, the heartbeat period and the shutdown signal.
//! - [`rooms`]: the in-memory room registry (join, relay, leave).
//! - [`session`]: one WebSocket from upgrade to close.
//! - [`app`] / [`signaling_routes`]: the axum routers; `main.rs` is only configuration glue.

pub mod rooms;
pub mod session;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use confab_protocol::{IceServer, WS_PATH};
use leptos::config::LeptosOptions;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The transport's hard limit on one WebSocket message or frame, in bytes. Frames between
/// [`confab_protocol::MAX_FRAME_BYTES`] and this are answered with a `too_large` error and the
/// socket stays usable; anything larger ends the connection.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;

/// Per-socket read buffer. tungstenite's default (128 KiB) is held by every idle connection;
/// signaling messages are a few KiB, and the buffer grows for the rare larger one.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// What every signaling connection shares.
#[derive(Debug)]
pub struct Hub {
    /// Who is in which room.
    pub rooms: rooms::Rooms,
    /// The STUN/TURN servers every welcome carries.
    pub ice_servers: Vec<IceServer>,
    /// How often the server pings each socket; a socket silent for three periods is dropped.
    pub heartbeat: Duration,
    /// How long the place of a socket that dropped without closing is held for a resume.
    pub resume_grace: Duration,
    /// Cancelled when the server shuts down; every session then closes its socket.
    pub shutdown: CancellationToken,
    /// Open WebSocket sessions.
    connections: AtomicUsize,
}

/// How to set up a [`Hub`].
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The most people in one room.
    pub room_capacity: usize,
    /// STUN server URLs for the browsers.
    pub stun_urls: Vec<String>,
    /// The heartbeat period.
    pub heartbeat: Duration,
    /// How long a dropped socket's place is held for a resume.
    pub resume_grace: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            room_capacity: 6,
            stun_urls: vec!["stun:stun.l.google.com:19302".into(), "stun:stun1.l.google.com:19302".into()],
            heartbeat: Duration::from_millis(2500),
            resume_grace: Duration::from_secs(5),
        }
    }
}

impl Hub {
    /// A hub with empty rooms.
    pub fn new(config: HubConfig, shutdown: CancellationToken) -> Self {
        let stun: Vec<String> = config.stun_urls.into_iter().filter(|u| !u.trim().is_empty()).collect();
        let ice_servers =
            if stun.is_empty() { Vec::new() } else { vec![IceServer { urls: stun, username: None, credential: None }] };
        Hub {
            rooms: rooms::Rooms::new(config.room_capacity),
            ice_servers,
            heartbeat: config.heartbeat,
            resume_grace: config.resume_grace,
            shutdown,
            connections: AtomicUsize::new(0),
        }
    }

    /// How many WebSocket sessions are open.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a session as open until the guard is dropped.
    fn open_connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }
}

/// Keeps one session counted in [`Hub::connections`].
struct ConnectionGuard(Arc<Hub>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The signaling endpoint alone: `GET /ws` upgrades to a WebSocket.
pub fn signaling_routes(hub: Arc<Hub>) -> Router {
    Router::new().route(WS_PATH, get(upgrade)).with_state(hub)
}

async fn upgrade(State(hub): State<Arc<Hub>>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| async move {
            let _counted = hub.open_connection();
            session::run(socket, hub.clone()).await
        })
}

/// The whole site: the server-rendered pages, the compiled assets under `site_root`, and `/ws`.
pub fn app(hub: Arc<Hub>, leptos_options: LeptosOptions) -> Router {
    use leptos_axum::{generate_route_list, LeptosRoutes};
    let routes = generate_route_list(confab_app::App);
    let pages = Router::new()
        .leptos_routes(&leptos_options, routes, {
            let options = leptos_options.clone();
            move || confab_app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(confab_app::shell))
        .with_state(leptos_options);
    signaling_routes(hub)
        .merge(pages)
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
}
