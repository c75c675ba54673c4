//! The signaling protocol between a confab server and its browser clients.
//!
//! Every WebSocket text frame is one JSON object tagged by `"type"`. Messages are named by
//! direction: [`ClientMsg`] travels browser → server, [`ServerMsg`] server → browser. The crate
//! knows only serde (and its JSON format) and Unicode normalization (for names), so the same
//! types compile into the axum server and the wasm client.
//!
//! # Layout
//! - [`ClientMsg`] / [`ServerMsg`]: the two message enums.
//! - [`Signal`]: the WebRTC payload (offer, answer, ICE candidate) that the server relays between
//!   two peers of one room without looking inside.
//! - [`RoomName`] / [`DisplayName`]: validated names; both sides use the same rules.
//! - [`ErrorCode`]: every way a request can be refused.
//! - [`ActiveSpeaker`]: who is speaking, by the one rule the browser and the SFU both apply.
//!
//! # The call, message by message
//! 1. A browser sends [`ClientMsg::Join`]; the server answers [`ServerMsg::Welcome`] with the id it
//!    assigned, the peers already present and the ICE servers to use. Everyone else in the room
//!    gets [`ServerMsg::PeerJoined`].
//! 2. Each peer already present sends an offer to the newcomer ([`ClientMsg::Signal`] with
//!    [`Signal::Offer`]); the newcomer answers; both trickle ICE candidates. The server relays each
//!    as [`ServerMsg::Signal`] with `from` filled in by itself, never by the sender.
//! 3. [`ClientMsg::Leave`] or a closed socket makes the server send [`ServerMsg::PeerLeft`] to the
//!    rest of the room.

use serde::{Deserialize, Serialize};
use std::fmt;

pub mod speaker;
pub use speaker::ActiveSpeaker;

/// Largest text frame, in bytes, that a server accepts; a larger one is answered with
/// [`ErrorCode::TooLarge`]. An SDP offer of a call with audio and video is about 5 KiB.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Largest SDP (of an offer or an answer) a server relays, in bytes; a larger one is answered
/// with [`ErrorCode::TooLarge`]. Browsers' descriptions of a call with audio, video and a shared
/// screen are a few KiB (one with many codecs and simulcast layers about 10 KiB).
pub const MAX_SDP_BYTES: usize = 32 * 1024;

/// The WebSocket path of the signaling hub, relative to the site's origin.
pub const WS_PATH: &str = "/ws";

/// An id the server gives each joined socket. Unique for the server's lifetime; never reused.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A participant as others see it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The id to address signals to. A participant who rejoins after losing the server gets a
    /// new one; its `key` stays.
    pub id: PeerId,
    /// The name the participant typed in.
    pub name: DisplayName,
    /// A stable label the server derives from the participant's secret (see
    /// [`ClientMsg::Join`]): the same browser tab has the same key across reconnects and server
    /// restarts, and no one else can claim it. Clients use it to keep existing connections when
    /// a participant comes back with a new id, and to pick polite and impolite roles.
    pub key: PeerKey,
    /// Whether their microphone or camera is off.
    #[serde(default)]
    pub media: MediaState,
}

/// See [`PeerInfo::key`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct PeerKey(pub String);

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the start page reads the listed rooms (`GET`, JSON array of [`ListedRoom`]).
pub const ROOMS_PATH: &str = "/api/rooms";

/// A room whose creator chose to list it on the start page.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListedRoom {
    /// Its name.
    pub name: RoomName,
    /// How many people are in it.
    pub people: usize,
    /// It has a password.
    pub locked: bool,
}

/// The most characters one chat message may have.
pub const CHAT_MAX_CHARS: usize = 1000;

