//! What we send: the camera and microphone stream, mute and camera-off (the single source of
//! truth, applied to every track that is sent), device switches by `replaceTrack`, screen share,
//! the send quality of a mesh, and `devicechange`.

use super::{settle, warn, Engine, State};
use crate::media::{self, first_track, stop_all, tracks};
use crate::model::{Device, Prefs, SharedStream};
use crate::status::{MediaProblem, Phase};
use confab_protocol::{ClientMsg, MediaState};
use gloo_events::EventListener;
use js_sys::{Array, Reflect};
use leptos::prelude::*;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    MediaStream, MediaStreamTrack, RtcPeerConnection, RtcRtpEncodingParameters, RtcRtpSender,
    RtcRtpTransceiverDirection, RtcRtpTransceiverInit,
};

/// In a call of more than two people, each sender halves its resolution and caps its bitrate
/// and frame rate: a mesh sends one stream per peer, and every stream costs an encoder.
const MESH_BITRATE: u32 = 350_000;
const MESH_FRAMERATE: u32 = 15;
/// A shared screen in a mesh: full resolution (text must stay legible), fewer frames.
const SCREEN_MESH_BITRATE: u32 = 900_000;
const SCREEN_FRAMERATE: u32 = 10;
/// The layers the camera is sent to the SFU in (simulcast): rid, resolution divisor, bitrate cap.
/// The SFU forwards each viewer the one that fits its tile. Two, at half and full size: for a
/// 640-wide camera Chromium sends no more than two simulcast layers (libwebrtc limits the count
/// by resolution, dropping the largest), so a third, quarter-size one would cost the full one.
/// The SFU gives a tile that wants a quarter the half (the smallest there is).
const SFU_LAYERS: [(&str, f32, u32); 2] = [("m", 2.0, 500_000), (SFU_FULL_LAYER, 1.0, 1_200_000)];
/// The rid of the full-size layer: paused while direct connections still run beside the SFU's
/// (see [`add_sfu_transceivers`]).
const SFU_FULL_LAYER: &str = "h";

/// Our media and its state.
pub(super) struct LocalMedia {
    /// The camera and microphone stream, once open.
    local: Option<MediaStream>,
    /// The camera and microphone the pre-join screen opened, taken over by the call.
    preview: Option<MediaStream>,
    /// The devices chosen before joining.
    prefs: Prefs,
    /// The source of truth for mute; applied to every audio track that is sent.
    pub(super) muted: bool,
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
}

/// A screen being shared, and the listener for the browser's own "Stop sharing". (Copies of
/// the track are made with `Clone::clone`: web-sys's `MediaStreamTrack::clone` is the JS method
/// that makes a new, live track.)
struct Screen {
    track: MediaStreamTrack,
    _ended: EventListener,
}

/// What hang-up takes out of the state, to stop once the state is free.
pub(super) struct Released {
    streams: [Option<MediaStream>; 2],
    screen: Option<Screen>,
    _device_watch: Option<EventListener>,
}

impl Released {
    /// Releases the camera, microphone and screen.
    pub(super) fn stop(self) {
        for stream in self.streams.iter().flatten() {
            stop_all(stream);
        }
        if let Some(screen) = self.screen {
            screen.track.stop();
        }
    }
}

impl LocalMedia {
    pub(super) fn new(prefs: Prefs, preview: Option<MediaStream>) -> Self {
        LocalMedia {
            local: None,
            preview,
            muted: prefs.muted,
            camera_off: prefs.camera_off,
            prefs,
            switching: false,
            next_camera: None,
            screen: None,
            device_watch: None,
        }
    }

    /// What the room is told about our media.
    pub(super) fn state(&self) -> MediaState {
        MediaState { muted: self.muted, camera_off: self.camera_off, screen: self.screen.is_some() }
    }

    /// A screen is being shared.
    pub(super) fn sharing(&self) -> bool {
        self.screen.is_some()
    }

