//! The call engine (browser only): local media, the signaling socket, and one
//! `RTCPeerConnection` per remote participant (a full mesh).
//!
//! The flow is the one in the project's notes, made to survive real networks:
//! 1. `getUserMedia` → the local stream, shown in the preview.
//! 2. Open `/ws`, send `join` with the tab's secret. The server answers `welcome` with the peers
//!    already present.
//! 3. A peer already in the room starts the connection when someone joins (`peer_joined`): it
//!    adds its tracks, and the `negotiationneeded` event makes the offer. The newcomer creates
//!    its connection when that offer arrives, adds its tracks and answers. Both trickle ICE.
//! 4. Remote media arrives through the `track` event and is shown in the peer's tile.
//!
//! **Perfect negotiation.** Every offer comes from `negotiationneeded` (first contact, ICE
//! restart, any later change), so both sides may offer at once. Each pair has a polite side (the
//! smaller key) that yields: the impolite side ignores a colliding offer, the polite side rolls
//! back its own and answers. `setLocalDescription()` without arguments picks offer or answer.
//!
//! **ICE restart.** A connection `failed`, or `disconnected` for [`RECOVERY_DELAY_MS`], calls
//! `restartIce()`; the renegotiation goes through the same path.
//!
//! **Signaling reconnect.** When the socket drops, media keeps flowing (it is peer to peer)
//! while the engine reconnects with backoff and joins again with the same secret. The server
//! either resumes the place (same id, nobody notices) or, after a server restart, gives a new id;
//! peers are matched by their stable key, so existing connections are kept either way.
//!
//! Server messages are handled one at a time, in order. Mute and camera-off live in [`Inner`] as
//! the single source of truth, are applied to every track that starts being sent (including
//! after a camera switch, which swaps the video track with `RTCRtpSender.replaceTrack`), and are
//! announced to the room.
//!
//! `MediaStream` and `MediaStreamTrack` have an inherent `clone()` that calls the JS method and
//! opens new tracks; copying the handle is spelled `Clone::clone(&stream)` here.
//!
//! Every JS callback is a `gloo_events::EventListener` (or a `gloo_timers` timeout) owned by the
//! connection it belongs to and removed when that is dropped; nothing is leaked with
//! `Closure::forget`.

use crate::media::{self, first_track, stop_all, tracks};
use crate::model::{CallUi, Device, Prefs, RemoteTile};
use crate::stats;
use crate::status::{ActiveSpeaker, MediaProblem, PeerState, Phase};
use confab_protocol::{
    ClientMsg, ErrorCode, IceCandidate, IceServer, IceTransportPolicy, MediaState, PeerId, PeerInfo, PeerKey,
    ServerMsg, Signal, WS_PATH,
};
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::future::{AbortHandle, Abortable};
use futures::{SinkExt, StreamExt};
use gloo_events::EventListener;
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use gloo_timers::callback::Timeout;
use gloo_timers::future::TimeoutFuture;
use js_sys::{Array, Function, Reflect};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use std::cell::RefCell;
use std::fmt;
use std::rc::{Rc, Weak};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    MediaStream, MediaStreamTrack, RtcConfiguration, RtcIceCandidateInit, RtcIceServer, RtcIceTransportPolicy,
    RtcPeerConnection, RtcPeerConnectionIceEvent, RtcRtpSender, RtcSdpType, RtcSessionDescriptionInit, RtcTrackEvent,
};

/// The most candidates kept for a peer before its description arrives.
const MAX_PENDING_CANDIDATES: usize = 64;
/// How long a connection may stay `disconnected` before ICE is restarted.
const RECOVERY_DELAY_MS: u32 = 3_000;
/// After rejoining a restarted server, how long to wait for a known peer to come back before
/// its tile goes.
const REJOIN_WAIT_MS: u32 = 15_000;
/// Reconnect backoff: first wait, doubled per failed attempt up to the maximum.
const BACKOFF_FIRST_MS: u32 = 250;
const BACKOFF_MAX_MS: u32 = 2_000;
/// Close code with which the server says another connection of this tab took over.
const CLOSE_REPLACED: u16 = 4000;
/// In a call of more than two people, each sender halves its resolution and caps its bitrate
/// and frame rate: a mesh sends one stream per peer, and every stream costs an encoder.
const MESH_BITRATE: u32 = 350_000;
const MESH_FRAMERATE: u32 = 15;
/// A shared screen in a mesh: full resolution (text must stay legible), fewer frames.
const SCREEN_MESH_BITRATE: u32 = 900_000;
const SCREEN_FRAMERATE: u32 = 10;

/// A failed WebRTC step, with the browser's reason.
#[derive(Debug)]
pub struct WebRtcError {
    /// What the engine was doing.
    step: &'static str,
    /// The browser's error, as text.
    detail: String,
}

impl fmt::Display for WebRtcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step, self.detail)
    }
}

fn js_detail(err: &JsValue) -> String {
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    err.as_string().unwrap_or_else(|| format!("{err:?}"))
}

/// Awaits a promise of step `step`, turning a rejection into a [`WebRtcError`].
async fn settle(step: &'static str, promise: js_sys::Promise) -> Result<JsValue, WebRtcError> {
    JsFuture::from(promise).await.map_err(|e| WebRtcError { step, detail: js_detail(&e) })
}