/// One chat message as the server stamped it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Random; the same message arrives again in a welcome after a reconnect, and browsers drop
    /// what they already have by this id.
    pub id: u64,
    /// The sender's key (stable across reconnects).
    pub from: PeerKey,
    /// The sender's name when it was sent.
    pub name: DisplayName,
    /// The text.
    pub text: String,
    /// When the server received it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// What a participant sends, as others should show it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaState {
    /// The microphone is muted.
    #[serde(default)]
    pub muted: bool,
    /// The camera is off.
    #[serde(default)]
    pub camera_off: bool,
    /// The video is a shared screen, not the camera.
    #[serde(default, skip_serializing_if = "is_false")]
    pub screen: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Which ICE candidates `RTCPeerConnection` may use (its `iceTransportPolicy`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum IceTransportPolicy {
    /// Any candidate: direct when possible, TURN when needed.
    #[default]
    All,
    /// TURN relays only.
    Relay,
}

/// A STUN or TURN server, in the shape of the browser's `RTCIceServer` dictionary.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs of one server.
    pub urls: Vec<String>,
    /// TURN user name, absent for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password, absent for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A trickled ICE candidate, in the shape of the browser's `RTCIceCandidateInit`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    /// The `candidate:` line.
    pub candidate: String,
    /// The media stream identification tag the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the m-line the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
}

/// The WebRTC negotiation payload relayed between two peers. Opaque to the server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// A session description of type `offer`.
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// A session description of type `answer`.
    Answer {
        /// The SDP text.
        sdp: String,
    },
    /// One trickled ICE candidate.
    Candidate(IceCandidate),
}

/// What a track the SFU sends carries.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// A microphone.
    Audio,
    /// A camera (or a shared screen in its place).
    Video,
}

/// One track of the browser's connection to the SFU: the transceiver `mid` receives `kind` of
/// participant `peer`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SfuTrack {
    /// The transceiver's media id in the browser's connection to the SFU.
    pub mid: String,
    /// Whose media it carries.
    pub peer: PeerId,
    /// Audio or video.
    pub kind: TrackKind,
}

/// How much of a participant's camera a browser wants from the SFU (the size of its tile).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum VideoLayer {
    /// No video (the tile is not shown); audio is not affected.
    Off,
    /// A quarter of the camera's resolution (a thumbnail).
    Low,
    /// Half of it.
    Medium,
    /// All of it.
    High,
}

/// The layer a browser wants of one participant's camera.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SfuLayer {
    /// Whose camera.
    pub peer: PeerId,
    /// Which layer.
    pub layer: VideoLayer,
}

/// A message from a browser to the server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Enter a room. Answered by [`ServerMsg::Welcome`] or an [`ServerMsg::Error`]
    /// (`invalid_room`, `invalid_name`, `room_full`, `already_joined`).
    Join {
        /// The room to enter; trimmed by the server, see [`RoomName`].
        room: String,
        /// The name others will see; trimmed by the server, see [`DisplayName`].
        name: String,
        /// A random secret of the browser tab, [`SECRET_MIN_CHARS`] to [`SECRET_MAX_CHARS`]
        /// printable ASCII characters. Joining again with the same secret while the server still
        /// holds the place (the socket dropped less than the grace period ago, or is still open)
        /// resumes it: same id, nobody is told of a leave or a join. Without one, the server
        /// makes one up and the place cannot be resumed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// The room's password. The first person into an empty room sets it (or leaves the room
        /// open by sending none); everyone after must give the same one. At most
        /// [`PASSWORD_MAX_CHARS`] characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// List the room on the start page (decided, like the password, by whoever creates it).
        #[serde(default, skip_serializing_if = "is_false")]
        listed: bool,
        /// Mute and camera state to show others from the start.
        #[serde(default)]
        media: MediaState,
    },
    /// Mute or camera state changed; others get [`ServerMsg::PeerMedia`]. Not answered; a
    /// `not_joined` error if the socket is in no room.
    Media(MediaState),
    /// Relay a WebRTC payload to another peer of the same room. Not answered on success; an
    /// `unknown_peer` or `not_joined` error otherwise.
    Signal {
        /// The receiving peer.
        to: PeerId,
        /// The payload, delivered unchanged.
        signal: Signal,
    },
    /// Leave the room; the socket may join again afterwards. Not answered; a `not_joined` error if
    /// the socket is in no room.
    Leave,
    /// A chat message to everyone in the room (the sender included, who gets it back with its id
    /// and time). 1 to [`CHAT_MAX_CHARS`] characters after trimming.
    Chat {
        /// The text, shown as text (never as markup).
        text: String,
    },
    /// A WebRTC payload for this browser's one connection to the server's SFU (rooms of the
    /// welcome's `sfu_from` people or more). An offer (the first one opens the connection) is
    /// answered with [`ServerMsg::Sfu`] carrying the answer; an answer replies to the SFU's own
    /// offer; candidates are taken silently (one the SFU cannot use is dropped). Refusals:
    /// `sfu_unavailable` (this server runs no SFU), `sfu_refused` (the SDP was not accepted),
    /// `not_joined`, `too_large`.
    Sfu {
        /// The payload.
        signal: Signal,
    },
    /// Which layer of each participant's camera to receive through the SFU (participants not
    /// named keep theirs; the full layer until told otherwise). Not answered; `sfu_unavailable`
    /// or `not_joined` otherwise.
    SfuLayers {
        /// One entry per participant.
        layers: Vec<SfuLayer>,
    },
}