    /// Takes out everything to stop at hang-up.
    pub(super) fn release(&mut self) -> Released {
        Released {
            streams: [self.local.take(), self.preview.take()],
            screen: self.screen.take(),
            _device_watch: self.device_watch.take(),
        }
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

    /// The video track to send: the shared screen while there is one, else the camera.
    fn video_source(&self) -> Option<MediaStreamTrack> {
        match &self.screen {
            Some(screen) => Some(Clone::clone(&screen.track)),
            None => self.local.as_ref().and_then(|s| first_track(&s.get_video_tracks())),
        }
    }

    /// The `deviceId` of the local track of `kind`.
    fn device_in_use(&self, video: bool) -> Option<String> {
        let local = self.local.as_ref()?;
        first_track(&if video { local.get_video_tracks() } else { local.get_audio_tracks() })
            .as_ref()
            .and_then(media::device_id_of)
    }
}

/// Applies mute and camera-off to the tracks and tells the room.
fn media_changed(state: &mut State) {
    state.media.apply_track_states();
    let media = state.media.state();
    state.send(ClientMsg::Media(media));
}

/// Opens the camera and microphone (or takes the pre-join screen's) and starts following the
/// devices. False if media could not be opened (the phase says why) or the call ended.
pub(super) async fn open(engine: &Engine) -> bool {
    let ui = engine.borrow().ui;
    ui.phase.set(Phase::StartingMedia);
    let (preview, prefs) = {
        let mut state = engine.borrow_mut();
        (state.media.preview.take(), state.media.prefs.clone())
    };
    let opened = match preview {
        Some(stream) => Ok(stream),
        None => media::open_camera_and_mic(prefs.camera.as_deref(), prefs.microphone.as_deref(), false).await,
    };
    let stream = match opened {
        Ok(stream) => stream,
        Err(problem) => {
            ui.phase.set(Phase::MediaFailed(problem));
            return false;
        }
    };
    {
        let mut state = engine.borrow_mut();
        if state.ended {
            stop_all(&stream);
            return false;
        }
        state.media.local = Some(Clone::clone(&stream));
        state.media.apply_track_states();
    }
    ui.local.set(Some(SharedStream::new(stream)));
    // The pickers fill in beside the join, not before it.
    {
        let engine = engine.clone();
        spawn_local(async move { refresh_devices(&engine).await });
    }
    // Plugged or unplugged devices: every picker follows, and a device in use that went away is
    // replaced by another. (Without `mediaDevices` there is nothing to follow.)
    if let Ok(devices) = media::media_devices() {
        let weak = Rc::downgrade(engine);
        let listener = EventListener::new(&devices, "devicechange", move |_| {
            let weak = weak.clone();
            spawn_local(async move {
                if let Some(engine) = weak.upgrade() {
                    refresh_devices(&engine).await;
                }
            });
        });
        engine.borrow_mut().media.device_watch = Some(listener);
    }
    true
}

/// Lists the devices into the pickers. A camera or microphone in use that is no longer listed
/// (unplugged) is replaced by the first one listed, and the person is told; a chosen speaker
/// that went away falls back to the system's default.
async fn refresh_devices(engine: &Engine) {
    let found = media::list_devices().await;
    let (camera, microphone, ui) = {
        let state = engine.borrow();
        if state.ended {
            return;
        }
        (state.media.device_in_use(true), state.media.device_in_use(false), state.ui)
    };
    let listed = |list: &[Device], id: &Option<String>| id.as_ref().is_none_or(|id| list.iter().any(|d| &d.id == id));
    let mut told = Vec::new();
    if !listed(&found.cameras, &camera) {
        if let Some(first) = found.cameras.first() {
            told.push((ui.texts.camera_unplugged)(&first.label));
            switch_camera(engine, first.id.clone());
        }
    } else {
        ui.camera.set(camera);
    }
    if !listed(&found.microphones, &microphone) {
        if let Some(first) = found.microphones.first() {
            told.push((ui.texts.microphone_unplugged)(&first.label));
            switch_microphone(engine, first.id.clone());
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

/// Mutes or unmutes the microphone for everyone.
pub(super) fn set_muted(engine: &Engine, muted: bool) {
    let mut state = engine.borrow_mut();
    state.media.muted = muted;
    media_changed(&mut state);
    state.ui.muted.set(muted);
}

/// Turns the camera off (black frames) or on again.
pub(super) fn set_camera_off(engine: &Engine, off: bool) {
    let mut state = engine.borrow_mut();
    state.media.camera_off = off;
    media_changed(&mut state);
    state.ui.camera_off.set(off);
}

/// Sends microphone `device_id` instead of the current one; mute stays as it was.
pub(super) fn switch_microphone(engine: &Engine, device_id: String) {
    let engine = engine.clone();
    spawn_local(async move {
        if let Err(problem) = open_microphone(&engine, &device_id).await {
            let state = engine.borrow();
            let t = state.ui.texts;
            state.ui.notice.set(Some(format!("{} {}", t.microphone_switch_failed, problem.explanation(t))));
            state.ui.microphone.set(state.media.device_in_use(false));
        }
    });
}

/// Opens microphone `device_id` and sends it instead of the current one, muted if the call is.
async fn open_microphone(engine: &Engine, device_id: &str) -> Result<(), MediaProblem> {
    let track = media::open_microphone(device_id).await?;
    {
        let state = engine.borrow();
        if state.ended {
            track.stop();
            return Ok(());
        }
        track.set_enabled(!state.media.muted);
    }
    send_track(engine, &track).await;
    let state = engine.borrow();
    if replace_local_track(&state, &track).is_some() {
        state.ui.microphone.set(Some(device_id.to_owned()));
    }
    Ok(())
}

/// Sends video from camera `device_id` instead of the current one. A choice made while a
/// switch is under way is carried out after it.
pub(super) fn switch_camera(engine: &Engine, device_id: String) {
    {
        let mut state = engine.borrow_mut();
        if state.ended {
            return;
        }
        if state.media.switching {
            state.media.next_camera = Some(device_id);
            return;
        }
        state.media.switching = true;
        state.ui.notice.set(None);
    }
    let engine = engine.clone();
    spawn_local(async move {
        let mut wanted = device_id;
        loop {
            let result = open_camera(&engine, &wanted).await;
            let mut state = engine.borrow_mut();
            if let Err(problem) = result {
                let t = state.ui.texts;
                state.ui.notice.set(Some(format!("{} {}", t.camera_switch_failed, problem.explanation(t))));
                // Show the camera that is really in use again.
                state.ui.camera.set(state.media.device_in_use(true));
            }
            match state.media.next_camera.take() {
                Some(next) if !state.ended => wanted = next,
                _ => {
                    state.media.switching = false;
                    return;
                }
            }
        }
    });
}

/// Opens `device_id` and sends it instead of the current camera: `replaceTrack` on every video
/// sender first (the old camera keeps sending until then), then the preview, then the old track
/// is stopped. Audio is untouched, so mute stays as it was.
async fn open_camera(engine: &Engine, device_id: &str) -> Result<(), MediaProblem> {
    let track = media::open_camera(device_id).await?;
    let sharing = {
        let state = engine.borrow();
        if state.ended {
            track.stop();
            return Ok(());
        }
        track.set_enabled(!state.media.camera_off);
        state.media.sharing()
    };
    // While a screen is shared the new camera only waits in the local stream; stopping the
    // share sends it.
    if !sharing {
        send_track(engine, &track).await;
    }
    let state = engine.borrow();
    if let Some(local) = replace_local_track(&state, &track) {
        state.ui.local.set(Some(SharedStream::new(local)));
        state.ui.camera.set(Some(device_id.to_owned()));
    }
    Ok(())
}

/// Puts `track` in the local stream in place of the tracks of its kind, which are stopped; the
/// stream, or `None` (and `track` stopped) if the call has ended.
fn replace_local_track(state: &State, track: &MediaStreamTrack) -> Option<MediaStream> {
    let Some(local) = state.media.local.clone().filter(|_| !state.ended) else {
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

/// Asks for a screen to share and sends it instead of the camera, to everyone.
pub(super) fn share_screen(engine: &Engine) {
    if engine.borrow().media.sharing() {
        return;
    }
    let engine = engine.clone();
    spawn_local(async move {
        let track = match media::open_screen().await {
            Ok(track) => track,
            // Picking nothing is a choice, not a problem.
            Err(MediaProblem::Denied) => return,
            Err(problem) => {
                let ui = engine.borrow().ui;
                ui.notice.set(Some(format!("{} {}", ui.texts.screen_failed, problem.explanation(ui.texts))));
                return;
            }
        };
        let ended = {
            let weak = Rc::downgrade(&engine);
            // The browser's own "Stop sharing" ends the track.
            EventListener::new(&track, "ended", move |_| {
                if let Some(engine) = weak.upgrade() {
                    stop_sharing(&engine);
                }
            })
        };
        {
            let mut state = engine.borrow_mut();
            if state.ended || state.media.sharing() {
                track.stop();
                return;
            }
            state.media.screen = Some(Screen { track: Clone::clone(&track), _ended: ended });
            state.ui.sharing.set(true);
            media_changed(&mut state);
            apply_send_quality(&state);
        }
        send_track(&engine, &track).await;
    });
}

/// Stops sharing the screen: the camera goes back on every connection.
pub(super) fn stop_sharing(engine: &Engine) {
    let screen = {
        let mut state = engine.borrow_mut();
        let Some(screen) = state.media.screen.take() else { return };
        state.ui.sharing.set(false);
        media_changed(&mut state);
        apply_send_quality(&state);
        screen
    };
    // The track's own listener goes with it, outside the borrow.
    screen.track.stop();
    drop(screen);
    let engine = engine.clone();
    spawn_local(async move {
        let camera = engine.borrow().media.video_source();
        if let Some(camera) = camera {
            send_track(&engine, &camera).await;
        }
    });
}

/// Adds our tracks to `pc`, once. (A remote offer creates senders without tracks; `addTrack`
/// then fills those.)
pub(super) fn attach_tracks(state: &State, pc: &RtcPeerConnection) {
    let sending = pc.get_senders().iter().any(|s| s.unchecked_into::<RtcRtpSender>().track().is_some());
    if sending {
        return;
    }
    if let Some(local) = &state.media.local {
        for track in tracks(local) {
            match &state.media.screen {
                Some(screen) if track.kind() == "video" => pc.add_track_0(&screen.track, local),
                _ => pc.add_track_0(&track, local),
            };
        }
    }
}

/// Sends our microphone and camera (or the shared screen) to the SFU: send-only transceivers,
/// the camera in the simulcast layers of [`SFU_LAYERS`]. While direct connections still carry
/// the call (the switch to the SFU), the full-size layer waits: encoding the camera for them and
/// in both layers at once is more than two busy cores do without stalling the picture people
/// see now. [`send_full_layer`] starts it once they have closed. Returns whether it waits.
pub(super) fn add_sfu_transceivers(state: &State, pc: &RtcPeerConnection) -> bool {
    let Some(local) = &state.media.local else { return false };
    let streams = Array::of1(local);
    let direct = state.roster.iter().any(|(_, p)| p.conn.is_some());
    for track in tracks(local) {
        let init = RtcRtpTransceiverInit::new();
        init.set_direction(RtcRtpTransceiverDirection::Sendonly);
        init.set_streams(&streams);
        let track = if track.kind() == "video" {
            let encodings: Array = SFU_LAYERS
                .iter()
                .map(|&(rid, scale, bitrate)| {
                    let encoding = RtcRtpEncodingParameters::new();
                    encoding.set_rid(rid);
                    encoding.set_scale_resolution_down_by(scale);
                    encoding.set_max_bitrate(bitrate);
                    encoding.set_active(!(direct && rid == SFU_FULL_LAYER));
                    JsValue::from(encoding)
                })
                .collect();
            init.set_send_encodings(&encodings);
            match &state.media.screen {
                Some(screen) => Clone::clone(&screen.track),
                None => track,
            }
        } else {
            track
        };
        pc.add_transceiver_with_media_stream_track_and_init(&track, &init);
    }
    direct
}

/// Puts `track` on every connection's sender of its kind (twice: connections created during the
/// first pass got the previous track from the local stream).
async fn send_track(engine: &Engine, track: &MediaStreamTrack) {
    let kind = track.kind();
    for _pass in 0..2 {
        let senders: Vec<RtcRtpSender> = {
            let state = engine.borrow();
            let sfu = state.sfu.as_ref().map(super::sfu::SfuConn::pc);
            state
                .roster
                .iter()
                .filter_map(|(_, p)| p.conn.as_ref().map(|c| &c.pc))
                .chain(sfu)
                .filter_map(|pc| sender_of(pc, &kind))
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

/// Starts the SFU connection's full-size camera layer if it waits (see [`add_sfu_transceivers`]).
pub(super) fn send_full_layer(pc: &RtcPeerConnection) {
    let Some(sender) = video_sender(pc) else { return };
    let params = sender.get_parameters();
    let Some(encodings) = params.get_encodings() else { return };
    let mut changed = false;
    for encoding in encodings.iter().map(JsCast::unchecked_into::<RtcRtpEncodingParameters>) {
        if encoding.get_rid().as_deref() == Some(SFU_FULL_LAYER) && encoding.get_active() == Some(false) {
            encoding.set_active(true);
            changed = true;
        }
    }
    if changed {
        let promise = sender.set_parameters_with_parameters(&params);
        spawn_local(async move {
            if let Err(e) = settle("setParameters (full layer)", promise).await {
                warn(&format!("confab: {e}"));
            }
        });
    }
}

/// Halves the resolution and caps the bitrate of every video sender once more than one other
/// person is in the call; full quality for a one-to-one call.
pub(super) fn apply_send_quality(state: &State) {
    let mesh = state.roster.len() >= 2;
    for (_, peer) in state.roster.iter() {
        if let Some(sender) = peer.conn.as_ref().and_then(|c| video_sender(&c.pc)) {
            set_send_quality(&sender, mesh, state.media.sharing());
        }
    }
}

pub(super) fn set_send_quality(sender: &RtcRtpSender, mesh: bool, screen: bool) {
    let params = sender.get_parameters();
    let Some(encoding) = params.get_encodings().map(|e| e.get(0)).filter(|first| !first.is_undefined()) else {
        // Not negotiated yet: applied again once connected.
        return;
    };
    let encoding: RtcRtpEncodingParameters = encoding.unchecked_into();
    encoding.set_scale_resolution_down_by(if mesh && !screen { 2.0 } else { 1.0 });
    let (bitrate, framerate) =
        if screen { (SCREEN_MESH_BITRATE, SCREEN_FRAMERATE) } else { (MESH_BITRATE, MESH_FRAMERATE) };
    // `Reflect`: web-sys has no setter for `maxFramerate`, and no way to remove a member again.
    for (name, value) in [("maxBitrate", bitrate), ("maxFramerate", framerate)] {
        if mesh || (screen && name == "maxFramerate") {
            let _ = Reflect::set(&encoding, &name.into(), &value.into());
        } else {
            let _ = Reflect::delete_property(&encoding, &name.into());
        }
    }
    let promise = sender.set_parameters_with_parameters(&params);
    spawn_local(async move {
        if let Err(e) = settle("setParameters", promise).await {
            warn(&format!("confab: {e}"));
        }
    });
}

/// The sender whose track is video: the notes' `getSenders().find(kind == "video")`.
pub(super) fn video_sender(pc: &RtcPeerConnection) -> Option<RtcRtpSender> {
    sender_of(pc, "video")
}

/// The sender whose track is of `kind` (`audio` or `video`).
fn sender_of(pc: &RtcPeerConnection, kind: &str) -> Option<RtcRtpSender> {
    pc.get_senders()
        .iter()
        .map(JsCast::unchecked_into::<RtcRtpSender>)
        .find(|sender| sender.track().is_some_and(|t| t.kind() == kind))
}
