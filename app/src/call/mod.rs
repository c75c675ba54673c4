//! The call engine: local media, the signaling socket, and one `RTCPeerConnection` per remote
//! participant (a full mesh). It runs in the browser only; the server build gets an inert
//! [`Call`] with the same methods, so the pages need no `cfg` of their own.
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
//! # Layout
//! - this file: the [`Call`] handle the page holds, the engine's [`State`], hang-up;
//! - `signaling`: the socket, reconnect with backoff, server messages applied one at a time in
//!   order. It is the only place that knows peer ids: it translates them to keys on the way in
//!   and back on the way out, so everything else speaks keys;
//! - `negotiation`: one connection per peer, perfect negotiation, trickle ICE, ICE restart;
//! - `sfu`: in rooms of the welcome's `sfu_from` people or more, one connection to the
//!   server's SFU instead (simulcast camera out, everyone's tracks in), and the switch between
//!   the two;
//! - `roster`: peers by key and what a welcome changes (pure, tested natively);
//! - `local_media`: our tracks, mute and camera-off, device switches, screen share, send
//!   quality, `devicechange`;
//! - `sampler`: `getStats` for the speaking highlight and the stats panel;
//! - `rtc`: typed reads of an `RTCPeerConnection`'s states and descriptions, and new
//!   connections (the first one made ahead of the join, in `signaling`);
//! - `sdp`: an offer cut to the codecs the SFU takes (pure, tested natively).
//!
//! Mute and camera-off live in `local_media` as the single source of truth, are applied to every
//! track that starts being sent (including after a camera switch, which swaps the video track
//! with `RTCRtpSender.replaceTrack`), and are announced to the room.
//!
//! `MediaStream` and `MediaStreamTrack` have an inherent `clone()` that calls the JS method and
//! opens new tracks; copying the handle is spelled `Clone::clone(&stream)` here.
//!
//! Every JS callback is a `gloo_events::EventListener` (or a `gloo_timers` timeout) owned by the
//! connection it belongs to and removed when that is dropped; nothing is leaked with
//! `Closure::forget`.
//!
//! **Borrowing.** The state is one `RefCell`. No borrow is held across an `await`, and nothing
//! that can call back into the engine runs while it is borrowed: what hang-up or a departure
//! removes (connections, listeners, tracks) is taken out of the state and dropped after the
//! borrow ends. The engine never hangs itself up from inside a message handler: a refusal ends
//! the signaling loop, and [`run`] hangs up once it has returned.

#[cfg(feature = "hydrate")]
mod local_media;
#[cfg(feature = "hydrate")]
mod negotiation;
#[cfg(feature = "hydrate")]
mod rtc;
// Pure: compiled everywhere so that its tests run natively.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
mod roster;
#[cfg(feature = "hydrate")]
mod sampler;
// Pure: compiled everywhere so that its tests run natively.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
mod sdp;
#[cfg(feature = "hydrate")]
mod sfu;
#[cfg(feature = "hydrate")]
mod signaling;
// Pure: compiled everywhere so that its tests run natively.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
mod tile_layer;

#[cfg(not(feature = "hydrate"))]
pub use inert::Call;

#[cfg(feature = "hydrate")]
pub use engine::Call;

#[cfg(feature = "hydrate")]
use engine::{js_detail, mark, settle, warn, Engine, State, WeakEngine, WebRtcError};

/// On the server no call runs and no event fires: the same methods, doing nothing.
#[cfg(not(feature = "hydrate"))]
mod inert {
    use crate::model::{CallUi, Prefs, SharedStream};

    /// A call that never starts (server rendering).
    #[derive(Clone)]
    pub struct Call;

