//! What the call page tells a person, derived from the call's state. Pure functions, so they are
//! tested natively and shared by the server render and the browser.

use crate::i18n::Texts;

/// Why the camera or microphone could not be opened, from the `DOMException` name that
/// `getUserMedia` rejected with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaProblem {
    /// The person or the browser's settings refused access (`NotAllowedError`).
    Denied,
    /// No camera or microphone exists (`NotFoundError`).
    NotFound,
    /// The device exists but cannot be opened, usually because another program holds it
    /// (`NotReadableError`, `AbortError`).
    Busy,
    /// The chosen camera is gone (`OverconstrainedError`).
    Unavailable,
    /// The page is not a secure context, so the browser offers no camera API.
    Insecure,
    /// Anything else, with the browser's own message.
    Other(String),
}

impl MediaProblem {
    /// Classifies a `DOMException` by its `name` and `message`.
    pub fn from_dom_exception(name: &str, message: &str) -> Self {
        match name {
            "NotAllowedError" | "PermissionDeniedError" => MediaProblem::Denied,
            "NotFoundError" | "DevicesNotFoundError" => MediaProblem::NotFound,
            "NotReadableError" | "TrackStartError" | "AbortError" => MediaProblem::Busy,
            "OverconstrainedError" | "ConstraintNotSatisfiedError" => MediaProblem::Unavailable,
            "SecurityError" => MediaProblem::Insecure,
            _ if message.is_empty() => MediaProblem::Other(name.to_owned()),
            _ => MediaProblem::Other(format!("{name}: {message}")),
        }
    }

    /// What went wrong and what to do, in one or two sentences.
    pub fn explanation(&self, t: &Texts) -> String {
        match self {
            MediaProblem::Denied => t.media_denied.into(),
            MediaProblem::NotFound => t.media_not_found.into(),
            MediaProblem::Busy => t.media_busy.into(),
            MediaProblem::Unavailable => t.media_unavailable.into(),
            MediaProblem::Insecure => t.media_insecure.into(),
            MediaProblem::Other(detail) => (t.media_other)(detail),
        }
    }
}

/// How a connection to one remote participant stands, from `RTCPeerConnection.connectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Offer/answer and ICE are under way (`new`, `connecting`).
    Connecting,
    /// Media can flow (`connected`).
    Connected,
    /// Connectivity was lost, perhaps for a moment (`disconnected`).
    Interrupted,
    /// ICE gave up (`failed`), or the connection was closed.
    Failed,
}

impl PeerState {
    /// Maps the browser's `connectionState` string.
    pub fn from_connection_state(state: &str) -> Self {
        match state {
            "connected" => PeerState::Connected,
            "disconnected" => PeerState::Interrupted,
            "failed" | "closed" => PeerState::Failed,
            _ => PeerState::Connecting,
        }
    }

    /// A short label for a tile, or `None` when the video speaks for itself.
    pub fn label(self, t: &Texts) -> Option<&'static str> {
        match self {
            PeerState::Connecting => Some(t.connecting),
            PeerState::Connected => None,
            PeerState::Interrupted => Some(t.reconnecting),
            PeerState::Failed => Some(t.connection_failed),
        }
    }
}

/// Where the call as a whole stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Asking the browser for the camera and microphone.
    StartingMedia,
    /// The camera or microphone could not be opened.
    MediaFailed(MediaProblem),
    /// Media is ready; joining the room on the server.
    Joining,
    /// In the room.
    InRoom,
    /// The room has no free place.
    RoomFull,
    /// The room has a password: none was given (`wrong: false`) or a wrong one.
    NeedsPassword {
        /// A password was given and refused.
        wrong: bool,
    },
    /// Too many wrong passwords (from this network, or for this room): no password is checked
    /// for this many seconds.
    PasswordWait {
        /// How long, in whole seconds, rounded up.
        secs: u64,
    },
    /// The server refused the join for another reason; its message.
    Refused(String),
    /// The connection to the server dropped; reconnecting. Connections already made keep
    /// their media flowing.
    Reconnecting,
}

impl Phase {
    /// True when there is no call to control: it never started or it was refused. (While
    /// `Reconnecting` the connections already made keep their media flowing, so the controls
    /// stay.)
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            Phase::MediaFailed(_)
                | Phase::RoomFull
                | Phase::NeedsPassword { .. }
                | Phase::PasswordWait { .. }
                | Phase::Refused(_)
        )
    }
}

/// What a key does in the call (with no modifier, outside text fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// M: mute or unmute.
    Mute,
    /// V: camera off or on.
    Camera,
    /// S: share the screen or stop.
    Share,
    /// C: open or close the chat.
    Chat,
    /// ?: show or hide the list of shortcuts.
    Help,
}

