//! The call engine (browser only): local media, the signaling socket, and one
//! `RTCPeerConnection` per remote participant.
//!
//! The flow is the one in the project's notes:
//! 1. `getUserMedia` → the local stream, shown in the preview.
//! 2. Open `/ws`, send `join`. The server answers `welcome` with the peers already present.
//! 3. A peer already in the room makes the offer when someone joins (`peer_joined`):
//!    `addTrack` for each local track, `createOffer`, `setLocalDescription`, send `offer`.
//! 4. The newcomer receives the offer: `setRemoteDescription`, `createAnswer`,
//!    `setLocalDescription`, send `answer`; the offerer sets it as its remote description.
//! 5. Both trickle ICE: each `icecandidate` event is sent, each received candidate added.
//! 6. Remote media arrives through the `track` event and is shown in the peer's tile.
//!
//! Server messages are handled one at a time, in order, so an offer is fully applied before the
//! candidates that follow it. Mute and camera-off live in [`Inner`] as the single source of
//! truth and are applied to every track that starts being sent, including after a camera switch
//! (which swaps the video track with `RTCRtpSender.replaceTrack`, without renegotiation).
//!
//! `MediaStream` and `MediaStreamTrack` have an inherent `clone()` that calls the JS method and
//! opens new tracks; copying the handle is spelled `Clone::clone(&stream)` here.
//!
//! Every JS callback is a `gloo_events::EventListener` owned by the [`Peer`] it belongs to and
//! removed when that peer is dropped; nothing is leaked with `Closure::forget`.

use crate::media::{self, first_track, stop_all, tracks};
use crate::model::{CallUi, RemoteTile};
use crate::status::{MediaProblem, PeerState, Phase};
use confab_protocol::{ClientMsg, ErrorCode, IceCandidate, IceServer, PeerId, PeerInfo, ServerMsg, Signal, WS_PATH};
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::future::{AbortHandle, Abortable};
use futures::{SinkExt, StreamExt};
use gloo_events::EventListener;
use gloo_net::websocket::{futures::WebSocket, Message};
use js_sys::{Array, Reflect};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    MediaStream, MediaStreamTrack, RtcConfiguration, RtcIceCandidateInit, RtcIceServer, RtcPeerConnection,
    RtcPeerConnectionIceEvent, RtcRtpSender, RtcSdpType, RtcSessionDescriptionInit, RtcTrackEvent,
};

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

fn warn(message: &str) {
    web_sys::console::warn_1(&message.into());
}

/// The most candidates kept for a peer before its description arrives.
const MAX_PENDING_CANDIDATES: usize = 64;

/// A handle on a running call, owned by the room page. Dropping it does not end the call;
/// [`Call::hang_up`] does.
#[derive(Clone)]
pub struct Call(Rc<RefCell<Inner>>);

/// One remote participant.
struct Peer {
    /// The connection to them.
    pc: RtcPeerConnection,
    /// What their tile shows.
    tile: RemoteTile,
    /// Candidates that arrived before the remote description; added once it is set.
    pending: Vec<IceCandidate>,
    /// `icecandidate`, `track` and `connectionstatechange`; removed on drop.
    _listeners: [EventListener; 3],
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.pc.close();
    }
}

/// The engine's state.
struct Inner {
    /// The signals the page renders.
    ui: CallUi,
    /// The camera and microphone stream, once open.
    local: Option<MediaStream>,
    /// Queue to the socket writer, once connected.
    out: Option<UnboundedSender<ClientMsg>>,
    /// ICE servers from the welcome.
    ice_servers: Vec<IceServer>,
    /// Everyone else in the room.
    peers: HashMap<PeerId, Peer>,
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
    /// Hung up: nothing may start any more.
    ended: bool,
}

impl Call {
    /// Starts a call in `room` as `name`, reporting to `ui`.
    pub fn start(room: String, name: String, ui: CallUi) -> Call {
        let call = Call(Rc::new(RefCell::new(Inner {
            ui,
            local: None,
            out: None,
            ice_servers: Vec::new(),
            peers: HashMap::new(),
            reader: None,
            muted: false,
            camera_off: false,
            switching: false,
            next_camera: None,
            ended: false,
        })));
        spawn_local(run(call.0.clone(), room, name));
        call
    }