/// Calls a method that web-sys does not bind (or binds only with arguments we must omit).
fn call_method(target: &JsValue, name: &'static str, args: &Array) -> Result<JsValue, WebRtcError> {
    let method = Reflect::get(target, &name.into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or(WebRtcError { step: name, detail: "not supported by this browser".into() })?;
    method.apply(target, args).map_err(|e| WebRtcError { step: name, detail: js_detail(&e) })
}

fn string_prop(target: &JsValue, name: &str) -> String {
    Reflect::get(target, &name.into()).ok().and_then(|v| v.as_string()).unwrap_or_default()
}

fn warn(message: &str) {
    web_sys::console::warn_1(&message.into());
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

/// A handle on a running call, owned by the room page. Dropping it does not end the call;
/// [`Call::hang_up`] does.
#[derive(Clone)]
pub struct Call(Rc<RefCell<Inner>>);

/// The negotiation with one remote participant.
struct Connection {
    /// The connection.
    pc: RtcPeerConnection,
    /// An offer of ours is being made (perfect negotiation).
    making_offer: bool,
    /// The last offer received collided with ours and was ignored (we are impolite).
    ignore_offer: bool,
    /// Candidates that arrived before the remote description; added once it is set.
    pending: Vec<IceCandidate>,
    /// Restarts ICE if the connection stays `disconnected`.
    recovery: Option<Timeout>,
    /// `icecandidate`, `track`, `connectionstatechange`, `negotiationneeded`; removed on drop.
    _listeners: [EventListener; 4],
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.pc.close();
    }
}

/// One remote participant.
struct Peer {
    /// Their current id (changes if they rejoin a restarted server).
    id: PeerId,
    /// We are the polite side of this pair.
    polite: bool,
    /// Seen in the room since our last fresh join.
    confirmed: bool,
    /// What their tile shows.
    tile: RemoteTile,
    /// The connection, once negotiation started.
    conn: Option<Connection>,
}

/// The engine's state.
struct Inner {
    /// The signals the page renders.
    ui: CallUi,
    /// The room and the name to join with, and this tab's secret.
    room: String,
    name: String,
    secret: String,
    /// The room password to join with, if any.
    password: Option<String>,
    /// Ask for the room to be listed on the start page (if this join creates it).
    listed: bool,
    /// Our key, once welcomed.
    me: Option<PeerKey>,
    /// The camera and microphone stream, once open.
    local: Option<MediaStream>,
    /// Queue to the socket writer while connected.
    out: Option<UnboundedSender<ClientMsg>>,
    /// ICE servers from the welcome.
    ice_servers: Vec<IceServer>,
    /// The ICE transport policy from the welcome.
    ice_transport_policy: IceTransportPolicy,
    /// Everyone else in the room, by key, in the order they appeared.
    peers: Vec<(PeerKey, Peer)>,
    /// Stops the socket reader on hang-up.
    reader: Option<AbortHandle>,
    /// The source of truth for mute; applied to every audio track that is sent.
    muted: bool,
    /// The source of truth for camera-off; applied to every video track that is sent.
    camera_off: bool,
    /// A camera switch is under way.
    switching: bool,
    /// The camera chosen while a switch was under way.
    next_camera: Option<String>,
    /// The shared screen, sent instead of the camera while it lasts.
    screen: Option<Screen>,
    /// Listens for devices being plugged in or out.
    device_watch: Option<EventListener>,
    /// The camera and microphone the pre-join screen opened, taken over by the call.
    preview: Option<MediaStream>,
    /// The devices chosen before joining.
    prefs: Prefs,
    /// Counts fresh (not resumed) welcomes, so an old sweep of unconfirmed peers does nothing.
    welcomes: u32,
    /// Hung up: nothing may start any more.
    ended: bool,
}

impl Call {
    /// Starts a call in `room` as `name` (giving `password` if the room has one), reporting to
    /// `ui`.
    pub fn start(
        room: String,
        name: String,
        password: Option<String>,
        listed: bool,
        prefs: Prefs,
        preview: Option<MediaStream>,
        ui: CallUi,
    ) -> Call {
        ui.muted.set(prefs.muted);
        ui.camera_off.set(prefs.camera_off);
        ui.speaker.set(prefs.speaker.clone());
        let call = Call(Rc::new(RefCell::new(Inner {
            ui,
            room,
            name,
            secret: tab_secret(),
            password,
            listed,
            me: None,
            local: None,
            out: None,
            ice_servers: Vec::new(),
            ice_transport_policy: IceTransportPolicy::All,
            peers: Vec::new(),
            reader: None,
            muted: prefs.muted,
            camera_off: prefs.camera_off,
            preview,
            prefs,
            switching: false,
            next_camera: None,
            screen: None,
            device_watch: None,
            welcomes: 0,
            ended: false,
        })));
        spawn_local(run(call.0.clone()));
        spawn_local(watch_speakers(Rc::downgrade(&call.0)));
        call
    }

    /// Mutes or unmutes the microphone for everyone.
    pub fn set_muted(&self, muted: bool) {
        let mut inner = self.0.borrow_mut();
        inner.muted = muted;
        inner.media_changed();
        inner.ui.muted.set(muted);
    }

    /// Sends a chat message to the room; false if the server cannot be reached right now.
    pub fn send_chat(&self, text: String) -> bool {
        let inner = self.0.borrow();
        match &inner.out {
            Some(out) => out.unbounded_send(ClientMsg::Chat { text }).is_ok(),
            None => false,
        }
    }

    /// Sends microphone `device_id` instead of the current one; mute stays as it was.
    pub fn switch_microphone(&self, device_id: String) {
        let inner = self.0.clone();
        spawn_local(async move {
            if let Err(problem) = switch_microphone(&inner, &device_id).await {
                let state = inner.borrow();
                let t = state.ui.texts;
                state.ui.notice.set(Some(format!("{} {}", t.microphone_switch_failed, problem.explanation(t))));
                let current = state.local.as_ref().and_then(|s| first_track(&s.get_audio_tracks()));
                state.ui.microphone.set(current.as_ref().and_then(media::device_id_of));
            }
        });
    }

    /// Asks for a screen to share and sends it instead of the camera, to everyone.
    pub fn share_screen(&self) {
        if self.0.borrow().screen.is_some() {
            return;
        }
        let inner = self.0.clone();
        spawn_local(async move {
            let track = match media::open_screen().await {
                Ok(track) => track,
                // Picking nothing is a choice, not a problem.
                Err(MediaProblem::Denied) => return,
                Err(problem) => {
                    let ui = inner.borrow().ui;
                    ui.notice.set(Some(format!("{} {}", ui.texts.screen_failed, problem.explanation(ui.texts))));
                    return;
                }
            };
            let ended = {
                let engine = Rc::downgrade(&inner);
                // The browser's own "Stop sharing" ends the track.
                EventListener::new(&track, "ended", move |_| {
                    if let Some(inner) = engine.upgrade() {
                        Call(inner).stop_sharing();
                    }
                })
            };
            {
                let mut state = inner.borrow_mut();
                if state.ended || state.screen.is_some() {
                    track.stop();
                    return;
                }
                state.screen = Some(Screen { track: Clone::clone(&track), _ended: ended });
                state.ui.sharing.set(true);
                state.media_changed();
                state.apply_send_quality();
            }
            send_track(&inner, &track).await;
        });
    }

    /// Stops sharing the screen: the camera goes back on every connection.
    pub fn stop_sharing(&self) {
        let Some(screen) = self.0.borrow_mut().screen.take() else { return };
        screen.track.stop();
        let inner = self.0.clone();
        {
            let state = inner.borrow();
            state.ui.sharing.set(false);
            state.media_changed();
            state.apply_send_quality();
        }
        spawn_local(async move {
            let camera = inner.borrow().video_source();
            if let Some(camera) = camera {
                send_track(&inner, &camera).await;
            }
        });
    }

    /// Turns the camera off (black frames) or on again.
    pub fn set_camera_off(&self, off: bool) {
        let mut inner = self.0.borrow_mut();
        inner.camera_off = off;
        inner.media_changed();
        inner.ui.camera_off.set(off);
    }

    /// Sends video from camera `device_id` instead of the current one. A choice made while a
    /// switch is under way is carried out after it.
    pub fn switch_camera(&self, device_id: String) {
        {
            let mut state = self.0.borrow_mut();
            if state.ended {
                return;
            }
            if state.switching {
                state.next_camera = Some(device_id);
                return;
            }
            state.switching = true;
            state.ui.notice.set(None);
        }
        let inner = self.0.clone();
        spawn_local(async move {
            let mut wanted = device_id;
            loop {
                let result = switch_camera(&inner, &wanted).await;
                let mut state = inner.borrow_mut();
                if let Err(problem) = result {
                    let t = state.ui.texts;
                    state.ui.notice.set(Some(format!("{} {}", t.camera_switch_failed, problem.explanation(t))));
                    // Show the camera that is really in use again.
                    let current = state.local.as_ref().and_then(|s| first_track(&s.get_video_tracks()));
                    state.ui.camera.set(current.as_ref().and_then(media::device_id_of));
                }
                match state.next_camera.take() {
                    Some(next) if !state.ended => wanted = next,
                    _ => {
                        state.switching = false;
                        return;
                    }
                }
            }
        });
    }

    /// Leaves the room: tells the server, closes every connection, releases camera and mic.
    /// Calling it again does nothing.
    pub fn hang_up(&self) {
        let Ok(mut inner) = self.0.try_borrow_mut() else {
            // Called from inside the engine's own update: finish on the next turn.
            let call = self.clone();
            spawn_local(async move { call.hang_up() });
            return;
        };
        if inner.ended {
            return;
        }
        inner.ended = true;
        if let Some(out) = inner.out.take() {
            let _ = out.unbounded_send(ClientMsg::Leave);
            out.close_channel();
        }
        inner.peers.clear();
        if let Some(local) = inner.local.take() {
            stop_all(&local);
        }
        if let Some(preview) = inner.preview.take() {
            stop_all(&preview);
        }
        if let Some(screen) = inner.screen.take() {
            screen.track.stop();
        }
        inner.device_watch = None;
        if let Some(reader) = inner.reader.take() {
            reader.abort();
        }
        inner.ui.tiles.set(Vec::new());
        inner.ui.local.set(None);
    }
}

impl Inner {
    fn media(&self) -> MediaState {
        MediaState { muted: self.muted, camera_off: self.camera_off, screen: self.screen.is_some() }
    }

    /// Applies mute and camera-off to the tracks and tells the room.
    fn media_changed(&self) {
        self.apply_track_states();
        self.send(ClientMsg::Media(self.media()));
    }

    fn apply_track_states(&self) {
        let Some(local) = &self.local else { return };
        for track in tracks(local) {
            track.set_enabled(match track.kind().as_str() {
                "audio" => !self.muted,
                _ => !self.camera_off,
            });
        }
    }

    /// Queues a message for the server; dropped while disconnected (negotiations recover after
    /// the reconnect through perfect negotiation and ICE restarts).
    fn send(&self, msg: ClientMsg) {
        if let Some(out) = &self.out {
            let _ = out.unbounded_send(msg);
        }
    }

    fn peer(&self, key: &PeerKey) -> Option<&Peer> {
        self.peers.iter().find(|(k, _)| k == key).map(|(_, p)| p)
    }

    fn peer_mut(&mut self, key: &PeerKey) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|(k, _)| k == key).map(|(_, p)| p)
    }

    fn key_of_id(&self, id: PeerId) -> Option<PeerKey> {
        self.peers.iter().find(|(_, p)| p.id == id).map(|(k, _)| k.clone())
    }

    fn sync_tiles(&self) {
        self.ui.tiles.set(self.peers.iter().map(|(_, p)| p.tile.clone()).collect());
    }

    /// Adds a participant's tile, or updates the one we have under the same key (a participant
    /// who rejoined). Returns true if they are new to us.
    fn upsert_peer(&mut self, info: PeerInfo) -> bool {
        if let Some(peer) = self.peer_mut(&info.key) {
            peer.id = info.id;
            peer.confirmed = true;
            peer.tile.media.set(info.media);
            return false;
        }
        let polite = self.me.as_ref().is_some_and(|me| *me < info.key);
        let tile = RemoteTile::new(info.key.clone(), info.name.to_string(), info.media);
        self.peers.push((info.key, Peer { id: info.id, polite, confirmed: true, tile, conn: None }));
        self.sync_tiles();
        self.apply_send_quality();
        true
    }

    /// Drops the peers not seen in the room since the last welcome.
    fn drop_unconfirmed(&mut self) {
        let gone: Vec<PeerKey> = self.peers.iter().filter(|(_, p)| !p.confirmed).map(|(k, _)| k.clone()).collect();
        for key in gone {
            self.remove_peer(&key);
        }
    }

    fn remove_peer(&mut self, key: &PeerKey) {
        let before = self.peers.len();
        self.peers.retain(|(k, _)| k != key);
        if self.peers.len() != before {
            self.sync_tiles();
            self.apply_send_quality();
        }
    }

    /// Halves the resolution and caps the bitrate of every video sender once more than one other
    /// person is in the call; full quality for a one-to-one call.
    fn apply_send_quality(&self) {
        let mesh = self.peers.len() >= 2;
        for (_, peer) in &self.peers {
            if let Some(sender) = peer.conn.as_ref().and_then(|c| video_sender(&c.pc)) {
                set_send_quality(&sender, mesh, self.screen.is_some());
            }
        }
    }

    /// The video track to send: the shared screen while there is one, else the camera.
    fn video_source(&self) -> Option<MediaStreamTrack> {
        match &self.screen {
            Some(screen) => Some(Clone::clone(&screen.track)),
            None => self.local.as_ref().and_then(|s| first_track(&s.get_video_tracks())),
        }
    }
}

