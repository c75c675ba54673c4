//! One WebSocket connection, from upgrade to close.
//!
//! [`run`] owns the socket and loops over four sources: frames from the browser, messages queued
//! for it by the registry, the heartbeat timer and the server's shutdown signal. Every frame gets
//! a defined answer:
//! - a message that the protocol allows is carried out (join, relay, leave);
//! - a client mistake ([`ClientError`]) is answered with a typed error frame and the socket stays
//!   usable, unless the socket makes too many mistakes in a short time: then it is closed with
//!   [`close_code::POLICY`];
//! - a failure of the connection itself ([`End`]) ends the session; its room is told.
//!
//! The loop is generic over the socket's `Stream` + `Sink`, so it runs the same over axum's
//! WebSocket and over anything else that speaks its `Message` type.

use crate::registry::{self, key_of, random_key, EndReason, Frame, Inbox, Joiner, Outgoing};
use crate::Hub;
pub use errors::{ClientError, End};

mod errors;
use axum::extract::ws::Message;
use confab_media::{Layer, Member, Notice, ParticipantId};
use confab_protocol::{
    valid_secret, ClientMsg, DisplayName, PeerId, PeerKey, RoomName, ServerMsg, SfuTrack, Signal, TrackKind,
    VideoLayer, CHAT_MAX_CHARS, MAX_FRAME_BYTES, MAX_SDP_BYTES, PASSWORD_MAX_CHARS,
};
use futures::{Sink, SinkExt, Stream, StreamExt};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// WebSocket close codes the server uses.
pub mod close_code {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The socket broke the protocol too often (see `MAX_MISTAKES`).
    pub const POLICY: u16 = 1008;
    /// The socket did not read its messages fast enough and was dropped from its room, or the
    /// room store (Redis) could not be reached: reconnect after a moment.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// A newer connection of the same participant (same secret) took this one's place; the
    /// client should not reconnect from here.
    pub const REPLACED: u16 = 4000;
}

/// Messages one socket may send in a burst (the default); below the registry's outbox capacity,
/// so a burst relayed to one peer cannot overflow that peer's queue on its own.
pub const RATE_BURST: f64 = 100.0;
/// Messages one socket may send per second after a burst (the default; a six-person join sends a
/// few dozen).
pub const RATE_PER_SECOND: f64 = 40.0;

/// The token bucket every socket's messages go through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Messages one socket may send in a burst.
    pub burst: f64,
    /// Messages per second after a burst.
    pub per_second: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { burst: RATE_BURST, per_second: RATE_PER_SECOND }
    }
}

/// The most queued messages written to a socket before one flush.
const SEND_BATCH: usize = 32;

/// How many client mistakes within [`MISTAKE_WINDOW`] a socket may make before it is closed.
pub const MAX_MISTAKES: u32 = 10;
/// The window over which mistakes are counted.
pub const MISTAKE_WINDOW: Duration = Duration::from_secs(10);

/// Where the socket stands.
enum State {
    /// Connected, in no room.
    Lobby,
    /// In a room.
    Joined {
        /// The room.
        room: RoomName,
        /// The id the registry assigned.
        id: PeerId,
        /// This attachment's session number in the registry.
        session: u64,
        /// Messages the registry queued for this socket.
        inbox: Inbox,
        /// This participant's key (its TURN credentials are minted for it).
        key: PeerKey,
        /// Layers asked for before this socket's SFU connection exists (a browser may ask while
        /// its offer is on the way): given to the engine when it joins, latest per source.
        early_layers: Vec<(ParticipantId, Layer)>,
    },
}

/// The most sources whose layers are kept for an SFU connection that does not exist yet.
const MAX_EARLY_LAYERS: usize = 256;

/// This socket's connection to the SFU, once its browser has offered one.
struct SfuLink {
    /// The engine's name for it.
    member: Member,
    /// What the engine tells it (its offers, its end).
    notices: tokio::sync::mpsc::Receiver<Notice>,
}

/// Notices one socket's SFU connection may have queued; the engine drops a connection whose
/// notices are not read (a few offers at most are ever outstanding).
const SFU_NOTICES: usize = 32;

/// A token bucket over the messages a socket sends.
struct Rate {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl Rate {
    fn new(limit: RateLimit) -> Self {
        Rate { limit, tokens: limit.burst, last: Instant::now() }
    }

    /// Takes one token; false if there is none.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.limit.per_second).min(self.limit.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts mistakes in a fixed window.
struct Mistakes {
    count: u32,
    window_start: Instant,
}

impl Mistakes {
    fn new() -> Self {
        Mistakes { count: 0, window_start: Instant::now() }
    }

