//! The engine: one task owning the UDP socket and every participant's `Rtc`.
//!
//! Each turn of the loop waits for a command, a datagram or the earliest `Rtc` deadline, applies
//! it, then settles: every `Rtc` that was touched is polled until it returns a timeout (str0m's
//! rule after each mutation), its transmits go out on the socket and its events are handled,
//! which touches other `Rtc`s (a frame forwarded to each subscriber) until nothing is left. The
//! events of a turn are handled together, so a subscriber that gets many frames in one turn is
//! polled once for all of them: str0m's polling scans every track of a connection, and in a room
//! of 25 that is 48 tracks for each poll.
//! Offers for added or removed tracks go out last, and closed participants are removed.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::config::CryptoProvider;
use str0m::media::MediaKind;
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::rtp::{RtpPacket, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::layers::{Decision, Layer};
use crate::outbox::Outbox;
use crate::peer::{track_kind, Peer, TrackIn};
use crate::speaker::{RoomSpeaker, SPEAKER_WINDOW};
use crate::stats::MediaStats;
use crate::{Answer, MediaConfig, MediaError, Member, Notice, RoomId, TrackKind};

/// The engine's own number for a participant (room ids repeat across rooms).
pub(crate) type Slot = u64;

/// A connection without ICE traffic for this long is dropped (the browser had its chance to
/// restart ICE).
const DISCONNECTED_LIMIT: Duration = Duration::from_secs(30);

/// The downlink each participant's bandwidth estimate starts from, before TWCC feedback has
/// said more: enough for a few small tiles and a large one; probing finds the rest.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(2_500);

/// Kept out of each downlink's estimate for every source's audio (Opus at up to ~40 kbit/s with
/// its headers), before video is fitted into the rest.
const AUDIO_RESERVE_BPS: u64 = 50_000;

/// How often every participant's video is fitted again into its estimate (publishers' layer
/// bitrates change too, not only estimates).
const REFIT_EVERY: Duration = crate::layers::RATE_WINDOW;

/// Video is lowered only for an estimate too low all this long (the highest estimate of this
/// window is the budget for lowering): the delay-based estimate dips for a moment whenever a
/// machine is busy, and each change of layer costs a keyframe.
const DOWN_AFTER: Duration = Duration::from_secs(1);

/// How far past what the tiles take the estimator probes.
const PROBE_FACTOR: u64 = 2;

/// Timeouts already due that one drain gives its `Rtc` before it leaves the rest to the loop.
const TIMEOUTS_PER_DRAIN: u32 = 1_000;

/// Datagrams read in one turn before the loop looks at commands and timers again.
const READ_BATCH: usize = 64;

type Reply<T> = oneshot::Sender<Result<T, MediaError>>;

pub(crate) enum Command {
    Join { member: Member, offer_sdp: String, notices: mpsc::Sender<Notice>, reply: Reply<Answer> },
    Offer { member: Member, offer_sdp: String, reply: Reply<Answer> },
    Answer { member: Member, answer_sdp: String, reply: Reply<()> },
    Candidate { member: Member, candidate: String, reply: Reply<()> },
    Layers { member: Member, layers: Vec<(crate::ParticipantId, Layer)>, reply: Reply<()> },
    Leave { member: Member },
}

/// The address put in the SDP as our one candidate. Every received datagram is taken as sent to
/// it, so a socket bound to 0.0.0.0 behind a public address works.
pub(crate) fn advertised_addr(local: SocketAddr, public_ip: Option<IpAddr>) -> io::Result<SocketAddr> {
    let ip = public_ip.unwrap_or(local.ip());
    if ip.is_unspecified() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the media socket is bound to an unspecified address: give the address browsers reach",
        ));
    }
    Ok(SocketAddr::new(ip, local.port()))
}

enum Wake {
    Command(Command),
    Datagram(io::Result<(usize, SocketAddr)>),
    Timer,
}