fn set_send_quality(sender: &RtcRtpSender, mesh: bool, screen: bool) {
    let params: JsValue = sender.get_parameters().into();
    let Some(encoding) = Reflect::get(&params, &"encodings".into()).ok().map(|e| Array::from(&e)).and_then(|e| {
        let first = e.get(0);
        (!first.is_undefined()).then_some(first)
    }) else {
        // Not negotiated yet: applied again once connected.
        return;
    };
    let scale: f64 = if mesh && !screen { 2.0 } else { 1.0 };
    let _ = Reflect::set(&encoding, &"scaleResolutionDownBy".into(), &scale.into());
    let (bitrate, framerate) =
        if screen { (SCREEN_MESH_BITRATE, SCREEN_FRAMERATE) } else { (MESH_BITRATE, MESH_FRAMERATE) };
    for (name, value) in [("maxBitrate", bitrate), ("maxFramerate", framerate)] {
        if mesh || (screen && name == "maxFramerate") {
            let _ = Reflect::set(&encoding, &name.into(), &value.into());
        } else {
            let _ = Reflect::delete_property(encoding.unchecked_ref::<js_sys::Object>(), &name.into());
        }
    }
    if let Ok(promise) = call_method(sender, "setParameters", &Array::of1(&params)) {
        spawn_local(async move {
            if let Err(e) = settle("setParameters", promise.unchecked_into()).await {
                warn(&format!("confab: {e}"));
            }
        });
    }
}