    #[allow(clippy::unused_self, clippy::needless_pass_by_value)]
    impl Call {
        /// Does nothing on the server.
        pub fn start(
            _room: String,
            _name: String,
            _password: Option<String>,
            _listed: bool,
            _prefs: Prefs,
            _preview: Option<SharedStream>,
            _ui: CallUi,
        ) -> Call {
            Call
        }
        /// Does nothing on the server.
        pub fn connect_ahead() {}
        /// Does nothing on the server.
        pub fn set_muted(&self, _muted: bool) {}
        /// Nothing can be sent from the server.
        pub fn send_chat(&self, _text: String) -> bool {
            false
        }
        /// Does nothing on the server.
        pub fn switch_microphone(&self, _device_id: String) {}
        /// Does nothing on the server.
        pub fn switch_camera(&self, _device_id: String) {}
        /// Does nothing on the server.
        pub fn share_screen(&self) {}
        /// Does nothing on the server.
        pub fn stop_sharing(&self) {}
        /// Does nothing on the server.
        pub fn set_camera_off(&self, _off: bool) {}
        /// Does nothing on the server.
        pub fn hang_up(&self) {}
    }
}

#[cfg(feature = "hydrate")]
mod engine {
    use super::negotiation::{Ice, Peer};
    use super::{local_media, local_media::LocalMedia, roster::Roster, signaling, signaling::Link};
    use crate::model::{CallUi, Prefs, SharedStream};
    use confab_protocol::ClientMsg;
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use std::cell::RefCell;
    use std::fmt;
    use std::rc::{Rc, Weak};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::{spawn_local, JsFuture};

    /// The engine, shared by the handle, its tasks and its listeners.
    pub(in crate::call) type Engine = Rc<RefCell<State>>;
    /// What listeners and timers hold: they must not keep a hung-up call alive.
    pub(in crate::call) type WeakEngine = Weak<RefCell<State>>;

    /// A failed WebRTC step, with the browser's reason.
    #[derive(Debug)]
    pub(in crate::call) struct WebRtcError {
        /// What the engine was doing.
        pub(in crate::call) step: &'static str,
        /// The browser's error, as text.
        pub(in crate::call) detail: String,
    }