pub(crate) struct Engine {
    config: MediaConfig,
    socket: UdpSocket,
    advertised: SocketAddr,
    stats: Arc<MediaStats>,
    crypto: Arc<CryptoProvider>,
    peers: HashMap<Slot, Peer>,
    slots: HashMap<Member, Slot>,
    next_slot: Slot,
    rooms: HashMap<RoomId, Vec<Slot>>,
    /// Which participant a source address belongs to, learnt from accepted datagrams.
    by_addr: HashMap<SocketAddr, Slot>,
    /// Participants whose `Rtc` was mutated and has to be polled.
    dirty: Vec<Slot>,
    events: VecDeque<(Slot, Event)>,
    /// Each room's active speaker, from the audio levels of the packets it forwards.
    speakers: HashMap<RoomId, RoomSpeaker>,
    /// When the current window of audio levels ends.
    speaker_window_ends: Instant,
    /// When every participant's video is next fitted into its downlink.
    next_refit: Instant,
    /// Datagrams to send at the end of the turn.
    outbox: Outbox,
    /// When each packet forwarded in this turn was read.
    forwarded_read_at: Vec<Instant>,
}

impl Engine {
    pub fn new(config: MediaConfig, socket: UdpSocket, advertised: SocketAddr, stats: Arc<MediaStats>) -> Engine {
        Engine {
            config,
            socket,
            advertised,
            stats,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            peers: HashMap::new(),
            slots: HashMap::new(),
            next_slot: 0,
            rooms: HashMap::new(),
            by_addr: HashMap::new(),
            dirty: Vec::new(),
            events: VecDeque::new(),
            speakers: HashMap::new(),
            speaker_window_ends: Instant::now() + SPEAKER_WINDOW,
            next_refit: Instant::now() + REFIT_EVERY,
            outbox: Outbox::default(),
            forwarded_read_at: Vec::new(),
        }
    }

    /// The media socket (the harness reads it by hand).
    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    pub async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        tracing::info!(addr = %self.advertised, "media engine started");
        loop {
            let now = Instant::now();
            self.timeouts(now);
            // Drained before the refits below touch the same `Rtc`s again.
            self.settle(now);
            self.speakers(now);
            if now >= self.next_refit {
                self.next_refit = now + REFIT_EVERY;
                let slots: Vec<Slot> = self.peers.keys().copied().collect();
                for slot in slots {
                    self.refit(slot, now, false);
                }
            }
            self.settle(now);
            let deadline = self
                .peers
                .values()
                .map(|p| p.deadline)
                .min()
                .unwrap_or(now + Duration::from_secs(1))
                .min(self.speaker_window_ends)
                .min(self.next_refit)
                .max(now);
            let wake = tokio::select! {
                command = inbox.recv() => match command {
                    Some(command) => Wake::Command(command),
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => Wake::Datagram(received),
                () = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            match wake {
                Wake::Command(command) => self.command(command, Instant::now()),
                Wake::Datagram(received) => {
                    let mut received = received;
                    for _ in 0..READ_BATCH {
                        match received {
                            Ok((n, source)) => self.receive(source, &buf[..n], Instant::now()),
                            // ICMP errors of earlier sends surface here on some systems.
                            Err(e) => tracing::debug!(error = %e, "media socket read"),
                        }
                        received = match self.socket.try_recv_from(&mut buf) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            other => other,
                        };
                    }
                }
                Wake::Timer => {}
            }
        }
        for peer in self.peers.values_mut() {
            peer.rtc.disconnect();
        }
        tracing::info!("media engine stopped");
    }