/// A message from the server to a browser.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The join succeeded.
    Welcome {
        /// This socket's id in the room.
        id: PeerId,
        /// This participant's key, as others see it.
        key: PeerKey,
        /// The room's canonical (trimmed) name.
        room: RoomName,
        /// Everyone already in the room; each of them will send an offer (unless `resumed`).
        peers: Vec<PeerInfo>,
        /// The ICE servers to configure `RTCPeerConnection` with.
        ice_servers: Vec<IceServer>,
        /// The join took back a place the server still held: the id is the old one, and no one
        /// was told of a leave or a join. Connections made before go on.
        #[serde(default)]
        resumed: bool,
        /// Which ICE candidates the browser may use: `relay` keeps participants' addresses from
        /// each other by sending all media through TURN.
        #[serde(default)]
        ice_transport_policy: IceTransportPolicy,
        /// The room has a password.
        #[serde(default)]
        locked: bool,
        /// The room's recent chat, oldest first.
        #[serde(default)]
        chat: Vec<ChatMessage>,
        /// The server forwards media itself (an SFU) in rooms of this many people or more: at
        /// that size every browser keeps one connection, to the server ([`ClientMsg::Sfu`]),
        /// instead of one per other participant. Absent: always peer to peer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sfu_from: Option<u16>,
    },
    /// A participant's mute or camera state changed.
    PeerMedia {
        /// Who.
        id: PeerId,
        /// Their new state.
        media: MediaState,
    },
    /// Someone entered the room: send them an offer.
    PeerJoined {
        /// The newcomer.
        peer: PeerInfo,
    },
    /// Someone left the room or lost their connection.
    PeerLeft {
        /// The peer that left.
        id: PeerId,
    },
    /// A payload relayed from another peer of the room.
    Signal {
        /// The sender, as the server knows it.
        from: PeerId,
        /// The payload, unchanged.
        signal: Signal,
    },
    /// A chat message in the room (sent to everyone, the sender included).
    Chat {
        /// The message.
        message: ChatMessage,
    },
    /// Fresh TURN credentials (sent every half of their lifetime while joined): connections
    /// use them for new allocations, e.g. at their next ICE restart.
    IceServers {
        /// The ICE servers to configure `RTCPeerConnection` with from now on.
        ice_servers: Vec<IceServer>,
    },
    /// A payload from the SFU for this browser's connection to it: the answer to its offer, or an
    /// offer of the SFU's own (participants' tracks added or removed) to answer with
    /// [`ClientMsg::Sfu`]. `tracks` lists every track the connection receives once the answer
    /// is applied, by transceiver `mid`: an answer puts the others' tracks on the receive-only
    /// transceivers of the browser's offer (one of each kind per track, in the offer's order;
    /// those that find none follow in an offer).
    Sfu {
        /// The payload.
        signal: Signal,
        /// Whose media each transceiver carries.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tracks: Vec<SfuTrack>,
    },
    /// Who speaks in the room, as the SFU hears it (from the audio level every browser writes
    /// into its RTP packets, smoothed by [`speaker::ActiveSpeaker`]): sent when it changes, and at once to
    /// a browser that opens its SFU connection, to the browsers on the SFU. `None`: nobody.
    ActiveSpeaker {
        /// The speaker (possibly the receiving browser itself).
        id: Option<PeerId>,
    },
    /// The SFU dropped this browser's connection (it failed, or went unanswered): open a new one
    /// with a fresh offer.
    SfuClosed {
        /// Why, for people.
        reason: String,
    },
    /// A request was refused. The socket stays open unless the server also closes it.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
        /// For a refusal that time lifts (`too_many_joins`, `too_many_attempts`): how long to
        /// wait before trying again, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// Fewest characters of a join secret.