    /// Records one mistake; true if that is one too many.
    fn record(&mut self) -> bool {
        if self.window_start.elapsed() > MISTAKE_WINDOW {
            self.window_start = Instant::now();
            self.count = 0;
        }
        self.count += 1;
        self.count > MAX_MISTAKES
    }
}

/// Runs one connection from client address `ip` until it ends, then removes it from its room.
pub async fn run<S>(mut socket: S, hub: Arc<Hub>, ip: IpAddr)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let mut state = State::Lobby;
    let mut sfu = None;
    let end = drive(&mut socket, &hub, &mut state, &mut sfu, crate::addr::ip_group(ip)).await;
    leave_sfu(&hub, &mut sfu).await;
    match (&state, &end) {
        (State::Joined { room, id, session, .. }, End::Dropped | End::Socket(_)) => {
            // Maybe a network blip: hold the place for the grace period.
            match hub.rooms.detach(room, *id, *session).await {
                Ok(true) => {
                    tracing::info!(%room, peer = %id, reason = %end, "peer detached");
                    let (hub, room, id, session) = (hub.clone(), room.clone(), *id, *session);
                    tokio::spawn(async move {
                        tokio::time::sleep(hub.resume_grace).await;
                        if let Err(e) = hub.rooms.expire(&room, id, session).await {
                            tracing::warn!(%room, peer = %id, "cannot expire a detached peer: {e}");
                        }
                    });
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(%room, peer = %id, "cannot hold a dropped peer's place: {e}"),
            }
        }
        // The server is going away with every room: announcing leaves would make the browsers
        // tear down calls that are still flowing peer to peer. They rejoin the restarted
        // server with their keys and keep their connections.
        (State::Joined { room, id, .. }, End::Shutdown) => {
            tracing::debug!(%room, peer = %id, "closed for shutdown");
        }
        (State::Joined { room, id, session, .. }, _) => {
            if let Err(e) = hub.rooms.leave(room, *id, *session).await {
                tracing::warn!(%room, peer = %id, "cannot remove a peer that left: {e}");
            }
            tracing::info!(%room, peer = %id, reason = %end, "peer left");
        }
        (State::Lobby, _) => tracing::debug!(reason = %end, "connection ended"),
    }
    if let Some(frame) = end.close_frame() {
        let _ = send(&mut socket, Message::Close(Some(frame)), hub.heartbeat).await;
    }
    let _ = tokio::time::timeout(hub.heartbeat, socket.close()).await;
}

/// The session's loop; `client` is the socket's address as per-address limits count it.
async fn drive<S>(socket: &mut S, hub: &Hub, state: &mut State, sfu: &mut Option<SfuLink>, client: IpAddr) -> End
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let mut heartbeat = tokio::time::interval(hub.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let dead_after = hub.heartbeat * 3;
    let mut last_heard = Instant::now();
    let mut mistakes = Mistakes::new();
    let mut rate = Rate::new(hub.rate);

    // A socket that does not take a message within this long is as good as dead; without a limit
    // a client that stops reading would hold its session (and queued messages) forever.
    let send_limit = dead_after;
    // TURN credentials are short-lived: a participant gets fresh ones every half lifetime.
    let refresh_every = hub.credential_refresh().unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut refresh = tokio::time::interval_at(Instant::now() + refresh_every, refresh_every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let outgoing = async {
            match state {
                State::Joined { inbox, .. } => inbox.recv().await,
                State::Lobby => std::future::pending().await,
            }
        };
        let from_sfu = async {
            match sfu.as_mut() {
                Some(link) => link.notices.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = socket.next() => {
                last_heard = Instant::now();
                let frame = match frame {
                    Some(Ok(Message::Close(_))) => return End::Closed,
                    None => return End::Dropped,
                    Some(Err(e)) => return End::Socket(e),
                    Some(Ok(frame)) => frame,
                };
                let counted = matches!(frame, Message::Text(_) | Message::Binary(_));
                let handled = if counted && !rate.take() {
                    Err(Handled::Client(ClientError::RateLimited(hub.rate)))
                } else {
                    handle_frame(frame, hub, state, sfu, socket, send_limit, client).await
                };
                if let Err(mistake) = handled {
                    match mistake {
                        Handled::Client(err) => {
                            tracing::debug!(error = %err, "client mistake");
                            hub.metrics.error(err.code());
                            if let Err(end) = send(socket, encode(&err.to_msg()), send_limit).await {
                                return end;
                            }
                            if mistakes.record() {
                                return End::Abusive;
                            }
                        }
                        Handled::Ended(end) => return end,
                    }
                }
            }
            queued = outgoing => match queued {
                Outgoing::Frame(frame) => {
                    // Whatever else is already queued goes out with it, in one write.
                    let mut batch = vec![frame];
                    if let State::Joined { inbox, .. } = state {
                        while batch.len() < SEND_BATCH {
                            let Some(more) = inbox.try_recv() else { break };
                            batch.push(more);
                        }
                    }
                    if let Err(end) = send_all(socket, batch, send_limit).await {
                        return end;
                    }
                }
                // The registry ended our outbox and took our place with it: no leave to make.
                Outgoing::End(reason) => {
                    *state = State::Lobby;
                    return match reason {
                        EndReason::Replaced => End::Replaced,
                        EndReason::TooSlow => End::TooSlow,
                        EndReason::Lost => End::Lost,
                    };
                }
            },
            notice = from_sfu => {
                let msg = match notice {
                    Some(Notice::Offer { sdp, tracks }) => ServerMsg::Sfu { signal: Signal::Offer { sdp }, tracks: sfu_tracks(tracks) },
                    Some(Notice::Closed { reason }) => {
                        *sfu = None;
                        ServerMsg::SfuClosed { reason }
                    }
                    Some(Notice::ActiveSpeaker { id }) => ServerMsg::ActiveSpeaker { id: id.map(|id| PeerId(id.0)) },
                    Some(Notice::Connected | Notice::Disconnected) => continue,
                    // The engine let go of the connection without a word (it stopped).
                    None => {
                        *sfu = None;
                        ServerMsg::SfuClosed { reason: "the media server stopped".into() }
                    }
                };
                if let Err(end) = send(socket, encode(&msg), send_limit).await {
                    return end;
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > dead_after {
                    return End::Dead;
                }
                if let Err(end) = send(socket, Message::Ping(Default::default()), send_limit).await {
                    return end;
                }
            }
            _ = refresh.tick() => {
                if let State::Joined { key, .. } = &*state {
                    let fresh = ServerMsg::IceServers { ice_servers: hub.ice_servers_for(key) };
                    if let Err(end) = send(socket, encode(&fresh), send_limit).await {
                        return end;
                    }
                }
            }
            _ = hub.shutdown.cancelled() => return End::Shutdown,
        }
    }
}

/// Sends one frame, giving up after `limit`.
async fn send<S>(socket: &mut S, frame: Message, limit: Duration) -> Result<(), End>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    match tokio::time::timeout(limit, socket.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(End::Socket(e)),
        Err(_) => Err(End::Dead),
    }
}

/// Sends queued frames and flushes once, giving up after `limit`.
async fn send_all<S>(socket: &mut S, batch: Vec<Frame>, limit: Duration) -> Result<(), End>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let write = async {
        for frame in batch {
            socket.feed(frame.into_message()).await?;
        }
        socket.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(End::Socket(e)),
        Err(_) => Err(End::Dead),
    }
}

/// What went wrong while handling one frame.
enum Handled {
    Client(ClientError),
    Ended(End),
}

impl From<ClientError> for Handled {
    fn from(e: ClientError) -> Self {
        Handled::Client(e)
    }
}

async fn handle_frame<S>(
    frame: Message,
    hub: &Hub,
    state: &mut State,
    sfu: &mut Option<SfuLink>,
    socket: &mut S,
    send_limit: Duration,
    client: IpAddr,
) -> Result<(), Handled>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let text = match frame {
        Message::Text(text) => text,
        Message::Binary(_) => return Err(ClientError::BinaryFrame.into()),
        // Pongs only prove liveness; pings are answered by the WebSocket layer itself.
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return Ok(()),
    };
    if text.len() > MAX_FRAME_BYTES {
        return Err(ClientError::TooLarge(text.len()).into());
    }
    let msg = ClientMsg::from_json(text.as_str()).map_err(|e| ClientError::BadMessage(e.to_string()))?;
    match msg {
        ClientMsg::Join { room, name, secret, password, listed, media } => {
            if let State::Joined { room, .. } = state {
                return Err(ClientError::AlreadyJoined(room.clone()).into());
            }
            let room = RoomName::parse(&room).map_err(ClientError::InvalidRoom)?;
            let name = DisplayName::parse(&name).map_err(ClientError::InvalidName)?;
            if password.as_ref().is_some_and(|p| p.chars().count() > PASSWORD_MAX_CHARS) {
                return Err(ClientError::InvalidPassword.into());
            }
            let key = match secret {
                Some(secret) if valid_secret(&secret) => key_of(&secret),
                Some(_) => return Err(ClientError::InvalidSecret.into()),
                None => random_key(),
            };
            let (outbox, inbox) = registry::outbox();
            let joiner = Joiner { name, key: key.clone(), media, password, listed, outbox, ip: client };
            let joined = hub.rooms.join(&room, joiner).await.map_err(ended)?.map_err(ClientError::Refused)?;
            tracing::info!(%room, peer = %joined.id, resumed = joined.resumed, "peer joined");
            hub.metrics.message("join");
            hub.metrics.joined();
            let welcome_key = key.clone();
            let welcome = ServerMsg::Welcome {
                id: joined.id,
                ice_servers: hub.ice_servers_for(&key),
                key,
                room: room.clone(),
                peers: joined.peers,
                resumed: joined.resumed,
                ice_transport_policy: hub.ice_transport_policy,
                locked: joined.locked,
                chat: joined.chat,
                sfu_from: hub.sfu.as_ref().map(|s| s.from),
            };
            *state = State::Joined {
                room,
                id: joined.id,
                session: joined.session,
                inbox,
                key: welcome_key,
                early_layers: Vec::new(),
            };
            send(socket, encode(&welcome), send_limit).await.map_err(Handled::Ended)
        }
        ClientMsg::Signal { to, signal } => {
            let State::Joined { room, id, .. } = state else {
                return Err(ClientError::NotJoined.into());
            };
            let (kind, sdp_bytes) = match &signal {
                Signal::Offer { sdp } => ("offer", sdp.len()),
                Signal::Answer { sdp } => ("answer", sdp.len()),
                Signal::Candidate(_) => ("candidate", 0),
            };
            if sdp_bytes > MAX_SDP_BYTES {
                return Err(ClientError::SdpTooLarge(sdp_bytes).into());
            }
            hub.rooms.relay(room, *id, to, signal).await.map_err(ended)?.map_err(ClientError::UnknownPeer)?;
            hub.metrics.message(kind);
            Ok(())
        }
        ClientMsg::Media(media) => {
            let State::Joined { room, id, .. } = state else {
                return Err(ClientError::NotJoined.into());
            };
            hub.rooms.set_media(room, *id, media).await.map_err(ended)?;
            hub.metrics.message("media");
            Ok(())
        }
        ClientMsg::Chat { text } => {
            let State::Joined { room, id, .. } = state else {
                return Err(ClientError::NotJoined.into());
            };
            let text = text.trim();
            let allowed = |c: char| !c.is_control() || c == '\n' || c == '\t';
            if text.is_empty() || text.chars().count() > CHAT_MAX_CHARS || !text.chars().all(allowed) {
                return Err(ClientError::InvalidChat.into());
            }
            let at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            hub.rooms.chat(room, *id, text.to_owned(), at_ms).await.map_err(ended)?;
            hub.metrics.message("chat");
            Ok(())
        }
        ClientMsg::Sfu { signal } => {
            let State::Joined { room, id, early_layers, .. } = state else {
                return Err(ClientError::NotJoined.into());
            };
            let Some(engine) = &hub.sfu else {
                return Err(ClientError::SfuUnavailable.into());
            };
            let media = &engine.media;
            match signal {
                Signal::Offer { sdp } => {
                    if sdp.len() > MAX_SDP_BYTES {
                        return Err(ClientError::SdpTooLarge(sdp.len()).into());
                    }
                    let answer = match sfu.as_ref() {
                        Some(link) => media.offer(link.member.clone(), sdp).await,
                        None => {
                            let member =
                                Member { room: confab_media::RoomId::new(room.as_str()), id: ParticipantId(id.0) };
                            let (notices_tx, notices) = tokio::sync::mpsc::channel(SFU_NOTICES);
                            let mut joined = media.join(member.clone(), sdp.clone(), notices_tx.clone()).await;
                            if joined == Err(confab_media::MediaError::AlreadyJoined) {
                                // This participant's previous socket (before a resume) has not
                                // been let go yet: this one takes its place.
                                media.leave(member.clone()).await;
                                joined = media.join(member.clone(), sdp, notices_tx).await;
                            }
                            if joined.is_ok() {
                                let early = std::mem::take(early_layers);
                                if !early.is_empty() {
                                    let _ = media.set_layers(member.clone(), early).await;
                                }
                                *sfu = Some(SfuLink { member, notices });
                            }
                            joined
                        }
                    };
                    let answer = answer.map_err(ClientError::SfuRefused)?;
                    hub.metrics.message("sfu_offer");
                    let msg = ServerMsg::Sfu {
                        signal: Signal::Answer { sdp: answer.sdp },
                        tracks: sfu_tracks(answer.tracks),
                    };
                    send(socket, encode(&msg), send_limit).await.map_err(Handled::Ended)
                }
                Signal::Answer { sdp } => {
                    if sdp.len() > MAX_SDP_BYTES {
                        return Err(ClientError::SdpTooLarge(sdp.len()).into());
                    }
                    let Some(link) = sfu.as_ref() else {
                        return Err(ClientError::SfuRefused(confab_media::MediaError::UnknownParticipant).into());
                    };
                    media.answer(link.member.clone(), sdp).await.map_err(ClientError::SfuRefused)?;
                    hub.metrics.message("sfu_answer");
                    Ok(())
                }
                Signal::Candidate(candidate) => {
                    // The SFU learns browsers' addresses from their checks (it is ICE-lite), so a
                    // candidate it cannot parse (an mDNS name) costs nothing and is dropped.
                    if let Some(link) = sfu.as_ref() {
                        if let Err(e) = media.candidate(link.member.clone(), candidate.candidate).await {
                            tracing::debug!(error = %e, "SFU candidate dropped");
                        }
                    }
                    hub.metrics.message("sfu_candidate");
                    Ok(())
                }
            }
        }
        ClientMsg::SfuLayers { layers } => {
            let State::Joined { early_layers, .. } = state else {
                return Err(ClientError::NotJoined.into());
            };
            let Some(engine) = &hub.sfu else {
                return Err(ClientError::SfuUnavailable.into());
            };
            let layers: Vec<(ParticipantId, Layer)> = layers
                .into_iter()
                .map(|l| {
                    let layer = match l.layer {
                        VideoLayer::Off => Layer::Off,
                        VideoLayer::Low => Layer::Low,
                        VideoLayer::Medium => Layer::Medium,
                        VideoLayer::High => Layer::High,
                    };
                    (ParticipantId(l.peer.0), layer)
                })
                .collect();
            match sfu.as_ref() {
                // The engine only fails this for a connection it already dropped (a closed
                // notice is on its way).
                Some(link) => {
                    let _ = engine.media.set_layers(link.member.clone(), layers).await;
                }
                None => {
                    for (source, layer) in layers {
                        if let Some(kept) = early_layers.iter_mut().find(|(s, _)| *s == source) {
                            kept.1 = layer;
                        } else if early_layers.len() < MAX_EARLY_LAYERS {
                            early_layers.push((source, layer));
                        }
                    }
                }
            }
            hub.metrics.message("sfu_layers");
            Ok(())
        }
        ClientMsg::Leave => {
            let State::Joined { room, id, session, .. } = std::mem::replace(state, State::Lobby) else {
                return Err(ClientError::NotJoined.into());
            };
            leave_sfu(hub, sfu).await;
            hub.rooms.leave(&room, id, session).await.map_err(ended)?;
            tracing::info!(%room, peer = %id, "peer left");
            hub.metrics.message("leave");
            Ok(())
        }
    }
}

/// Lets go of this socket's SFU connection, if it has one.
async fn leave_sfu(hub: &Hub, sfu: &mut Option<SfuLink>) {
    if let (Some(engine), Some(link)) = (&hub.sfu, sfu.take()) {
        engine.media.leave(link.member).await;
    }
}

/// A registry failure ends the session (the browser reconnects and resumes).
/// The SFU's tracks for a browser, by `mid`, as the protocol names them.
fn sfu_tracks(tracks: Vec<confab_media::TrackInfo>) -> Vec<SfuTrack> {
    tracks
        .into_iter()
        .map(|t| SfuTrack {
            mid: t.mid,
            peer: PeerId(t.source.0),
            kind: match t.kind {
                confab_media::TrackKind::Audio => TrackKind::Audio,
                confab_media::TrackKind::Video => TrackKind::Video,
            },
        })
        .collect()
}

fn ended(e: registry::Unavailable) -> Handled {
    Handled::Ended(End::Unavailable(e))
}

/// A message the session itself sends (welcome, errors, ICE servers).
fn encode(msg: &ServerMsg) -> Message {
    Frame::of(msg).into_message()
}

#[cfg(test)]
mod tests;
