//! A participant without a browser: a str0m endpoint on its own UDP socket that publishes a
//! synthetic camera (VP8 frames, optionally as three simulcast layers) and microphone (Opus-sized
//! packets with an audio level) and counts what it receives from each other participant.
//!
//! It is a real WebRTC peer (ICE, DTLS-SRTP, RTP/RTCP), used by the engine's tests and by the load
//! generator. Each frame carries a stamp (layer, sequence, send time) so the receiver can tell
//! which layer it got and how long forwarding took.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::layers::Layer;
use crate::{ParticipantId, TrackInfo, TrackKind};

const FRAME_GAP: Duration = Duration::from_millis(33);
const AUDIO_GAP: Duration = Duration::from_millis(20);
const KEYFRAME_EVERY: Duration = Duration::from_secs(3);
/// Bytes of the stamp at the start of every synthetic payload after the VP8 header.
const STAMP: usize = 1 + 8 + 8;

/// How a bot publishes.
#[derive(Clone, Copy, Debug)]
pub struct BotOptions {
    /// Three layers (rids l, m, h) instead of one.
    pub simulcast: bool,
    /// Bytes per frame of the full layer (the others are a ninth and a third of it); at 30
    /// frames a second 4,000 bytes are about 1 Mbit/s.
    pub frame_bytes: usize,
    /// The audio level written into every audio packet, in dBov (0 the loudest, -127 silence).
    pub audio_level: i8,
    /// A downlink this many bits per second wide: what arrives faster waits in a queue (up to
    /// [`DOWNLINK_QUEUE`]) and beyond that is lost, as behind a slow link.
    pub downlink_bps: Option<u64>,
    /// The first offer has receive-only lines (an audio and a video line each) for this many
    /// others already in the room, which the SFU's answer fills as a browser's does.
    pub receive_from: usize,
}

/// The longest a datagram waits in a bot's emulated downlink before it is dropped.
pub const DOWNLINK_QUEUE: Duration = Duration::from_millis(250);

impl Default for BotOptions {
    fn default() -> Self {
        BotOptions { simulcast: false, frame_bytes: 1_200, audio_level: -30, downlink_bps: None, receive_from: 0 }
    }
}

/// What a bot received from one source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceReport {
    pub audio_packets: u64,
    pub video_frames: u64,
    pub keyframes: u64,
    pub video_bytes: u64,
    /// The layer of the last video frame.
    pub last_layer: Option<Layer>,
    /// Video frames received of each layer: low, medium, high.
    pub frames_by_layer: [u64; 3],
    /// The sequence number of the last video frame and audio packet (each counts from 1 at the
    /// source): with the counts above, how many were lost.
    pub last_video_seq: u64,
    pub last_audio_seq: u64,
    /// Send-to-receive time of video frames and audio packets.
    pub latency: Latency,
}

pub use crate::stats::Latency;

/// Everything a bot has seen so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BotReport {
    pub connected: bool,
    pub sources: HashMap<ParticipantId, SourceReport>,
    /// Keyframe requests the bot received (and answered with a keyframe).
    pub keyframe_requests: u64,
    /// Media for a mid no offer described.
    pub unknown_media: u64,
    /// Datagrams the emulated downlink dropped ([`BotOptions::downlink_bps`]).
    pub downlink_dropped: u64,
}

/// One synthetic participant.
pub struct Bot {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    options: BotOptions,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    tracks: HashMap<String, TrackInfo>,
    report: BotReport,
    start: Instant,
    next_frame: Instant,
    next_audio: Instant,
    last_keyframe: Option<Instant>,
    keyframe_wanted: bool,
    frame_seq: u64,
    audio_seq: u64,
    timeout: Instant,
    /// Datagrams in the emulated downlink, with when each comes out of it.
    downlink: std::collections::VecDeque<(Instant, SocketAddr, Vec<u8>)>,
}