pub const SECRET_MIN_CHARS: usize = 16;
/// Most characters of a join secret.
pub const SECRET_MAX_CHARS: usize = 128;

/// The most characters a room password may have.
pub const PASSWORD_MAX_CHARS: usize = 128;

/// True if `secret` is acceptable as a join secret.
pub fn valid_secret(secret: &str) -> bool {
    (SECRET_MIN_CHARS..=SECRET_MAX_CHARS).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic())
}

/// Why the server refused a message.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not a JSON message of a known type.
    BadMessage,
    /// The frame was binary; the protocol is JSON text.
    BinaryFrame,
    /// The frame was larger than [`MAX_FRAME_BYTES`], or an SDP larger than [`MAX_SDP_BYTES`].
    TooLarge,
    /// The room name broke the rules of [`RoomName`].
    InvalidRoom,
    /// The display name broke the rules of [`DisplayName`].
    InvalidName,
    /// The room holds as many peers as the server allows.
    RoomFull,
    /// This socket already joined a room.
    AlreadyJoined,
    /// The message needs a joined room and this socket has none.
    NotJoined,
    /// The addressed peer is not in this socket's room.
    UnknownPeer,
    /// The join secret broke the rules of [`valid_secret`].
    InvalidSecret,
    /// Messages came faster than the server accepts from one connection; this one was dropped.
    RateLimited,
    /// The room has a password and the join gave none.
    PasswordRequired,
    /// The join gave a password that is not the room's.
    WrongPassword,
    /// A password over [`PASSWORD_MAX_CHARS`] characters.
    InvalidPassword,
    /// The server holds as many rooms or people as it is configured for.
    ServerFull,
    /// An empty chat message, or one over [`CHAT_MAX_CHARS`] characters.
    InvalidChat,
    /// This address (an IPv6 address: its /64) joined rooms faster than the server allows; the
    /// error's `retry_after_ms` says when a join will be taken again.
    TooManyJoins,
    /// This address (an IPv6 address: its /64) holds as many places in rooms as the server
    /// allows, counting the places of dropped connections held for their return.
    TooManyPlaces,
    /// Too many wrong passwords, from this address or for this room: no password is checked
    /// until the error's `retry_after_ms` has passed.
    TooManyAttempts,
    /// A [`ClientMsg::Sfu`] or [`ClientMsg::SfuLayers`] to a server that runs no SFU.
    SfuUnavailable,
    /// The SFU did not accept an offer or answer; the message says why.
    SfuRefused,
}

impl ErrorCode {
    /// The code as it appears on the wire (`"room_full"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::BinaryFrame => "binary_frame",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::UnknownPeer => "unknown_peer",
            ErrorCode::InvalidSecret => "invalid_secret",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::PasswordRequired => "password_required",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::InvalidPassword => "invalid_password",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::InvalidChat => "invalid_chat",
            ErrorCode::TooManyJoins => "too_many_joins",
            ErrorCode::TooManyPlaces => "too_many_places",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::SfuUnavailable => "sfu_unavailable",
            ErrorCode::SfuRefused => "sfu_refused",
        }
    }
}

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Nothing but white space.
    Empty,
    /// More characters than allowed.
    TooLong {
        /// The allowed maximum, in characters.
        max: usize,
    },
    /// A control character (new line, tab, …).
    ControlCharacter,
    /// An invisible formatting character (Unicode category Cf: bidi overrides such as U+202E,
    /// zero-width spaces and joiners, the byte order mark, …), which can make a name look like
    /// another.
    FormatCharacter,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("must not be empty"),
            NameError::TooLong { max } => write!(f, "must be at most {max} characters"),
            NameError::ControlCharacter => f.write_str("must not contain control characters"),
            NameError::FormatCharacter => f.write_str("must not contain invisible formatting characters"),
        }
    }
}

impl std::error::Error for NameError {}

