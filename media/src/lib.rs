//! confab's selective forwarding unit (SFU).
//!
//! One tokio task owns one UDP socket and a [str0m](https://docs.rs/str0m) `Rtc` per browser. Each
//! browser has one WebRTC connection to it: it publishes its microphone and camera (the camera as
//! up to three simulcast layers) and receives one audio and one video track per other participant
//! of its room. The task forwards every frame a publisher sends to the subscribers of the same
//! room, choosing per subscriber and per source the layer it asked for.
//!
//! This crate knows str0m and tokio's UDP, never the web server: signaling reaches it as
//! [`MediaHandle`] calls (SDP offers and answers, trickled candidates, layer choices) and leaves
//! it as [`Notice`]s on each participant's own channel. `docs/sfu.md` has the design notes.
//!
//! Invariants:
//! - Media never crosses rooms: a track is only offered to, and only forwarded to, participants
//!   that joined the same [`RoomId`].
//! - Every datagram the socket receives has one outcome, counted in [`MediaStats`]: not a WebRTC
//!   packet, no participant owns it, or handed to the participant's `Rtc`.
//! - Every queue is bounded: commands, each participant's notices (a participant whose notices
//!   back up is dropped), participants per engine and tracks per room.

mod engine;
pub mod layers;
mod outbox;
mod peer;
mod speaker;
mod stats;

pub mod bot;
#[doc(hidden)]
pub mod harness;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use layers::Layer;
pub use stats::MediaStats;

/// A participant's id in its room (the signaling hub's peer id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

/// A room: forwarding happens only between participants with equal room ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomId(pub Arc<str>);

impl RoomId {
    pub fn new(name: &str) -> RoomId {
        RoomId(Arc::from(name))
    }
}

/// A participant of a room: ids are the room's own, so the pair is what names one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    pub room: RoomId,
    pub id: ParticipantId,
}

impl Member {
    pub fn new(room: &str, id: u64) -> Member {
        Member { room: RoomId::new(room), id: ParticipantId(id) }
    }
}

/// What kind of media a forwarded track carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

/// One track the SFU sends to a participant: the transceiver `mid` in that participant's
/// connection carries `kind` from `source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    pub mid: String,
    pub source: ParticipantId,
    pub kind: TrackKind,
}

/// The SFU's answer to a participant's offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub sdp: String,
    /// Every track the SFU sends once the answer is applied, by `mid`. Receive-only lines of the
    /// offer carry the others' tracks (see [`MediaHandle::join`]); tracks that found no line
    /// follow in a [`Notice::Offer`].
    pub tracks: Vec<TrackInfo>,
}

/// What the engine tells one participant's session.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// A new offer from the SFU (tracks were added or removed). Answer with
    /// [`MediaHandle::answer`]. `tracks` lists every track the SFU sends after it.
    Offer { sdp: String, tracks: Vec<TrackInfo> },
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// The connection has had no ICE traffic for a while; an ICE restart (a new offer from the
    /// browser) can bring it back.
    Disconnected,
    /// Who speaks in the participant's room now (`None`: nobody), from the audio levels in the
    /// RTP packets the SFU forwards; sent when it changes and at join.
    ActiveSpeaker { id: Option<ParticipantId> },
    /// The engine dropped this participant (its connection closed, it sent bad data, or its
    /// notices were not read); it has to join again.
    Closed { reason: String },
}

