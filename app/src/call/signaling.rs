//! The signaling socket: join, reconnect with backoff, and the server's messages applied one at
//! a time, in order.
//!
//! **Signaling reconnect.** When the socket drops, media keeps flowing (it is peer to peer)
//! while the engine reconnects with backoff and joins again with the same secret. The server
//! either resumes the place (same id, nobody notices) or, after a server restart, gives a new id;
//! peers are matched by their stable key, so existing connections are kept either way.
//!
//! **One identity inside.** The server names peers by id; the engine by key. This module is the
//! edge: every id in a server message is turned into a key here (through the roster), and every
//! signal the engine sends names a key that is turned into the peer's current id here
//! ([`State::send_signal`]).

use super::{mark, negotiation, sfu, warn, Engine, State};
use crate::status::Phase;
use confab_protocol::{
    ClientMsg, ErrorCode, IceServer, IceTransportPolicy, PeerInfo, PeerKey, ServerMsg, Signal, WS_PATH,
};
use futures::channel::mpsc;
use futures::future::{AbortHandle, Abortable};
use futures::{FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message, State as SocketState, WebSocketError};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use std::rc::Rc;
use wasm_bindgen_futures::spawn_local;

/// After rejoining a restarted server, how long to wait for a known peer to come back before
/// its tile goes.
const REJOIN_WAIT_MS: u32 = 15_000;
/// Reconnect backoff: first wait, doubled per failed attempt up to the maximum.
const BACKOFF_FIRST_MS: u32 = 250;
const BACKOFF_MAX_MS: u32 = 2_000;
/// Close code with which the server says another connection of this tab took over.
const CLOSE_REPLACED: u16 = 4000;
/// The longest wait a `too_many_joins` answer may impose before the next try.
const JOIN_LATER_MAX_MS: u64 = 10_000;
/// How many messages may wait for the socket writer. The browser's `WebSocket.send` never
/// blocks, so the writer empties the queue every time it runs; a queue this full means the
/// socket is wedged. It is the server's burst allowance too: more at once would be refused as
/// `rate_limited` anyway. When full, the socket is taken as broken (see [`State::send`]).
const OUTBOX: usize = 100;

/// The socket, and what to join with.
pub(super) struct Link {
    /// The room and the name to join with.
    room: String,
    name: String,
    /// This tab's secret: the server derives our key from it, and joining again with it
    /// resumes the place.
    secret: String,
    /// The room password to join with, if any.
    password: Option<String>,
    /// Ask for the room to be listed on the start page (if this join creates it).
    listed: bool,
    /// Queue to the socket writer while connected.
    out: Option<mpsc::Sender<ClientMsg>>,
    /// Stops the socket reader: on hang-up, or when the socket is taken as broken.
    reader: Option<AbortHandle>,
}

impl Link {
    pub(super) fn new(room: String, name: String, password: Option<String>, listed: bool) -> Self {
        Link { room, name, secret: tab_secret(), password, listed, out: None, reader: None }
    }