    /// Mutes or unmutes the microphone for everyone.
    pub fn set_muted(&self, muted: bool) {
        let mut inner = self.0.borrow_mut();
        inner.muted = muted;
        inner.apply_track_states();
        inner.ui.muted.set(muted);
    }

    /// Turns the camera off (black frames) or on again.
    pub fn set_camera_off(&self, off: bool) {
        let mut inner = self.0.borrow_mut();
        inner.camera_off = off;
        inner.apply_track_states();
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
                    state.ui.notice.set(Some(format!("Could not switch camera. {}", problem.explanation())));
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
        if let Some(reader) = inner.reader.take() {
            reader.abort();
        }
        inner.ui.tiles.set(Vec::new());
        inner.ui.local.set(None);
    }
}

impl Inner {
    fn apply_track_states(&self) {
        let Some(local) = &self.local else { return };
        for track in tracks(local) {
            track.set_enabled(match track.kind().as_str() {
                "audio" => !self.muted,
                _ => !self.camera_off,
            });
        }
    }

    fn send(&self, msg: ClientMsg) {
        if let Some(out) = &self.out {
            let _ = out.unbounded_send(msg);
        }
    }

    fn sync_tiles(&self) {
        let mut tiles: Vec<RemoteTile> = self.peers.values().map(|p| p.tile.clone()).collect();
        tiles.sort_by_key(|t| t.id);
        self.ui.tiles.set(tiles);
    }

    /// Creates the connection to `info`, with our tracks attached, and its tile.
    fn add_peer(&mut self, info: PeerInfo) -> Result<RtcPeerConnection, WebRtcError> {
        if let Some(existing) = self.peers.get(&info.id) {
            return Ok(existing.pc.clone());
        }
        let pc = new_peer_connection(&self.ice_servers)?;
        if let Some(local) = &self.local {
            for track in tracks(local) {
                pc.add_track_0(&track, local);
            }
        }
        let tile = RemoteTile::new(info.id, info.name.to_string());
        let listeners = listen(&pc, info.id, &tile, self.out.clone());
        self.peers.insert(info.id, Peer { pc: pc.clone(), tile, pending: Vec::new(), _listeners: listeners });
        self.sync_tiles();
        Ok(pc)
    }

    fn remove_peer(&mut self, id: PeerId) {
        if self.peers.remove(&id).is_some() {
            self.sync_tiles();
        }
    }
}

fn new_peer_connection(ice_servers: &[IceServer]) -> Result<RtcPeerConnection, WebRtcError> {
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
    RtcPeerConnection::new_with_configuration(&config)
        .map_err(|e| WebRtcError { step: "creating the peer connection", detail: js_detail(&e) })
}

/// Wires the connection's events to the signaling queue and the tile.
fn listen(
    pc: &RtcPeerConnection,
    peer: PeerId,
    tile: &RemoteTile,
    out: Option<UnboundedSender<ClientMsg>>,
) -> [EventListener; 3] {
    let on_candidate = EventListener::new(pc, "icecandidate", move |event| {
        let Some(event) = event.dyn_ref::<RtcPeerConnectionIceEvent>() else { return };
        // A null candidate marks the end of gathering; nothing to send.
        let Some(candidate) = event.candidate() else { return };
        let signal = Signal::Candidate(IceCandidate {
            candidate: candidate.candidate(),
            sdp_mid: candidate.sdp_mid(),
            sdp_m_line_index: candidate.sdp_m_line_index(),
        });
        if let Some(out) = &out {
            let _ = out.unbounded_send(ClientMsg::Signal { to: peer, signal });
        }
    });
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
    let state = tile.state.clone();
    let watched = pc.clone();
    let on_state = EventListener::new(pc, "connectionstatechange", move |_| {
        let connection_state =
            Reflect::get(&watched, &"connectionState".into()).ok().and_then(|s| s.as_string()).unwrap_or_default();
        state.set(PeerState::from_connection_state(&connection_state));
    });
    [on_candidate, on_track, on_state]
}

fn ws_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}{WS_PATH}", location.host().ok()?))
}

