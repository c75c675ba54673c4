//! An offer cut to the codecs its receiver takes. Pure, so that it is tested natively.
//!
//! The SFU forwards Opus and VP8 only. A browser's offer lists every codec it has (about 3 KB of
//! SDP for each video section), and the receive-only sections a joiner offers for the people
//! already there would soon pass [`confab_protocol::MAX_SDP_BYTES`]. Cutting the copy sent keeps
//! the browser's own description as it is: the answer names a subset of what it offered, which
//! is all an answer may do.

/// `sdp` with each media section's formats cut to those whose codec (the `a=rtpmap` name,
/// case-insensitive) is in `keep`, and the retransmission (`rtx`) formats of those; the
/// `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` lines of the formats cut go too. A section with none of
/// `keep` (a data channel, say) is left whole, as is every other line.
pub fn only_codecs(sdp: &str, keep: &[&str]) -> String {
    let mut out = String::with_capacity(sdp.len());
    let mut rest = sdp;
    // The session part, then one media section at a time.
    while !rest.is_empty() {
        let end = rest[1..].find("\nm=").map_or(rest.len(), |i| i + 2);
        let (section, tail) = rest.split_at(end);
        if section.starts_with("m=") {
            cut_section(section, keep, &mut out);
        } else {
            out.push_str(section);
        }
        rest = tail;
    }
    out
}

/// The format (payload type) a line about one format is about, if it is one of those.
fn format_of(line: &str) -> Option<&str> {
    ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|prefix| line.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|pt| *pt != "*")
}

fn cut_section(section: &str, keep: &[&str], out: &mut String) {
    let lines: Vec<&str> = section.split_inclusive('\n').collect();
    let content = |line: &str| line.trim_end_matches(['\r', '\n']).to_owned();
    let codec = |pt: &str| {
        lines.iter().map(|l| content(l)).find_map(|l| {
            let rest = l.strip_prefix("a=rtpmap:")?;
            let (p, name) = rest.split_once(' ')?;
            (p == pt).then(|| name.split('/').next().unwrap_or_default().to_owned())
        })
    };
    let apt = |pt: &str| {
        lines.iter().map(|l| content(l)).find_map(|l| {
            let rest = l.strip_prefix("a=fmtp:")?;
            let (p, params) = rest.split_once(' ')?;
            (p == pt).then(|| params.split(';').find_map(|kv| kv.trim().strip_prefix("apt=").map(str::to_owned)))?
        })
    };
    let m_line = content(lines[0]);
    let fields: Vec<&str> = m_line.split(' ').collect();
    let formats = fields.get(3..).unwrap_or_default();
    let mut kept: Vec<&str> = formats
        .iter()
        .copied()
        .filter(|pt| codec(pt).is_some_and(|c| keep.iter().any(|k| k.eq_ignore_ascii_case(&c))))
        .collect();
    if kept.is_empty() {
        out.push_str(section);
        return;
    }
    let rtx: Vec<&str> = formats
        .iter()
        .copied()
        .filter(|pt| {
            codec(pt).is_some_and(|c| c.eq_ignore_ascii_case("rtx"))
                && apt(pt).is_some_and(|a| kept.contains(&a.as_str()))
        })
        .collect();
    kept.extend(rtx);
    let ending = &lines[0][m_line.len()..];
    let ordered: Vec<&str> = formats.iter().copied().filter(|pt| kept.contains(pt)).collect();
    out.push_str(&fields[..3.min(fields.len())].join(" "));
    for pt in ordered {
        out.push(' ');
        out.push_str(pt);
    }
    out.push_str(ending);
    for line in &lines[1..] {
        if format_of(&content(line)).is_none_or(|pt| kept.contains(&pt)) {
            out.push_str(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=group:BUNDLE 0 1 2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 45\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n\
a=rtpmap:45 AV1/90000\r\na=rtcp-fb:* ccm fir\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\na=sctp-port:5000\r\n";

    #[test]
    fn only_the_kept_codecs_and_their_retransmissions_stay() {
        let cut = only_codecs(OFFER, &["opus", "VP8"]);
        let expected = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=group:BUNDLE 0 1 2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtcp-fb:* ccm fir\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\na=sctp-port:5000\r\n";
        assert_eq!(cut, expected);
    }

    #[test]
    fn a_section_without_a_kept_codec_and_bare_newlines_are_left_as_they_are() {
        let sdp = "v=0\nm=video 9 UDP/TLS/RTP/SAVPF 98\na=rtpmap:98 VP9/90000\n";
        assert_eq!(only_codecs(sdp, &["VP8"]), sdp);
        assert_eq!(only_codecs("", &["VP8"]), "");
        let lf = "v=0\nm=audio 9 RTP/SAVPF 111 9\na=rtpmap:111 OPUS/48000/2\na=rtpmap:9 G722/8000\n";
        assert_eq!(only_codecs(lf, &["opus"]), "v=0\nm=audio 9 RTP/SAVPF 111\na=rtpmap:111 OPUS/48000/2\n");
    }
}
