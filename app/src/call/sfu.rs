//! In rooms of the welcome's `sfu_from` people or more: one `RTCPeerConnection`, to the server's
//! SFU, instead of one per participant. We send our microphone and camera once (the camera as
//! simulcast layers at half and full size) and receive one audio and one video track per other
//! participant.
//!
//! **Which way media goes** is worked out by every browser from the same roster: through the
//! SFU while the room has at least `sfu_from` people, peer to peer below. At the switch the mesh
//! connections stay until the SFU delivers that person's video (its track unmutes), so the
//! picture does not stop; then they close. Below the threshold again, the SFU connection closes
//! and everyone calls everyone (perfect negotiation settles who offers).
//!
//! **Negotiation** with the SFU: our offer opens the connection (with receive-only lines for
//! the people already there, which the SFU's answer fills and lists by `mid`), and restarts ICE
//! when it has been `disconnected` for as long as a direct connection waits (a `failed` one is
//! replaced); the SFU's own offers add and remove other people's tracks, each listed with whose
//! it is by `mid`.
//! We are the impolite side: an SFU offer that crosses ours is ignored, since the SFU withdraws
//! its own on getting ours and offers again. The SFU is ICE-lite and learns our address from our
//! connectivity checks, so no candidates are sent to it.

use super::{js_detail, local_media, negotiation, rtc, sdp, settle, warn, Engine, WebRtcError};
use crate::model::SharedStream;
use confab_protocol::{ClientMsg, PeerKey, SfuLayer, SfuTrack, Signal, TrackKind, VideoLayer};
use gloo_events::EventListener;
use leptos::prelude::*;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    MediaStream, MediaStreamTrack, RtcPeerConnection, RtcPeerConnectionState, RtcRtpTransceiver,
    RtcRtpTransceiverDirection, RtcRtpTransceiverInit, RtcSdpType, RtcSessionDescriptionInit, RtcTrackEvent,
};

/// The connection to the SFU.
pub(in crate::call) struct SfuConn {
    pc: RtcPeerConnection,
    /// Tells this connection from a later one after an `await`.
    generation: u32,
    /// Whose media each receiving transceiver carries, by `mid` (from the SFU's last offer).
    tracks: HashMap<String, (PeerKey, TrackKind)>,
    /// `track`, `connectionstatechange`; removed on drop.
    _listeners: [EventListener; 2],
    /// `unmute` of received video tracks: the first frame of a person through the SFU.
    arrivals: Vec<EventListener>,
    /// While `disconnected`: the ICE restart due if it lasts.
    recovery: Option<gloo_timers::callback::Timeout>,
    /// The full-size camera layer was made to wait for the direct connections to close (see
    /// [`local_media::add_sfu_transceivers`]): each track through the SFU then checks that it
    /// runs. False when nobody was called directly (a newcomer), whose tracks so do not read the
    /// sender's parameters once each (a synchronous call: 29 ms of the page's main thread over
    /// a join to three people, in a profile of one).
    full_layer_waited: bool,
}

impl SfuConn {
    pub(in crate::call) fn pc(&self) -> &RtcPeerConnection {
        &self.pc
    }

    /// The `mid`s carrying `key`'s media.
    pub(in crate::call) fn mids_of(&self, key: &PeerKey) -> Vec<String> {
        self.tracks.iter().filter(|(_, (k, _))| k == key).map(|(mid, _)| mid.clone()).collect()
    }
}

impl Drop for SfuConn {
    fn drop(&mut self) {
        self.pc.close();
    }
}

/// Whether the room is large enough to go through the SFU.
pub(in crate::call) fn wanted(state: &super::State) -> bool {
    state.sfu_from.is_some_and(|from| from > 0 && state.roster.len() + 1 >= usize::from(from))
}

/// Opens or closes the SFU connection as the room's size says; called whenever the roster or
/// the welcome changed.
pub(in crate::call) fn update_route(engine: &Engine) {
    route(engine);
    let (ui, via_server, ended) = {
        let state = engine.borrow();
        (state.ui, state.sfu.is_some(), state.ended)
    };
    if !ended {
        ui.via_server.try_set(via_server);
    }
}

