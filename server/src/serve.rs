//! Serving the app over plain HTTP or HTTPS: one accept loop for both, with the limits a server
//! on the open internet needs before any request reaches the router.
//!
//! - **Header-read timeout.** A client has [`ServeConfig::header_read_timeout`] to finish the TLS
//!   handshake and the headers of its first request, counted from the moment it was admitted,
//!   and the same to send each later request's headers on a kept-alive HTTP/1.1 connection
//!   (hyper counts that from the end of the previous response, so it also ends idle keep-alive).
//!   A slowloris client that trickles a header a second is cut off all the same.
//! - **Idle timeout.** A connection with no request in progress for
//!   [`ServeConfig::idle_timeout`] is closed (HTTP/2 connections have no header timer), and so
//!   is one whose response has not moved for as long (a client that stopped reading).
//! - **A cap on connections that are not WebSockets** ([`ServeConfig::max_http_connections`]).
//!   An upgraded connection leaves the count (the [`crate::Hub`] counts WebSocket sessions).
//!   When every place is taken, a newcomer takes the place of the connection that has been idle
//!   longest (one still waiting for its headers, or kept alive between requests), so clients
//!   holding connections open without sending requests cannot lock others out; a connection
//!   idle for less than [`EVICTABLE_AFTER`] keeps its place (it may not have been read yet, in
//!   a burst of new connections), and if every connection is busy or that young, the newcomer
//!   waits.
//! - **Connect info.** Every request carries the peer's [`ConnectInfo<SocketAddr>`] (the
//!   per-address limits need it) and its [`Scheme`] (HSTS is sent only over HTTPS).
//! - **Upgrades.** WebSocket upgrades (HTTP/1.1) work on both. HTTP/2's extended CONNECT is not
//!   offered, so browsers open their WebSockets over HTTP/1.1 and each leaves the HTTP count.
//! - **Shutdown.** Cancelling the token stops accepting, lets requests in progress finish (for
//!   at most [`ServeConfig::shutdown_grace`]) and closes idle connections at once. Upgraded
//!   WebSockets are not waited for: their sessions watch the same token and close themselves.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The pending-connection queue of the listening socket. The standard library's 128 overflows
/// when a few hundred browsers reconnect at once (after a restart, or a node of a cluster dies),
/// and every overflowed connection waits a second for its SYN to be retried.
pub const LISTEN_BACKLOG: u32 = 4096;

/// The most bytes of request head (request line and headers) HTTP/1.1 buffers per connection;
/// a larger head is refused. hyper's default (about 400 KiB) would let a thousand slow clients
/// hold 400 MB; browsers send a few KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long a connection must have been idle before a newcomer may take its place: long enough
/// for a connection accepted in a burst to be read (its request is usually there already), short
/// enough that a flood of idle connections is cleared at tens of thousands a second.
pub const EVICTABLE_AFTER: Duration = Duration::from_millis(50);

/// How the server treats connections before they reach the router.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// How long a client may take to complete the TLS handshake and the headers of its first
    /// request, and on HTTP/1.1 the headers of each later one.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in progress, or with a response
    /// that does not move (its client stopped reading).
    pub idle_timeout: Duration,
    /// The most open connections that are not WebSockets (at least 1).
    pub max_http_connections: usize,
    /// On shutdown, how long requests in progress have to finish before their connections are
    /// dropped.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_http_connections: 1024,
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// Which transport a request came over; every request carries one as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// Binds `addr` (address reuse as the standard library does) with [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// An HTTP or HTTPS server: the configuration, the TLS acceptor if any, and the connections it
/// has open. [`Server::run`] serves a router on a listener until shutdown.
pub struct Server {
    config: ServeConfig,
    tls: Option<TlsAcceptor>,
    connections: Arc<Connections>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("http_connections", &self.http_connections())
            .finish()
    }
}

impl Server {
    /// A plain HTTP server.
    pub fn new(config: ServeConfig) -> Self {
        let connections = Arc::new(Connections::new(config.max_http_connections.max(1)));
        Server { config, tls: None, connections }
    }