impl Bot {
    /// A bot bound to an ephemeral port on `ip`.
    pub fn new(ip: std::net::IpAddr, options: BotOptions) -> io::Result<Bot> {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        let candidate = Candidate::host(local, "udp").map_err(io::Error::other)?;
        rtc.add_local_candidate(candidate);
        Ok(Bot {
            rtc,
            socket,
            local,
            options,
            audio_mid: None,
            video_mid: None,
            pending: None,
            tracks: HashMap::new(),
            report: BotReport::default(),
            start: now,
            next_frame: now,
            next_audio: now,
            last_keyframe: None,
            keyframe_wanted: true,
            frame_seq: 0,
            audio_seq: 0,
            timeout: now,
            downlink: std::collections::VecDeque::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn report(&self) -> &BotReport {
        &self.report
    }

    /// The first offer: a send-only microphone and camera.
    pub fn offer(&mut self) -> String {
        let mut change = self.rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let simulcast = self.options.simulcast.then(|| {
            let mut s = Simulcast::new();
            for rid in ["l", "m", "h"] {
                s.send.push(SimulcastLayer::new(rid));
            }
            s
        });
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        for _ in 0..self.options.receive_from {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = change.apply().expect("new media needs an offer");
        self.audio_mid = Some(audio);
        self.video_mid = Some(video);
        self.pending = Some(pending);
        offer.to_sdp_string()
    }

    /// The SFU's answer to [`Bot::offer`], with the tracks it sends.
    pub fn accept_answer(&mut self, sdp: &str, tracks: &[TrackInfo]) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let pending = self.pending.take().ok_or("no offer is outstanding")?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| e.to_string())?;
        self.tracks = tracks.iter().map(|t| (t.mid.clone(), t.clone())).collect();
        Ok(())
    }

    /// An offer from the SFU with the tracks it sends; the answer to return.
    pub fn accept_offer(&mut self, sdp: &str, tracks: &[TrackInfo]) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string())?;
        self.tracks = tracks.iter().map(|t| (t.mid.clone(), t.clone())).collect();
        Ok(answer.to_sdp_string())
    }

