//! The engine's counters: one per outcome of a datagram, and the forwarding totals.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the engine updates and anyone holding a [`crate::MediaHandle`] reads.
#[derive(Debug, Default)]
pub struct MediaStats {
    /// Datagrams read from the socket.
    pub datagrams: AtomicU64,
    /// Datagrams that are not STUN, DTLS, RTP or RTCP (RFC 7983's first-byte ranges), or empty.
    pub garbage: AtomicU64,
    /// WebRTC-looking datagrams no participant's connection accepts (unknown source, wrong ICE
    /// credentials): normal for a few packets while a connection starts.
    pub unowned: AtomicU64,
    /// Datagrams handed to a participant's connection.
    pub delivered: AtomicU64,
    /// Participants dropped because their connection reported an error.
    pub errors: AtomicU64,
    /// Frames (video) and packets (audio) written towards subscribers.
    pub forwarded: AtomicU64,
    /// Frames a subscriber did not get because the layer it wants is not the one that arrived,
    /// its video is off, or a layer switch waits for a keyframe.
    pub skipped: AtomicU64,
    /// Datagrams the socket would not take (a full send buffer) or refused.
    pub send_errors: AtomicU64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: AtomicU64,
    /// Participants currently joined.
    pub participants: AtomicU64,
}

impl MediaStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
