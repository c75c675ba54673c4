//! One participant's connection to the SFU: its `Rtc`, the tracks it publishes and the tracks it
//! receives from the others, and the SDP negotiation that adds and removes the latter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor, Vp8Patch};
use str0m::Rtc;
use tokio::sync::mpsc;

use crate::engine::Slot;
use crate::layers::{Layer, Published, Selector};
use crate::{Answer, MediaError, Notice, ParticipantId, RoomId, TrackInfo, TrackKind};

/// Keyframe requests to one publisher's layer are at most this frequent: every new viewer and
/// every layer switch asks for one, and each costs the publisher a large frame.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(500);

/// A track this participant publishes.
#[derive(Debug)]
pub(crate) struct TrackIn {
    pub mid: Mid,
    pub kind: MediaKind,
    pub published: Published,
    last_keyframe_request: [Option<Instant>; 3],
    /// Sent as simulcast layers, each with its rid.
    simulcast: bool,
    /// Over the room's track limit: received but forwarded to nobody.
    pub muted_by_limit: bool,
}

impl TrackIn {
    pub fn new(mid: Mid, kind: MediaKind, simulcast: bool, muted_by_limit: bool) -> TrackIn {
        TrackIn {
            mid,
            kind,
            simulcast,
            published: Published::default(),
            last_keyframe_request: [None; 3],
            muted_by_limit,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutState {
    /// Waiting for the next offer.
    ToOpen,
    /// In an offer not yet answered.
    Negotiating(Mid),
    Open(Mid),
    /// Its source left; the next offer stops it.
    ToStop(Mid),
    NegotiatingStop(Mid),
}

/// A track this participant receives: `source`'s track `source_mid`.
#[derive(Debug)]
pub(crate) struct TrackOut {
    pub source: Slot,
    /// The source's id in the room (what the participant is told).
    source_id: ParticipantId,
    pub source_mid: Mid,
    kind: MediaKind,
    state: OutState,
    /// The source left while this track was being negotiated: stop it once answered.
    source_gone: bool,
    pub selector: Selector,
    timing: Timing,
    sequence: Sequence,
    pictures: Pictures,
    /// When to ask the publisher for one more keyframe of the layer switched to (see
    /// [`SECOND_KEYFRAME_AFTER`]).
    pub second_keyframe_at: Option<Instant>,
}

/// A switch of layer asks for a second keyframe this long after the one it switched at:
/// Chromium sometimes does not take the first (it goes on decoding the new layer's frames at
/// the old size, with no loss and no PLI: cause not found yet). With it, the grown-tile test
/// passed 8 runs in 8 here, against 2 failures in 8 without.
pub(crate) const SECOND_KEYFRAME_AFTER: Duration = Duration::from_millis(600);

/// Keeps a forwarded video's RTP timestamps continuous across layer switches: each simulcast
/// layer has its own timestamp base.
#[derive(Clone, Copy, Debug, Default)]
struct Timing {
    offset: u64,
    last: Option<(u64, Instant)>,
}

impl Timing {
    fn rebase(&mut self, time: MediaTime, wallclock: Instant, switched: bool) -> MediaTime {
        if switched {
            self.offset = match self.last {
                Some((last, at)) => {
                    let elapsed = wallclock.saturating_duration_since(at).as_secs_f64();
                    let ticks = ((elapsed * f64::from(time.denom())) as u64).max(1);
                    last.wrapping_add(ticks).wrapping_sub(time.numer())
                }
                None => 0,
            };
        }
        let out = time.numer().wrapping_add(self.offset);
        self.last = Some((out, wallclock));
        MediaTime::new(out, time.frequency())
    }
}

/// Keeps a forwarded track's RTP sequence numbers continuous: each simulcast layer counts its
/// own, and a subscriber must see one run without gaps (a gap is a loss it asks to resend).
#[derive(Clone, Copy, Debug, Default)]
struct Sequence {
    /// Added to a packet's extended sequence number (wrapping).
    offset: u64,
    /// The first incoming number of the current run: an older packet (a late or resent one of
    /// the run before a switch) has no place in this one.
    run_start: u64,
    /// The highest number sent.
    last: Option<u64>,
}

impl Sequence {
    /// The number to send `seq` as, starting a new run at a switch of layer (or the first
    /// packet); `None` for a packet from before the current run.
    fn map(&mut self, seq: u64, switched: bool) -> Option<u64> {
        if switched || self.last.is_none() {
            let next = self.last.map_or(1, |last| last + 1);
            self.offset = next.wrapping_sub(seq);
            self.run_start = seq;
        }
        if seq < self.run_start {
            return None;
        }
        let out = seq.wrapping_add(self.offset);
        self.last = Some(self.last.map_or(out, |last| last.max(out)));
        Some(out)
    }
}

/// Keeps a forwarded VP8 video's picture ids and TL0PICIDX continuous across layer switches
/// (each layer numbers its own pictures), so the receiver's decoder sees one stream of
/// pictures, as its RTP sequence numbers do.
#[derive(Clone, Copy, Debug, Default)]
struct Pictures {
    picture_offset: u16,
    tl0_offset: u8,
    last_picture: Option<u16>,
    last_tl0: Option<u8>,
}

impl Pictures {
    /// The rewrite of `payload`'s VP8 payload `descriptor` (none when nothing changes).
    fn patch(&mut self, payload: &[u8], descriptor: &Vp8Descriptor, switched: bool) -> Option<Vp8Patch> {
        let mut patch = descriptor.patch();
        let mut changed = false;
        if let Some(picture) = descriptor.picture_id() {
            // The M bit of the first picture id byte says 15 bits; else 7.
            let mask: u16 = if payload.get(2).is_some_and(|b| b & 0x80 != 0) { 0x7fff } else { 0x7f };
            if switched || self.last_picture.is_none() {
                self.picture_offset =
                    self.last_picture.map_or(picture, |last| last.wrapping_add(1)).wrapping_sub(picture);
            }
            let out = picture.wrapping_add(self.picture_offset) & mask;
            self.last_picture = Some(out);
            if out != picture {
                patch = patch.picture_id(out);
                changed = true;
            }
        }
        if let Some(tl0) = descriptor.tl0_pic_idx() {
            if switched || self.last_tl0.is_none() {
                self.tl0_offset = self.last_tl0.map_or(tl0, |last| last.wrapping_add(1)).wrapping_sub(tl0);
            }
            let out = tl0.wrapping_add(self.tl0_offset);
            self.last_tl0 = Some(out);
            if out != tl0 {
                patch = patch.tl0_pic_idx(out);
                changed = true;
            }
        }
        if changed {
            patch.build().ok()
        } else {
            None
        }
    }
}

/// One participant.
pub(crate) struct Peer {
    pub slot: Slot,
    /// The id in the room.
    pub id: ParticipantId,
    pub room: RoomId,
    pub rtc: Rtc,
    pub notices: mpsc::Sender<Notice>,
    pub tracks_in: Vec<TrackIn>,
    pub tracks_out: Vec<TrackOut>,
    pending: Option<SdpPendingOffer>,
    /// Tracks were added or removed since the last offer.
    pub needs_offer: bool,
    /// The layer wanted of each source's video; `High` when not said.
    wants: HashMap<ParticipantId, Layer>,
    /// The SFU's estimate of this participant's downlink (TWCC), bits per second.
    pub estimate: Option<u64>,
    /// The highest layer of each source's video that fits in the estimate (see
    /// [`crate::layers::refit`]); none said: no limit.
    pub caps: HashMap<ParticipantId, Layer>,
    /// The estimates of the last second, oldest first (lowering waits for all to be low).
    pub recent_estimates: std::collections::VecDeque<(Instant, u64)>,
    /// When the `Rtc` next wants `Input::Timeout`.
    pub deadline: Instant,
    pub disconnected_since: Option<Instant>,
    /// DTLS is done, so SRTP can carry media. Nothing is forwarded to the participant before:
    /// a keyframe written earlier would only wait in the queue, and the layer it switched to
    /// would be taken as already received.
    pub connected: bool,
    /// Set when the engine is to drop this participant, with the reason given to it.
    pub closing: Option<String>,
}

impl Peer {
    pub fn new(
        slot: Slot,
        id: ParticipantId,
        room: RoomId,
        rtc: Rtc,
        notices: mpsc::Sender<Notice>,
        now: Instant,
    ) -> Peer {
        Peer {
            slot,
            id,
            room,
            rtc,
            notices,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            pending: None,
            needs_offer: false,
            wants: HashMap::new(),
            estimate: None,
            caps: HashMap::new(),
            recent_estimates: std::collections::VecDeque::new(),
            deadline: now,
            disconnected_since: None,
            connected: false,
            closing: None,
        }
    }

    /// Queues a notice; a participant that does not read its notices is dropped.
    pub fn notify(&mut self, notice: Notice) {
        if self.notices.try_send(notice).is_err() && self.closing.is_none() {
            self.closing = Some("notices were not read".into());
        }
    }

    /// Queues a notice that may be missed (the next one says it again): a full queue drops it.
    pub fn tell(&mut self, notice: Notice) {
        let _ = self.notices.try_send(notice);
    }

    pub fn close(&mut self, reason: impl Into<String>) {
        if self.closing.is_none() {
            self.closing = Some(reason.into());
        }
    }

    /// The layer to forward of `source`'s video: what the tile wants, within what the downlink
    /// carries.
    pub fn want(&self, source: ParticipantId) -> Layer {
        let wish = self.wish(source);
        self.caps.get(&source).map_or(wish, |&cap| wish.min(cap))
    }

    /// The layer the tile of `source` wants (its size), whatever the downlink.
    pub fn wish(&self, source: ParticipantId) -> Layer {
        self.wants.get(&source).copied().unwrap_or(Layer::High)
    }

    pub fn set_want(&mut self, source: ParticipantId, layer: Layer) {
        self.wants.insert(source, layer);
    }

    /// Starts receiving `source`'s track (offered with the next negotiation).
    pub fn add_track_out(&mut self, source: Slot, source_id: ParticipantId, source_mid: Mid, kind: MediaKind) {
        self.tracks_out.push(TrackOut {
            source,
            source_id,
            source_mid,
            kind,
            state: OutState::ToOpen,
            source_gone: false,
            selector: Selector::default(),
            timing: Timing::default(),
            sequence: Sequence::default(),
            pictures: Pictures::default(),
            second_keyframe_at: None,
        });
        self.needs_offer = true;
    }

    /// `source` left: its tracks are stopped with the next negotiation.
    pub fn source_gone(&mut self, source: Slot) {
        self.tracks_out.retain_mut(|t| {
            if t.source != source {
                return true;
            }
            match t.state {
                OutState::ToOpen => return false,
                OutState::Open(mid) => t.state = OutState::ToStop(mid),
                OutState::Negotiating(_) => t.source_gone = true,
                OutState::ToStop(_) | OutState::NegotiatingStop(_) => {}
            }
            true
        });
        self.needs_offer = true;
    }

    /// The participant's own offer (the first one at join, later ones for ICE restarts). An offer
    /// of ours still waiting for its answer is withdrawn (str0m invalidates it) and made again.
    ///
    /// Receive-only lines of the offer that carry nothing yet are filled with tracks waiting to
    /// be offered, so that a participant who offers one such line per track of the others (at
    /// join) gets them all in this answer, with no offer of ours to wait for.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<Answer, MediaError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        // Only lines new in this offer are filled: on a line answered before, the browser has
        // already had its `track` event, and would get none for what we put on it now.
        let new_lines: Vec<Mid> = offer_mids(sdp).filter(|mid| self.rtc.media(*mid).is_none()).collect();
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| MediaError::Negotiation(e.to_string()))?;
        if self.pending.take().is_some() {
            for t in &mut self.tracks_out {
                match t.state {
                    OutState::Negotiating(_) => t.state = OutState::ToOpen,
                    OutState::NegotiatingStop(mid) => t.state = OutState::ToStop(mid),
                    _ => {}
                }
            }
            // A source that left while its track was being offered is not offered again.
            self.tracks_out.retain(|t| !(t.state == OutState::ToOpen && t.source_gone));
            self.needs_offer = true;
        }
        self.fill_spare_lines(&new_lines);
        Ok(Answer { sdp: answer.to_sdp_string(), tracks: self.track_infos() })
    }

    /// Opens tracks waiting for an offer on those of `lines` (new in the offer just accepted, so
    /// nothing is on them yet) that we send on, in order, each on a line of its kind.
    fn fill_spare_lines(&mut self, lines: &[Mid]) {
        let mut spare: Vec<(Mid, MediaKind)> = lines
            .iter()
            .filter_map(|mid| self.rtc.media(*mid))
            .filter(|m| m.direction() == Direction::SendOnly && !m.disabled())
            .map(|m| (m.mid(), m.kind()))
            .collect();
        for t in self.tracks_out.iter_mut().filter(|t| t.state == OutState::ToOpen) {
            if let Some(i) = spare.iter().position(|(_, kind)| *kind == t.kind) {
                t.state = OutState::Open(spare.remove(i).0);
            }
        }
        self.needs_offer = self.tracks_out.iter().any(|t| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)));
    }

    /// The participant's answer to our last offer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), MediaError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let Some(pending) = self.pending.take() else {
            return Err(MediaError::Negotiation("no offer is waiting for an answer".into()));
        };
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| MediaError::Negotiation(e.to_string()))?;
        for t in &mut self.tracks_out {
            if let OutState::Negotiating(mid) = t.state {
                if t.source_gone {
                    t.state = OutState::ToStop(mid);
                    self.needs_offer = true;
                } else {
                    t.state = OutState::Open(mid);
                }
            }
        }
        // A stopped m-line can be reused by a later add_media.
        self.tracks_out.retain(|t| !matches!(t.state, OutState::NegotiatingStop(_)));
        Ok(())
    }

    /// Our next offer, if tracks were added or removed and no offer is outstanding.
    pub fn make_offer(&mut self) -> Option<Notice> {
        if !self.needs_offer || self.pending.is_some() || self.closing.is_some() {
            return None;
        }
        self.needs_offer = false;
        let mut change = self.rtc.sdp_api();
        for t in &mut self.tracks_out {
            match t.state {
                OutState::ToOpen => {
                    // The stream id is the source, so the browser can group a source's tracks.
                    let stream = format!("p{}", t.source_id.0);
                    let mid = change.add_media(t.kind, Direction::SendOnly, Some(stream), None, None);
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    t.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        Some(Notice::Offer { sdp: offer.to_sdp_string(), tracks: self.track_infos() })
    }

    /// The tracks the participant receives once the outstanding offer is answered.
    fn track_infos(&self) -> Vec<TrackInfo> {
        self.tracks_out
            .iter()
            .filter_map(|t| match t.state {
                OutState::Negotiating(mid) | OutState::Open(mid) => {
                    Some(TrackInfo { mid: mid.to_string(), source: t.source_id, kind: track_kind(t.kind) })
                }
                _ => None,
            })
            .collect()
    }

    /// The open outgoing track carrying `source`'s `source_mid`.
    pub fn open_track_out(&mut self, source: Slot, source_mid: Mid) -> Option<(Mid, &mut TrackOut)> {
        self.tracks_out.iter_mut().find_map(|t| match t.state {
            OutState::Open(mid) if t.source == source && t.source_mid == source_mid => Some((mid, t)),
            _ => None,
        })
    }

    /// The source track an outgoing `mid` carries.
    pub fn source_of(&self, mid: Mid) -> Option<(Slot, Mid, Option<Layer>)> {
        self.tracks_out.iter().find_map(|t| match t.state {
            OutState::Open(m) | OutState::Negotiating(m) if m == mid => {
                Some((t.source, t.source_mid, t.selector.current()))
            }
            _ => None,
        })
    }

    /// Asks this participant for a keyframe of its track `mid` at `layer`, unless one was asked
    /// for lately. Returns whether a request was sent.
    pub fn request_keyframe(&mut self, mid: Mid, layer: Layer, now: Instant) -> bool {
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return false;
        };
        let slot = match layer {
            Layer::Off | Layer::Low => 0,
            Layer::Medium => 1,
            Layer::High => 2,
        };
        if track.last_keyframe_request[slot].is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_REQUEST_GAP)
        {
            return false;
        }
        track.last_keyframe_request[slot] = Some(now);
        let rid = if track.simulcast { layer.rid().map(Rid::from) } else { None };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, rid) else {
            return false;
        };
        stream.request_keyframe(KeyframeRequestKind::Pli);
        true
    }

    /// Writes a forwarded packet into the outgoing track `mid`, with sequence numbers, picture
    /// ids and (video) timestamps continued across layer switches. `vp8` is the packet's parsed
    /// VP8 payload descriptor; `params` is its codec as its publisher negotiated it.
    pub fn write(
        &mut self,
        mid: Mid,
        packet: &RtpPacket,
        vp8: Option<&Vp8Descriptor>,
        params: PayloadParams,
        switched: bool,
    ) {
        let Some(track) = self.tracks_out.iter_mut().find(|t| matches!(t.state, OutState::Open(m) if m == mid)) else {
            return;
        };
        let video = track.kind == MediaKind::Video;
        let Some(seq) = track.sequence.map(*packet.seq_no, switched) else {
            return;
        };
        let time = if video { track.timing.rebase(packet.time, packet.timestamp, switched) } else { packet.time };
        let patch = vp8.and_then(|vp8| track.pictures.patch(&packet.payload, vp8, switched));
        let Some(pt) = self.rtc.codec_config().match_params(params).map(|p| p.pt()) else {
            return;
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        // RTP timestamps are the low 32 bits of the extended time.
        #[allow(clippy::cast_possible_truncation)]
        let rtp_time = time.numer() as u32;
        let mut write = RtpWrite::new(pt, seq.into(), rtp_time, packet.timestamp, packet.payload.clone())
            .marker(packet.header.marker)
            .nackable(video);
        if let Some(level) = packet.header.ext_vals.audio_level {
            write = write.ext_vals(ExtensionValues {
                audio_level: Some(level),
                voice_activity: packet.header.ext_vals.voice_activity,
                ..ExtensionValues::default()
            });
        }
        if let Some(patch) = patch {
            write = write.vp8_patch(patch);
        }
        stream.write_rtp(write);
    }
}