    /// Runs the connection and the synthetic media for `duration`.
    pub async fn run_for(&mut self, duration: Duration) -> io::Result<()> {
        let end = Instant::now() + duration;
        let mut buf = vec![0u8; 2048];
        loop {
            self.drain()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            let wake = self
                .timeout
                .min(end)
                .min(if self.report.connected { self.next_frame.min(self.next_audio) } else { end })
                .min(self.downlink.front().map_or(end, |d| d.0))
                .max(now);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let (n, source) = received?;
                    self.arrive(source, &buf[..n]);
                }
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            while self.downlink.front().is_some_and(|d| d.0 <= now) {
                let (_, source, data) = self.downlink.pop_front().expect("just looked");
                self.receive(source, &data);
            }
            self.rtc.handle_input(Input::Timeout(now)).map_err(io::Error::other)?;
            self.drain()?;
            if self.report.connected {
                self.publish(now)?;
            }
        }
    }

    /// A datagram reaches the bot's downlink: through at once, or queued behind the others.
    fn arrive(&mut self, source: SocketAddr, data: &[u8]) {
        let Some(bps) = self.options.downlink_bps else {
            return self.receive(source, data);
        };
        let now = Instant::now();
        let free_at = self.downlink.back().map_or(now, |d| d.0.max(now));
        if free_at.saturating_duration_since(now) > DOWNLINK_QUEUE {
            self.report.downlink_dropped += 1;
            return;
        }
        let on_the_wire = Duration::from_micros(data.len() as u64 * 8 * 1_000_000 / bps.max(1));
        self.downlink.push_back((free_at + on_the_wire, source, data.to_vec()));
    }

    fn receive(&mut self, source: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input =
            Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: self.local, contents });
        if self.rtc.accepts(&input) {
            let _ = self.rtc.handle_input(input);
        }
    }

    fn drain(&mut self) -> io::Result<()> {
        loop {
            match self.rtc.poll_output().map_err(io::Error::other)? {
                Output::Timeout(at) => {
                    self.timeout = at;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => self.event(event),
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected => self.report.connected = true,
            Event::KeyframeRequest(_) => {
                self.report.keyframe_requests += 1;
                self.keyframe_wanted = true;
            }
            Event::MediaData(data) => {
                let Some(track) = self.tracks.get(&data.mid.to_string()) else {
                    self.report.unknown_media += 1;
                    return;
                };
                let source = self.report.sources.entry(track.source).or_default();
                let payload: &[u8] = &data.data;
                let stamp = match track.kind {
                    TrackKind::Audio => {
                        source.audio_packets += 1;
                        payload.get(..STAMP)
                    }
                    TrackKind::Video => {
                        source.video_frames += 1;
                        source.video_bytes += payload.len() as u64;
                        if data.is_keyframe() {
                            source.keyframes += 1;
                        }
                        payload.get(10..10 + STAMP)
                    }
                };
                if let Some(stamp) = stamp {
                    let seq = u64::from_be_bytes(stamp[1..9].try_into().expect("8 bytes"));
                    if track.kind == TrackKind::Video {
                        let layer = usize::from(stamp[0].min(2));
                        source.frames_by_layer[layer] += 1;
                        source.last_layer = Some([Layer::Low, Layer::Medium, Layer::High][layer]);
                        source.last_video_seq = seq;
                    } else {
                        source.last_audio_seq = seq;
                    }
                    let sent = u64::from_be_bytes(stamp[9..17].try_into().expect("8 bytes"));
                    source.latency.record(unix_micros().saturating_sub(sent));
                }
            }
            _ => {}
        }
    }

    fn publish(&mut self, now: Instant) -> io::Result<()> {
        if now >= self.next_audio {
            self.next_audio += AUDIO_GAP;
            if self.next_audio < now {
                // Behind (a starved machine): skip, as a real sender's clock would.
                self.next_audio = now + AUDIO_GAP;
            }
            if let Some(mid) = self.audio_mid {
                self.audio_seq += 1;
                let mut payload = vec![0u8; 80];
                payload[..STAMP].copy_from_slice(&stamp(0, self.audio_seq));
                let time = MediaTime::from_micros(self.start.elapsed().as_micros() as u64)
                    .rebase(str0m::media::Frequency::FORTY_EIGHT_KHZ);
                if let Some(writer) = self.rtc.writer(mid) {
                    let pt = writer.payload_params().next().map(|p| p.pt());
                    if let Some(pt) = pt {
                        writer
                            .audio_level(self.options.audio_level, self.options.audio_level > -127)
                            .write(pt, now, time, payload)
                            .map_err(io::Error::other)?;
                        self.drain()?;
                    }
                }
            }
        }
        if now >= self.next_frame {
            self.next_frame += FRAME_GAP;
            if self.next_frame < now {
                self.next_frame = now + FRAME_GAP;
            }
            self.frame_seq += 1;
            let keyframe = self.keyframe_wanted
                || self.last_keyframe.is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_EVERY);
            if keyframe {
                self.keyframe_wanted = false;
                self.last_keyframe = Some(now);
            }
            let layers: &[(u8, Option<&str>, usize)] = if self.options.simulcast {
                &[(0, Some("l"), 9), (1, Some("m"), 3), (2, Some("h"), 1)]
            } else {
                &[(2, None, 1)]
            };
            let time = MediaTime::from_micros(self.start.elapsed().as_micros() as u64)
                .rebase(str0m::media::Frequency::NINETY_KHZ);
            for &(index, rid, divisor) in layers {
                let Some(mid) = self.video_mid else { break };
                let size = (self.options.frame_bytes / divisor).max(10 + STAMP) * if keyframe { 3 } else { 1 };
                let frame = vp8_frame(keyframe, size, &stamp(index, self.frame_seq));
                let Some(writer) = self.rtc.writer(mid) else { break };
                let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else { break };
                let writer = match rid {
                    Some(rid) => writer.rid(Rid::from(rid)),
                    None => writer,
                };
                writer.write(pt, now, time, frame).map_err(io::Error::other)?;
                self.drain()?;
            }
        }
        Ok(())
    }
}

fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Layer index, sequence number and send time, big-endian.
fn stamp(layer: u8, seq: u64) -> [u8; STAMP] {
    let mut out = [0u8; STAMP];
    out[0] = layer;
    out[1..9].copy_from_slice(&seq.to_be_bytes());
    out[9..17].copy_from_slice(&unix_micros().to_be_bytes());
    out
}

/// A VP8 frame that decoders would reject but every RTP-level parser takes: a valid 3-byte frame
/// tag (key or inter frame, shown), and for a keyframe the start code and a 320×180 size, then the
/// stamp and filler.
fn vp8_frame(keyframe: bool, size: usize, stamp: &[u8; STAMP]) -> Vec<u8> {
    let mut frame = vec![0u8; size];
    // Frame tag: bit 0 is 0 for a keyframe; version 0; show_frame; a first partition size.
    frame[0] = if keyframe { 0x10 } else { 0x11 };
    frame[1] = 0x02;
    frame[2] = 0x00;
    if keyframe {
        frame[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        frame[6..8].copy_from_slice(&320u16.to_le_bytes());
        frame[8..10].copy_from_slice(&180u16.to_le_bytes());
    }
    frame[10..10 + STAMP].copy_from_slice(stamp);
    frame
}