    /// Hang-up: says goodbye if connected, and stops the reader (which closes the socket).
    pub(super) fn leave(&mut self) {
        if let Some(mut out) = self.out.take() {
            let _ = out.try_send(ClientMsg::Leave);
            out.close_channel();
        }
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

impl State {
    /// Queues a message for the server; false if it could not be (offline: negotiations
    /// recover after the reconnect through perfect negotiation and ICE restarts).
    pub(super) fn send(&mut self, msg: ClientMsg) -> bool {
        let Some(out) = self.link.out.as_mut() else { return false };
        match out.try_send(msg) {
            Ok(()) => true,
            Err(e) if e.is_full() => {
                // The writer is OUTBOX messages behind: the socket is not really there any more.
                // Rather than queue without end, drop it and reconnect; the rejoin resends our
                // pending offers and restarts ICE where needed, which recovers what was lost.
                warn("confab: signaling socket stalled; reconnecting");
                self.link.out = None;
                if let Some(reader) = self.link.reader.take() {
                    reader.abort();
                }
                false
            }
            // The writer ended: the socket is closing, the reader will notice.
            Err(_) => false,
        }
    }

    /// Sends `signal` to the participant `to`, under the id the server knows them by now.
    pub(super) fn send_signal(&mut self, to: &PeerKey, signal: Signal) {
        if let Some(to) = self.roster.id_of(to) {
            self.send(ClientMsg::Signal { to, signal });
        }
    }
}

/// A random secret for this tab: the server derives the key others see from it, and joining
/// again with it resumes the place. Kept for the tab's life in `sessionStorage`.
fn tab_secret() -> String {
    const KEY: &str = "confab.secret";
    let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
    if let Some(existing) = storage.as_ref().and_then(|s| s.get_item(KEY).ok().flatten()) {
        if confab_protocol::valid_secret(&existing) {
            return existing;
        }
    }
    let bytes = js_sys::Uint8Array::new_with_length(24);
    let crypto = web_sys::window().and_then(|w| w.crypto().ok());
    if let Some(crypto) = crypto {
        let _ = crypto.get_random_values_with_array_buffer_view(&bytes);
    } else {
        for i in 0..bytes.length() {
            bytes.set_index(i, (js_sys::Math::random() * 256.0) as u8);
        }
    }
    let secret: String = bytes.to_vec().iter().map(|b| format!("{b:02x}")).collect();
    if let Some(storage) = storage {
        let _ = storage.set_item(KEY, &secret);
    }
    secret
}

/// `HH:MM` in the browser's time zone, for a chat message sent at `at_ms`.
fn clock(at_ms: u64) -> String {
    // f64 holds every millisecond timestamp up to year 287,396 exactly.
    #[allow(clippy::cast_precision_loss)]
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at_ms as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// What the page makes ahead of joining ([`connect_ahead`]), for the call to take.
struct Ahead {
    /// The signaling socket, for the next connection to the server.
    socket: Option<WebSocket>,
    /// A peer connection, made once the page was idle, for the call's first.
    connection: Option<web_sys::RtcPeerConnection>,
    /// The page has made a peer connection of its own: none is made ahead any more, so at most
    /// one waits unused.
    connected: bool,
}

thread_local! {
    static AHEAD: std::cell::RefCell<Ahead> =
        const { std::cell::RefCell::new(Ahead { socket: None, connection: None, connected: false }) };
}

/// Whether a socket is open or opening (not closing or closed).
fn usable(socket: &WebSocket) -> bool {
    matches!(socket.state(), SocketState::Connecting | SocketState::Open)
}

/// Opens the signaling socket now, unless one opened ahead is still usable, and makes a peer
/// connection once the page is idle: constructing one blocks the page's main thread (33 ms in a
/// profile of a join through the SFU on a busy machine), and the call's first connection then
/// skips that.
pub(super) fn connect_ahead() {
    AHEAD.with_borrow_mut(|ahead| {
        if !ahead.socket.as_ref().is_some_and(usable) {
            ahead.socket = open_new();
        }
    });
    fn make() {
        AHEAD.with_borrow_mut(|ahead| {
            if !ahead.connected && ahead.connection.is_none() {
                ahead.connection = web_sys::RtcPeerConnection::new().ok();
            }
        });
    }
    let Some(window) = web_sys::window() else { return };
    let idle = wasm_bindgen::closure::Closure::once_into_js(make);
    if window.request_idle_callback(wasm_bindgen::JsCast::unchecked_ref(&idle)).is_err() {
        make();
    }
}

/// The socket opened ahead, if it is still usable; else a new one.
fn open_socket() -> Option<WebSocket> {
    AHEAD.with_borrow_mut(|ahead| ahead.socket.take()).filter(usable).or_else(open_new)
}

/// The peer connection made ahead, if any; from now on none is.
pub(super) fn take_connection() -> Option<web_sys::RtcPeerConnection> {
    AHEAD.with_borrow_mut(|ahead| {
        ahead.connected = true;
        ahead.connection.take()
    })
}

/// A new socket to this site's `/ws`.
fn open_new() -> Option<WebSocket> {
    ws_url().and_then(|url| WebSocket::open(&url).ok())
}

fn ws_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}{WS_PATH}", location.host().ok()?))
}

/// Joins and stays joined, reconnecting with backoff, until the call ends for good.
pub(super) async fn run(engine: &Engine) {
    let ui = engine.borrow().ui;
    ui.phase.set(Phase::Joining);
    let mut failures: u32 = 0;
    loop {
        let mut wait_at_least = 0;
        match connect_once(engine).await {
            Ended::ForGood => return,
            Ended::AfterWelcome => failures = 0,
            Ended::BeforeWelcome => failures += 1,
            Ended::JoinLater { after_ms } => {
                failures += 1;
                wait_at_least = after_ms;
            }
        }
        {
            let state = engine.borrow();
            if state.ended || state.ui.phase.try_with_untracked(Phase::is_over).unwrap_or(true) {
                return;
            }
            if state.roster.me().is_some() {
                state.ui.phase.set(Phase::Reconnecting);
            }
        }
        let wait = BACKOFF_FIRST_MS.saturating_mul(1 << failures.min(4)).min(BACKOFF_MAX_MS).max(wait_at_least);
        TimeoutFuture::new(wait).await;
    }
}

/// How one signaling connection ended.
enum Ended {
    /// Hung up, refused, or replaced: do not reconnect.
    ForGood,
    /// The socket dropped after a welcome: reconnect at once.
    AfterWelcome,
    /// The socket could not be opened or dropped before a welcome: back off.
    BeforeWelcome,
    /// The server takes no join from this address for a moment (`too_many_joins`): try again
    /// after that long.
    JoinLater {
        /// The server's `retry_after_ms`.
        after_ms: u32,
    },
}

/// What to do after a server message.
enum Flow {
    /// Read the next one.
    Go,
    /// The server refused us for good (the phase says why): the call ends.
    End,
}

/// Opens one socket, joins, and handles server messages until the socket ends.
async fn connect_once(engine: &Engine) -> Ended {
    let Some(socket) = open_socket() else {
        return Ended::BeforeWelcome;
    };
    // A socket opened ahead takes the join at once, before the call view renders.
    let open_now = matches!(socket.state(), SocketState::Open);
    let (mut sink, mut frames) = socket.split();
    let (mut out, mut queue) = mpsc::channel::<ClientMsg>(OUTBOX);
    let (abort, registration) = AbortHandle::new_pair();
    let sent = {
        let mut state = engine.borrow_mut();
        if state.ended {
            return Ended::ForGood;
        }
        let join = ClientMsg::Join {
            room: state.link.room.clone(),
            name: state.link.name.clone(),
            secret: Some(state.link.secret.clone()),
            password: state.link.password.clone(),
            listed: state.link.listed,
            media: state.media.state(),
        };
        let sent = open_now && matches!(sink.send(Message::Text(join.to_json())).now_or_never(), Some(Ok(())));
        if sent {
            mark("join-sent");
        } else {
            // A fresh queue has room; the writer sends it once the socket opens.
            let _ = out.try_send(join);
        }
        state.link.out = Some(out);
        state.link.reader = Some(abort);
        sent
    };
    spawn_local(async move {
        let mut first = !sent;
        while let Some(msg) = queue.next().await {
            // The first send waits for the socket to open.
            if sink.send(Message::Text(msg.to_json())).await.is_err() {
                break;
            }
            if std::mem::take(&mut first) {
                mark("join-sent");
            }
        }
    });
    let mut welcomed = false;
    let mut replaced = false;
    let mut refused = false;
    let mut join_later = None;
    let read = async {
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(Message::Text(text)) => match ServerMsg::from_json(&text) {
                    // Too many joins from this network just now: this socket gives up and the
                    // next one tries after the wait (the call goes on meanwhile, if it had begun).
                    Ok(ServerMsg::Error { code: ErrorCode::TooManyJoins, retry_after_ms, .. }) => {
                        join_later = Some(retry_after_ms.unwrap_or(1000).min(JOIN_LATER_MAX_MS));
                        break;
                    }
                    Ok(msg) => {
                        welcomed |= matches!(msg, ServerMsg::Welcome { .. });
                        if let Flow::End = handle(engine, msg).await {
                            refused = true;
                            break;
                        }
                    }
                    Err(e) => warn(&format!("confab: unreadable server message: {e}")),
                },
                Ok(Message::Bytes(_)) => warn("confab: unexpected binary frame from the server"),
                Err(WebSocketError::ConnectionClose(event)) => {
                    replaced = event.code == CLOSE_REPLACED;
                    break;
                }
                Err(e) => {
                    warn(&format!("confab: signaling socket error: {e}"));
                    break;
                }
            }
        }
    };
    // Aborted: hung up, or the socket was taken as broken (then `ended` is still false).
    let _ = Abortable::new(read, registration).await;
    // Offline from here: the writer ends, the socket closes.
    {
        let mut state = engine.borrow_mut();
        if refused {
            // Say goodbye on this socket, as hang-up does (the writer sends what is queued).
            state.link.leave();
        }
        state.link.out = None;
        state.link.reader = None;
        if state.ended || refused {
            return Ended::ForGood;
        }
    }
    if replaced {
        let ui = engine.borrow().ui;
        ui.phase.set(Phase::Refused(ui.texts.opened_elsewhere.into()));
        return Ended::ForGood;
    }
    if let Some(after_ms) = join_later {
        // At most JOIN_LATER_MAX_MS: fits.
        return Ended::JoinLater { after_ms: u32::try_from(after_ms).unwrap_or(u32::MAX) };
    }
    if welcomed {
        Ended::AfterWelcome
    } else {
        Ended::BeforeWelcome
    }
}