fn rtc_configuration(ice_servers: &[IceServer], policy: IceTransportPolicy) -> RtcConfiguration {
    let servers = Array::new();
    for server in ice_servers {
        let entry = RtcIceServer::new();
        entry.set_urls(&server.urls.iter().map(|u| JsValue::from_str(u)).collect::<Array>());
        if let Some(username) = &server.username {
            entry.set_username(username);
        }
        if let Some(credential) = &server.credential {
            entry.set_credential(credential);
        }
        servers.push(&entry);
    }
    let config = RtcConfiguration::new();
    config.set_ice_servers(&servers);
    config.set_ice_transport_policy(match policy {
        IceTransportPolicy::All => RtcIceTransportPolicy::All,
        IceTransportPolicy::Relay => RtcIceTransportPolicy::Relay,
    });
    config
}

fn new_peer_connection(
    ice_servers: &[IceServer],
    policy: IceTransportPolicy,
) -> Result<RtcPeerConnection, WebRtcError> {
    RtcPeerConnection::new_with_configuration(&rtc_configuration(ice_servers, policy))
        .map_err(|e| WebRtcError { step: "creating the peer connection", detail: js_detail(&e) })
}

/// The connection to `key`, created (with its listeners) if there is none yet.
fn ensure_connection(inner: &Rc<RefCell<Inner>>, key: &PeerKey) -> Result<Option<RtcPeerConnection>, WebRtcError> {
    let mut state = inner.borrow_mut();
    let (ice_servers, policy) = (state.ice_servers.clone(), state.ice_transport_policy);
    let Some(peer) = state.peer_mut(key) else { return Ok(None) };
    if let Some(conn) = &peer.conn {
        return Ok(Some(conn.pc.clone()));
    }
    let pc = new_peer_connection(&ice_servers, policy)?;
    let listeners = listen(&pc, Rc::downgrade(inner), key, &peer.tile);
    peer.conn = Some(Connection {
        pc: pc.clone(),
        making_offer: false,
        ignore_offer: false,
        pending: Vec::new(),
        recovery: None,
        _listeners: listeners,
    });
    Ok(Some(pc))
}

/// Adds our tracks to `pc`, once. (A remote offer creates senders without tracks; `addTrack`
/// then fills those.)
fn attach_tracks(inner: &Rc<RefCell<Inner>>, pc: &RtcPeerConnection) {
    let sending = pc.get_senders().iter().any(|s| s.unchecked_into::<RtcRtpSender>().track().is_some());
    if sending {
        return;
    }
    let state = inner.borrow();
    if let Some(local) = &state.local {
        for track in tracks(local) {
            match &state.screen {
                Some(screen) if track.kind() == "video" => pc.add_track_0(&screen.track, local),
                _ => pc.add_track_0(&track, local),
            };
        }
    }
}

/// A screen being shared, and the listener for the browser's own "Stop sharing". (Copies of
/// the track are made with `Clone::clone`: web-sys's `MediaStreamTrack::clone` is the JS method
/// that makes a new, live track.)
struct Screen {
    track: MediaStreamTrack,
    _ended: EventListener,
}

/// Puts `track` on every connection's sender of its kind (twice: connections created during the
/// first pass got the previous track from the local stream).
async fn send_track(inner: &Rc<RefCell<Inner>>, track: &MediaStreamTrack) {
    let kind = track.kind();
    for _pass in 0..2 {
        let senders: Vec<RtcRtpSender> = {
            let state = inner.borrow();
            state
                .peers
                .iter()
                .filter_map(|(_, p)| p.conn.as_ref().and_then(|c| sender_of(&c.pc, &kind)))
                .filter(|sender| sender.track().is_none_or(|t| t.id() != track.id()))
                .collect()
        };
        for sender in senders {
            if let Err(e) = settle("replaceTrack", sender.replace_track(Some(track))).await {
                warn(&format!("confab: {e}"));
            }
        }
    }
}

/// Wires a connection's events to the engine and the tile.
fn listen(
    pc: &RtcPeerConnection,
    engine: Weak<RefCell<Inner>>,
    key: &PeerKey,
    tile: &RemoteTile,
) -> [EventListener; 4] {
    let on_candidate = {
        let (engine, key) = (engine.clone(), key.clone());
        EventListener::new(pc, "icecandidate", move |event| {
            let Some(event) = event.dyn_ref::<RtcPeerConnectionIceEvent>() else { return };
            // A null candidate marks the end of gathering; nothing to send.
            let Some(candidate) = event.candidate() else { return };
            let Some(inner) = engine.upgrade() else { return };
            let state = inner.borrow();
            let Some(to) = state.peer(&key).map(|p| p.id) else { return };
            state.send(ClientMsg::Signal {
                to,
                signal: Signal::Candidate(IceCandidate {
                    candidate: candidate.candidate(),
                    sdp_mid: candidate.sdp_mid(),
                    sdp_m_line_index: candidate.sdp_m_line_index(),
                }),
            });
        })
    };
    let stream = tile.stream.clone();
    let on_track = EventListener::new(pc, "track", move |event| {
        let Some(event) = event.dyn_ref::<RtcTrackEvent>() else { return };
        let remote = match event.streams().get(0).dyn_into::<MediaStream>() {
            Ok(remote) => {
                // Audio and video arrive as two events with the same stream: set it once, as a
                // new `srcObject` restarts playback.
                let same = stream.try_with_untracked(|s| s.as_ref().is_some_and(|s| s.id() == remote.id()));
                if same == Some(true) {
                    return;
                }
                remote
            }
            Err(_) => {
                // A track sent without a stream: gather the peer's tracks in a stream of our own.
                let current = stream.try_with_untracked(|s| s.as_ref().map(|s| Clone::clone(&**s))).flatten();
                let Some(remote) = current.or_else(|| MediaStream::new().ok()) else { return };
                remote.add_track(&event.track());
                remote
            }
        };
        stream.set(Some(SendWrapper::new(remote)));
    });
    let on_state = {
        let (engine, key, state_signal, watched) = (engine.clone(), key.clone(), tile.state.clone(), pc.clone());
        EventListener::new(pc, "connectionstatechange", move |_| {
            let connection_state = string_prop(&watched, "connectionState");
            let peer_state = PeerState::from_connection_state(&connection_state);
            state_signal.set(peer_state);
            let Some(inner) = engine.upgrade() else { return };
            on_connection_state(&inner, &key, &watched, &connection_state);
        })
    };
    let on_negotiation = {
        let key = key.clone();
        EventListener::new(pc, "negotiationneeded", move |_| {
            let Some(inner) = engine.upgrade() else { return };
            let key = key.clone();
            spawn_local(async move {
                if let Err(e) = make_offer(&inner, &key).await {
                    warn(&format!("confab: {e}"));
                }
            });
        })
    };
    [on_candidate, on_track, on_state, on_negotiation]
}

/// Restarts ICE on failure, or after a while `disconnected`; applies the send quality once
/// connected (encodings exist only after negotiation).
fn on_connection_state(inner: &Rc<RefCell<Inner>>, key: &PeerKey, pc: &RtcPeerConnection, connection_state: &str) {
    let mut state = inner.borrow_mut();
    if state.ended {
        return;
    }
    let (mesh, screen) = (state.peers.len() >= 2, state.screen.is_some());
    let Some(conn) = state.peer_mut(key).and_then(|p| p.conn.as_mut()) else { return };
    match connection_state {
        "connected" => {
            conn.recovery = None;
            if let Some(sender) = video_sender(pc) {
                set_send_quality(&sender, mesh, screen);
            }
        }
        "failed" => {
            conn.recovery = None;
            restart_ice(pc);
        }
        "disconnected" => {
            let pc = pc.clone();
            conn.recovery = Some(Timeout::new(RECOVERY_DELAY_MS, move || {
                if string_prop(&pc, "connectionState") == "disconnected" {
                    restart_ice(&pc);
                }
            }));
        }
        _ => {}
    }
}