/// Why a [`MediaHandle`] call failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MediaError {
    #[error("the SDP could not be parsed: {0}")]
    BadSdp(String),
    #[error("the ICE candidate could not be parsed: {0}")]
    BadCandidate(String),
    #[error("the offer or answer was refused: {0}")]
    Negotiation(String),
    #[error("this participant has not joined the media server")]
    UnknownParticipant,
    #[error("this participant has already joined the media server")]
    AlreadyJoined,
    #[error("the media server is full")]
    Full,
    #[error("the media server has stopped")]
    Stopped,
}

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// The UDP address to bind (port 0 picks one).
    pub bind: SocketAddr,
    /// The address browsers are told to send to, when it is not the bound one (a public IP in
    /// front of a 1:1 NAT, or the host's address when bound to 0.0.0.0). The port is always the
    /// bound one.
    pub public_ip: Option<IpAddr>,
    /// Participants the engine takes before `join` answers [`MediaError::Full`].
    pub max_participants: usize,
    /// Tracks (audio and video) published in one room before further ones are not forwarded.
    pub max_tracks_per_room: usize,
    /// Notices queued for one participant before the participant is dropped.
    pub notice_queue: usize,
    /// Estimate each participant's downlink (TWCC) and cap the layers it gets to fit it. str0m
    /// paces every connection whose bandwidth it estimates; with the engine's CPU saturated (one
    /// room of 25 bots on two cores) that pacing let no whole video frame through, so it is off
    /// unless asked for.
    pub bwe: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_ip: None,
            max_participants: 500,
            max_tracks_per_room: 200,
            notice_queue: 64,
            bwe: false,
        }
    }
}

/// The engine's inbox. Cloned into every session that talks to it.
#[derive(Clone, Debug)]
pub struct MediaHandle {
    commands: mpsc::Sender<engine::Command>,
    local_addr: SocketAddr,
    stats: Arc<MediaStats>,
}

/// Binds the UDP socket and starts the engine on the current tokio runtime. The engine stops when
/// every [`MediaHandle`] is dropped.
pub fn spawn(config: MediaConfig) -> io::Result<MediaHandle> {
    let socket = std::net::UdpSocket::bind(config.bind)?;
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let local_addr = socket.local_addr()?;
    let advertised = engine::advertised_addr(local_addr, config.public_ip)?;
    let stats = Arc::new(MediaStats::default());
    let (commands, inbox) = mpsc::channel(1024);
    let engine = engine::Engine::new(config, socket, advertised, stats.clone());
    tokio::spawn(engine.run(inbox));
    Ok(MediaHandle { commands, local_addr, stats })
}

impl MediaHandle {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The engine's counters.
    pub fn stats(&self) -> &MediaStats {
        &self.stats
    }

    /// A participant joins `room` with its first offer (its own microphone and camera, and
    /// receive-only lines for the others' tracks); the answer comes back. The others' tracks
    /// go on those lines, each on one of its kind, in the order the offer lists them; those that
    /// find none follow as a [`Notice::Offer`] on `notices`.
    pub async fn join(
        &self,
        member: Member,
        offer_sdp: String,
        notices: mpsc::Sender<Notice>,
    ) -> Result<Answer, MediaError> {
        self.call(|reply| engine::Command::Join { member, offer_sdp, notices, reply }).await
    }

    /// A later offer from the participant (an ICE restart, a changed track); the answer comes
    /// back. If the SFU's own offer was outstanding, it is withdrawn and made again afterwards.
    pub async fn offer(&self, member: Member, offer_sdp: String) -> Result<Answer, MediaError> {
        self.call(|reply| engine::Command::Offer { member, offer_sdp, reply }).await
    }

    /// The participant's answer to the last [`Notice::Offer`].
    pub async fn answer(&self, member: Member, answer_sdp: String) -> Result<(), MediaError> {
        self.call(|reply| engine::Command::Answer { member, answer_sdp, reply }).await
    }

    /// A trickled ICE candidate from the participant (`candidate:…` as the browser gives it).
    pub async fn candidate(&self, member: Member, candidate: String) -> Result<(), MediaError> {
        self.call(|reply| engine::Command::Candidate { member, candidate, reply }).await
    }

    /// Which layer `participant` wants of each source's video (sources not listed keep theirs;
    /// [`Layer::Off`] stops the video, audio always flows).
    pub async fn set_layers(&self, member: Member, layers: Vec<(ParticipantId, Layer)>) -> Result<(), MediaError> {
        self.call(|reply| engine::Command::Layers { member, layers, reply }).await
    }

    /// The participant leaves: its connection closes and its tracks are removed from the others'.
    pub async fn leave(&self, member: Member) {
        let _ = self.commands.send(engine::Command::Leave { member }).await;
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, MediaError>>) -> engine::Command,
    ) -> Result<T, MediaError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| MediaError::Stopped)?;
        answer.await.map_err(|_| MediaError::Stopped)?
    }
}