/// Applies one server message. Ids become keys here.
async fn handle(engine: &Engine, msg: ServerMsg) -> Flow {
    let result = match msg {
        ServerMsg::Welcome {
            id,
            key,
            peers,
            ice_servers,
            resumed,
            ice_transport_policy,
            locked,
            chat,
            sfu_from,
            ..
        } => {
            {
                let mut state = engine.borrow_mut();
                state.sfu_from = sfu_from;
                state.own_id = Some(id);
                state.ui.add_chat(chat, Some(&key), clock);
                state.ui.me.set(Some(key.clone()));
                if state.link.password.is_some() && !locked && !resumed {
                    // Someone was here first and left the room open: say so rather than let
                    // this person believe the room is protected.
                    state.ui.notice.set(Some(state.ui.texts.password_not_set.into()));
                }
            }
            let changed = on_welcome(engine, key, &peers, ice_servers, ice_transport_policy, resumed);
            // A new session is a new SFU connection (the server let go of the old one with
            // the old socket); otherwise the room's size decides.
            sfu::reopen(engine);
            // The tiles follow after the SFU connection's offer has begun, as with a direct
            // call (see `PeerJoined`): the view's work queues behind it, not before.
            if changed {
                engine.borrow().peers_changed();
            }
            Ok(())
        }
        ServerMsg::IceServers { ice_servers } => {
            let mut state = engine.borrow_mut();
            let policy = state.ice.policy;
            negotiation::update_ice_servers(&mut state, ice_servers, policy);
            Ok(())
        }
        ServerMsg::PeerJoined { peer } => {
            mark("peer-joined");
            let new = engine.borrow_mut().roster.upsert(&peer);
            // Someone new: the one already here calls (before their tile renders). Someone
            // known (back after a server restart): the connection we have goes on.
            if new {
                // Past the SFU threshold nobody calls anybody directly.
                let direct = !sfu::wanted(&engine.borrow());
                let called = if direct { negotiation::call_peer(engine, &peer.key) } else { Ok(()) };
                engine.borrow().peers_changed();
                sfu::update_route(engine);
                called
            } else {
                Ok(())
            }
        }
        ServerMsg::PeerLeft { id } => {
            let gone = {
                let mut state = engine.borrow_mut();
                let gone = state.roster.key_of(id).and_then(|key| state.roster.remove(&key));
                if gone.is_some() {
                    state.peers_changed();
                }
                gone
            };
            // Their connection closes here, with the state free.
            drop(gone);
            sfu::update_route(engine);
            Ok(())
        }
        ServerMsg::PeerMedia { id, media } => {
            let state = engine.borrow();
            if let Some(peer) = state.roster.key_of(id).and_then(|key| state.roster.get(&key)) {
                peer.tile.media.set(media);
            }
            Ok(())
        }
        ServerMsg::Signal { from, signal } => {
            let key = engine.borrow().roster.key_of(from);
            match key {
                None => {
                    warn(&format!("confab: signal from unknown peer {from}"));
                    Ok(())
                }
                Some(key) => negotiation::on_signal(engine, &key, signal).await,
            }
        }
        ServerMsg::Chat { message } => {
            let state = engine.borrow();
            state.ui.add_chat(vec![message], state.roster.me(), clock);
            Ok(())
        }
        ServerMsg::Sfu { signal, tracks } => sfu::on_signal(engine, signal, tracks).await,
        ServerMsg::ActiveSpeaker { id } => {
            let state = engine.borrow();
            // Only while on the SFU: otherwise the sampler's levels decide.
            if state.sfu.is_some() {
                let key = id.and_then(|id| {
                    if Some(id) == state.own_id {
                        state.roster.me().cloned()
                    } else {
                        state.roster.key_of(id)
                    }
                });
                state.ui.speaking.set(key);
            }
            Ok(())
        }
        ServerMsg::SfuClosed { reason } => {
            warn(&format!("confab: the SFU closed our connection: {reason}"));
            sfu::reopen(engine);
            Ok(())
        }
        ServerMsg::Error { code, message, retry_after_ms } => {
            let ui = engine.borrow().ui;
            let over = match code {
                ErrorCode::TooManyAttempts => {
                    let secs = retry_after_ms.unwrap_or(1000).div_ceil(1000);
                    Some(Phase::PasswordWait { secs })
                }
                ErrorCode::TooManyPlaces => Some(Phase::Refused(ui.texts.too_many_places.into())),
                ErrorCode::RoomFull => Some(Phase::RoomFull),
                ErrorCode::PasswordRequired | ErrorCode::WrongPassword => {
                    Some(Phase::NeedsPassword { wrong: code == ErrorCode::WrongPassword })
                }
                ErrorCode::InvalidRoom
                | ErrorCode::InvalidName
                | ErrorCode::AlreadyJoined
                | ErrorCode::InvalidSecret
                | ErrorCode::InvalidPassword
                | ErrorCode::ServerFull => Some(Phase::Refused(message)),
                ErrorCode::InvalidChat | ErrorCode::RateLimited => {
                    ui.notice.set(Some(message));
                    None
                }
                _ => {
                    warn(&format!("confab: server refused a message: {message}"));
                    None
                }
            };
            if let Some(phase) = over {
                // The call ends once the loop has returned (see `super::run`).
                ui.phase.set(phase);
                return Flow::End;
            }
            Ok(())
        }
    };
    if let Err(e) = result {
        warn(&format!("confab: {e}"));
    }
    Flow::Go
}