/// The whole life of a call: media, then the socket, then server messages until the end.
async fn run(inner: Rc<RefCell<Inner>>, room: String, name: String) {
    let ui = inner.borrow().ui;
    ui.phase.set(Phase::StartingMedia);
    let stream = match media::open_camera_and_mic().await {
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
    let current = first_track(&stream.get_video_tracks()).as_ref().and_then(media::device_id_of);
    ui.cameras.set(media::list_cameras().await);
    ui.camera.set(current);

    ui.phase.set(Phase::Joining);
    let Some(socket) = ws_url().and_then(|url| WebSocket::open(&url).ok()) else {
        ui.phase.set(Phase::Lost);
        return;
    };
    let (mut sink, mut frames) = socket.split();
    let (out, mut queue) = unbounded::<ClientMsg>();
    let _ = out.unbounded_send(ClientMsg::Join { room, name });
    let (abort, registration) = AbortHandle::new_pair();
    {
        let mut state = inner.borrow_mut();
        if state.ended {
            return;
        }
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
    let read = async {
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(Message::Text(text)) => match ServerMsg::from_json(&text) {
                    Ok(msg) => handle(&inner, msg).await,
                    Err(e) => warn(&format!("confab: unreadable server message: {e}")),
                },
                Ok(Message::Bytes(_)) => warn("confab: unexpected binary frame from the server"),
                Err(e) => {
                    warn(&format!("confab: signaling socket error: {e}"));
                    break;
                }
            }
        }
    };
    let finished = Abortable::new(read, registration).await.is_ok();
    let state = inner.borrow();
    // The server went away. Connections already made keep their media flowing (it is peer to
    // peer); only new participants cannot reach us.
    if finished && !state.ended && !state.ui.phase.try_with_untracked(Phase::is_over).unwrap_or(true) {
        ui.phase.set(Phase::Lost);
    }
}

/// Applies one server message.
async fn handle(inner: &Rc<RefCell<Inner>>, msg: ServerMsg) {
    let result = match msg {
        ServerMsg::Welcome { ice_servers, peers, .. } => {
            let mut state = inner.borrow_mut();
            state.ice_servers = ice_servers;
            state.ui.phase.set(Phase::InRoom);
            // Those already here will each send an offer.
            peers.into_iter().try_for_each(|peer| state.add_peer(peer).map(drop))
        }
        ServerMsg::PeerJoined { peer } => {
            let id = peer.id;
            let pc = inner.borrow_mut().add_peer(peer);
            match pc {
                Ok(pc) => make_offer(inner, id, &pc).await,
                Err(e) => Err(e),
            }
        }
        ServerMsg::PeerLeft { id } => {
            inner.borrow_mut().remove_peer(id);
            Ok(())
        }
        ServerMsg::Signal { from, signal } => {
            let pc = inner.borrow().peers.get(&from).map(|p| p.pc.clone());
            match pc {
                None => {
                    warn(&format!("confab: signal from unknown peer {from}"));
                    Ok(())
                }
                Some(pc) => match signal {
                    Signal::Offer { sdp } => answer_offer(inner, from, &pc, &sdp).await,
                    Signal::Answer { sdp } => accept_answer(inner, from, &pc, &sdp).await,
                    Signal::Candidate(candidate) => add_candidate(inner, from, &pc, candidate).await,
                },
            }
        }
        ServerMsg::Error { code, message } => {
            let state = inner.borrow();
            match code {
                ErrorCode::RoomFull => {
                    state.ui.phase.set(Phase::RoomFull);
                    drop(state);
                    Call(inner.clone()).hang_up();
                }
                ErrorCode::InvalidRoom | ErrorCode::InvalidName | ErrorCode::AlreadyJoined => {
                    state.ui.phase.set(Phase::Refused(message));
                    drop(state);
                    Call(inner.clone()).hang_up();
                }
                _ => warn(&format!("confab: server refused a message: {message}")),
            }
            Ok(())
        }
    };
    if let Err(e) = result {
        warn(&format!("confab: {e}"));
    }
}

fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let init = RtcSessionDescriptionInit::new(kind);
    init.set_sdp(sdp);
    init
}

fn sdp_of(description: &JsValue) -> String {
    Reflect::get(description, &"sdp".into()).ok().and_then(|s| s.as_string()).unwrap_or_default()
}

async fn make_offer(inner: &Rc<RefCell<Inner>>, to: PeerId, pc: &RtcPeerConnection) -> Result<(), WebRtcError> {
    let offer = settle("createOffer", pc.create_offer()).await?;
    let sdp = sdp_of(&offer);
    settle("setLocalDescription(offer)", pc.set_local_description(&description(RtcSdpType::Offer, &sdp))).await?;
    inner.borrow().send(ClientMsg::Signal { to, signal: Signal::Offer { sdp } });
    Ok(())
}

