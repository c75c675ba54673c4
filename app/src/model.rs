//! The state the call page renders: signals written by the call engine, read by the views.

use crate::status::{PeerState, Phase};
use confab_protocol::{MediaState, PeerKey};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use web_sys::MediaStream;

/// A camera the browser offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camera {
    /// The `deviceId` (stable per site and browser profile).
    pub id: String,
    /// The label shown in the picker.
    pub label: String,
}

/// A media stream held by a signal. Streams live in the browser's single thread; the wrapper
/// only lets them sit in Leptos signals, which are `Send`.
pub type SharedStream = SendWrapper<MediaStream>;

/// One remote participant's tile.
#[derive(Clone)]
pub struct RemoteTile {
    /// Their stable key (the tile's identity; their peer id may change after a server restart).
    pub key: PeerKey,
    /// Their display name.
    pub name: String,
    /// How the connection to them stands.
    pub state: ArcRwSignal<PeerState>,
    /// Their audio and video, once the first track arrived.
    pub stream: ArcRwSignal<Option<SharedStream>>,
    /// Whether they muted or turned their camera off, as the server relays it.
    pub media: ArcRwSignal<MediaState>,
}

impl RemoteTile {
    /// A tile for someone whose media has not arrived yet.
    pub fn new(key: PeerKey, name: String, media: MediaState) -> Self {
        RemoteTile {
            key,
            name,
            state: ArcRwSignal::new(PeerState::Connecting),
            stream: ArcRwSignal::new(None),
            media: ArcRwSignal::new(media),
        }
    }
}

/// Everything the call page shows. Copy, so each view and handler takes its own.
#[derive(Clone, Copy)]
pub struct CallUi {
    /// Where the call stands.
    pub phase: RwSignal<Phase>,
    /// The remote participants, in the order they joined.
    pub tiles: RwSignal<Vec<RemoteTile>>,
    /// The local camera and microphone, for the preview.
    pub local: RwSignal<Option<SharedStream>>,
    /// The microphone is muted.
    pub muted: RwSignal<bool>,
    /// The camera is off.
    pub camera_off: RwSignal<bool>,
    /// The cameras to pick from.
    pub cameras: RwSignal<Vec<Camera>>,
    /// The `deviceId` of the camera in use.
    pub camera: RwSignal<Option<String>>,
    /// A passing problem to show (e.g. a failed camera switch).
    pub notice: RwSignal<Option<String>>,
}

impl CallUi {
    /// Fresh state: starting, alone, unmuted.
    pub fn new() -> Self {
        CallUi {
            phase: RwSignal::new(Phase::StartingMedia),
            tiles: RwSignal::new(Vec::new()),
            local: RwSignal::new(None),
            muted: RwSignal::new(false),
            camera_off: RwSignal::new(false),
            cameras: RwSignal::new(Vec::new()),
            camera: RwSignal::new(None),
            notice: RwSignal::new(None),
        }
    }
}

impl Default for CallUi {
    fn default() -> Self {
        Self::new()
    }
}
