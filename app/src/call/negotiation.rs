//! One `RTCPeerConnection` per remote participant: perfect negotiation, trickle ICE, recovery.
//!
//! **Perfect negotiation.** The first offer is made at first contact ([`call_peer`]), every
//! later one from `negotiationneeded` (ICE restart, any change), so both sides may offer at
//! once. Each pair has a polite side (the smaller key) that yields: the impolite side ignores a
//! colliding offer, the polite side rolls back its own and answers. `setLocalDescription()` without arguments picks offer or answer.
//! Candidates of an ignored offer are dropped, not kept for later.
//!
//! **First offers that cross** (both sides call at once, as when a room goes back from the SFU to
//! the mesh): the polite side does not roll back an offer that was never answered but answers
//! from a fresh connection. Chromium, rolling back a first offer before it had begun gathering
//! candidates, gathered none for its answer, and the pair never connected (one run in three of
//! the SFU switch test's return to two).
//!
//! **ICE restart.** A connection `failed`, or `disconnected` for [`RECOVERY_DELAY_MS`], calls
//! `restartIce()`; the renegotiation goes through the same path.
//!
//! Everything here names peers by key; `super::signaling` translates to and from ids.

use super::{js_detail, local_media, mark, rtc, settle, warn, Engine, State, WeakEngine, WebRtcError};
use crate::model::{RemoteTile, SharedStream};
use confab_protocol::{IceCandidate, IceServer, IceTransportPolicy, PeerInfo, PeerKey, Signal};
use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use js_sys::Array;
use leptos::prelude::*;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    MediaStream, RtcConfiguration, RtcIceCandidateInit, RtcIceServer, RtcIceTransportPolicy, RtcPeerConnection,
    RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit, RtcTrackEvent,
};

/// The most candidates kept for a peer before its description arrives.
const MAX_PENDING_CANDIDATES: usize = 64;
/// How long a connection may stay `disconnected` before ICE is restarted.
pub(super) const RECOVERY_DELAY_MS: u32 = 3_000;

/// One remote participant, as the engine keeps them in the roster.
pub(super) struct Peer {
    /// What their tile shows.
    pub(super) tile: RemoteTile,
    /// The connection, once negotiation started.
    pub(super) conn: Option<Connection>,
}

impl super::roster::Payload for Peer {
    fn new(info: &PeerInfo) -> Self {
        Peer { tile: RemoteTile::new(info.key.clone(), info.name.to_string(), info.media), conn: None }
    }

    fn update(&mut self, info: &PeerInfo) {
        self.tile.media.set(info.media);
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }
}

/// The negotiation with one remote participant.
pub(super) struct Connection {
    /// The connection.
    pub(super) pc: RtcPeerConnection,
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

/// The ICE servers and transport policy new connections (and ICE restarts) use.
#[derive(Default)]
pub(super) struct Ice {
    /// From the welcome, refreshed by `ice_servers`.
    pub(super) servers: Vec<IceServer>,
    /// From the welcome.
    pub(super) policy: IceTransportPolicy,
}

fn connection_mut<'a>(state: &'a mut State, key: &PeerKey) -> Option<&'a mut Connection> {
    state.roster.get_mut(key).and_then(|p| p.conn.as_mut())
}

/// Fresh TURN credentials: connections that go on use them for their next ICE restart, new
/// connections from the start.
pub(super) fn update_ice_servers(state: &mut State, servers: Vec<IceServer>, policy: IceTransportPolicy) {
    let ice = Ice { servers, policy };
    let config = rtc_configuration(&ice);
    for (_, peer) in state.roster.iter() {
        if let Some(conn) = &peer.conn {
            if let Err(e) = conn.pc.set_configuration_with_configuration(&config) {
                warn(&format!("confab: could not update ICE servers: {}", js_detail(&e)));
            }
        }
    }
    state.ice = ice;
}

