//! Realistic signaling payloads with a send time inside.
//!
//! Browsers relay three kinds of payload through the hub: SDP offers and answers of 3–5 KB (an
//! audio and a video section, a dozen codecs with their feedback lines) and ICE candidates of
//! about 200 bytes (frames of 240–255 with the envelope). [`Payloads`] makes such texts once at
//! start, in a few sizes, each with a fixed-width placeholder for the sender's clock;
//! [`Payloads::signal`] copies one and writes the time in. The receiver reads it back with
//! [`sent_at`] to get the one-way latency.
//!
//! Where the time goes:
//! - in an SDP, a line of its own, `a=x-ts:<nanoseconds>` (an attribute browsers ignore);
//! - in a candidate, the `ufrag` field of the `candidate:` line.
//!
//! Times are nanoseconds since [`clock_base`], an `Instant` shared by the whole process (sender
//! and receiver are both in this process, so no clock sync is needed).

use confab_protocol::{IceCandidate, Signal};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

/// The SDP attribute that carries the send time.
const SDP_TS: &str = "a=x-ts:";
/// The candidate field that carries the send time.
const CANDIDATE_TS: &str = " ufrag ";
/// Digits of a written time: `u64::MAX` has 20, so every time fits and every payload of one
/// template keeps its length.
const TS_DIGITS: usize = 20;

/// Smallest SDP the generator makes, in bytes.
pub const SDP_MIN_BYTES: usize = 3200;
/// Largest SDP size the generator aims for, in bytes (the last line may go a little over).
pub const SDP_MAX_BYTES: usize = 4800;
/// How many SDP sizes there are between [`SDP_MIN_BYTES`] and [`SDP_MAX_BYTES`], per kind.
const SDP_VARIANTS: usize = 8;
/// How many different candidates (addresses, ports, components) there are.
const CANDIDATE_VARIANTS: usize = 16;

/// The process-wide time origin of all send times.
pub fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since [`clock_base`].
pub fn now_ns() -> u64 {
    clock_base().elapsed().as_nanos() as u64
}

/// Which message of a negotiation to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
    /// A trickled ICE candidate.
    Candidate,
}

impl Kind {
    /// The `seq`-th message one side of a pair sends. A negotiation is ten messages: one offer
    /// (from the side that offers), one answer (from the other) and four candidates each way.
    pub fn nth(offerer: bool, seq: u64) -> Kind {
        match (seq % 5, offerer) {
            (0, true) => Kind::Offer,
            (0, false) => Kind::Answer,
            _ => Kind::Candidate,
        }
    }
}

/// The payload texts, made once and shared by all peers.
#[derive(Debug, Clone)]
pub struct Payloads {
    /// Offers of growing size, each with a zeroed time.
    offers: Vec<String>,
    /// Answers of growing size, each with a zeroed time.
    answers: Vec<String>,
    /// Candidate lines, each with a zeroed time, and their m-line index.
    candidates: Vec<(String, u16)>,
}

impl Default for Payloads {
    fn default() -> Self {
        Self::new()
    }
}

impl Payloads {
    /// Makes every variant.
    pub fn new() -> Self {
        let sizes = (0..SDP_VARIANTS).map(|i| SDP_MIN_BYTES + i * (SDP_MAX_BYTES - SDP_MIN_BYTES) / (SDP_VARIANTS - 1));
        let offers = sizes.clone().enumerate().map(|(i, size)| sdp_of_size(true, i as u64, size)).collect();
        let answers = sizes.enumerate().map(|(i, size)| sdp_of_size(false, i as u64, size)).collect();
        let candidates = (0..CANDIDATE_VARIANTS as u64).map(candidate_line).collect();
        Payloads { offers, answers, candidates }
    }

    /// The payload of `kind`, variant `n` (any number; it wraps), stamped with `ts_ns`.
    pub fn signal(&self, kind: Kind, n: u64, ts_ns: u64) -> Signal {
        match kind {
            Kind::Offer => Signal::Offer { sdp: stamp(pick::<String>(&self.offers, n), SDP_TS, ts_ns) },
            Kind::Answer => Signal::Answer { sdp: stamp(pick::<String>(&self.answers, n), SDP_TS, ts_ns) },
            Kind::Candidate => {
                let (line, index) = pick(&self.candidates, n);
                Signal::Candidate(IceCandidate {
                    candidate: stamp(line, CANDIDATE_TS, ts_ns),
                    sdp_mid: Some(index.to_string()),
                    sdp_m_line_index: Some(*index),
                })
            }
        }
    }
}

fn pick<T>(items: &[T], n: u64) -> &T {
    &items[(n % items.len() as u64) as usize]
}