fn restart_ice(pc: &RtcPeerConnection) {
    if let Err(e) = call_method(pc, "restartIce", &Array::new()) {
        warn(&format!("confab: {e}"));
    }
}

/// `setLocalDescription()` without a description: the browser creates the offer or answer that
/// fits the signaling state.
async fn set_local_description(pc: &RtcPeerConnection) -> Result<(), WebRtcError> {
    let promise = call_method(pc, "setLocalDescription", &Array::new())?;
    settle("setLocalDescription", promise.unchecked_into()).await.map(drop)
}

fn local_sdp(pc: &RtcPeerConnection) -> Option<(String, String)> {
    let description = Reflect::get(pc, &"localDescription".into()).ok().filter(|d| !d.is_null())?;
    Some((string_prop(&description, "type"), string_prop(&description, "sdp")))
}

/// Answers `negotiationneeded`: makes and sends an offer.
async fn make_offer(inner: &Rc<RefCell<Inner>>, key: &PeerKey) -> Result<(), WebRtcError> {
    let pc = {
        let mut state = inner.borrow_mut();
        if state.ended {
            return Ok(());
        }
        // Offline, the offer is made all the same (the event does not fire twice); it is sent
        // again after the reconnect (see `resend_pending_offers`).
        let Some(conn) = state.peer_mut(key).and_then(|p| p.conn.as_mut()) else { return Ok(()) };
        conn.making_offer = true;
        conn.pc.clone()
    };
    let result = set_local_description(&pc).await;
    let mut state = inner.borrow_mut();
    if let Some(conn) = state.peer_mut(key).and_then(|p| p.conn.as_mut()) {
        conn.making_offer = false;
    }
    result?;
    if let (Some((kind, sdp)), Some(to)) = (local_sdp(&pc), state.peer(key).map(|p| p.id)) {
        if kind == "offer" {
            state.send(ClientMsg::Signal { to, signal: Signal::Offer { sdp } });
        }
    }
    Ok(())
}

/// Applies a received offer or answer, following perfect negotiation.
async fn on_description(
    inner: &Rc<RefCell<Inner>>,
    key: &PeerKey,
    is_offer: bool,
    sdp: &str,
) -> Result<(), WebRtcError> {
    let Some(pc) = ensure_connection(inner, key)? else { return Ok(()) };
    {
        let mut state = inner.borrow_mut();
        let Some(peer) = state.peer_mut(key) else { return Ok(()) };
        let polite = peer.polite;
        let Some(conn) = peer.conn.as_mut() else { return Ok(()) };
        let stable = string_prop(&pc, "signalingState") == "stable";
        let collision = is_offer && (conn.making_offer || !stable);
        conn.ignore_offer = !polite && collision;
        if conn.ignore_offer {
            return Ok(());
        }
    }
    let kind = if is_offer { RtcSdpType::Offer } else { RtcSdpType::Answer };
    let init = RtcSessionDescriptionInit::new(kind);
    init.set_sdp(sdp);
    // A polite side with an offer of its own in flight rolls it back implicitly here.
    settle("setRemoteDescription", pc.set_remote_description(&init)).await?;
    if is_offer {
        // The newcomer's first contact: its tracks go into the transceivers the offer made.
        attach_tracks(inner, &pc);
        set_local_description(&pc).await?;
        let state = inner.borrow();
        if let (Some((_, sdp)), Some(to)) = (local_sdp(&pc), state.peer(key).map(|p| p.id)) {
            state.send(ClientMsg::Signal { to, signal: Signal::Answer { sdp } });
        }
    }
    flush_candidates(inner, key, &pc).await;
    Ok(())
}

fn candidate_init(candidate: &IceCandidate) -> RtcIceCandidateInit {
    let init = RtcIceCandidateInit::new(&candidate.candidate);
    init.set_sdp_mid(candidate.sdp_mid.as_deref());
    init.set_sdp_m_line_index(candidate.sdp_m_line_index);
    init
}

async fn on_candidate(inner: &Rc<RefCell<Inner>>, key: &PeerKey, candidate: IceCandidate) -> Result<(), WebRtcError> {
    let (pc, ignoring) = {
        let mut state = inner.borrow_mut();
        let Some(conn) = state.peer_mut(key).and_then(|p| p.conn.as_mut()) else {
            return Ok(());
        };
        if conn.pc.remote_description().is_none() {
            // A peer gathers a handful of candidates; more before any description is abuse.
            if conn.pending.len() < MAX_PENDING_CANDIDATES {
                conn.pending.push(candidate);
            }
            return Ok(());
        }
        (conn.pc.clone(), conn.ignore_offer)
    };
    let init = candidate_init(&candidate);
    match settle("addIceCandidate", pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await {
        // Candidates of an offer we ignored fail to apply; that is expected.
        Err(_) if ignoring => Ok(()),
        other => other.map(drop),
    }
}

async fn flush_candidates(inner: &Rc<RefCell<Inner>>, key: &PeerKey, pc: &RtcPeerConnection) {
    let pending = inner
        .borrow_mut()
        .peer_mut(key)
        .and_then(|p| p.conn.as_mut())
        .map(|c| std::mem::take(&mut c.pending))
        .unwrap_or_default();
    for candidate in pending {
        let init = candidate_init(&candidate);
        if let Err(e) =
            settle("addIceCandidate", pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await
        {
            warn(&format!("confab: {e}"));
        }
    }
}

/// Starts the connection to a peer: our tracks in, and `negotiationneeded` makes the offer.
fn call_peer(inner: &Rc<RefCell<Inner>>, key: &PeerKey) -> Result<(), WebRtcError> {
    if let Some(pc) = ensure_connection(inner, key)? {
        attach_tracks(inner, &pc);
        inner.borrow().apply_send_quality();
    }
    Ok(())
}

fn ws_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}{WS_PATH}", location.host().ok()?))
}

