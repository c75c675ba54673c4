//! What the call page tells a person, derived from the call's state. Pure functions, so they are
//! tested natively and shared by the server render and the browser.

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
    pub fn explanation(&self) -> String {
        match self {
            MediaProblem::Denied => "Camera and microphone access is blocked. Allow both for this site \
                (the camera icon in the address bar), then press Try again."
                .into(),
            MediaProblem::NotFound => "No camera or microphone was found. Connect one, then press Try again.".into(),
            MediaProblem::Busy => "Your camera or microphone is in use by another program. Close it, \
                then press Try again."
                .into(),
            MediaProblem::Unavailable => {
                "The chosen camera is no longer available. Press Try again to use another one.".into()
            }
            MediaProblem::Insecure => "This browser allows the camera only on secure pages. Open this \
                site over https:// (or on localhost)."
                .into(),
            MediaProblem::Other(detail) => {
                format!("The camera or microphone could not be started ({detail}). Press Try again.")
            }
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
    pub fn label(self) -> Option<&'static str> {
        match self {
            PeerState::Connecting => Some("Connecting…"),
            PeerState::Connected => None,
            PeerState::Interrupted => Some("Reconnecting…"),
            PeerState::Failed => Some("Connection failed"),
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
        matches!(self, Phase::MediaFailed(_) | Phase::RoomFull | Phase::NeedsPassword { .. } | Phase::Refused(_))
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
    /// Every shortcut with its key and what it does, for the help list.
    pub const ALL: [(&'static str, &'static str); 5] = [
        ("M", "Mute or unmute"),
        ("V", "Turn the camera off or on"),
        ("S", "Share the screen, or stop"),
        ("C", "Open or close the chat"),
        ("?", "Show or hide these shortcuts"),
    ];

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
pub fn status_line(phase: &Phase, peers: &[PeerState]) -> String {
    match phase {
        Phase::StartingMedia => "Starting your camera and microphone…".into(),
        Phase::MediaFailed(problem) => problem.explanation(),
        Phase::Joining => "Joining the room…".into(),
        Phase::RoomFull => "Room is full. Try again later, or pick another room name.".into(),
        Phase::NeedsPassword { wrong: false } => "This room has a password.".into(),
        Phase::NeedsPassword { wrong: true } => "Wrong password. Check it and try again.".into(),
        Phase::Refused(message) => format!("Could not join: {message}"),
        Phase::Reconnecting => "Reconnecting to the server… (connected calls go on)".into(),
        Phase::InRoom if peers.is_empty() => "Waiting for someone to join — share this link".into(),
        Phase::InRoom => {
            let connected = peers.iter().filter(|p| **p == PeerState::Connected).count();
            if connected == peers.len() {
                "Connected".into()
            } else if peers.contains(&PeerState::Failed) {
                "Connection failed — the network between you may block calls".into()
            } else if peers.contains(&PeerState::Interrupted) {
                "Reconnecting…".into()
            } else {
                "Connecting…".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(status_line(&Phase::InRoom, &[]), "Waiting for someone to join — share this link");
    }

    #[test]
    fn connecting_then_connected() {
        assert_eq!(status_line(&Phase::InRoom, &[PeerState::Connecting]), "Connecting…");
        assert_eq!(status_line(&Phase::InRoom, &[PeerState::Connected]), "Connected");
        assert_eq!(status_line(&Phase::InRoom, &[PeerState::Connected, PeerState::Connecting]), "Connecting…");
    }

    #[test]
    fn trouble_is_named() {
        assert!(status_line(&Phase::InRoom, &[PeerState::Failed]).starts_with("Connection failed"));
        assert_eq!(status_line(&Phase::InRoom, &[PeerState::Interrupted]), "Reconnecting…");
        assert!(status_line(&Phase::RoomFull, &[]).starts_with("Room is full"));
        assert_eq!(status_line(&Phase::NeedsPassword { wrong: false }, &[]), "This room has a password.");
        assert!(status_line(&Phase::NeedsPassword { wrong: true }, &[]).starts_with("Wrong password"));
        assert!(status_line(&Phase::Reconnecting, &[]).starts_with("Reconnecting to the server"));
    }

    #[test]
    fn media_errors_say_what_to_do() {
        let denied = MediaProblem::from_dom_exception("NotAllowedError", "Permission denied");
        assert_eq!(denied, MediaProblem::Denied);
        assert!(status_line(&Phase::MediaFailed(denied), &[]).contains("blocked"));
        assert_eq!(MediaProblem::from_dom_exception("NotFoundError", ""), MediaProblem::NotFound);
        assert_eq!(MediaProblem::from_dom_exception("NotReadableError", ""), MediaProblem::Busy);
        assert_eq!(
            MediaProblem::from_dom_exception("WeirdError", "odd"),
            MediaProblem::Other("WeirdError: odd".into())
        );
        assert!(MediaProblem::Other("X".into()).explanation().contains("(X)"));
    }

    #[test]
    fn connection_states_map() {
        assert_eq!(PeerState::from_connection_state("new"), PeerState::Connecting);
        assert_eq!(PeerState::from_connection_state("connected"), PeerState::Connected);
        assert_eq!(PeerState::from_connection_state("disconnected"), PeerState::Interrupted);
        assert_eq!(PeerState::from_connection_state("failed"), PeerState::Failed);
        assert_eq!(PeerState::Connected.label(), None);
    }

    #[test]
    fn phases_without_a_call() {
        assert!(Phase::RoomFull.is_over());
        assert!(Phase::Refused("no".into()).is_over());
        assert!(Phase::NeedsPassword { wrong: true }.is_over());
        assert!(Phase::MediaFailed(MediaProblem::Denied).is_over());
        assert!(!Phase::InRoom.is_over());
        assert!(!Phase::Reconnecting.is_over(), "media between peers outlives the server connection");
    }
}