/// The `mid` of each media section of an SDP, in order.
fn offer_mids(sdp: &str) -> impl Iterator<Item = Mid> + '_ {
    sdp.lines().filter_map(|l| l.trim().strip_prefix("a=mid:")).map(Mid::from)
}

pub(crate) fn track_kind(kind: MediaKind) -> TrackKind {
    match kind {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::Frequency;

    #[test]
    fn timestamps_continue_across_a_layer_switch() {
        let t0 = Instant::now();
        let mut timing = Timing::default();
        let low = |n: u64| MediaTime::new(1_000_000 + n, Frequency::NINETY_KHZ);
        let high = |n: u64| MediaTime::new(7_000 + n, Frequency::NINETY_KHZ);

        assert_eq!(timing.rebase(low(0), t0, true).numer(), 1_000_000);
        assert_eq!(timing.rebase(low(3_000), t0 + Duration::from_millis(33), false).numer(), 1_003_000);
        // 33 ms later the high layer takes over with its own base: it continues ~3,000 ticks on.
        let switched = timing.rebase(high(6_000), t0 + Duration::from_millis(66), true);
        assert!((1_005_900..=1_006_100).contains(&switched.numer()), "{switched:?}");
        let next = timing.rebase(high(9_000), t0 + Duration::from_millis(99), false);
        assert_eq!(next.numer() - switched.numer(), 3_000);
    }

    #[test]
    fn sequence_numbers_run_on_across_a_layer_switch() {
        let mut seq = Sequence::default();
        assert_eq!(seq.map(5_000, false), Some(1));
        assert_eq!(seq.map(5_001, false), Some(2));
        // A packet resent late keeps its place in the run.
        assert_eq!(seq.map(5_003, false), Some(4));
        assert_eq!(seq.map(5_002, false), Some(3));
        // Another layer counts from elsewhere: it continues after the highest number sent.
        assert_eq!(seq.map(900, true), Some(5));
        assert_eq!(seq.map(901, false), Some(6));
        // A late packet from before the switch has no place in the new run.
        assert_eq!(seq.map(899, false), None);
        assert_eq!(seq.map(902, false), Some(7));
    }

    /// A VP8 payload descriptor with a 15-bit picture id and a TL0PICIDX, then one byte.
    fn vp8(picture: u16, tl0: u8) -> Vec<u8> {
        let [high, low] = picture.to_be_bytes();
        vec![0x90, 0xe0, 0x80 | high, low, tl0, 0x20, 0x00]
    }

    #[test]
    fn picture_ids_run_on_across_a_layer_switch() {
        let parse = |payload: &[u8]| Vp8Descriptor::parse(payload).expect("a descriptor");
        let rewrite = |payload: &[u8], picture: u16, tl0: u8| {
            parse(payload).patch().picture_id(picture).tl0_pic_idx(tl0).build().ok()
        };
        let step =
            |pictures: &mut Pictures, payload: &[u8], switched| pictures.patch(payload, &parse(payload), switched);
        let mut pictures = Pictures::default();
        // The first layer is passed through as it is.
        assert_eq!(step(&mut pictures, &vp8(100, 7), false), None);
        assert_eq!(step(&mut pictures, &vp8(101, 8), false), None);
        // The next layer's pictures continue from the last one forwarded, and go on from there.
        assert_eq!(step(&mut pictures, &vp8(32_000, 200), true), rewrite(&vp8(32_000, 200), 102, 9));
        assert_eq!(step(&mut pictures, &vp8(32_001, 201), false), rewrite(&vp8(32_001, 201), 103, 10));
        // 15-bit picture ids wrap at 32,768.
        let mut pictures = Pictures::default();
        step(&mut pictures, &vp8(32_767, 0), false);
        assert_eq!(step(&mut pictures, &vp8(5, 0), true), rewrite(&vp8(5, 0), 0, 1));
    }
}