/// The characters of Unicode's general category Cf ("format"), as of Unicode 15.1: invisible
/// characters that steer how text around them is shown (bidi embeddings, overrides and
/// isolates, zero-width spaces and joiners, the soft hyphen, the byte order mark, tags, …).
const FORMAT_CHARACTERS: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// True for a character of Unicode's general category Cf (see [`FORMAT_CHARACTERS`]).
pub fn is_format_character(c: char) -> bool {
    FORMAT_CHARACTERS.iter().any(|&(first, last)| (first..=last).contains(&c))
}

/// The zero-width non-joiner and joiner: Persian, Indic and other scripts need them inside words,
/// and emoji sequences (👨‍👩‍👧) are made with them.
fn is_joiner(c: char) -> bool {
    c == '\u{200C}' || c == '\u{200D}'
}

/// Whether a joiner next to `c` does what it is for: between two characters of a script that
/// uses it (or emoji), never next to ASCII, spaces or other format characters, where it would
/// only make a name look like another ("A\u{200D}da" for "Ada").
fn joins(c: char) -> bool {
    !c.is_ascii() && !c.is_whitespace() && !is_format_character(c)
}

/// `s` in Unicode NFC.
#[cfg(not(target_arch = "wasm32"))]
fn nfc(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfc().collect()
}

/// `s` in Unicode NFC, by the browser.
#[cfg(target_arch = "wasm32")]
fn nfc(s: &str) -> String {
    js_sys::JsString::from(s).normalize("NFC").into()
}

/// Trims `raw`, brings it to Unicode NFC (so that a name typed with combining accents and one
/// typed precomposed are the same name, on the server and in the browser alike) and checks the
/// rules.
fn check_name(raw: &str, max: usize) -> Result<String, NameError> {
    let name = nfc(raw.trim());
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    let chars: Vec<char> = name.chars().collect();
    let refused_format = chars.iter().enumerate().any(|(i, &c)| {
        is_format_character(c)
            && !(is_joiner(c) && i > 0 && i + 1 < chars.len() && joins(chars[i - 1]) && joins(chars[i + 1]))
    });
    if refused_format {
        return Err(NameError::FormatCharacter);
    }
    if name.chars().count() > max {
        return Err(NameError::TooLong { max });
    }
    Ok(name)
}

/// A room's name: trimmed, in Unicode NFC, 1 to [`RoomName::MAX_CHARS`] characters, no control
/// or format characters (see [`NameError`]). Any script is welcome (`회의실` is a fine room).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

impl RoomName {
    /// The most characters (not bytes) a room name may have.
    pub const MAX_CHARS: usize = 64;

    /// Trims `raw` and checks the rules.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check_name(raw, Self::MAX_CHARS).map(Self)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A participant's name: trimmed, in Unicode NFC, 1 to [`DisplayName::MAX_CHARS`] characters,
/// no control characters and no format characters (a right-to-left override or a zero-width
/// space could make one person's name pass for another's).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// The most characters (not bytes) a display name may have.
    pub const MAX_CHARS: usize = 40;

    /// Trims `raw` and checks the rules.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check_name(raw, Self::MAX_CHARS).map(Self)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! name_conversions {
    ($ty:ident) => {
        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(raw: String) -> Result<Self, NameError> {
                Self::parse(&raw)
            }
        }
        impl From<$ty> for String {
            fn from(name: $ty) -> String {
                name.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
name_conversions!(RoomName);
name_conversions!(DisplayName);

impl ClientMsg {
    /// Encodes the message as the JSON text of one frame.
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    /// Decodes one frame's JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl ServerMsg {
    /// Encodes the message as the JSON text of one frame.
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    /// Decodes one frame's JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// An error message with its human text.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error { code, message: message.into(), retry_after_ms: None }
    }

    /// An error message that says when to try again.
    pub fn error_retry_after(code: ErrorCode, message: impl Into<String>, retry_after_ms: u64) -> Self {
        ServerMsg::Error { code, message: message.into(), retry_after_ms: Some(retry_after_ms) }
    }
}

/// These types hold only strings, integers, options, vectors and tagged enums, whose JSON
/// encoding cannot fail.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("protocol messages always encode as JSON")
}

#[cfg(test)]
mod tests;