/// Joined (again). Reconciles the peers we know with the room as the server sees it; returns
/// whether they changed (the caller updates the tiles).
fn on_welcome(
    engine: &Engine,
    key: PeerKey,
    peers: &[PeerInfo],
    ice_servers: Vec<IceServer>,
    policy: IceTransportPolicy,
    resumed: bool,
) -> bool {
    mark("welcome");
    let welcomed = {
        let mut state = engine.borrow_mut();
        negotiation::update_ice_servers(&mut state, ice_servers, policy);
        state.ui.phase.set(Phase::InRoom);
        let welcomed = state.roster.welcome(key, peers, resumed);
        // Our mute state may have changed while offline.
        let media = state.media.state();
        state.send(ClientMsg::Media(media));
        welcomed
    };
    // Whoever left while we were away: their connections close here.
    drop(welcomed.gone);
    // After a resume, whoever joined while we were away sent an offer we never got: call them
    // (perfect negotiation settles it if they call too).
    let direct = !sfu::wanted(&engine.borrow());
    for key in welcomed.to_call.into_iter().filter(|_| direct) {
        if let Err(e) = negotiation::call_peer(engine, &key) {
            warn(&format!("confab: {e}"));
        }
    }
    negotiation::resend_pending_offers(engine);
    if let Some(generation) = welcomed.sweep {
        // After a server restart everyone comes back with a new id; whoever has not come back
        // in a while is gone.
        let engine = Rc::downgrade(engine);
        spawn_local(async move {
            TimeoutFuture::new(REJOIN_WAIT_MS).await;
            let Some(engine) = engine.upgrade() else { return };
            let gone = {
                let mut state = engine.borrow_mut();
                if state.ended {
                    return;
                }
                let gone = state.roster.sweep(generation);
                if !gone.is_empty() {
                    state.peers_changed();
                }
                gone
            };
            drop(gone);
        });
    }
    welcomed.changed
}