impl Shortcut {
    /// The keys, in the order of `Texts::shortcut_help`.
    pub const KEYS: [&'static str; 5] = ["M", "V", "S", "C", "?"];

    /// The shortcut for a `KeyboardEvent.key`, if any.
    pub fn for_key(key: &str) -> Option<Self> {
        match key {
            "m" | "M" => Some(Shortcut::Mute),
            "v" | "V" => Some(Shortcut::Camera),
            "s" | "S" => Some(Shortcut::Share),
            "c" | "C" => Some(Shortcut::Chat),
            "?" => Some(Shortcut::Help),
            _ => None,
        }
    }
}

/// The status line of the call page.
pub fn status_line(t: &Texts, phase: &Phase, peers: &[PeerState]) -> String {
    match phase {
        Phase::StartingMedia => t.starting_media.into(),
        Phase::MediaFailed(problem) => problem.explanation(t),
        Phase::Joining => t.joining.into(),
        Phase::RoomFull => t.room_full.into(),
        Phase::NeedsPassword { wrong: false } => t.needs_password.into(),
        Phase::NeedsPassword { wrong: true } => t.wrong_password.into(),
        Phase::PasswordWait { secs } => (t.password_wait)(*secs),
        Phase::Refused(message) => (t.could_not_join)(message),
        Phase::Reconnecting => t.reconnecting_server.into(),
        Phase::InRoom if peers.is_empty() => t.waiting.into(),
        Phase::InRoom => {
            let connected = peers.iter().filter(|p| **p == PeerState::Connected).count();
            if connected == peers.len() {
                t.connected.into()
            } else if peers.contains(&PeerState::Failed) {
                t.connection_failed_long.into()
            } else if peers.contains(&PeerState::Interrupted) {
                t.reconnecting.into()
            } else {
                t.connecting.into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{EN, KO};

    #[test]
    fn status_lines_speak_korean_too() {
        assert_eq!(status_line(&KO, &Phase::InRoom, &[PeerState::Connected]), "연결됨");
        assert!(status_line(&KO, &Phase::RoomFull, &[]).starts_with("방이 가득"));
    }

    #[test]
    fn shortcuts_by_key_either_case() {
        assert_eq!(Shortcut::for_key("m"), Some(Shortcut::Mute));
        assert_eq!(Shortcut::for_key("M"), Some(Shortcut::Mute));
        assert_eq!(Shortcut::for_key("v"), Some(Shortcut::Camera));
        assert_eq!(Shortcut::for_key("s"), Some(Shortcut::Share));
        assert_eq!(Shortcut::for_key("c"), Some(Shortcut::Chat));
        assert_eq!(Shortcut::for_key("?"), Some(Shortcut::Help));
        assert_eq!(Shortcut::for_key("x"), None);
        assert_eq!(Shortcut::for_key("Enter"), None);
    }

    #[test]
    fn waiting_until_someone_joins() {
        assert_eq!(status_line(&EN, &Phase::InRoom, &[]), "Waiting for someone to join — share this link");
    }

    #[test]
    fn connecting_then_connected() {
        assert_eq!(status_line(&EN, &Phase::InRoom, &[PeerState::Connecting]), "Connecting…");
        assert_eq!(status_line(&EN, &Phase::InRoom, &[PeerState::Connected]), "Connected");
        assert_eq!(status_line(&EN, &Phase::InRoom, &[PeerState::Connected, PeerState::Connecting]), "Connecting…");
    }

    #[test]
    fn trouble_is_named() {
        assert!(status_line(&EN, &Phase::InRoom, &[PeerState::Failed]).starts_with("Connection failed"));
        assert_eq!(status_line(&EN, &Phase::InRoom, &[PeerState::Interrupted]), "Reconnecting…");
        assert!(status_line(&EN, &Phase::RoomFull, &[]).starts_with("Room is full"));
        assert_eq!(status_line(&EN, &Phase::NeedsPassword { wrong: false }, &[]), "This room has a password.");
        assert!(status_line(&EN, &Phase::NeedsPassword { wrong: true }, &[]).starts_with("Wrong password"));
        assert!(status_line(&EN, &Phase::Reconnecting, &[]).starts_with("Reconnecting to the server"));
        assert!(status_line(&EN, &Phase::PasswordWait { secs: 30 }, &[]).contains("30 seconds"));
        assert!(status_line(&KO, &Phase::PasswordWait { secs: 30 }, &[]).contains("30초"));
    }

    #[test]
    fn media_errors_say_what_to_do() {
        let denied = MediaProblem::from_dom_exception("NotAllowedError", "Permission denied");
        assert_eq!(denied, MediaProblem::Denied);
        assert!(status_line(&EN, &Phase::MediaFailed(denied), &[]).contains("blocked"));
        assert_eq!(MediaProblem::from_dom_exception("NotFoundError", ""), MediaProblem::NotFound);
        assert_eq!(MediaProblem::from_dom_exception("NotReadableError", ""), MediaProblem::Busy);
        assert_eq!(
            MediaProblem::from_dom_exception("WeirdError", "odd"),
            MediaProblem::Other("WeirdError: odd".into())
        );
        assert!(MediaProblem::Other("X".into()).explanation(&EN).contains("(X)"));
    }

    #[test]
    fn connection_states_map() {
        assert_eq!(PeerState::from_connection_state("new"), PeerState::Connecting);
        assert_eq!(PeerState::from_connection_state("connected"), PeerState::Connected);
        assert_eq!(PeerState::from_connection_state("disconnected"), PeerState::Interrupted);
        assert_eq!(PeerState::from_connection_state("failed"), PeerState::Failed);
        assert_eq!(PeerState::Connected.label(&EN), None);
    }

    #[test]
    fn phases_without_a_call() {
        assert!(Phase::RoomFull.is_over());
        assert!(Phase::Refused("no".into()).is_over());
        assert!(Phase::NeedsPassword { wrong: true }.is_over());
        assert!(Phase::PasswordWait { secs: 1 }.is_over());
        assert!(Phase::MediaFailed(MediaProblem::Denied).is_over());
        assert!(!Phase::InRoom.is_over());
        assert!(!Phase::Reconnecting.is_over(), "media between peers outlives the server connection");
    }
}