    fn command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Join { member, offer_sdp, notices, reply } => {
                let _ = reply.send(self.join(member, &offer_sdp, notices, now));
            }
            Command::Offer { member, offer_sdp, reply } => {
                let result = self.with_peer(&member, |p| p.accept_offer(&offer_sdp));
                let _ = reply.send(result);
            }
            Command::Answer { member, answer_sdp, reply } => {
                let result = self.with_peer(&member, |p| p.accept_answer(&answer_sdp));
                let _ = reply.send(result);
            }
            Command::Candidate { member, candidate, reply } => {
                let result = self.with_peer(&member, |p| {
                    let line = candidate.trim().trim_start_matches("a=");
                    let candidate =
                        Candidate::from_sdp_string(line).map_err(|e| MediaError::BadCandidate(e.to_string()))?;
                    p.rtc.add_remote_candidate(candidate);
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Command::Layers { member, layers, reply } => {
                tracing::debug!(?member, ?layers, "layers wanted");
                let result = self.with_peer(&member, |p| {
                    for (source, layer) in layers {
                        p.set_want(source, layer);
                    }
                    Ok(())
                });
                if let Some(slot) = self.slots.get(&member).copied() {
                    self.refit(slot, now, true);
                }
                let _ = reply.send(result);
            }
            Command::Leave { member } => {
                if let Some(slot) = self.slots.get(&member).copied() {
                    self.remove(slot, None);
                }
            }
        }
    }

    fn with_peer<T>(
        &mut self,
        member: &Member,
        f: impl FnOnce(&mut Peer) -> Result<T, MediaError>,
    ) -> Result<T, MediaError> {
        let slot = self.slots.get(member).copied().ok_or(MediaError::UnknownParticipant)?;
        let peer = self.peers.get_mut(&slot).ok_or(MediaError::UnknownParticipant)?;
        let result = f(peer);
        self.dirty.push(slot);
        result
    }

    pub(crate) fn join(
        &mut self,
        member: Member,
        offer_sdp: &str,
        notices: mpsc::Sender<Notice>,
        now: Instant,
    ) -> Result<Answer, MediaError> {
        if self.slots.contains_key(&member) {
            return Err(MediaError::AlreadyJoined);
        }
        if self.peers.len() >= self.config.max_participants {
            return Err(MediaError::Full);
        }
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_crypto_provider(self.crypto.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_bwe(self.config.bwe.then_some(INITIAL_ESTIMATE))
            // Packets are forwarded as they come, not reassembled into frames and cut up again.
            .set_rtp_mode(true)
            .build(now);
        let candidate = Candidate::host(self.advertised, "udp").map_err(|e| MediaError::Negotiation(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let slot = self.next_slot;
        let mut peer = Peer::new(slot, member.id, member.room.clone(), rtc, notices, now);
        // The others' tracks first: the offer's receive-only lines take them.
        for other in self.rooms.get(&member.room).into_iter().flatten() {
            let Some(other) = self.peers.get(other) else {
                continue;
            };
            for track in other.tracks_in.iter().filter(|t| !t.muted_by_limit) {
                peer.add_track_out(other.slot, other.id, track.mid, track.kind);
            }
        }
        let answer = peer.accept_offer(offer_sdp)?;
        self.next_slot += 1;
        if let Some(speaker) = self.speakers.get(&member.room).and_then(RoomSpeaker::current) {
            peer.tell(Notice::ActiveSpeaker { id: Some(speaker) });
        }
        self.peers.insert(slot, peer);
        self.rooms.entry(member.room.clone()).or_default().push(slot);
        self.slots.insert(member, slot);
        self.dirty.push(slot);
        MediaStats::add(&self.stats.participants, 1);
        Ok(answer)
    }

    /// Removes a participant; `reason` is told to it when the engine, not the participant, ends it.
    fn remove(&mut self, slot: Slot, reason: Option<String>) {
        let Some(mut peer) = self.peers.remove(&slot) else {
            return;
        };
        self.slots.remove(&Member { room: peer.room.clone(), id: peer.id });
        if let Some(reason) = reason {
            let _ = peer.notices.try_send(Notice::Closed { reason });
        }
        peer.rtc.disconnect();
        self.stats.participants.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.by_addr.retain(|_, p| *p != slot);
        if let Some(members) = self.rooms.get_mut(&peer.room) {
            members.retain(|p| *p != slot);
            if members.is_empty() {
                self.rooms.remove(&peer.room);
                self.speakers.remove(&peer.room);
            }
        }
        if self.speakers.get_mut(&peer.room).is_some_and(|room| room.forget(peer.id)) {
            self.tell_room(&peer.room, None);
        }
        for other in self.rooms.get(&peer.room).into_iter().flatten() {
            if let Some(other) = self.peers.get_mut(other) {
                other.source_gone(slot);
            }
        }
    }

    pub(crate) fn receive(&mut self, source: SocketAddr, data: &[u8], now: Instant) {
        MediaStats::add(&self.stats.datagrams, 1);
        let Ok(contents) = DatagramRecv::try_from(data) else {
            MediaStats::add(&self.stats.garbage, 1);
            return;
        };
        let input =
            Input::Receive(now, Receive { proto: Protocol::Udp, source, destination: self.advertised, contents });
        let known =
            self.by_addr.get(&source).copied().filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        let owner = known.or_else(|| self.peers.iter().find(|(_, p)| p.rtc.accepts(&input)).map(|(id, _)| *id));
        let Some(owner) = owner else {
            MediaStats::add(&self.stats.unowned, 1);
            return;
        };
        MediaStats::add(&self.stats.delivered, 1);
        if known.is_none() {
            self.by_addr.insert(source, owner);
        }
        let peer = self.peers.get_mut(&owner).expect("the owner was just found");
        if let Err(e) = peer.rtc.handle_input(input) {
            MediaStats::add(&self.stats.errors, 1);
            peer.close(format!("the connection failed: {e}"));
        }
        // Drained at once (its events wait in the queue): the next datagram of the batch may be
        // for the same `Rtc`, and str0m wants a full drain between two mutations.
        self.drain(owner);
    }

    /// Ends the window of audio levels when it is due: each room whose speaker changed tells
    /// its members.
    pub(crate) fn speakers(&mut self, now: Instant) {
        if now < self.speaker_window_ends {
            return;
        }
        self.speaker_window_ends = now + SPEAKER_WINDOW;
        let mut changed = Vec::new();
        for (room, members) in &self.rooms {
            let ids = members.iter().filter_map(|m| self.peers.get(m)).map(|p| p.id);
            if let Some(speaker) = self.speakers.entry(room.clone()).or_default().decide(ids) {
                changed.push((room.clone(), speaker));
            }
        }
        for (room, speaker) in changed {
            tracing::debug!(room = %room.0, ?speaker, "active speaker");
            self.tell_room(&room, speaker);
        }
    }

    /// Tells every member of `room` who speaks now (a member whose notices back up misses it).
    fn tell_room(&mut self, room: &RoomId, speaker: Option<crate::ParticipantId>) {
        for member in self.rooms.get(room).into_iter().flatten() {
            if let Some(peer) = self.peers.get_mut(member) {
                peer.tell(Notice::ActiveSpeaker { id: speaker });
            }
        }
    }

    pub(crate) fn timeouts(&mut self, now: Instant) {
        for peer in self.peers.values_mut() {
            if peer.deadline <= now {
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    MediaStats::add(&self.stats.errors, 1);
                    peer.close(format!("the connection failed: {e}"));
                }
                self.dirty.push(peer.slot);
            }
            if peer.disconnected_since.is_some_and(|since| now.saturating_duration_since(since) > DISCONNECTED_LIMIT) {
                peer.close("no ICE traffic for 30 s");
            }
        }
    }

    /// Polls every touched `Rtc` and handles what comes out until nothing is left; then makes the
    /// offers that are due and removes closed participants (which can make more offers due).
    pub(crate) fn settle(&mut self, now: Instant) {
        loop {
            self.drain_dirty();
            // Every event of the turn is handled before the connections it touched are drained:
            // a subscriber that gets frames of several sources is drained once, not once per
            // frame. Each `Rtc` was drained to its timeout before its events are handled, and
            // what the handlers do to other `Rtc`s (writes, keyframe requests) only queues work
            // there (str0m queues up to 512 frames per track between two polls).
            if !self.events.is_empty() {
                for (id, event) in std::mem::take(&mut self.events) {
                    self.event(id, event, now);
                }
                continue;
            }
            let closing: Vec<(Slot, String)> =
                self.peers.values().filter_map(|p| p.closing.clone().map(|r| (p.slot, r))).collect();
            for (id, reason) in &closing {
                tracing::info!(slot = id, reason, "media participant dropped");
                self.remove(*id, Some(reason.clone()));
            }
            let mut offered = false;
            for peer in self.peers.values_mut() {
                if let Some(offer) = peer.make_offer() {
                    peer.notify(offer);
                    self.dirty.push(peer.slot);
                    offered = true;
                }
            }
            if !offered && closing.is_empty() && self.dirty.is_empty() {
                break;
            }
        }
        self.outbox.flush(&self.socket, &self.stats);
        if !self.forwarded_read_at.is_empty() {
            let sent = Instant::now();
            let mut forwarding = self.stats.forwarding.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for read in self.forwarded_read_at.drain(..) {
                let micros = sent.saturating_duration_since(read).as_micros();
                forwarding.record(u64::try_from(micros).unwrap_or(u64::MAX));
            }
        }
    }

    /// Drains every touched `Rtc` once.
    fn drain_dirty(&mut self) {
        self.dirty.sort_unstable();
        self.dirty.dedup();
        for id in std::mem::take(&mut self.dirty) {
            self.drain(id);
        }
    }

    fn drain(&mut self, id: Slot) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        let mut timeouts_due = 0;
        loop {
            if !peer.rtc.is_alive() {
                peer.close("the connection closed");
                peer.deadline = Instant::now() + Duration::from_secs(1);
                return;
            }
            match peer.rtc.poll_output() {
                Ok(Output::Transmit(t)) => self.outbox.push(&self.socket, t, &self.stats),
                // A timeout already due is given at once: str0m sends one queued packet per
                // timeout, and the rest of a subscriber's queue would otherwise wait for later
                // turns of the loop.
                Ok(Output::Timeout(at)) if at <= now && timeouts_due < TIMEOUTS_PER_DRAIN => {
                    timeouts_due += 1;
                    if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                        MediaStats::add(&self.stats.errors, 1);
                        peer.close(format!("the connection failed: {e}"));
                    }
                }
                Ok(Output::Timeout(at)) => {
                    peer.deadline = at;
                    return;
                }
                Ok(Output::Event(event)) => self.events.push_back((id, event)),
                Err(e) => {
                    MediaStats::add(&self.stats.errors, 1);
                    peer.close(format!("the connection failed: {e}"));
                    peer.deadline = Instant::now() + Duration::from_secs(1);
                    return;
                }
            }
        }
    }

    fn event(&mut self, id: Slot, event: Event, now: Instant) {
        match event {
            Event::RtpPacket(packet) => self.forward(id, &packet, now),
            Event::Connected => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connected = true;
                    peer.notify(Notice::Connected);
                }
            }
            Event::IceConnectionStateChange(state) => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                match state {
                    IceConnectionState::Disconnected => {
                        peer.disconnected_since.get_or_insert(now);
                        peer.notify(Notice::Disconnected);
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        peer.disconnected_since = None;
                    }
                    _ => {}
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.estimate = Some(estimate.as_u64());
                    peer.recent_estimates.push_back((now, estimate.as_u64()));
                    while peer.recent_estimates.front().is_some_and(|e| now.saturating_duration_since(e.0) > DOWN_AFTER)
                    {
                        peer.recent_estimates.pop_front();
                    }
                }
                self.refit(id, now, false);
            }
            Event::MediaAdded(added) if added.direction.is_receiving() => {
                self.track_added(id, added.mid, added.kind, added.simulcast.is_some());
            }
            Event::KeyframeRequest(request) => {
                // A subscriber lost a picture: the publisher of that track sends a keyframe of the
                // layer this subscriber gets.
                let Some((source, source_mid, layer)) = self.peers.get(&id).and_then(|p| p.source_of(request.mid))
                else {
                    return;
                };
                if let Some(publisher) = self.peers.get_mut(&source) {
                    if publisher.request_keyframe(source_mid, layer.unwrap_or(Layer::High), now) {
                        tracing::debug!(source, subscriber = id, ?layer, "keyframe asked for by a subscriber");
                        MediaStats::add(&self.stats.keyframe_requests, 1);
                        self.dirty.push(source);
                    }
                }
            }
            Event::Closed => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.close("the browser closed the connection");
                }
            }
            _ => {}
        }
    }

    /// Fits the video `slot` receives into its downlink estimate: the layer of each source is
    /// capped at what fits (lowered at once, raised with room to spare), and the estimator is
    /// told how much the tiles would take, so that it probes up to that. After the tiles changed
    /// (`resized`), a larger tile is given what the highest estimate of the last second carries
    /// at once: the wait for room to spare is for an estimate that rises, not for a person who
    /// enlarged a tile.
    fn refit(&mut self, slot: Slot, now: Instant, resized: bool) {
        let Some(peer) = self.peers.get(&slot) else {
            return;
        };
        let Some(estimate) = peer.estimate else {
            return;
        };
        let mut sources = Vec::new();
        let mut steps = Vec::new();
        let mut audio = 0_u64;
        for member in self.rooms.get(&peer.room).into_iter().flatten().filter(|m| **m != slot) {
            let Some(source) = self.peers.get(member) else { continue };
            for track in source.tracks_in.iter().filter(|t| !t.muted_by_limit) {
                match track_kind(track.kind) {
                    TrackKind::Audio => audio += AUDIO_RESERVE_BPS,
                    TrackKind::Video => {
                        sources.push(source.id);
                        steps.push(track.published.steps(peer.wish(source.id), now));
                    }
                }
            }
        }
        let current: Vec<Option<Layer>> = sources.iter().map(|s| peer.caps.get(s).copied()).collect();
        let highest = peer.recent_estimates.iter().map(|e| e.1).max().unwrap_or(estimate).max(estimate);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let up = if resized { (highest as f64 * crate::layers::UP_MARGIN) as u64 } else { estimate };
        let caps = crate::layers::refit(highest.saturating_sub(audio), up.saturating_sub(audio), &steps, &current);
        let desired: u64 = audio + steps.iter().filter_map(|s| s.last()).map(|s| s.1).sum::<u64>();
        let Some(peer) = self.peers.get_mut(&slot) else {
            return;
        };
        for (((source, cap), before), steps) in sources.iter().zip(caps).zip(current).zip(&steps) {
            // A cap at the top of what the tile wants is no cap: a tile that grows gets its
            // layer at once if it fits, not after the margin a lowered video needs.
            let cap = cap.filter(|&cap| steps.last().is_some_and(|top| cap < top.0));
            if cap != before {
                tracing::debug!(subscriber = slot, source = source.0, ?cap, estimate, "layer capped by the downlink");
            }
            match cap {
                Some(cap) => peer.caps.insert(*source, cap),
                None => peer.caps.remove(source),
            };
        }
        // Probing costs padding: only up to what the tiles would take, and as far again, so that
        // the estimate clears a step up's margin quickly instead of creeping up to it.
        let desired = desired * PROBE_FACTOR;
        peer.rtc.bwe().set_desired_bitrate(Bitrate::bps(desired));
        self.dirty.push(slot);
    }

    fn track_added(&mut self, id: Slot, mid: str0m::media::Mid, kind: MediaKind, simulcast: bool) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if peer.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        let room = peer.room.clone();
        let member_id = peer.id;
        let members = self.rooms.get(&room).cloned().unwrap_or_default();
        let published: usize = members
            .iter()
            .filter_map(|m| self.peers.get(m))
            .map(|p| p.tracks_in.iter().filter(|t| !t.muted_by_limit).count())
            .sum();
        let over_limit = published >= self.config.max_tracks_per_room;
        if over_limit {
            tracing::warn!(slot = id, "room track limit reached: track not forwarded");
        }
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.tracks_in.push(TrackIn::new(mid, kind, simulcast, over_limit));
        }
        if over_limit {
            return;
        }
        for member in members.iter().filter(|m| **m != id) {
            if let Some(other) = self.peers.get_mut(member) {
                other.add_track_out(id, member_id, mid, kind);
            }
        }
    }

    /// Sends a publisher's packet to every subscriber in its room that should get it.
    fn forward(&mut self, source_slot: Slot, packet: &RtpPacket, now: Instant) {
        let Some(source) = self.peers.get_mut(&source_slot) else {
            return;
        };
        let Some(params) =
            source.rtc.codec_config().params().iter().find(|p| p.pt() == packet.header.payload_type).copied()
        else {
            return;
        };
        let Some((mid, rid)) = source.rtc.direct_api().stream_rx(&packet.header.ssrc).map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let Some(track) = source.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        if track.muted_by_limit {
            return;
        }
        let Some(layer) = Layer::from_rid(rid.as_deref()) else {
            return;
        };
        let kind = track_kind(track.kind);
        // Parsed once here, for every subscriber's copy.
        let vp8 = match kind {
            TrackKind::Audio => None,
            TrackKind::Video => Vp8Descriptor::parse(&packet.payload).ok(),
        };
        let (frame_start, keyframe) = match kind {
            TrackKind::Audio => (true, false),
            TrackKind::Video => vp8_frame_start(&packet.payload, vp8.as_ref()),
        };
        track.published.saw_packet(layer, packet.payload.len(), frame_start, now);
        let published = track.published.clone();
        if let (TrackKind::Audio, Some(level)) = (kind, packet.header.ext_vals.audio_level) {
            self.speakers.entry(source.room.clone()).or_default().heard(source.id, level);
        }
        let mut keyframes_wanted: Vec<Layer> = Vec::new();
        let mut written = false;
        let room = source.room.clone();
        let source_id = source.id;
        for member in self.rooms.get(&room).into_iter().flatten() {
            if *member == source_slot {
                continue;
            }
            let Some(subscriber) = self.peers.get_mut(member).filter(|s| s.connected) else {
                continue;
            };
            let want = subscriber.want(source_id);
            let Some((out_mid, out)) = subscriber.open_track_out(source_slot, mid) else {
                continue;
            };
            let (write, switched) = if kind == TrackKind::Audio {
                (true, false)
            } else {
                match out.selector.decide(layer, keyframe, published.choose(want, now)) {
                    Decision::Forward => {
                        if frame_start && out.second_keyframe_at.is_some_and(|at| at <= now) {
                            out.second_keyframe_at = None;
                            keyframes_wanted.push(layer);
                        }
                        (true, false)
                    }
                    Decision::Switch => {
                        out.second_keyframe_at = Some(now + crate::peer::SECOND_KEYFRAME_AFTER);
                        tracing::debug!(
                            source = source_slot,
                            subscriber = member,
                            ?layer,
                            size = ?vp8_keyframe_size(&packet.payload),
                            "layer switched"
                        );
                        (true, true)
                    }
                    Decision::Skip => (false, false),
                    Decision::NeedKeyframe(layer) => {
                        if frame_start {
                            keyframes_wanted.push(layer);
                        }
                        (false, false)
                    }
                }
            };
            if !write {
                if frame_start {
                    MediaStats::add(&self.stats.skipped, 1);
                }
                continue;
            }
            subscriber.write(out_mid, packet, vp8.as_ref(), params, switched);
            if frame_start {
                MediaStats::add(&self.stats.forwarded, 1);
            }
            self.dirty.push(*member);
            written = true;
        }
        if written {
            self.forwarded_read_at.push(packet.timestamp);
        }
        keyframes_wanted.sort();
        keyframes_wanted.dedup();
        for layer in keyframes_wanted {
            let asked = self.peers.get_mut(&source_slot).is_some_and(|s| s.request_keyframe(mid, layer, now));
            if asked {
                tracing::debug!(source = source_slot, ?layer, "keyframe asked for");
                MediaStats::add(&self.stats.keyframe_requests, 1);
                // One request, one drain: there may be another layer to ask for.
                self.drain(source_slot);
            }
        }
    }
}