/// The whole life of a call: media, then signaling (reconnecting as needed) until the end.
async fn run(inner: Rc<RefCell<Inner>>) {
    let ui = inner.borrow().ui;
    ui.phase.set(Phase::StartingMedia);
    let (preview, prefs) = {
        let mut state = inner.borrow_mut();
        (state.preview.take(), state.prefs.clone())
    };
    let opened = match preview {
        Some(stream) => Ok(stream),
        None => media::open_camera_and_mic(prefs.camera.as_deref(), prefs.microphone.as_deref(), false).await,
    };
    let stream = match opened {
        Ok(stream) => stream,
        Err(problem) => {
            ui.phase.set(Phase::MediaFailed(problem));
            return;
        }
    };
    {
        let mut state = inner.borrow_mut();
        if state.ended {
            stop_all(&stream);
            return;
        }
        state.local = Some(Clone::clone(&stream));
        state.apply_track_states();
    }
    ui.local.set(Some(SendWrapper::new(Clone::clone(&stream))));
    refresh_devices(&inner).await;
    // Plugged or unplugged devices: every picker follows, and a device in use that went away is
    // replaced by another.
    if let Ok(devices) = Reflect::get(&web_sys::window().expect("a window").navigator(), &"mediaDevices".into()) {
        let engine = Rc::downgrade(&inner);
        let listener =
            EventListener::new(&devices.unchecked_into::<web_sys::EventTarget>(), "devicechange", move |_| {
                let engine = engine.clone();
                spawn_local(async move {
                    if let Some(inner) = engine.upgrade() {
                        refresh_devices(&inner).await;
                    }
                });
            });
        inner.borrow_mut().device_watch = Some(listener);
    }

    ui.phase.set(Phase::Joining);
    let mut failures: u32 = 0;
    loop {
        let mut wait_at_least = 0;
        match connect_once(&inner).await {
            Ended::ForGood => return,
            Ended::AfterWelcome => failures = 0,
            Ended::BeforeWelcome => failures += 1,
            Ended::JoinLater { after_ms } => {
                failures += 1;
                wait_at_least = after_ms;
            }
        }
        {
            let state = inner.borrow();
            if state.ended || state.ui.phase.try_with_untracked(Phase::is_over).unwrap_or(true) {
                return;
            }
            if state.me.is_some() {
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

/// The longest wait a `too_many_joins` answer may impose before the next try.
const JOIN_LATER_MAX_MS: u64 = 10_000;

/// Opens one socket, joins, and handles server messages until the socket ends.
async fn connect_once(inner: &Rc<RefCell<Inner>>) -> Ended {
    let Some(socket) = ws_url().and_then(|url| WebSocket::open(&url).ok()) else {
        return Ended::BeforeWelcome;
    };
    let (mut sink, mut frames) = socket.split();
    let (out, mut queue) = unbounded::<ClientMsg>();
    let (abort, registration) = AbortHandle::new_pair();
    {
        let mut state = inner.borrow_mut();
        if state.ended {
            return Ended::ForGood;
        }
        let join = ClientMsg::Join {
            room: state.room.clone(),
            name: state.name.clone(),
            secret: Some(state.secret.clone()),
            password: state.password.clone(),
            listed: state.listed,
            media: state.media(),
        };
        let _ = out.unbounded_send(join);
        state.out = Some(out);
        state.reader = Some(abort);
    }
    spawn_local(async move {
        while let Some(msg) = queue.next().await {
            if sink.send(Message::Text(msg.to_json())).await.is_err() {
                break;
            }
        }
    });
    let mut welcomed = false;
    let mut replaced = false;
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
                        handle(inner, msg).await;
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
    let aborted = Abortable::new(read, registration).await.is_err();
    // Offline from here: the writer ends, the socket closes.
    inner.borrow_mut().out = None;
    if aborted || inner.borrow().ended {
        return Ended::ForGood;
    }
    if replaced {
        let call = Call(inner.clone());
        let ui = inner.borrow().ui;
        ui.phase.set(Phase::Refused(ui.texts.opened_elsewhere.into()));
        call.hang_up();
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

/// Applies one server message.
async fn handle(inner: &Rc<RefCell<Inner>>, msg: ServerMsg) {
    let result = match msg {
        ServerMsg::Welcome { key, peers, ice_servers, resumed, ice_transport_policy, locked, chat, .. } => {
            {
                let state = inner.borrow();
                state.ui.add_chat(chat, Some(&key));
                state.ui.me.set(Some(key.clone()));
                if state.password.is_some() && !locked && !resumed {
                    // Someone was here first and left the room open: say so rather than let
                    // this person believe the room is protected.
                    state.ui.notice.set(Some(state.ui.texts.password_not_set.into()));
                }
            }
            on_welcome(inner, key, peers, ice_servers, ice_transport_policy, resumed);
            Ok(())
        }
        ServerMsg::IceServers { ice_servers } => {
            let mut state = inner.borrow_mut();
            let policy = state.ice_transport_policy;
            update_ice_servers(&mut state, ice_servers, policy);
            Ok(())
        }
        ServerMsg::PeerJoined { peer } => {
            let key = peer.key.clone();
            let new = inner.borrow_mut().upsert_peer(peer);
            // Someone new: the one already here calls. Someone known (back after a server
            // restart): the connection we have goes on.
            if new {
                call_peer(inner, &key)
            } else {
                Ok(())
            }
        }
        ServerMsg::PeerLeft { id } => {
            let mut state = inner.borrow_mut();
            if let Some(key) = state.key_of_id(id) {
                state.remove_peer(&key);
            }
            Ok(())
        }
        ServerMsg::PeerMedia { id, media } => {
            let state = inner.borrow();
            if let Some(peer) = state.key_of_id(id).and_then(|k| state.peer(&k).map(|p| p.tile.media.clone())) {
                peer.set(media);
            }
            Ok(())
        }
        ServerMsg::Signal { from, signal } => {
            let key = inner.borrow().key_of_id(from);
            match key {
                None => {
                    warn(&format!("confab: signal from unknown peer {from}"));
                    Ok(())
                }
                Some(key) => match signal {
                    Signal::Offer { sdp } => on_description(inner, &key, true, &sdp).await,
                    Signal::Answer { sdp } => on_description(inner, &key, false, &sdp).await,
                    Signal::Candidate(candidate) => on_candidate(inner, &key, candidate).await,
                },
            }
        }
        ServerMsg::Chat { message } => {
            let state = inner.borrow();
            state.ui.add_chat(vec![message], state.me.as_ref());
            Ok(())
        }
        ServerMsg::Error { code, message, retry_after_ms } => {
            let ui = inner.borrow().ui;
            match code {
                ErrorCode::TooManyAttempts => {
                    let secs = retry_after_ms.unwrap_or(1000).div_ceil(1000);
                    ui.phase.set(Phase::PasswordWait { secs });
                    Call(inner.clone()).hang_up();
                }
                ErrorCode::TooManyPlaces => {
                    ui.phase.set(Phase::Refused(ui.texts.too_many_places.into()));
                    Call(inner.clone()).hang_up();
                }
                ErrorCode::RoomFull => {
                    ui.phase.set(Phase::RoomFull);
                    Call(inner.clone()).hang_up();
                }
                ErrorCode::PasswordRequired | ErrorCode::WrongPassword => {
                    ui.phase.set(Phase::NeedsPassword { wrong: code == ErrorCode::WrongPassword });
                    Call(inner.clone()).hang_up();
                }
                ErrorCode::InvalidRoom
                | ErrorCode::InvalidName
                | ErrorCode::AlreadyJoined
                | ErrorCode::InvalidSecret
                | ErrorCode::InvalidPassword
                | ErrorCode::ServerFull => {
                    ui.phase.set(Phase::Refused(message));
                    Call(inner.clone()).hang_up();
                }
                ErrorCode::InvalidChat | ErrorCode::RateLimited => ui.notice.set(Some(message)),
                _ => warn(&format!("confab: server refused a message: {message}")),
            }
            Ok(())
        }
    };
    if let Err(e) = result {
        warn(&format!("confab: {e}"));
    }
}

/// Fresh TURN credentials: connections that go on use them for their next ICE restart, new
/// connections from the start.
fn update_ice_servers(state: &mut Inner, ice_servers: Vec<IceServer>, policy: IceTransportPolicy) {
    let config = rtc_configuration(&ice_servers, policy);
    for (_, peer) in &state.peers {
        if let Some(conn) = &peer.conn {
            if let Err(e) = conn.pc.set_configuration_with_configuration(&config) {
                warn(&format!("confab: could not update ICE servers: {}", js_detail(&e)));
            }
        }
    }
    state.ice_servers = ice_servers;
    state.ice_transport_policy = policy;
}

/// Joined (again). Reconciles the peers we know with the room as the server sees it.
fn on_welcome(
    inner: &Rc<RefCell<Inner>>,
    key: PeerKey,
    peers: Vec<PeerInfo>,
    ice_servers: Vec<IceServer>,
    policy: IceTransportPolicy,
    resumed: bool,
) {
    let (to_call, generation) = {
        let mut state = inner.borrow_mut();
        state.me = Some(key);
        update_ice_servers(&mut state, ice_servers, policy);
        state.ui.phase.set(Phase::InRoom);
        for (_, peer) in state.peers.iter_mut() {
            peer.confirmed = false;
        }
        let mut to_call = Vec::new();
        for info in peers {
            let key = info.key.clone();
            let new = state.upsert_peer(info);
            // After a resume, whoever joined while we were away sent an offer we never got:
            // call them (perfect negotiation settles it if they call too).
            let unconnected = state.peer(&key).is_some_and(|p| p.conn.is_none());
            if resumed && (new || unconnected) {
                to_call.push(key);
            }
        }
        if resumed {
            // Whoever is not in the room any more left while we were away.
            state.drop_unconfirmed();
        } else {
            state.welcomes += 1;
        }
        // Our mute state may have changed while offline.
        state.send(ClientMsg::Media(state.media()));
        (to_call, state.welcomes)
    };
    for key in to_call {
        if let Err(e) = call_peer(inner, &key) {
            warn(&format!("confab: {e}"));
        }
    }
    resend_pending_offers(inner);
    if !resumed {
        // After a server restart everyone comes back with a new id; whoever has not come back
        // in a while is gone.
        let engine = Rc::downgrade(inner);
        spawn_local(async move {
            TimeoutFuture::new(REJOIN_WAIT_MS).await;
            let Some(inner) = engine.upgrade() else { return };
            let mut state = inner.borrow_mut();
            if state.welcomes != generation || state.ended {
                return;
            }
            state.drop_unconfirmed();
        });
    }
}

/// After a reconnect: offers made while offline (or lost with the old socket) are sent again,
/// and connections that broke meanwhile restart ICE (which negotiates anew).
fn resend_pending_offers(inner: &Rc<RefCell<Inner>>) {
    let state = inner.borrow();
    for (_, peer) in &state.peers {
        let Some(conn) = &peer.conn else { continue };
        if string_prop(&conn.pc, "signalingState") == "have-local-offer" {
            if let Some((_, sdp)) = local_sdp(&conn.pc).filter(|(kind, _)| kind == "offer") {
                state.send(ClientMsg::Signal { to: peer.id, signal: Signal::Offer { sdp } });
            }
        } else if matches!(string_prop(&conn.pc, "connectionState").as_str(), "failed" | "disconnected") {
            restart_ice(&conn.pc);
        }
    }
}

/// Lists the devices into the pickers. A camera or microphone in use that is no longer listed
/// (unplugged) is replaced by the first one listed, and the person is told; a chosen speaker
/// that went away falls back to the system's default.
async fn refresh_devices(inner: &Rc<RefCell<Inner>>) {
    let found = media::list_devices().await;
    let (camera, microphone, ui) = {
        let state = inner.borrow();
        if state.ended {
            return;
        }
        let local = state.local.as_ref();
        let camera = local.and_then(|s| first_track(&s.get_video_tracks())).as_ref().and_then(media::device_id_of);
        let microphone = local.and_then(|s| first_track(&s.get_audio_tracks())).as_ref().and_then(media::device_id_of);
        (camera, microphone, state.ui)
    };
    let listed = |list: &[Device], id: &Option<String>| id.as_ref().is_none_or(|id| list.iter().any(|d| &d.id == id));
    let call = Call(inner.clone());
    let mut told = Vec::new();
    if !listed(&found.cameras, &camera) {
        if let Some(first) = found.cameras.first() {
            told.push((ui.texts.camera_unplugged)(&first.label));
            call.switch_camera(first.id.clone());
        }
    } else {
        ui.camera.set(camera);
    }
    if !listed(&found.microphones, &microphone) {
        if let Some(first) = found.microphones.first() {
            told.push((ui.texts.microphone_unplugged)(&first.label));
            call.switch_microphone(first.id.clone());
        }
    } else {
        ui.microphone.set(microphone);
    }
    if !listed(&found.speakers, &ui.speaker.get_untracked()) {
        told.push(ui.texts.speaker_unplugged.into());
        ui.speaker.set(None);
    }
    ui.cameras.set(found.cameras);
    ui.microphones.set(found.microphones);
    ui.speakers.set(found.speakers);
    if !told.is_empty() {
        ui.notice.set(Some(told.join(" ")));
    }
}

/// Opens microphone `device_id` and sends it instead of the current one, muted if the call is.
async fn switch_microphone(inner: &Rc<RefCell<Inner>>, device_id: &str) -> Result<(), MediaProblem> {
    let track = media::open_microphone(device_id).await?;
    {
        let state = inner.borrow();
        if state.ended {
            track.stop();
            return Ok(());
        }
        track.set_enabled(!state.muted);
    }
    send_track(inner, &track).await;
    let state = inner.borrow();
    if replace_local_track(&state, &track).is_some() {
        state.ui.microphone.set(Some(device_id.to_owned()));
    }
    Ok(())
}

/// Puts `track` in the local stream in place of the tracks of its kind, which are stopped; the
/// stream, or `None` (and `track` stopped) if the call has ended.
fn replace_local_track(state: &Inner, track: &MediaStreamTrack) -> Option<MediaStream> {
    let Some(local) = state.local.clone().filter(|_| !state.ended) else {
        track.stop();
        return None;
    };
    let old = if track.kind() == "audio" { local.get_audio_tracks() } else { local.get_video_tracks() };
    for old in old.iter().map(JsCast::unchecked_into::<MediaStreamTrack>) {
        local.remove_track(&old);
        old.stop();
    }
    local.add_track(track);
    Some(local)
}

/// How often audio levels are sampled for the active-speaker highlight.
const SPEAKER_SAMPLE_MS: u32 = 300;

/// Samples everyone's audio level (received, and our own as sent) from `getStats` a few times a
/// second and moves the speaking highlight, until the call ends.
async fn watch_speakers(engine: Weak<RefCell<Inner>>) {
    let mut speaker = ActiveSpeaker::default();
    // Counters of each connection at the last stats sample, for the rates.
    let mut counted: Vec<(PeerKey, stats::Counters)> = Vec::new();
    let mut tick: u32 = 0;
    loop {
        tick = tick.wrapping_add(1);
        // The stats panel's numbers, about once a second (every third level sample).
        let sample_stats = tick.is_multiple_of(3);
        TimeoutFuture::new(SPEAKER_SAMPLE_MS).await;
        let Some(inner) = engine.upgrade() else { return };
        let (connections, me, muted, ui) = {
            let state = inner.borrow();
            if state.ended {
                return;
            }
            let connections: Vec<(PeerKey, RtcPeerConnection)> =
                state.peers.iter().filter_map(|(k, p)| p.conn.as_ref().map(|c| (k.clone(), c.pc.clone()))).collect();
            (connections, state.me.clone(), state.muted, state.ui)
        };
        drop(inner);
        let mut levels = Vec::new();
        let mut own = 0.0_f64;
        for (key, pc) in connections {
            let Ok(report) = JsFuture::from(pc.get_stats()).await else { continue };
            let (heard, sent) = audio_levels(&report);
            if sample_stats {
                let (counters, mut sample) = read_stats(&report);
                if let Some((_, before)) = counted.iter().find(|(k, _)| *k == key) {
                    (sample.kbps_in, sample.kbps_out, sample.loss_percent) = stats::rates(before, &counters);
                    if let Some(inner) = engine.upgrade() {
                        if let Some(peer) = inner.borrow().peer(&key) {
                            peer.tile.stats.update(|history| stats::remember(history, sample));
                        }
                    }
                }
                counted.retain(|(k, _)| *k != key);
                counted.push((key.clone(), counters));
            }
            levels.push((key, heard));
            own = own.max(sent);
        }
        if let Some(me) = me {
            levels.push((me, if muted { 0.0 } else { own }));
        }
        let now = speaker.update(&levels);
        if ui.speaking.try_get_untracked().flatten() != now {
            ui.speaking.try_set(now);
        }
    }
}

/// The counters and the instant values (RTT, codec, video size and rate) of one stats report.
fn read_stats(report: &JsValue) -> (stats::Counters, stats::Sample) {
    let mut counters = stats::Counters::default();
    let mut sample = stats::Sample::default();
    let Ok(Some(entries)) = js_sys::try_iter(report) else { return (counters, sample) };
    let all: Vec<JsValue> = entries.flatten().map(|entry| Array::from(&entry).get(1)).collect();
    let number = |stat: &JsValue, name: &str| Reflect::get(stat, &name.into()).ok().and_then(|v| v.as_f64());
    let mut codec_id = None;
    for stat in &all {
        counters.at_ms = counters.at_ms.max(number(stat, "timestamp").unwrap_or(0.0));
        match string_prop(stat, "type").as_str() {
            "inbound-rtp" => {
                counters.bytes_in += number(stat, "bytesReceived").unwrap_or(0.0);
                counters.packets_received += number(stat, "packetsReceived").unwrap_or(0.0);
                counters.packets_lost += number(stat, "packetsLost").unwrap_or(0.0).max(0.0);
                if string_prop(stat, "kind") == "video" {
                    let size = (number(stat, "frameWidth"), number(stat, "frameHeight"));
                    if let (Some(w), Some(h)) = size {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let size = (w as u32, h as u32);
                        sample.resolution = Some(size);
                    }
                    sample.fps = number(stat, "framesPerSecond");
                    codec_id = Some(string_prop(stat, "codecId"));
                }
            }
            "outbound-rtp" => counters.bytes_out += number(stat, "bytesSent").unwrap_or(0.0),
            "candidate-pair" if string_prop(stat, "state") == "succeeded" => {
                let nominated = Reflect::get(stat, &"nominated".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false);
                if let (true, Some(rtt)) = (nominated, number(stat, "currentRoundTripTime")) {
                    sample.rtt_ms = Some(rtt * 1000.0);
                }
            }
            _ => {}
        }
    }
    if let Some(codec_id) = codec_id {
        sample.codec = all
            .iter()
            .find(|s| string_prop(s, "id") == codec_id)
            .map(|codec| string_prop(codec, "mimeType").trim_start_matches("video/").to_owned());
    }
    (counters, sample)
}

/// The received (`inbound-rtp`) and sent (`media-source`) audio levels in one stats report.
fn audio_levels(report: &JsValue) -> (f64, f64) {
    let (mut heard, mut sent) = (0.0_f64, 0.0_f64);
    let Ok(Some(entries)) = js_sys::try_iter(report) else { return (0.0, 0.0) };
    for entry in entries.flatten() {
        let stat = Array::from(&entry).get(1);
        if string_prop(&stat, "kind") != "audio" {
            continue;
        }
        let level = Reflect::get(&stat, &"audioLevel".into()).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
        match string_prop(&stat, "type").as_str() {
            "inbound-rtp" => heard = heard.max(level),
            "media-source" => sent = sent.max(level),
            _ => {}
        }
    }
    (heard, sent)
}

/// Opens `device_id` and sends it instead of the current camera: `replaceTrack` on every video
/// sender first (the old camera keeps sending until then), then the preview, then the old track
/// is stopped. Audio is untouched, so mute stays as it was.
async fn switch_camera(inner: &Rc<RefCell<Inner>>, device_id: &str) -> Result<(), MediaProblem> {
    let track = media::open_camera(device_id).await?;
    {
        let state = inner.borrow();
        if state.ended {
            track.stop();
            return Ok(());
        }
        track.set_enabled(!state.camera_off);
    }
    // While a screen is shared the new camera only waits in the local stream; stopping the
    // share sends it.
    let sharing = inner.borrow().screen.is_some();
    if !sharing {
        send_track(inner, &track).await;
    }
    let state = inner.borrow();
    if let Some(local) = replace_local_track(&state, &track) {
        state.ui.local.set(Some(SendWrapper::new(local)));
        state.ui.camera.set(Some(device_id.to_owned()));
    }
    Ok(())
}

/// The sender whose track is video: the notes' `getSenders().find(kind == "video")`.
fn video_sender(pc: &RtcPeerConnection) -> Option<RtcRtpSender> {
    sender_of(pc, "video")
}

/// The sender whose track is of `kind` (`audio` or `video`).
fn sender_of(pc: &RtcPeerConnection, kind: &str) -> Option<RtcRtpSender> {
    pc.get_senders()
        .iter()
        .map(JsCast::unchecked_into::<RtcRtpSender>)
        .find(|sender| sender.track().is_some_and(|t| t.kind() == kind))
}
