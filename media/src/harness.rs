//! The engine driven by hand, one datagram at a time and without its task: for the fuzz target
//! of the datagram demultiplexer (`fuzz/fuzz_targets/media.rs`) and the tests that feed it
//! malformed input. Not part of the crate's API.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::bot::{Bot, BotOptions};
use crate::engine::{advertised_addr, Engine};
use crate::{MediaConfig, MediaStats, Member, Notice};

/// An engine on a loopback socket with one participant joined from a bot's offer (so the
/// engine knows the bot's address as the participant's one candidate), optionally connected.
pub struct Harness {
    engine: Engine,
    stats: Arc<MediaStats>,
    member_addr: SocketAddr,
    bot: Bot,
    notices: mpsc::Receiver<Notice>,
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
        let answer = engine.join(Member::new("harness", 1), &bot.offer(), notices_tx, now).map_err(io::Error::other)?;
        bot.accept_answer(&answer.sdp, &answer.tracks).map_err(io::Error::other)?;
        engine.settle(now);
        Ok(Harness { engine, stats, member_addr: bot.local_addr(), bot, notices })
    }

    /// Runs ICE and DTLS between the bot and the engine over loopback, the engine's side by
    /// hand, until the engine reports the participant connected; `false` if that took longer
    /// than `limit`. From then on datagrams "from the participant" reach its DTLS and SRTP.
    pub async fn connect(&mut self, limit: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 2048];
        while Instant::now() < deadline {
            self.bot.run_for(Duration::from_millis(2)).await?;
            let now = Instant::now();
            while let Ok((n, source)) = self.engine.socket().try_recv_from(&mut buf) {
                self.engine.receive(source, &buf[..n], now);
            }
            self.engine.timeouts(now);
            self.engine.settle(now);
            while let Ok(notice) = self.notices.try_recv() {
                match notice {
                    Notice::Connected => return Ok(true),
                    Notice::Closed { reason } => return Err(io::Error::other(reason)),
                    Notice::Offer { .. } | Notice::Disconnected | Notice::ActiveSpeaker { .. } => {}
                }
            }
        }
        Ok(false)
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

    /// Whether the participant is still joined (a datagram its connection took as fatal drops
    /// it, as it should).
    pub fn joined(&self) -> bool {
        MediaStats::get(&self.stats.participants) == 1
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

    /// Datagrams of every kind gone wrong: empty, garbage, cut-short or lying STUN, DTLS records
    /// with nothing behind their headers, RTP and RTCP that do not decrypt, and every first byte.
    fn malformed() -> Vec<Vec<u8>> {
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
            stun_header([0x00, 0x01], 0)[..10].to_vec(),
            stun_header([0x00, 0x01], 400),
            [stun_header([0x00, 0x01], 8), vec![0x00, 0x06, 0x00, 0x04, b'x', b':', b'y', 0]].concat(),
            vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
            vec![21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 2, 40],
            vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 4, 1, 2, 3, 4],
            vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
            vec![0x80, 200, 0, 6, 0, 0, 0, 1],
            vec![0x90, 111, 0xff, 0xff],
        ];
        inputs.extend(
            (0u8..=255).map(|first| [first].into_iter().chain((0u8..60).map(|i| i.wrapping_mul(37))).collect()),
        );
        inputs
    }

    #[tokio::test]
    async fn every_malformed_datagram_has_one_outcome_and_none_brings_the_engine_down() {
        let mut harness = Harness::new().unwrap();
        assert!(harness.connect(Duration::from_secs(5)).await.unwrap(), "the bot did not connect");
        let counts = |s: &MediaStats| [&s.datagrams, &s.garbage, &s.unowned, &s.delivered].map(count);
        let before = counts(harness.stats());
        let inputs = malformed();
        for (i, input) in inputs.iter().enumerate() {
            harness.receive(input, i % 2 == 0);
        }
        let s = harness.stats();
        let after = counts(s);
        let [datagrams, garbage, unowned, delivered] = [0, 1, 2, 3].map(|i| after[i] - before[i]);
        let n = inputs.len() as u64;
        assert_eq!(datagrams, n);
        // One outcome each: not WebRTC, nobody's, or handed to the participant's connection.
        assert_eq!(garbage + unowned + delivered, n);
        assert!(garbage > 0 && unowned > 0 && delivered > 0, "{s:?}");
        // The participant survived what its connection was handed: it still takes datagrams.
        assert!(harness.joined(), "{s:?}");
        // A datagram from a stranger never reaches the participant.
        let delivered = count(&harness.stats().delivered);
        harness.receive(&[0x80, 96, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1], false);
        assert_eq!(count(&harness.stats().delivered), delivered);
    }
}
