//! A small typed shim over `RTCPeerConnection`: its states and descriptions through web-sys's
//! typed getters, and the two calls web-sys does not bind in the form perfect negotiation needs.

use super::negotiation::{rtc_configuration, Ice};
use super::{settle, WebRtcError};
use crate::status::PeerState;
use confab_protocol::IceTransportPolicy;
use js_sys::{Array, Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{RtcPeerConnection, RtcPeerConnectionState, RtcSdpType, RtcSignalingState};

/// A new connection with `ice`'s servers and policy: the one made ahead if there is one (given
/// them, unless there are none to give: each call into the browser's WebRTC thread counts on a
/// busy machine).
pub(super) fn new_connection(ice: &Ice) -> Result<RtcPeerConnection, JsValue> {
    let plain = ice.servers.is_empty() && ice.policy == IceTransportPolicy::All;
    if let Some(pc) = super::signaling::take_connection() {
        if plain || pc.set_configuration_with_configuration(&rtc_configuration(ice)).is_ok() {
            return Ok(pc);
        }
        pc.close();
    }
    if plain {
        RtcPeerConnection::new()
    } else {
        RtcPeerConnection::new_with_configuration(&rtc_configuration(ice))
    }
}

/// Calls a method that web-sys does not bind (or binds only with arguments we must omit).
/// `Reflect` is the only way to reach such a method; a browser without it gets an error.
pub(super) fn call_method(target: &JsValue, name: &'static str, args: &Array) -> Result<JsValue, WebRtcError> {
    let method = Reflect::get(target, &name.into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or(WebRtcError { step: name, detail: "not supported by this browser".into() })?;
    method.apply(target, args).map_err(|e| WebRtcError { step: name, detail: super::js_detail(&e) })
}

/// How the connection stands, for the tile.
pub(super) fn peer_state(state: RtcPeerConnectionState) -> PeerState {
    match state {
        RtcPeerConnectionState::Connected => PeerState::Connected,
        RtcPeerConnectionState::Disconnected => PeerState::Interrupted,
        RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed => PeerState::Failed,
        _ => PeerState::Connecting,
    }
}

/// No offer or answer is under way (`signalingState` is `stable`).
pub(super) fn is_stable(pc: &RtcPeerConnection) -> bool {
    pc.signaling_state() == RtcSignalingState::Stable
}

/// Connectivity is lost (`connectionState` `failed` or `disconnected`).
pub(super) fn is_broken(pc: &RtcPeerConnection) -> bool {
    matches!(pc.connection_state(), RtcPeerConnectionState::Failed | RtcPeerConnectionState::Disconnected)
}

/// The local description if it is an offer: the one just made, or one still waiting for its
/// answer (`signalingState` `have-local-offer`).
pub(super) fn local_offer(pc: &RtcPeerConnection) -> Option<String> {
    local_sdp(pc, RtcSdpType::Offer)
}

/// The local description if it is an answer.
pub(super) fn local_answer(pc: &RtcPeerConnection) -> Option<String> {
    local_sdp(pc, RtcSdpType::Answer)
}

fn local_sdp(pc: &RtcPeerConnection, kind: RtcSdpType) -> Option<String> {
    pc.local_description().filter(|d| d.type_() == kind).map(|d| d.sdp())
}

/// An offer of ours is waiting for its answer.
pub(super) fn offer_pending(pc: &RtcPeerConnection) -> bool {
    pc.signaling_state() == RtcSignalingState::HaveLocalOffer
}

/// `restartIce()`: web-sys does not bind it, so it is called by name.
pub(super) fn restart_ice(pc: &RtcPeerConnection) {
    if let Err(e) = call_method(pc, "restartIce", &Array::new()) {
        super::warn(&format!("confab: {e}"));
    }
}

/// `setLocalDescription()` without a description: the browser creates the offer or answer that
/// fits the signaling state. web-sys binds only the form with a description, so it is called by
/// name.
pub(super) async fn set_local_description(pc: &RtcPeerConnection) -> Result<(), WebRtcError> {
    let promise = call_method(pc, "setLocalDescription", &Array::new())?;
    settle("setLocalDescription", promise.unchecked_into()).await.map(drop)
}
