//! The engine driven by hand, one datagram at a time and without its task: for the fuzz target
//! of the datagram demultiplexer (`fuzz/fuzz_targets/media.rs`) and the tests that feed it
//! malformed input. Not part of the crate's API.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::bot::{Bot, BotOptions};
use crate::engine::{advertised_addr, Engine};
use crate::{MediaConfig, MediaStats, Member, Notice};

/// An engine on a loopback socket with one participant joined (from a bot's offer, so the
/// engine knows the bot's address as the participant's one candidate).
pub struct Harness {
    engine: Engine,
    stats: Arc<MediaStats>,
    member_addr: SocketAddr,
    _bot: Bot,
    _notices: mpsc::Receiver<Notice>,
}

impl Harness {
    /// Needs a tokio runtime entered (the sockets are tokio's); sends nothing by itself.
    pub fn new() -> io::Result<Harness> {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let advertised = advertised_addr(socket.local_addr()?, None)?;
        let stats = Arc::new(MediaStats::default());
        let mut engine = Engine::new(MediaConfig::default(), socket, advertised, stats.clone());
        let mut bot = Bot::new(IpAddr::V4(Ipv4Addr::LOCALHOST), BotOptions::default())?;
        let (notices_tx, notices) = mpsc::channel(64);
        let now = Instant::now();
        engine.join(Member::new("harness", 1), &bot.offer(), notices_tx, now).map_err(io::Error::other)?;
        engine.settle(now);
        Ok(Harness { engine, stats, member_addr: bot.local_addr(), _bot: bot, _notices: notices })
    }

    /// Hands the engine one datagram, from the participant's address or from a stranger's, and
    /// lets it handle whatever that caused (timers included), as its task would.
    pub fn receive(&mut self, data: &[u8], from_member: bool) {
        let source = match from_member {
            true => self.member_addr,
            false => SocketAddr::from((Ipv4Addr::LOCALHOST, 9)),
        };
        let now = Instant::now();
        self.engine.receive(source, data, now);
        self.engine.timeouts(now);
        self.engine.settle(now);
    }

    pub fn stats(&self) -> &MediaStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
        MediaStats::get(counter)
    }

    #[tokio::test]
    async fn every_malformed_datagram_has_one_outcome_and_none_brings_the_engine_down() {
        let mut harness = Harness::new().unwrap();
        let stun_header = |class_method: [u8; 2], length: u16| {
            let mut d = class_method.to_vec();
            d.extend_from_slice(&length.to_be_bytes());
            d.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            d.extend_from_slice(&[7; 12]);
            d
        };
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0xff; 40],
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            // A STUN binding request: cut short, lying about its length, with a garbage attribute.
            stun_header([0x00, 0x01], 0)[..10].to_vec(),
            stun_header([0x00, 0x01], 400),
            [stun_header([0x00, 0x01], 8), vec![0x00, 0x06, 0x00, 0x04, b'x', b':', b'y', 0]].concat(),
            // DTLS records: a handshake header with nothing after it, an alert, a huge length.
            vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
            vec![21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 2, 40],
            // RTP and RTCP before any DTLS: version 2, then nothing sensible.
            vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
            vec![0x80, 200, 0, 6, 0, 0, 0, 1],
            vec![0x90, 111, 0xff, 0xff],
        ];
        inputs.extend(
            (0u8..=255).map(|first| [first].into_iter().chain((0u8..60).map(|i| i.wrapping_mul(37))).collect()),
        );
        for (i, input) in inputs.iter().enumerate() {
            harness.receive(input, i % 2 == 0);
        }
        let s = harness.stats();
        let n = inputs.len() as u64;
        assert_eq!(count(&s.datagrams), n);
        // One outcome each: not WebRTC, nobody's, or handed to the participant's connection.
        assert_eq!(count(&s.garbage) + count(&s.unowned) + count(&s.delivered), n);
        assert!(count(&s.garbage) > 0 && count(&s.unowned) > 0, "{s:?}");
        // A datagram from a stranger never reaches the participant.
        let delivered = count(&s.delivered);
        harness.receive(&[0x80, 96, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1], false);
        assert_eq!(count(&harness.stats().delivered), delivered);
    }
}