fn route(engine: &Engine) {
    let (open, closed) = {
        let mut state = engine.borrow_mut();
        if state.ended {
            return;
        }
        match (wanted(&state), state.sfu.is_some()) {
            (true, false) => (true, None),
            (false, true) => (false, state.sfu.take()),
            _ => return,
        }
    };
    if open {
        open_connection(engine);
        // A direct connection that never got connected carries nothing the SFU has to replace:
        // it closes now. (Kept, it would wait for that person's video through the SFU, which
        // someone who sends none never brings, and hold the camera's full layer back.)
        let unconnected: Vec<_> = {
            let mut state = engine.borrow_mut();
            let keys: Vec<PeerKey> = state
                .roster
                .iter()
                .filter(|(_, p)| {
                    p.conn.as_ref().is_some_and(|c| c.pc.connection_state() != RtcPeerConnectionState::Connected)
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| state.roster.get_mut(k).and_then(|p| p.conn.take())).collect()
        };
        drop(unconnected);
    }
    if let Some(closed) = closed {
        drop(closed);
        // Back to the mesh: everyone calls everyone they have no connection with.
        let keys: Vec<PeerKey> =
            engine.borrow().roster.iter().filter(|(_, p)| p.conn.is_none()).map(|(k, _)| k.clone()).collect();
        for key in keys {
            if let Err(e) = negotiation::call_peer(engine, &key) {
                warn(&format!("confab: {e}"));
            }
        }
    }
}

/// Drops the SFU connection (it failed, the SFU let it go, or signaling came back and the server
/// no longer knows it) and opens a new one if the room still wants it.
pub(in crate::call) fn reopen(engine: &Engine) {
    let old = engine.borrow_mut().sfu.take();
    drop(old);
    update_route(engine);
}

fn open_connection(engine: &Engine) {
    let made = {
        let mut state = engine.borrow_mut();
        match rtc::new_connection(&state.ice) {
            Err(e) => Err(WebRtcError { step: "creating the SFU connection", detail: js_detail(&e) }),
            Ok(pc) => {
                let generation = state.sfu_generation.wrapping_add(1);
                state.sfu_generation = generation;
                let listeners = listen(&pc, engine, generation);
                let full_layer_waited = local_media::add_sfu_transceivers(&state, &pc);
                add_receive_lines(&pc, state.roster.len().min(RECEIVE_LINES_MAX));
                state.sfu = Some(SfuConn {
                    pc: pc.clone(),
                    generation,
                    tracks: HashMap::new(),
                    _listeners: listeners,
                    arrivals: vec![],
                    recovery: None,
                    full_layer_waited,
                });
                Ok((pc, generation))
            }
        }
    };
    match made {
        Err(e) => warn(&format!("confab: {e}")),
        Ok((pc, generation)) => {
            let engine = engine.clone();
            spawn_local(async move {
                if let Err(e) = offer(&engine, &pc, generation).await {
                    warn(&format!("confab: {e}"));
                }
            });
        }
    }
}

/// Most people whose tracks the first offer has receive-only lines for (each pair is about
/// 1.5 KB of the SDP sent, see [`sdp::only_codecs`]).
const RECEIVE_LINES_MAX: usize = 8;

/// The codecs the SFU forwards: the offer it is sent lists only these.
const SFU_CODECS: [&str; 2] = ["opus", "VP8"];

/// Adds an audio and a video receive-only line for each of `people`. The SFU's answer puts the
/// others' tracks on them, so that a newcomer's first offer and answer bring everyone already in
/// the room, with no offer of the SFU's to wait for (one negotiation less before the first
/// picture: in a trace of three joins to three people, the SFU's offer took 70–530 ms from its
/// arrival to our answer). Lines the SFU has nothing for stay empty.
fn add_receive_lines(pc: &RtcPeerConnection, people: usize) {
    let init = RtcRtpTransceiverInit::new();
    init.set_direction(RtcRtpTransceiverDirection::Recvonly);
    for _ in 0..people {
        pc.add_transceiver_with_str_and_init("audio", &init);
        pc.add_transceiver_with_str_and_init("video", &init);
    }
}

/// The current connection if it is still `generation`.
fn current(engine: &Engine, generation: u32) -> Option<RtcPeerConnection> {
    engine.borrow().sfu.as_ref().filter(|s| s.generation == generation).map(|s| s.pc.clone())
}

async fn offer(engine: &Engine, pc: &RtcPeerConnection, generation: u32) -> Result<(), WebRtcError> {
    rtc::set_local_description(pc).await?;
    if current(engine, generation).is_none() {
        return Ok(());
    }
    if let Some(sdp) = rtc::local_offer(pc) {
        let sdp = sdp::only_codecs(&sdp, &SFU_CODECS);
        engine.borrow_mut().send(ClientMsg::Sfu { signal: Signal::Offer { sdp } });
        super::mark("sfu-offer-sent");
    }
    Ok(())
}

/// Applies a message from the SFU: the answer to our offer, or an offer of its own with the
/// list of whose media each transceiver will carry.
pub(in crate::call) async fn on_signal(
    engine: &Engine,
    signal: Signal,
    tracks: Vec<SfuTrack>,
) -> Result<(), WebRtcError> {
    match signal {
        Signal::Answer { sdp } => {
            let pc = {
                let mut state = engine.borrow_mut();
                let by_mid = by_mid(&state, &tracks);
                let Some(sfu) = state.sfu.as_mut() else { return Ok(()) };
                if !rtc::offer_pending(&sfu.pc) {
                    return Ok(());
                }
                // Our receive-only lines carry these from this answer on.
                sfu.tracks = by_mid;
                sfu.pc.clone()
            };
            let init = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
            init.set_sdp(&sdp);
            settle("setRemoteDescription (SFU answer)", pc.set_remote_description(&init)).await.map(drop)
        }
        Signal::Offer { sdp } => {
            let (pc, generation) = {
                let mut state = engine.borrow_mut();
                let by_mid = by_mid(&state, &tracks);
                let Some(sfu) = state.sfu.as_mut() else { return Ok(()) };
                if !rtc::is_stable(&sfu.pc) {
                    // Ours crossed it: the SFU drops its offer for ours and makes it again.
                    return Ok(());
                }
                sfu.tracks = by_mid;
                (sfu.pc.clone(), sfu.generation)
            };
            let init = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
            init.set_sdp(&sdp);
            settle("setRemoteDescription (SFU offer)", pc.set_remote_description(&init)).await?;
            rtc::set_local_description(&pc).await?;
            if current(engine, generation).is_some() {
                if let Some(sdp) = rtc::local_answer(&pc) {
                    engine.borrow_mut().send(ClientMsg::Sfu { signal: Signal::Answer { sdp } });
                }
            }
            Ok(())
        }
        // The SFU puts its one candidate in its descriptions and trickles none.
        Signal::Candidate(_) => Ok(()),
    }
}

/// Whose media each of `tracks` carries, by `mid`.
fn by_mid(state: &super::State, tracks: &[SfuTrack]) -> HashMap<String, (PeerKey, TrackKind)> {
    tracks.iter().filter_map(|t| state.roster.key_of(t.peer).map(|key| (t.mid.clone(), (key, t.kind)))).collect()
}

fn listen(pc: &RtcPeerConnection, engine: &Engine, generation: u32) -> [EventListener; 2] {
    let on_track = {
        let engine = Rc::downgrade(engine);
        EventListener::new(pc, "track", move |event| {
            let Some(event) = event.dyn_ref::<RtcTrackEvent>() else { return };
            let Some(engine) = engine.upgrade() else { return };
            on_track(&engine, event, generation);
        })
    };
    let on_state = {
        let (engine, watched) = (Rc::downgrade(engine), pc.clone());
        EventListener::new(pc, "connectionstatechange", move |_| {
            let Some(engine) = engine.upgrade() else { return };
            let connection_state = watched.connection_state();
            {
                let state = engine.borrow();
                if state.sfu.as_ref().is_none_or(|s| s.generation != generation) {
                    return;
                }
                // Tiles without a connection of their own show the SFU connection's state.
                for (_, peer) in state.roster.iter().filter(|(_, p)| p.conn.is_none()) {
                    peer.tile.state.set(rtc::peer_state(connection_state));
                }
            }
            match connection_state {
                RtcPeerConnectionState::Connected => {
                    super::mark("sfu-connected");
                    if let Some(sfu) = engine.borrow_mut().sfu.as_mut() {
                        sfu.recovery = None;
                    }
                }
                RtcPeerConnectionState::Disconnected => {
                    let weak = Rc::downgrade(&engine);
                    let timer = gloo_timers::callback::Timeout::new(negotiation::RECOVERY_DELAY_MS, move || {
                        let Some(engine) = weak.upgrade() else { return };
                        restart_ice(&engine, generation);
                    });
                    if let Some(sfu) = engine.borrow_mut().sfu.as_mut() {
                        sfu.recovery = Some(timer);
                    }
                }
                RtcPeerConnectionState::Failed => reopen(&engine),
                _ => {}
            }
        })
    };
    [on_track, on_state]
}

/// The SFU connection is still `disconnected`: a new offer with fresh ICE credentials (the
/// same connection, its tracks and mids kept).
fn restart_ice(engine: &Engine, generation: u32) {
    let Some(pc) = current(engine, generation) else { return };
    if pc.connection_state() != RtcPeerConnectionState::Disconnected || !rtc::is_stable(&pc) {
        return;
    }
    rtc::restart_ice(&pc);
    let engine = engine.clone();
    spawn_local(async move {
        if let Err(e) = offer(&engine, &pc, generation).await {
            warn(&format!("confab: {e}"));
        }
    });
}

/// A track from the SFU for a person's tile. Without a direct connection to them it shows at
/// once; with one, once their video (their audio if they send no video) arrives through the SFU.
fn on_track(engine: &Engine, event: &RtcTrackEvent, generation: u32) {
    let Some(mid) = event.transceiver().mid() else { return };
    let track = event.track();
    let (key, waits) = {
        let state = engine.borrow();
        let Some(sfu) = state.sfu.as_ref().filter(|s| s.generation == generation) else { return };
        // A receive-only line of ours that the SFU had nothing for.
        let Some((key, kind)) = sfu.tracks.get(&mid).cloned() else { return };
        let sends_video = sfu.tracks.values().any(|(k, kind)| *k == key && *kind == TrackKind::Video);
        let direct = state.roster.get(&key).is_some_and(|p| p.conn.is_some());
        let decisive = kind == TrackKind::Video || !sends_video;
        (key, direct.then_some(decisive))
    };
    match waits {
        None => through_sfu(engine, &key, generation),
        Some(false) => {}
        Some(true) if !track.muted() => through_sfu(engine, &key, generation),
        Some(true) => {
            let weak = Rc::downgrade(engine);
            let arrived = EventListener::once(&track, "unmute", move |_| {
                let Some(engine) = weak.upgrade() else { return };
                through_sfu(&engine, &key, generation);
            });
            if let Some(sfu) = engine.borrow_mut().sfu.as_mut() {
                sfu.arrivals.push(arrived);
            }
        }
    }
}

/// `key`'s media now comes through the SFU: their tile shows the SFU's tracks for them, and the
/// direct connection to them, if any, closes.
fn through_sfu(engine: &Engine, key: &PeerKey, generation: u32) {
    let (direct, tracks, tile) = {
        let mut state = engine.borrow_mut();
        let Some(sfu) = state.sfu.as_ref().filter(|s| s.generation == generation) else { return };
        let pc_state = sfu.pc.connection_state();
        let tracks: Vec<MediaStreamTrack> = sfu
            .pc
            .get_transceivers()
            .iter()
            .map(JsCast::unchecked_into::<RtcRtpTransceiver>)
            .filter(|t| t.mid().and_then(|m| sfu.tracks.get(&m)).is_some_and(|(k, _)| k == key))
            .map(|t| t.receiver().track())
            .collect();
        let Some(peer) = state.roster.get_mut(key) else { return };
        peer.tile.state.set(rtc::peer_state(pc_state));
        (peer.conn.take(), tracks, peer.tile.stream.clone())
    };
    // A new `srcObject` restarts playback: only when the tracks changed.
    let shown = tile
        .try_with_untracked(|s| s.as_ref().map(|s| tracks_of(s).iter().map(MediaStreamTrack::id).collect::<Vec<_>>()))
        .flatten()
        .unwrap_or_default();
    let wanted: Vec<String> = tracks.iter().map(MediaStreamTrack::id).collect();
    if shown.len() != wanted.len() || !wanted.iter().all(|id| shown.contains(id)) {
        if let Ok(stream) = MediaStream::new() {
            for track in &tracks {
                stream.add_track(track);
            }
            tile.set(Some(SharedStream::new(stream)));
        }
    }
    if direct.is_some() {
        super::mark("sfu-switched");
    }
    // Closed here, with the state free.
    drop(direct);
    let state = engine.borrow();
    let direct = state.roster.iter().any(|(_, p)| p.conn.is_some());
    if let Some(sfu) = state.sfu.as_ref().filter(|s| s.full_layer_waited && !direct) {
        local_media::send_full_layer(&sfu.pc);
    }
}

fn tracks_of(stream: &MediaStream) -> Vec<MediaStreamTrack> {
    crate::media::tracks(stream).collect()
}

/// The layers last asked of the SFU, per person, for the connection numbered `generation` (a
/// new connection starts from the SFU's default, the full layer).
#[derive(Default)]
pub(in crate::call) struct AskedLayers {
    generation: u32,
    asked: HashMap<PeerKey, VideoLayer>,
}

/// Tells the SFU which layer of each person's camera to send, from the size of their tile on
/// the screen now: nothing for a tile off screen or a hidden page. Only changes are sent.
pub(in crate::call) fn send_layers(engine: &Engine, asked: &mut AskedLayers) {
    let mut state = engine.borrow_mut();
    let Some(sfu) = &state.sfu else { return };
    if asked.generation != sfu.generation {
        *asked = AskedLayers { generation: sfu.generation, asked: HashMap::new() };
    }
    let Some(window) = web_sys::window() else { return };
    let Some(document) = window.document() else { return };
    let hidden = document.hidden();
    // What can be seen: the grid's own box (it scrolls when a page of tiles does not fit),
    // else the window.
    let (top, left, bottom, right) = match document.query_selector(".tiles").ok().flatten() {
        Some(grid) => {
            let r = grid.get_bounding_client_rect();
            (r.top(), r.left(), r.bottom(), r.right())
        }
        None => (
            0.0,
            0.0,
            window.inner_height().ok().and_then(|h| h.as_f64()).unwrap_or(0.0),
            window.inner_width().ok().and_then(|w| w.as_f64()).unwrap_or(0.0),
        ),
    };
    let ratio = window.device_pixel_ratio();
    let mut changes = Vec::new();
    for (key, peer) in state.roster.iter().filter(|(_, p)| p.conn.is_none()) {
        // Keys are hex; anything else is not put in a selector.
        if !key.0.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let video = document.query_selector(&format!("figure[data-key=\"{}\"] video", key.0)).ok().flatten();
        let Some(video) = video else { continue };
        let layer = if hidden {
            VideoLayer::Off
        } else {
            let r = video.get_bounding_client_rect();
            let on_screen =
                r.width() > 0.0 && r.bottom() > top && r.right() > left && r.top() < bottom && r.left() < right;
            if !on_screen {
                VideoLayer::Off
            } else if peer.tile.media.with_untracked(|m| m.screen) {
                // A shared screen is text: always sharp.
                VideoLayer::High
            } else {
                super::tile_layer::layer_for(r.width() * ratio, f64::from(crate::media::IDEAL_WIDTH))
            }
        };
        if asked.asked.get(key) != Some(&layer) {
            if let Some(peer) = state.roster.id_of(key) {
                asked.asked.insert(key.clone(), layer);
                changes.push(SfuLayer { peer, layer });
            }
        }
    }
    if !changes.is_empty() {
        state.send(ClientMsg::SfuLayers { layers: changes });
    }
}