pub(super) fn rtc_configuration(ice: &Ice) -> RtcConfiguration {
    let servers = Array::new();
    for server in &ice.servers {
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
    config.set_ice_transport_policy(match ice.policy {
        IceTransportPolicy::All => RtcIceTransportPolicy::All,
        IceTransportPolicy::Relay => RtcIceTransportPolicy::Relay,
    });
    config
}

/// The connection to `key`, created (with its listeners) if there is none yet.
fn ensure_connection(engine: &Engine, key: &PeerKey) -> Result<Option<RtcPeerConnection>, WebRtcError> {
    let mut state = engine.borrow_mut();
    let State { roster, ice, .. } = &mut *state;
    let Some(peer) = roster.get_mut(key) else { return Ok(None) };
    if let Some(conn) = &peer.conn {
        return Ok(Some(conn.pc.clone()));
    }
    let pc = rtc::new_connection(ice)
        .map_err(|e| WebRtcError { step: "creating the peer connection", detail: js_detail(&e) })?;
    let listeners = listen(&pc, Rc::downgrade(engine), key, &peer.tile);
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

/// Closes the connection to `key` and opens a new one in its place, keeping the candidates that
/// came for it (they belong to the peer's offer, which the new connection answers).
fn replace_connection(engine: &Engine, key: &PeerKey) -> Result<Option<RtcPeerConnection>, WebRtcError> {
    let old = engine.borrow_mut().roster.get_mut(key).and_then(|p| p.conn.take());
    let pending = old.map(|mut c| std::mem::take(&mut c.pending)).unwrap_or_default();
    let pc = ensure_connection(engine, key)?;
    if let Some(conn) = connection_mut(&mut engine.borrow_mut(), key) {
        conn.pending = pending;
    }
    Ok(pc)
}

/// Starts the connection to a peer: our tracks in, and the offer made at once (its
/// `setLocalDescription` queued before the page renders the new tile; the browser makes it
/// meanwhile). Later changes go through `negotiationneeded`.
pub(super) fn call_peer(engine: &Engine, key: &PeerKey) -> Result<(), WebRtcError> {
    if let Some(pc) = ensure_connection(engine, key)? {
        {
            let state = engine.borrow();
            local_media::attach_tracks(&state, &pc);
            local_media::apply_send_quality(&state);
        }
        let (engine, key) = (engine.clone(), key.clone());
        spawn_local(async move {
            if let Err(e) = make_offer(&engine, &key).await {
                warn(&format!("confab: {e}"));
            }
        });
    }
    Ok(())
}

/// Wires a connection's events to the engine and the tile.
fn listen(pc: &RtcPeerConnection, engine: WeakEngine, key: &PeerKey, tile: &RemoteTile) -> [EventListener; 4] {
    let on_candidate = {
        let (engine, key) = (engine.clone(), key.clone());
        EventListener::new(pc, "icecandidate", move |event| {
            let Some(event) = event.dyn_ref::<RtcPeerConnectionIceEvent>() else { return };
            // A null candidate marks the end of gathering; nothing to send.
            let Some(candidate) = event.candidate() else { return };
            let Some(engine) = engine.upgrade() else { return };
            engine.borrow_mut().send_signal(
                &key,
                Signal::Candidate(IceCandidate {
                    candidate: candidate.candidate(),
                    sdp_mid: candidate.sdp_mid(),
                    sdp_m_line_index: candidate.sdp_m_line_index(),
                }),
            );
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
        stream.set(Some(SharedStream::new(remote)));
    });
    let on_state = {
        let (engine, key, state_signal, watched) = (engine.clone(), key.clone(), tile.state.clone(), pc.clone());
        EventListener::new(pc, "connectionstatechange", move |_| {
            let connection_state = watched.connection_state();
            state_signal.set(rtc::peer_state(connection_state));
            let Some(engine) = engine.upgrade() else { return };
            on_connection_state(&engine, &key, &watched, connection_state);
        })
    };
    let on_negotiation = {
        let key = key.clone();
        EventListener::new(pc, "negotiationneeded", move |_| {
            let Some(engine) = engine.upgrade() else { return };
            let key = key.clone();
            spawn_local(async move {
                if let Err(e) = make_offer(&engine, &key).await {
                    warn(&format!("confab: {e}"));
                }
            });
        })
    };
    [on_candidate, on_track, on_state, on_negotiation]
}

/// Restarts ICE on failure, or after a while `disconnected`; applies the send quality once
/// connected (encodings exist only after negotiation).
fn on_connection_state(
    engine: &Engine,
    key: &PeerKey,
    pc: &RtcPeerConnection,
    connection_state: RtcPeerConnectionState,
) {
    let mut state = engine.borrow_mut();
    if state.ended {
        return;
    }
    let (mesh, screen) = (state.roster.len() >= 2, state.media.sharing());
    let Some(conn) = connection_mut(&mut state, key) else { return };
    match connection_state {
        RtcPeerConnectionState::Connected => {
            mark("connected");
            conn.recovery = None;
            if let Some(sender) = local_media::video_sender(pc) {
                local_media::set_send_quality(&sender, mesh, screen);
            }
        }
        RtcPeerConnectionState::Failed => {
            conn.recovery = None;
            rtc::restart_ice(pc);
        }
        RtcPeerConnectionState::Disconnected => {
            let pc = pc.clone();
            conn.recovery = Some(Timeout::new(RECOVERY_DELAY_MS, move || {
                if pc.connection_state() == RtcPeerConnectionState::Disconnected {
                    rtc::restart_ice(&pc);
                }
            }));
        }
        _ => {}
    }
}

/// Makes and sends an offer: on first contact ([`call_peer`]) and for `negotiationneeded`.
async fn make_offer(engine: &Engine, key: &PeerKey) -> Result<(), WebRtcError> {
    let pc = {
        let mut state = engine.borrow_mut();
        if state.ended {
            return Ok(());
        }
        // Offline, the offer is made all the same (the event does not fire twice); it is sent
        // again after the reconnect (see `resend_pending_offers`).
        let Some(conn) = connection_mut(&mut state, key) else { return Ok(()) };
        if conn.making_offer {
            // One is on its way already (the browser fires `negotiationneeded` again once the
            // connection is stable, if something changed meanwhile).
            return Ok(());
        }
        conn.making_offer = true;
        conn.pc.clone()
    };
    let result = rtc::set_local_description(&pc).await;
    let mut state = engine.borrow_mut();
    // The connection may have been replaced meanwhile (crossing first offers): the old one's
    // offer is not sent.
    let Some(conn) = connection_mut(&mut state, key).filter(|c| c.pc == pc) else { return Ok(()) };
    conn.making_offer = false;
    result?;
    if let Some(sdp) = rtc::local_offer(&pc) {
        state.send_signal(key, Signal::Offer { sdp });
        mark("offer-sent");
    }
    Ok(())
}

/// Applies a signal from `key`.
pub(super) async fn on_signal(engine: &Engine, key: &PeerKey, signal: Signal) -> Result<(), WebRtcError> {
    match signal {
        Signal::Offer { sdp } => on_description(engine, key, true, &sdp).await,
        Signal::Answer { sdp } => on_description(engine, key, false, &sdp).await,
        Signal::Candidate(candidate) => on_candidate(engine, key, candidate).await,
    }
}

/// Applies a received offer or answer, following perfect negotiation.
async fn on_description(engine: &Engine, key: &PeerKey, is_offer: bool, sdp: &str) -> Result<(), WebRtcError> {
    mark(if is_offer { "offer-received" } else { "answer-received" });
    {
        let state = engine.borrow();
        if super::sfu::wanted(&state) && state.roster.get(key).is_some_and(|p| p.conn.is_none()) {
            // The room goes through the SFU: no new direct connections (the sender sees the same
            // room size and stops offering).
            return Ok(());
        }
    }
    let Some(mut pc) = ensure_connection(engine, key)? else { return Ok(()) };
    let first_offers_crossed = {
        let mut state = engine.borrow_mut();
        let polite = state.roster.polite(key);
        let Some(conn) = connection_mut(&mut state, key) else { return Ok(()) };
        let collision = is_offer && (conn.making_offer || !rtc::is_stable(&pc));
        conn.ignore_offer = !polite && collision;
        if conn.ignore_offer {
            return Ok(());
        }
        collision && pc.current_remote_description().is_none()
    };
    if first_offers_crossed {
        let Some(fresh) = replace_connection(engine, key)? else { return Ok(()) };
        pc = fresh;
    }
    let kind = if is_offer { RtcSdpType::Offer } else { RtcSdpType::Answer };
    let init = RtcSessionDescriptionInit::new(kind);
    init.set_sdp(sdp);
    // A polite side with an offer of its own in flight rolls it back implicitly here.
    settle("setRemoteDescription", pc.set_remote_description(&init)).await?;
    if is_offer {
        // The newcomer's first contact: its tracks go into the transceivers the offer made.
        local_media::attach_tracks(&engine.borrow(), &pc);
        rtc::set_local_description(&pc).await?;
        if let Some(sdp) = rtc::local_answer(&pc) {
            engine.borrow_mut().send_signal(key, Signal::Answer { sdp });
            mark("answer-sent");
        }
    }
    flush_candidates(engine, key, &pc).await;
    Ok(())
}

fn candidate_init(candidate: &IceCandidate) -> RtcIceCandidateInit {
    let init = RtcIceCandidateInit::new(&candidate.candidate);
    init.set_sdp_mid(candidate.sdp_mid.as_deref());
    init.set_sdp_m_line_index(candidate.sdp_m_line_index);
    init
}

async fn on_candidate(engine: &Engine, key: &PeerKey, candidate: IceCandidate) -> Result<(), WebRtcError> {
    let pc = {
        let mut state = engine.borrow_mut();
        let Some(conn) = connection_mut(&mut state, key) else { return Ok(()) };
        if conn.ignore_offer {
            // They belong to the offer we ignored (signals come in order; the answer to ours,
            // which comes next, clears the flag).
            return Ok(());
        }
        if conn.pc.remote_description().is_none() {
            // A peer gathers a handful of candidates; more before any description is abuse.
            if conn.pending.len() < MAX_PENDING_CANDIDATES {
                conn.pending.push(candidate);
            }
            return Ok(());
        }
        conn.pc.clone()
    };
    let init = candidate_init(&candidate);
    settle("addIceCandidate", pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await.map(drop)
}

async fn flush_candidates(engine: &Engine, key: &PeerKey, pc: &RtcPeerConnection) {
    let pending =
        connection_mut(&mut engine.borrow_mut(), key).map(|c| std::mem::take(&mut c.pending)).unwrap_or_default();
    for candidate in pending {
        let init = candidate_init(&candidate);
        if let Err(e) =
            settle("addIceCandidate", pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await
        {
            warn(&format!("confab: {e}"));
        }
    }
}

/// After a reconnect: offers made while offline (or lost with the old socket) are sent again,
/// and connections that broke meanwhile restart ICE (which negotiates anew).
pub(super) fn resend_pending_offers(engine: &Engine) {
    let mut state = engine.borrow_mut();
    let mut offers = Vec::new();
    for (key, peer) in state.roster.iter() {
        let Some(conn) = &peer.conn else { continue };
        if rtc::offer_pending(&conn.pc) {
            if let Some(sdp) = rtc::local_offer(&conn.pc) {
                offers.push((key.clone(), sdp));
            }
        } else if rtc::is_broken(&conn.pc) {
            rtc::restart_ice(&conn.pc);
        }
    }
    for (key, sdp) in offers {
        state.send_signal(&key, Signal::Offer { sdp });
    }
}