async fn answer_offer(
    inner: &Rc<RefCell<Inner>>,
    from: PeerId,
    pc: &RtcPeerConnection,
    sdp: &str,
) -> Result<(), WebRtcError> {
    settle("setRemoteDescription(offer)", pc.set_remote_description(&description(RtcSdpType::Offer, sdp))).await?;
    flush_candidates(inner, from, pc).await;
    let answer = settle("createAnswer", pc.create_answer()).await?;
    let sdp = sdp_of(&answer);
    settle("setLocalDescription(answer)", pc.set_local_description(&description(RtcSdpType::Answer, &sdp))).await?;
    inner.borrow().send(ClientMsg::Signal { to: from, signal: Signal::Answer { sdp } });
    Ok(())
}

async fn accept_answer(
    inner: &Rc<RefCell<Inner>>,
    from: PeerId,
    pc: &RtcPeerConnection,
    sdp: &str,
) -> Result<(), WebRtcError> {
    settle("setRemoteDescription(answer)", pc.set_remote_description(&description(RtcSdpType::Answer, sdp))).await?;
    flush_candidates(inner, from, pc).await;
    Ok(())
}

fn candidate_init(candidate: &IceCandidate) -> RtcIceCandidateInit {
    let init = RtcIceCandidateInit::new(&candidate.candidate);
    init.set_sdp_mid(candidate.sdp_mid.as_deref());
    init.set_sdp_m_line_index(candidate.sdp_m_line_index);
    init
}

async fn add_candidate(
    inner: &Rc<RefCell<Inner>>,
    from: PeerId,
    pc: &RtcPeerConnection,
    candidate: IceCandidate,
) -> Result<(), WebRtcError> {
    if pc.remote_description().is_none() {
        if let Some(peer) = inner.borrow_mut().peers.get_mut(&from) {
            // A peer gathers a handful of candidates; more before any description is abuse.
            if peer.pending.len() < MAX_PENDING_CANDIDATES {
                peer.pending.push(candidate);
            }
        }
        return Ok(());
    }
    let init = candidate_init(&candidate);
    settle("addIceCandidate", pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await?;
    Ok(())
}

async fn flush_candidates(inner: &Rc<RefCell<Inner>>, from: PeerId, pc: &RtcPeerConnection) {
    let pending = inner.borrow_mut().peers.get_mut(&from).map(|p| std::mem::take(&mut p.pending)).unwrap_or_default();
    for candidate in pending {
        let init = candidate_init(&candidate);
        if let Err(e) =
            settle("addIceCandidate", pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await
        {
            warn(&format!("confab: {e}"));
        }
    }
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
    // Connections created while the first pass runs still got the old track from the local
    // stream; the second pass catches them.
    for _pass in 0..2 {
        let senders: Vec<RtcRtpSender> = {
            let state = inner.borrow();
            state
                .peers
                .values()
                .filter_map(|p| video_sender(&p.pc))
                .filter(|sender| sender.track().is_none_or(|t| t.id() != track.id()))
                .collect()
        };
        for sender in senders {
            if let Err(e) = settle("replaceTrack", sender.replace_track(Some(&track))).await {
                warn(&format!("confab: {e}"));
            }
        }
    }
    let state = inner.borrow();
    let Some(local) = state.local.clone().filter(|_| !state.ended) else {
        track.stop();
        return Ok(());
    };
    let old: Vec<MediaStreamTrack> = local.get_video_tracks().iter().map(JsCast::unchecked_into).collect();
    for old in &old {
        local.remove_track(old);
        old.stop();
    }
    local.add_track(&track);
    state.ui.local.set(Some(SendWrapper::new(local)));
    state.ui.camera.set(Some(device_id.to_owned()));
    Ok(())
}

/// The sender whose track is video: the notes' `getSenders().find(kind == "video")`.
fn video_sender(pc: &RtcPeerConnection) -> Option<RtcRtpSender> {
    pc.get_senders()
        .iter()
        .map(JsCast::unchecked_into::<RtcRtpSender>)
        .find(|sender| sender.track().is_some_and(|t| t.kind() == "video"))
}