/// A copy of `template` with the time after `marker` replaced by `ts_ns`.
fn stamp(template: &str, marker: &str, ts_ns: u64) -> String {
    let start = template.find(marker).expect("every template has a time field") + marker.len();
    let mut text = template.to_owned();
    let digits = format!("{ts_ns:0width$}", width = TS_DIGITS);
    text.replace_range(start..start + TS_DIGITS, &digits);
    text
}

/// The send time written into a payload, if it has one.
pub fn sent_at(signal: &Signal) -> Option<u64> {
    let (text, marker) = match signal {
        Signal::Offer { sdp } | Signal::Answer { sdp } => (sdp.as_str(), SDP_TS),
        Signal::Candidate(c) => (c.candidate.as_str(), CANDIDATE_TS),
    };
    let rest = &text[text.find(marker)? + marker.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A pseudo-random number from `seed` (splitmix64): payloads differ from each other, and the same
/// seed always makes the same text.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` characters of the ICE alphabet (letters, digits, `+`, `/`), from `seed`.
fn ice_chars(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len).map(|i| ALPHABET[(mix(seed ^ ((i as u64) << 32)) % 64) as usize] as char).collect()
}

/// One `candidate:` line of a host candidate, as Chrome trickles them, with a zeroed time in
/// the `ufrag` field; and the index of the m-line it belongs to.
fn candidate_line(n: u64) -> (String, u16) {
    let r = mix(n);
    let component = 1 + (n % 2);
    let (protocol, priority, port, tcp) = if n % 4 == 3 {
        ("tcp", 1_518_280_447 - component, 9, " tcptype active")
    } else {
        ("udp", 2_122_260_223 - component, 49152 + r % 16000, "")
    };
    let line = format!(
        "candidate:{foundation} {component} {protocol} {priority} 192.168.{a}.{b} {port} typ host{tcp} \
         generation 0 ufrag {ts:0width$} network-id {net} network-cost 10",
        foundation = r % 4_294_967_296,
        a = (r >> 32) % 256,
        b = 1 + (r >> 40) % 254,
        ts = 0,
        width = TS_DIGITS,
        net = 1 + n % 3,
    );
    (line, (n % 2) as u16)
}

/// A video codec as Chrome lists it: name, clock rate and format parameters.
struct Codec {
    name: &'static str,
    fmtp: &'static str,
}

/// The video codecs of a Chrome offer, in its order; a larger SDP repeats them under new payload
/// types (as with several H.264 profiles).
const VIDEO_CODECS: &[Codec] = &[
    Codec { name: "VP8", fmtp: "" },
    Codec { name: "VP9", fmtp: "profile-id=0" },
    Codec { name: "VP9", fmtp: "profile-id=2" },
    Codec { name: "H264", fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f" },
    Codec { name: "H264", fmtp: "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f" },
    Codec { name: "H264", fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f" },
    Codec { name: "H264", fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f" },
    Codec { name: "AV1", fmtp: "level-idx=5;profile=0;tier=0" },
    Codec { name: "H265", fmtp: "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST" },
];

/// The smallest SDP of at least `size` bytes (more video codecs make it longer), or the largest
/// this generator can make.
fn sdp_of_size(offer: bool, seed: u64, size: usize) -> String {
    let mut codecs = 1;
    loop {
        let sdp = sdp(offer, seed, codecs);
        if sdp.len() >= size || codecs >= 40 {
            return sdp;
        }
        codecs += 1;
    }
}

/// An SDP in the shape of Chrome's: an audio and a video section, bundled, with `codecs` video
/// codecs (each with its retransmission codec), and a zeroed `a=x-ts:` time line.
fn sdp(offer: bool, seed: u64, codecs: usize) -> String {
    let r = mix(seed ^ if offer { 0x0ffe } else { 0xa45e });
    let session_id = r % 9_000_000_000_000_000_000;
    let stream = format!("{}-{}", ice_chars(r, 8), ice_chars(r + 1, 4));
    let ufrag = ice_chars(r + 2, 4);
    let pwd = ice_chars(r + 3, 24);
    let fingerprint: Vec<String> = (0..32).map(|i| format!("{:02X}", mix(r + 10 + i) % 256)).collect();
    let fingerprint = fingerprint.join(":");
    let setup = if offer { "actpass" } else { "active" };
    let (audio_ssrc, video_ssrc, rtx_ssrc) = (r % 4_000_000_000, (r >> 8) % 4_000_000_000, (r >> 16) % 4_000_000_000);
    let cname = ice_chars(r + 4, 16);
    let audio_track = ice_chars(r + 5, 36);
    let video_track = ice_chars(r + 6, 36);

    let mut s = String::with_capacity(6000);
    let l = &mut s;
    line(l, format_args!("v=0"));
    line(l, format_args!("o=- {session_id} 2 IN IP4 127.0.0.1"));
    line(l, format_args!("s=-"));
    line(l, format_args!("t=0 0"));
    line(l, format_args!("{SDP_TS}{:0width$}", 0, width = TS_DIGITS));
    line(l, format_args!("a=group:BUNDLE 0 1"));
    line(l, format_args!("a=extmap-allow-mixed"));
    line(l, format_args!("a=msid-semantic: WMS {stream}"));

    let transport = |l: &mut String, mid: u32| {
        line(l, format_args!("c=IN IP4 0.0.0.0"));
        line(l, format_args!("a=rtcp:9 IN IP4 0.0.0.0"));
        line(l, format_args!("a=ice-ufrag:{ufrag}"));
        line(l, format_args!("a=ice-pwd:{pwd}"));
        line(l, format_args!("a=ice-options:trickle"));
        line(l, format_args!("a=fingerprint:sha-256 {fingerprint}"));
        line(l, format_args!("a=setup:{setup}"));
        line(l, format_args!("a=mid:{mid}"));
    };

    line(l, format_args!("m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126"));
    transport(l, 0);
    line(l, format_args!("a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level"));
    line(l, format_args!("a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"));
    line(l, format_args!("a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"));
    line(l, format_args!("a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"));
    line(l, format_args!("a=sendrecv"));
    line(l, format_args!("a=msid:{stream} {audio_track}"));
    line(l, format_args!("a=rtcp-mux"));
    line(l, format_args!("a=rtcp-rsize"));
    line(l, format_args!("a=rtpmap:111 opus/48000/2"));
    line(l, format_args!("a=rtcp-fb:111 transport-cc"));
    line(l, format_args!("a=fmtp:111 minptime=10;useinbandfec=1"));
    line(l, format_args!("a=rtpmap:63 red/48000/2"));
    line(l, format_args!("a=fmtp:63 111/111"));
    line(l, format_args!("a=rtpmap:9 G722/8000"));
    line(l, format_args!("a=rtpmap:0 PCMU/8000"));
    line(l, format_args!("a=rtpmap:8 PCMA/8000"));
    line(l, format_args!("a=rtpmap:13 CN/8000"));
    line(l, format_args!("a=rtpmap:110 telephone-event/48000"));
    line(l, format_args!("a=rtpmap:126 telephone-event/8000"));
    line(l, format_args!("a=ssrc:{audio_ssrc} cname:{cname}"));
    line(l, format_args!("a=ssrc:{audio_ssrc} msid:{stream} {audio_track}"));

    // Each codec takes two payload types (itself and its rtx), from 96 up and wrapping within the
    // dynamic range 96–127, then 35–63 as Chrome does when it runs out.
    let payload_type = |n: usize| -> usize {
        if n < 32 {
            96 + n
        } else {
            35 + (n - 32) % 29
        }
    };
    let types: Vec<String> = (0..codecs * 2).map(|n| payload_type(n).to_string()).collect();
    line(l, format_args!("m=video 9 UDP/TLS/RTP/SAVPF {}", types.join(" ")));
    transport(l, 1);
    line(l, format_args!("a=extmap:14 urn:ietf:params:rtp-hdrext:toffset"));
    line(l, format_args!("a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"));
    line(l, format_args!("a=extmap:13 urn:3gpp:video-orientation"));
    line(l, format_args!("a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"));
    line(l, format_args!("a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"));
    line(l, format_args!("a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type"));
    line(l, format_args!("a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing"));
    line(l, format_args!("a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space"));
    line(l, format_args!("a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"));
    line(l, format_args!("a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"));
    line(l, format_args!("a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"));
    line(l, format_args!("a=sendrecv"));
    line(l, format_args!("a=msid:{stream} {video_track}"));
    line(l, format_args!("a=rtcp-mux"));
    line(l, format_args!("a=rtcp-rsize"));
    for c in 0..codecs {
        let codec = &VIDEO_CODECS[c % VIDEO_CODECS.len()];
        let (pt, rtx) = (payload_type(2 * c), payload_type(2 * c + 1));
        line(l, format_args!("a=rtpmap:{pt} {}/90000", codec.name));
        for fb in ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"] {
            line(l, format_args!("a=rtcp-fb:{pt} {fb}"));
        }
        if !codec.fmtp.is_empty() {
            line(l, format_args!("a=fmtp:{pt} {}", codec.fmtp));
        }
        line(l, format_args!("a=rtpmap:{rtx} rtx/90000"));
        line(l, format_args!("a=fmtp:{rtx} apt={pt}"));
    }
    line(l, format_args!("a=ssrc-group:FID {video_ssrc} {rtx_ssrc}"));
    for ssrc in [video_ssrc, rtx_ssrc] {
        line(l, format_args!("a=ssrc:{ssrc} cname:{cname}"));
        line(l, format_args!("a=ssrc:{ssrc} msid:{stream} {video_track}"));
    }
    s
}

/// Appends one SDP line with its CRLF.
fn line(sdp: &mut String, args: std::fmt::Arguments<'_>) {
    sdp.write_fmt(args).expect("writing to a String cannot fail");
    sdp.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{ClientMsg, PeerId};

    fn frame(signal: Signal) -> String {
        ClientMsg::Signal { to: PeerId(12345), signal }.to_json()
    }

    #[test]
    fn sdps_are_3_to_5_kb_and_vary() {
        let payloads = Payloads::new();
        let mut sizes = Vec::new();
        for (kind, n) in (0..SDP_VARIANTS as u64).flat_map(|n| [(Kind::Offer, n), (Kind::Answer, n)]) {
            let (Signal::Offer { sdp } | Signal::Answer { sdp }) = payloads.signal(kind, n, 7) else {
                panic!("{kind:?} made no SDP");
            };
            assert!((3000..=5000).contains(&sdp.len()), "{kind:?} {n}: {} bytes", sdp.len());
            assert!(sdp.starts_with("v=0\r\no=- "), "{sdp}");
            assert!(sdp.contains("\r\nm=audio 9 UDP/TLS/RTP/SAVPF") && sdp.contains("\r\nm=video 9 "), "{sdp}");
            assert!(sdp.contains("a=rtpmap:96 VP8/90000"), "{sdp}");
            assert!(sdp.ends_with("\r\n"));
            sizes.push(sdp.len());
        }
        sizes.sort_unstable();
        sizes.dedup();
        assert!(sizes.len() >= SDP_VARIANTS, "sizes do not vary: {sizes:?}");
        assert!(sizes[0] < 3500 && sizes[sizes.len() - 1] > 4500, "{sizes:?}");
    }

    #[test]
    fn candidates_are_about_200_bytes() {
        let payloads = Payloads::new();
        for n in 0..CANDIDATE_VARIANTS as u64 {
            let signal = payloads.signal(Kind::Candidate, n, u64::MAX);
            let Signal::Candidate(c) = &signal else { panic!("not a candidate") };
            assert!(c.candidate.starts_with("candidate:") && c.candidate.contains(" typ host"), "{}", c.candidate);
            assert_eq!(c.sdp_mid.as_deref(), Some(c.sdp_m_line_index.unwrap().to_string().as_str()));
            // The payload as relayed (its JSON object); the frame adds `type` and `to`.
            let len = serde_json::to_string(&signal).unwrap().len();
            assert!((180..=230).contains(&len), "candidate of {len} bytes");
            assert!(frame(signal).len() < 260);
        }
    }

    #[test]
    fn the_send_time_survives_the_wire() {
        let payloads = Payloads::new();
        for kind in [Kind::Offer, Kind::Answer, Kind::Candidate] {
            for ts in [0, 1, 987_654_321, u64::MAX] {
                let json = frame(payloads.signal(kind, ts, ts));
                let Ok(ClientMsg::Signal { signal, .. }) = ClientMsg::from_json(&json) else {
                    panic!("{kind:?} does not decode: {json}");
                };
                assert_eq!(sent_at(&signal), Some(ts), "{kind:?}");
            }
        }
    }

    #[test]
    fn stamping_keeps_the_length() {
        let payloads = Payloads::new();
        let len = |ts| frame(payloads.signal(Kind::Offer, 3, ts)).len();
        assert_eq!(len(0), len(u64::MAX));
    }

    #[test]
    fn a_payload_without_time_has_none() {
        assert_eq!(sent_at(&Signal::Offer { sdp: "v=0\r\n".into() }), None);
    }

    #[test]
    fn a_negotiation_is_one_offer_one_answer_and_eight_candidates() {
        let sent: Vec<Kind> = (0..5).flat_map(|seq| [Kind::nth(true, seq), Kind::nth(false, seq)]).collect();
        let count = |k| sent.iter().filter(|&&s| s == k).count();
        assert_eq!((count(Kind::Offer), count(Kind::Answer), count(Kind::Candidate)), (1, 1, 8));
    }

    #[test]
    fn the_clock_runs_forward() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