    impl fmt::Display for WebRtcError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} failed: {}", self.step, self.detail)
        }
    }

    pub(in crate::call) fn js_detail(err: &JsValue) -> String {
        if let Some(e) = err.dyn_ref::<js_sys::Error>() {
            return String::from(e.message());
        }
        err.as_string().unwrap_or_else(|| format!("{err:?}"))
    }

    /// Awaits a promise of step `step`, turning a rejection into a [`WebRtcError`].
    pub(in crate::call) async fn settle(step: &'static str, promise: js_sys::Promise) -> Result<JsValue, WebRtcError> {
        JsFuture::from(promise).await.map_err(|e| WebRtcError { step, detail: js_detail(&e) })
    }

    pub(in crate::call) fn warn(message: &str) {
        web_sys::console::warn_1(&message.into());
    }

    /// Marks a step of joining on the page's performance timeline as `confab:<step>`, where
    /// DevTools shows it and `make bench` reads the call-setup breakdown
    /// (end2end/bench/call-setup.mjs).
    pub(in crate::call) fn mark(step: &str) {
        if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
            let _ = performance.mark(&format!("confab:{step}"));
        }
    }

    /// A handle on a running call, owned by the room page. Dropping it does not end the call;
    /// [`Call::hang_up`] does. (The wrapper lets views hold it; it never leaves the browser's
    /// single thread.)
    #[derive(Clone)]
    pub struct Call(SendWrapper<Engine>);

    /// The engine's state.
    pub(in crate::call) struct State {
        /// The signals the page renders.
        pub(in crate::call) ui: CallUi,
        /// The socket and what to join with.
        pub(in crate::call) link: Link,
        /// Everyone else in the room, by key.
        pub(in crate::call) roster: Roster<Peer>,
        /// ICE servers and transport policy from the welcome.
        pub(in crate::call) ice: Ice,
        /// Our camera, microphone and screen, and whether they are muted or off.
        pub(in crate::call) media: LocalMedia,
        /// From the welcome: rooms of this many people go through the server's SFU.
        pub(in crate::call) sfu_from: Option<u16>,
        /// The connection to the SFU, while the room goes through it. Meanwhile the SFU names
        /// the active speaker (`active_speaker`), not the sampler.
        pub(in crate::call) sfu: Option<super::sfu::SfuConn>,
        /// Our id in the room, from the last welcome (the SFU may name us as the speaker).
        pub(in crate::call) own_id: Option<confab_protocol::PeerId>,
        /// Numbers SFU connections, to tell the current one after an `await`.
        pub(in crate::call) sfu_generation: u32,
        /// Hung up: nothing may start any more.
        pub(in crate::call) ended: bool,
    }

    impl State {
        /// The tiles follow the roster, and the send quality its size.
        pub(in crate::call) fn peers_changed(&self) {
            self.ui.tiles.set(self.roster.iter().map(|(_, p)| p.tile.clone()).collect());
            local_media::apply_send_quality(self);
        }
    }

    impl Call {
        /// Starts a call in `room` as `name` (giving `password` if the room has one), reporting
        /// to `ui`.
        pub fn start(
            room: String,
            name: String,
            password: Option<String>,
            listed: bool,
            prefs: Prefs,
            preview: Option<SharedStream>,
            ui: CallUi,
        ) -> Call {
            ui.muted.set(prefs.muted);
            ui.camera_off.set(prefs.camera_off);
            ui.speaker.set(prefs.speaker.clone());
            let engine = Rc::new(RefCell::new(State {
                ui,
                link: Link::new(room, name, password, listed),
                roster: Roster::default(),
                ice: Ice::default(),
                media: LocalMedia::new(prefs, preview.map(SendWrapper::take)),
                sfu_from: None,
                sfu: None,
                own_id: None,
                sfu_generation: 0,
                ended: false,
            }));
            spawn_local(run(engine.clone()));
            spawn_local(super::sampler::watch(Rc::downgrade(&engine)));
            Call(SendWrapper::new(engine))
        }

        /// Opens the signaling socket ahead of joining (on the pre-join screen), so that the
        /// next call's join goes out at once (the call opens its own if this one has closed),
        /// and makes the first peer connection once the page is idle.
        pub fn connect_ahead() {
            signaling::connect_ahead();
        }

        /// Mutes or unmutes the microphone for everyone.
        pub fn set_muted(&self, muted: bool) {
            local_media::set_muted(&self.0, muted);
        }

        /// Turns the camera off (black frames) or on again.
        pub fn set_camera_off(&self, off: bool) {
            local_media::set_camera_off(&self.0, off);
        }

        /// Sends a chat message to the room; false if the server cannot be reached right now.
        pub fn send_chat(&self, text: String) -> bool {
            self.0.borrow_mut().send(ClientMsg::Chat { text })
        }

        /// Sends microphone `device_id` instead of the current one; mute stays as it was.
        pub fn switch_microphone(&self, device_id: String) {
            local_media::switch_microphone(&self.0, device_id);
        }

        /// Sends video from camera `device_id` instead of the current one. A choice made while
        /// a switch is under way is carried out after it.
        pub fn switch_camera(&self, device_id: String) {
            local_media::switch_camera(&self.0, device_id);
        }

        /// Asks for a screen to share and sends it instead of the camera, to everyone.
        pub fn share_screen(&self) {
            local_media::share_screen(&self.0);
        }

        /// Stops sharing the screen: the camera goes back on every connection.
        pub fn stop_sharing(&self) {
            local_media::stop_sharing(&self.0);
        }

        /// Leaves the room: tells the server, closes every connection, releases camera and mic.
        /// Calling it again does nothing.
        pub fn hang_up(&self) {
            hang_up(&self.0);
        }
    }

    /// The whole life of a call: media, then signaling (reconnecting as needed) until the end.
    async fn run(engine: Engine) {
        mark("start");
        if local_media::open(&engine).await {
            mark("media");
            signaling::run(&engine).await;
        }
        // Refused, replaced, media failed or hung up: nothing will start again.
        hang_up(&engine);
    }

    /// Ends the call. Called only from the page (a button, the view's cleanup) and from [`run`],
    /// never from inside the engine's own handlers, so the state is free to borrow. What it
    /// releases is dropped after the borrow ends.
    fn hang_up(engine: &Engine) {
        let (peers, sfu, media, ui) = {
            let mut state = engine.borrow_mut();
            if state.ended {
                return;
            }
            state.ended = true;
            state.link.leave();
            (state.roster.clear(), state.sfu.take(), state.media.release(), state.ui)
        };
        // Connections close and their listeners go; camera, microphone and screen stop.
        drop(peers);
        drop(sfu);
        media.stop();
        ui.tiles.set(Vec::new());
        ui.local.set(None);
        ui.via_server.try_set(false);
    }
}