    /// The same server speaking TLS with `tls` (see [`crate::tls::server_config`]).
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(TlsAcceptor::from(tls));
        self
    }

    /// How many connections are open that are not WebSockets.
    pub fn http_connections(&self) -> usize {
        self.connections.lock().conns.len()
    }

    /// A live view of [`Server::http_connections`], for `/metrics` ([`crate::Hub::attach_http`]).
    pub fn http_connections_gauge(&self) -> HttpConnections {
        HttpConnections(self.connections.clone())
    }

    /// Serves `router` on `listener` until `shutdown` is cancelled and the connections have
    /// finished (or [`ServeConfig::shutdown_grace`] has passed).
    pub async fn run(&self, listener: TcpListener, router: Router, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        // Cancelled once the grace period is over: whatever is still open is dropped.
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            builder: self.builder(),
            router,
            tls: self.tls.clone(),
            config: self.config.clone(),
            shutdown: shutdown.clone(),
            stop: stop.clone(),
        });
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            };
            let slot = tokio::select! {
                slot = self.connections.admit() => slot,
                _ = shutdown.cancelled() => break,
            };
            tasks.spawn(connection(stream, remote, slot, shared.clone()));
        }
        drop(listener);
        tasks.close();
        if tokio::time::timeout(self.config.shutdown_grace, tasks.wait()).await.is_err() {
            tracing::info!("dropping {} connections still busy after the grace period", self.http_connections());
            stop.cancel();
            tasks.wait().await;
        }
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .keep_alive(true)
            .max_buf_size(MAX_HEAD_BYTES);
        builder.http2().timer(TokioTimer::new());
        builder
    }
}

/// How many connections of a [`Server`] are open that are not WebSockets, read when asked.
#[derive(Debug, Clone)]
pub struct HttpConnections(Arc<Connections>);

impl HttpConnections {
    /// The number now.
    pub fn get(&self) -> usize {
        self.0.lock().conns.len()
    }
}

/// What every connection task of one [`Server::run`] shares.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    tls: Option<TlsAcceptor>,
    config: ServeConfig,
    /// Cancelled when the server shuts down.
    shutdown: CancellationToken,
    /// Cancelled when the grace period after shutdown is over.
    stop: CancellationToken,
}

/// Why a connection was dropped by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// A newcomer took its place.
    Evicted,
    /// It did not complete its first request's headers (or its TLS handshake) in time.
    HeaderTimeout,
    /// It stayed idle too long.
    Idle,
    /// Its response did not move for as long (the client stopped reading).
    Stalled,
}

async fn connection(stream: TcpStream, remote: SocketAddr, slot: Slot, shared: Arc<Shared>) {
    // Signaling messages are small and each one matters now.
    let _ = stream.set_nodelay(true);
    let config = &shared.config;
    let conn = slot.conn.clone();
    match &shared.tls {
        None => serve_io(TokioIo::new(stream), remote, Scheme::Http, &slot, &shared).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                tls = acceptor.accept(stream) => tls,
                expired = conn.expired(config) => {
                    tracing::debug!(%remote, "TLS handshake not finished: {expired:?}");
                    return;
                }
                _ = shared.shutdown.cancelled() => return,
            };
            match handshake {
                Ok(tls) => serve_io(TokioIo::new(tls), remote, Scheme::Https, &slot, &shared).await,
                Err(e) => tracing::debug!(%remote, "TLS handshake failed: {e}"),
            }
        }
    }
}

async fn serve_io<I>(io: I, remote: SocketAddr, scheme: Scheme, slot: &Slot, shared: &Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn({
        let (router, slot) = (shared.router.clone(), slot.clone_for_requests());
        move |request: Request<Incoming>| {
            let busy = slot.busy();
            let router = router.clone();
            async move {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(remote));
                request.extensions_mut().insert(scheme);
                let response = router.oneshot(request).await.unwrap_or_else(|never| match never {});
                Ok::<_, Infallible>(response.map(|body| Tracked { body, busy }))
            }
        }
    });
    let mut conn = pin!(shared.builder.serve_connection_with_upgrades(io, service));
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%remote, "connection ended: {e}");
                }
                return;
            }
            expired = slot.conn.expired(&shared.config) => {
                tracing::debug!(%remote, "connection closed: {expired:?}");
                return;
            }
            _ = shared.shutdown.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = shared.stop.cancelled() => return,
        }
    }
}

/// On a failed accept: errors of the one connection are ignored; others (out of file
/// descriptors) are logged and the loop pauses for a second, as hyper 0.14 and axum do.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The open connections that are not WebSockets.
#[derive(Debug)]
struct Connections {
    max: usize,
    open: Mutex<Open>,
    /// Signalled when a connection closes or becomes idle: a newcomer waiting for a place may
    /// find one.
    changed: Notify,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    conns: HashMap<u64, Arc<Conn>>,
}