/// Whether a VP8 RTP payload (with its parsed `descriptor`) starts a frame (the S bit with
/// partition 0), and whether that frame is a keyframe (RFC 7741 4.2 and 4.3).
fn vp8_frame_start(payload: &[u8], descriptor: Option<&Vp8Descriptor>) -> (bool, bool) {
    let Some(descriptor) = descriptor else {
        return (false, false);
    };
    let start = payload[0] & 0x10 != 0 && payload[0] & 0x07 == 0;
    (start, descriptor.starts_keyframe(payload))
}

/// The width and height a VP8 keyframe's first RTP payload carries (RFC 6386 9.1), for the log:
/// they follow the start code, which comes after the payload descriptor (1-6 bytes) and the
/// frame tag (3).
fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let head = &payload[..payload.len().min(12)];
    let at = head.windows(3).position(|w| w == [0x9d, 0x01, 0x2a])? + 3;
    match payload.get(at..at + 4)? {
        [w0, w1, h0, h1] => Some((u16::from_le_bytes([*w0, *w1]) & 0x3fff, u16::from_le_bytes([*h0, *h1]) & 0x3fff)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_descriptors_say_where_frames_and_keyframes_start() {
        let start = |payload: &[u8]| vp8_frame_start(payload, Vp8Descriptor::parse(payload).ok().as_ref());
        // S bit, partition 0, no extension; the frame's first byte has P = 0: a keyframe.
        assert_eq!(start(&[0x10, 0x00]), (true, true));
        assert_eq!(start(&[0x10, 0x01]), (true, false));
        // Not the start of the frame (no S bit), or of another partition.
        assert_eq!(start(&[0x00, 0x00]), (false, false));
        assert_eq!(start(&[0x11, 0x00]), (false, false));
        // Extension with a 15-bit picture id, TL0PICIDX and TID/KEYIDX: the frame starts after 6.
        assert_eq!(start(&[0x90, 0xf0, 0x81, 0x02, 0x03, 0x04, 0x00]), (true, true));
        assert_eq!(start(&[0x90, 0xf0, 0x81, 0x02, 0x03, 0x04, 0x01]), (true, false));
        // A 7-bit picture id: the frame starts after 3.
        assert_eq!(start(&[0x90, 0x80, 0x05, 0x00]), (true, true));
        assert_eq!(start(&[0x90, 0x80, 0x05, 0x01]), (true, false));
        // Nothing after the descriptor, or cut short: no frame.
        assert_eq!(start(&[0x90, 0x80, 0x05]), (false, false));
        assert_eq!(start(&[0x90]), (false, false));
        assert_eq!(start(&[]), (false, false));
        let keyframe = [0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        assert_eq!(vp8_keyframe_size(&keyframe), Some((640, 480)));
        let with_extension =
            [0x90, 0xf0, 0x81, 0x02, 0x03, 0x04, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        assert_eq!(vp8_keyframe_size(&with_extension), Some((640, 480)));
        assert_eq!(vp8_keyframe_size(&[0x10, 0x51, 0x02, 0x00]), None);
    }
}
