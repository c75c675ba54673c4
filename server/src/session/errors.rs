//! What can go wrong in a session: a client's mistake (answered, the socket stays) or the end
//! of the session (with the close frame it sends, if any).

use super::close_code;
use super::RateLimit;
use crate::registry::{self, JoinError, RelayError};
use axum::extract::ws::CloseFrame;
use confab_protocol::{
    ErrorCode, NameError, RoomName, ServerMsg, CHAT_MAX_CHARS, MAX_FRAME_BYTES, MAX_SDP_BYTES, PASSWORD_MAX_CHARS,
};

/// A message a client got wrong: answered with an error frame, the socket stays open.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not JSON, or not a message of a known type.
    #[error("not a valid message: {0}")]
    BadMessage(String),
    /// A binary frame.
    #[error("binary frames are not supported; send JSON text")]
    BinaryFrame,
    /// A text frame over the size cap.
    #[error("message of {0} bytes is over the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge(usize),
    /// An offer or answer whose SDP is over the size cap.
    #[error("an SDP of {0} bytes is over the limit of {MAX_SDP_BYTES} bytes")]
    SdpTooLarge(usize),
    /// A bad room name.
    #[error("room name {0}")]
    InvalidRoom(NameError),
    /// A bad display name.
    #[error("your name {0}")]
    InvalidName(NameError),
    /// The room is full or locked, or the server is full.
    #[error("{0}")]
    Refused(JoinError),
    /// A room password over the length limit.
    #[error("the room password must be at most {PASSWORD_MAX_CHARS} characters")]
    InvalidPassword,
    /// A join on a socket that is already in a room.
    #[error("this connection already joined room {0}")]
    AlreadyJoined(RoomName),
    /// A relay, media update or leave before any join.
    #[error("join a room first")]
    NotJoined,
    /// More messages than the rate limit allows; the message was dropped.
    #[error("too many messages: at most {} a second (bursts of {})", .0.per_second, .0.burst)]
    RateLimited(RateLimit),
    /// A join secret that breaks the rules.
    #[error("the join secret must be {min} to {max} printable ASCII characters", min = confab_protocol::SECRET_MIN_CHARS, max = confab_protocol::SECRET_MAX_CHARS)]
    InvalidSecret,
    /// An empty chat message, one over the length limit, or one with control characters.
    #[error("a chat message must be 1 to {CHAT_MAX_CHARS} characters, without control characters")]
    InvalidChat,
    /// A relay to a peer outside the sender's room.
    #[error("{0}")]
    UnknownPeer(RelayError),
    /// An SFU message to a server without one.
    #[error("this server does not forward media itself; calls go peer to peer")]
    SfuUnavailable,
    /// The SFU did not take an offer or answer.
    #[error("the media server refused: {0}")]
    SfuRefused(confab_media::MediaError),
}

impl ClientError {
    /// The wire code for this mistake.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::BadMessage(_) => ErrorCode::BadMessage,
            ClientError::BinaryFrame => ErrorCode::BinaryFrame,
            ClientError::TooLarge(_) | ClientError::SdpTooLarge(_) => ErrorCode::TooLarge,
            ClientError::InvalidRoom(_) => ErrorCode::InvalidRoom,
            ClientError::InvalidName(_) => ErrorCode::InvalidName,
            ClientError::Refused(JoinError::Full { .. }) => ErrorCode::RoomFull,
            ClientError::Refused(JoinError::PasswordRequired) => ErrorCode::PasswordRequired,
            ClientError::Refused(JoinError::WrongPassword) => ErrorCode::WrongPassword,
            ClientError::Refused(JoinError::ServerFull) => ErrorCode::ServerFull,
            ClientError::Refused(JoinError::TooManyJoins { .. }) => ErrorCode::TooManyJoins,
            ClientError::Refused(JoinError::TooManyPlaces { .. }) => ErrorCode::TooManyPlaces,
            ClientError::Refused(JoinError::TooManyAttempts { .. }) => ErrorCode::TooManyAttempts,
            ClientError::InvalidPassword => ErrorCode::InvalidPassword,
            ClientError::InvalidChat => ErrorCode::InvalidChat,
            ClientError::AlreadyJoined(_) => ErrorCode::AlreadyJoined,
            ClientError::NotJoined => ErrorCode::NotJoined,
            ClientError::UnknownPeer(_) => ErrorCode::UnknownPeer,
            ClientError::InvalidSecret => ErrorCode::InvalidSecret,
            ClientError::RateLimited(_) => ErrorCode::RateLimited,
            ClientError::SfuUnavailable => ErrorCode::SfuUnavailable,
            ClientError::SfuRefused(_) => ErrorCode::SfuRefused,
        }
    }

    pub(super) fn to_msg(&self) -> ServerMsg {
        match self {
            ClientError::Refused(refused) => match refused.retry_after() {
                // Rounded up: trying again after this many milliseconds is never too early.
                Some(after) => ServerMsg::error_retry_after(
                    self.code(),
                    self.to_string(),
                    u64::try_from(after.as_micros().div_ceil(1000)).unwrap_or(u64::MAX).max(1),
                ),
                None => ServerMsg::error(self.code(), self.to_string()),
            },
            _ => ServerMsg::error(self.code(), self.to_string()),
        }
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum End {
    /// The browser closed the socket with a close frame (tab closed, page left).
    #[error("closed by the client")]
    Closed,
    /// The connection ended without a close frame: a network drop, a crashed tab. The place is
    /// held for the grace period.
    #[error("connection dropped")]
    Dropped,
    /// Reading or writing failed (including frames over the transport's hard limit).
    #[error("socket error: {0}")]
    Socket(axum::Error),
    /// Nothing heard for longer than the heartbeat allows, or a frame not taken in that time.
    #[error("no answer to heartbeat pings, or not reading")]
    Dead,
    /// Too many client mistakes in a short time.
    #[error("too many invalid messages")]
    Abusive,
    /// The registry dropped this peer because it did not keep up.
    #[error("did not read its messages fast enough")]
    TooSlow,
    /// This node lost its place in the cluster; the browser should join again.
    #[error("this node lost the room store")]
    Lost,
    /// A newer connection with the same secret took this one's place.
    #[error("replaced by a newer connection")]
    Replaced,
    /// The server is shutting down.
    #[error("server shutting down")]
    Shutdown,
    /// The room store (Redis) could not be reached.
    #[error("{0}")]
    Unavailable(#[from] registry::Unavailable),
}

impl End {
    /// The close frame to send, if the socket is still writable.
    pub(super) fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::Closed | End::Dropped | End::Socket(_) | End::Dead => return None,
            End::Replaced => (close_code::REPLACED, "replaced by a newer connection"),
            End::Abusive => (close_code::POLICY, "too many invalid messages"),
            End::TooSlow => (close_code::TRY_AGAIN_LATER, "too slow"),
            End::Unavailable(_) | End::Lost => (close_code::TRY_AGAIN_LATER, "signaling store unavailable"),
            End::Shutdown => (close_code::GOING_AWAY, "server restarting"),
        };
        Some(CloseFrame { code, reason: reason.into() })
    }
}
