//! What the scripts publish to a node's channel, and how the node reads it.
//!
//! The scripts never write the wire format: a message to members travels as the frame the
//! sending node encoded, byte for byte, behind a header that says which of the receiving node's
//! sockets get it. One envelope per receiving node, in one of three shapes (ids in decimal):
//!
//! - `D<id>,<id>…\n<frame>`: give `<frame>` to these peers;
//! - `L<id>,<id>…\n<gone>`: peer `<gone>` left; tell these peers (the receiving node encodes
//!   the `peer_left` message, once);
//! - `R<id>,<session>`: the socket of `<id>` attached as `<session>` lost its place to a newer
//!   one (same key);
//! - `M<token>`: a marker the node sent itself ([`super::Cluster::flush`]): every envelope
//!   published to the node before it has been handed over.

use super::super::Frame;
use axum::body::Bytes;
use confab_protocol::PeerId;

/// One published envelope.
#[derive(Debug, PartialEq, Eq)]
pub enum Envelope {
    /// Give `frame` to these local peers.
    Deliver { to: Vec<PeerId>, frame: Frame },
    /// `gone` left its room; tell these local peers.
    Left { to: Vec<PeerId>, gone: PeerId },
    /// The socket of `id` attached as `session` lost its place to a newer one.
    Replaced { id: PeerId, session: u64 },
    /// The node's own marker `token` came back.
    Marker(u64),
}

/// An envelope that does not have one of the three shapes.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreadable delivery: {0}")]
pub struct BadEnvelope(&'static str);

impl Envelope {
    /// Reads one published payload (shared, not copied, by the frame it carries).
    pub fn parse(payload: Bytes) -> Result<Self, BadEnvelope> {
        let (&kind, rest) = payload.split_first().ok_or(BadEnvelope("empty"))?;
        if kind == b'M' {
            let text = std::str::from_utf8(rest).map_err(|_| BadEnvelope("not text"))?;
            return Ok(Envelope::Marker(number(text)?));
        }
        if kind == b'R' {
            let text = std::str::from_utf8(rest).map_err(|_| BadEnvelope("not text"))?;
            let (id, session) = text.split_once(',').ok_or(BadEnvelope("no session"))?;
            return Ok(Envelope::Replaced { id: id_of(id)?, session: number(session)? });
        }
        let newline = rest.iter().position(|b| *b == b'\n').ok_or(BadEnvelope("no body"))?;
        let to = std::str::from_utf8(&rest[..newline]).map_err(|_| BadEnvelope("not text"))?;
        let to = to.split(',').map(id_of).collect::<Result<Vec<_>, _>>()?;
        let body_at = 1 + newline + 1;
        match kind {
            b'D' => {
                let frame = Frame::from_bytes(payload.slice(body_at..)).ok_or(BadEnvelope("frame not UTF-8"))?;
                Ok(Envelope::Deliver { to, frame })
            }
            b'L' => {
                let gone = std::str::from_utf8(&payload[body_at..]).map_err(|_| BadEnvelope("not text"))?;
                Ok(Envelope::Left { to, gone: id_of(gone)? })
            }
            _ => Err(BadEnvelope("unknown kind")),
        }
    }
}

fn number(text: &str) -> Result<u64, BadEnvelope> {
    text.parse().map_err(|_| BadEnvelope("not a number"))
}

fn id_of(text: &str) -> Result<PeerId, BadEnvelope> {
    number(text).map(PeerId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{ServerMsg, Signal};

    fn parse(text: &str) -> Result<Envelope, BadEnvelope> {
        Envelope::parse(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn envelopes_as_the_scripts_write_them() {
        let frame = Frame::of(&ServerMsg::Signal { from: PeerId(5), signal: Signal::Offer { sdp: "v=0\r\n".into() } });
        assert_eq!(
            parse(&format!("D3,7\n{}", frame.as_str())),
            Ok(Envelope::Deliver { to: vec![PeerId(3), PeerId(7)], frame })
        );
        assert_eq!(parse("L3\n5"), Ok(Envelope::Left { to: vec![PeerId(3)], gone: PeerId(5) }));
        assert_eq!(parse("R4,12"), Ok(Envelope::Replaced { id: PeerId(4), session: 12 }));
        assert_eq!(parse("M99"), Ok(Envelope::Marker(99)));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "D", "D3", "M", "Mx", "D3,\nx", "Dx\n{}", "L3\n", "L3\nfive", "R4", "R4,", "Rx,1", "X3\n{}"] {
            assert!(parse(bad).is_err(), "{bad:?} was read");
        }
        assert!(Envelope::parse(Bytes::from_static(b"D3\n\xff")).is_err(), "a frame that is not UTF-8");
    }
}