impl Connections {
    fn new(max: usize) -> Self {
        Connections { max, open: Mutex::default(), changed: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection: a free one, else the place of the connection idle the
    /// longest (once it has closed and been idle [`EVICTABLE_AFTER`]), else the first place a
    /// connection gives up.
    async fn admit(self: &Arc<Self>) -> Slot {
        loop {
            let changed = self.changed.notified();
            let mut evictable_at = None;
            {
                let mut open = self.lock();
                if open.conns.len() < self.max {
                    open.next_id += 1;
                    let id = open.next_id;
                    let conn = Arc::new(Conn::new());
                    open.conns.insert(id, conn.clone());
                    return Slot { connections: self.clone(), id, conn };
                }
                let evicting = open.conns.values().any(|c| c.activity().evicted);
                if !evicting {
                    let longest_idle = open
                        .conns
                        .values()
                        .filter_map(|c| {
                            let a = c.activity();
                            (a.requests == 0).then_some((a.idle_since, c))
                        })
                        .min_by_key(|(since, _)| *since);
                    match longest_idle {
                        Some((since, conn)) if since + EVICTABLE_AFTER <= Instant::now() => conn.evict(),
                        Some((since, _)) => evictable_at = Some(since + EVICTABLE_AFTER),
                        None => {}
                    }
                }
            }
            // The evicted connection's task drops its slot at once; otherwise wait for a
            // connection to close, to finish its request or to be idle long enough.
            match evictable_at {
                Some(at) => {
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// One connection's place among [`Connections`]; given back when dropped.
#[derive(Debug)]
struct Slot {
    connections: Arc<Connections>,
    id: u64,
    conn: Arc<Conn>,
}

impl Slot {
    /// What the request handlers need to mark the connection busy.
    fn clone_for_requests(&self) -> RequestSlot {
        RequestSlot { connections: self.connections.clone(), conn: self.conn.clone() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().conns.remove(&self.id);
        self.connections.changed.notify_one();
    }
}

#[derive(Debug, Clone)]
struct RequestSlot {
    connections: Arc<Connections>,
    conn: Arc<Conn>,
}

impl RequestSlot {
    /// Marks a request in progress until the guard (carried by the response body) is dropped.
    fn busy(&self) -> Busy {
        {
            let mut a = self.conn.activity();
            a.requests += 1;
            a.served = true;
            a.progress = Instant::now();
        }
        self.conn.wake.notify_one();
        Busy { slot: self.clone() }
    }
}

/// A request in progress on a connection: from its headers until its response is sent (or
/// abandoned).
#[derive(Debug)]
struct Busy {
    slot: RequestSlot,
}

impl Drop for Busy {
    fn drop(&mut self) {
        {
            let mut a = self.slot.conn.activity();
            a.requests -= 1;
            if a.requests == 0 {
                a.idle_since = Instant::now();
            }
        }
        self.slot.conn.wake.notify_one();
        self.slot.connections.changed.notify_one();
    }
}

/// One connection's state as its watchdog and the admission see it.
#[derive(Debug)]
struct Conn {
    activity: Mutex<Activity>,
    /// Signalled when the activity changes or the connection is evicted.
    wake: Notify,
}

#[derive(Debug)]
struct Activity {
    /// Requests in progress.
    requests: usize,
    /// Whether any request has started on this connection.
    served: bool,
    /// Since when no request is in progress (the admission, before the first).
    idle_since: Instant,
    /// When a request last started or a response last handed over a frame.
    progress: Instant,
    /// Whether a newcomer took this connection's place.
    evicted: bool,
}

impl Conn {
    fn new() -> Self {
        let now = Instant::now();
        let activity = Activity { requests: 0, served: false, idle_since: now, progress: now, evicted: false };
        Conn { activity: Mutex::new(activity), wake: Notify::new() }
    }

    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn evict(&self) {
        self.activity().evicted = true;
        self.wake.notify_one();
    }

    /// Completes when the connection should be dropped: evicted, idle past its deadline (the
    /// header-read timeout before the first request, the idle timeout after), or busy with a
    /// response that has not moved for the idle timeout.
    async fn expired(&self, config: &ServeConfig) -> Expired {
        loop {
            let wake = self.wake.notified();
            let deadline = {
                let a = self.activity();
                if a.evicted {
                    return Expired::Evicted;
                }
                if a.requests > 0 {
                    (a.progress + config.idle_timeout, Expired::Stalled)
                } else if a.served {
                    (a.idle_since + config.idle_timeout, Expired::Idle)
                } else {
                    (a.idle_since + config.header_read_timeout.min(config.idle_timeout), Expired::HeaderTimeout)
                }
            };
            let (at, why) = deadline;
            if at <= Instant::now() {
                return why;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = wake => {}
            }
        }
    }
}

/// A response body that keeps its connection counted busy until it has been sent, and notes
/// each frame it hands over.
struct Tracked {
    body: Body,
    busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = frame {
            this.busy.slot.conn.activity().progress = Instant::now();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
