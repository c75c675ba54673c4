//! The state the call page renders: signals written by the call engine, read by the views.

use crate::i18n::Texts;
use crate::stats::Sample;
use crate::status::{PeerState, Phase};
use confab_protocol::{ChatMessage, MediaState, PeerKey};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use std::collections::VecDeque;
use web_sys::MediaStream;

/// What a person chose before joining (remembered in the browser for next time, see
/// `storage::store_prefs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefs {
    /// The camera's `deviceId`.
    pub camera: Option<String>,
    /// The microphone's `deviceId`.
    pub microphone: Option<String>,
    /// The sound output's `deviceId`.
    pub speaker: Option<String>,
    /// Join muted.
    pub muted: bool,
    /// Join with the camera off.
    pub camera_off: bool,
}

/// A camera the browser offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
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
    /// The connection's statistics, about one sample a second, oldest first.
    pub stats: ArcRwSignal<VecDeque<Sample>>,
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
            stats: ArcRwSignal::new(VecDeque::new()),
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
    pub cameras: RwSignal<Vec<Device>>,
    /// The `deviceId` of the camera in use.
    pub camera: RwSignal<Option<String>>,
    /// The microphones to pick from.
    pub microphones: RwSignal<Vec<Device>>,
    /// The `deviceId` of the microphone in use.
    pub microphone: RwSignal<Option<String>>,
    /// The sound outputs to pick from; empty where the browser cannot choose (no `setSinkId`).
    pub speakers: RwSignal<Vec<Device>>,
    /// The `deviceId` of the chosen sound output (`None`: the system's default).
    pub speaker: RwSignal<Option<String>>,
    /// The words of the page's language.
    pub texts: &'static Texts,
    /// A passing problem to show (e.g. a failed camera switch).
    pub notice: RwSignal<Option<String>>,
    /// The room's chat as this page has seen it, oldest first.
    pub chat: RwSignal<Vec<ChatLine>>,
    /// This page's own key, once welcomed.
    pub me: RwSignal<Option<PeerKey>>,
    /// Whose tile is highlighted as speaking (this page's own key for the local tile).
    pub speaking: RwSignal<Option<PeerKey>>,
    /// This page is sharing its screen.
    pub sharing: RwSignal<bool>,
    /// The chat panel is open.
    pub chat_open: RwSignal<bool>,
    /// Messages from others that arrived while the panel was closed.
    pub unread: RwSignal<usize>,
    /// Media goes through the server's SFU (which decrypts it), not peer to peer.
    pub via_server: RwSignal<bool>,
}

impl CallUi {
    /// Fresh state: starting, alone, unmuted.
    pub fn new(texts: &'static Texts) -> Self {
        CallUi {
            texts,
            phase: RwSignal::new(Phase::StartingMedia),
            tiles: RwSignal::new(Vec::new()),
            local: RwSignal::new(None),
            muted: RwSignal::new(false),
            camera_off: RwSignal::new(false),
            cameras: RwSignal::new(Vec::new()),
            camera: RwSignal::new(None),
            microphones: RwSignal::new(Vec::new()),
            microphone: RwSignal::new(None),
            speakers: RwSignal::new(Vec::new()),
            speaker: RwSignal::new(None),
            notice: RwSignal::new(None),
            chat: RwSignal::new(Vec::new()),
            chat_open: RwSignal::new(false),
            sharing: RwSignal::new(false),
            speaking: RwSignal::new(None),
            me: RwSignal::new(None),
            unread: RwSignal::new(0),
            via_server: RwSignal::new(false),
        }
    }

    /// Adds chat messages not seen yet (by id), counting those from others as unread while the
    /// panel is closed. `me` is this page's key; `time` says when a message was sent.
    pub fn add_chat(&self, messages: Vec<ChatMessage>, me: Option<&PeerKey>, time: fn(u64) -> String) {
        let mut fresh = 0;
        self.chat.update(|chat| fresh = merge_chat(chat, messages, me, time));
        if fresh > 0 && !self.chat_open.get_untracked() {
            self.unread.update(|n| *n += fresh);
        }
    }
}

/// A chat message as the panel shows it.
#[derive(Debug, Clone)]
pub struct ChatLine {
    /// The message.
    pub message: ChatMessage,
    /// When it was sent (`HH:MM` in the browser's time zone), worked out when it arrived, so
    /// that rendering reads no clock.
    pub time: String,
}

/// Appends the messages of `messages` that `chat` does not have yet (by id), with their `time`;
/// returns how many of them came from someone other than `me`.
pub fn merge_chat(
    chat: &mut Vec<ChatLine>,
    messages: Vec<ChatMessage>,
    me: Option<&PeerKey>,
    time: impl Fn(u64) -> String,
) -> usize {
    let mut fresh = 0;
    for message in messages {
        if chat.iter().any(|line| line.message.id == message.id) {
            continue;
        }
        if Some(&message.from) != me {
            fresh += 1;
        }
        chat.push(ChatLine { time: time(message.at_ms), message });
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::DisplayName;

    fn message(id: u64, from: &str) -> ChatMessage {
        ChatMessage {
            id,
            from: PeerKey(from.into()),
            name: DisplayName::parse(from).unwrap(),
            text: format!("message {id}"),
            at_ms: 0,
        }
    }

    #[test]
    fn chat_keeps_each_message_once_and_counts_others_as_new() {
        let me = PeerKey("me".into());
        let mut chat = Vec::new();
        let time = |_| String::new();
        assert_eq!(merge_chat(&mut chat, vec![message(1, "ada"), message(2, "me")], Some(&me), time), 1);
        // A welcome after a reconnect repeats what we have, plus what we missed.
        assert_eq!(
            merge_chat(&mut chat, vec![message(1, "ada"), message(2, "me"), message(3, "bob")], Some(&me), time),
            1
        );
        assert_eq!(chat.iter().map(|line| line.message.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
