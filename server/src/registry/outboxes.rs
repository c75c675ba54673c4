//! Delivery to the sockets of this node, shared by both backends.
//!
//! Each attached member is reached through a bounded [`Outbox`] (at most [`OUTBOX_CAPACITY`]
//! messages and [`OUTBOX_BYTES`] bytes) of encoded [`Frame`]s: a message is encoded once, where
//! it starts, and the same bytes go to every receiver and onto every socket. A member whose
//! outbox is full is not keeping up; [`Outboxes::deliver`] ends its outbox and hands it back to
//! the backend, which removes it from its room (its session then ends) rather than letting its
//! queue grow without limit or silently losing part of a negotiation.
//!
//! Why an outbox ended travels with it: the session reading the [`Inbox`] receives
//! [`Outgoing::End`] with the [`EndReason`] after the frames queued before the end.

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use confab_protocol::{PeerId, ServerMsg};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// How many messages may wait for one member before it counts as too slow.
pub const OUTBOX_CAPACITY: usize = 128;

/// How many bytes may wait for one member before it counts as too slow: 128 messages of up to
/// 64 KiB would otherwise be 8 MiB per socket.
pub const OUTBOX_BYTES: usize = 1024 * 1024;

/// One server message, encoded once (JSON text, as it goes on the wire). Cloning shares the
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Utf8Bytes);

impl Frame {
    /// Encodes `msg`.
    pub fn of(msg: &ServerMsg) -> Self {
        Frame(msg.to_json().into())
    }

    /// A frame encoded elsewhere (another node, through Redis); `None` if it is not UTF-8.
    pub fn from_bytes(bytes: Bytes) -> Option<Self> {
        Utf8Bytes::try_from(bytes).ok().map(Frame)
    }

    /// Its length in bytes, which is what it weighs against [`OUTBOX_BYTES`].
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (a frame never is).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoded text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The message it carries (for tests and the fuzzer; the server never decodes its own).
    pub fn decode(&self) -> Option<ServerMsg> {
        ServerMsg::from_json(self.0.as_str()).ok()
    }

    /// The WebSocket message that sends it.
    pub fn into_message(self) -> Message {
        Message::Text(self.0)
    }
}

/// Why the registry ended a member's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A newer socket with the same key took the place.
    Replaced,
    /// The socket did not read its messages fast enough and was removed from its room.
    TooSlow,
    /// This node lost its place in the cluster (Redis was unreachable for longer than the
    /// presence TTL): the socket should join again.
    Lost,
}

/// What a session reads from its [`Inbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A frame to write to the socket.
    Frame(Frame),
    /// The registry ended the outbox; nothing more will come.
    End(EndReason),
}

/// The sending half of one member's queue of outgoing frames, bounded by messages and by bytes.
/// Only the registry holds it; [`Outbox::end`] closes it with a reason.
#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Frame>,
    /// The bytes queued now, shared with the [`Inbox`].
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
    /// Why it ended, for the [`Inbox`] to read after the last frame.
    ended: Arc<OnceLock<EndReason>>,
}

/// The receiving half of a member's queue, read by its session.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Frame>,
    queued: Arc<AtomicUsize>,
    ended: Arc<OnceLock<EndReason>>,
}

/// A queue of [`OUTBOX_CAPACITY`] messages and [`OUTBOX_BYTES`] bytes.
pub fn outbox() -> (Outbox, Inbox) {
    outbox_bounded(OUTBOX_CAPACITY, OUTBOX_BYTES)
}

/// A queue of at most `messages` messages weighing at most `bytes` together.
pub fn outbox_bounded(messages: usize, bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(messages.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(OnceLock::new());
    (Outbox { tx, queued: queued.clone(), max_bytes: bytes, ended: ended.clone() }, Inbox { rx, queued, ended })
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The queue is at one of its bounds: the member does not keep up.
    Full,
    /// The member's session is gone.
    Closed,
}

impl Outbox {
    /// Queues `frame`, unless that would pass either bound or the session is gone.
    pub fn try_send(&self, frame: Frame) -> Result<(), SendError> {
        let weight = frame.len();
        let before = self.queued.fetch_add(weight, Ordering::AcqRel);
        if before + weight > self.max_bytes {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            return Err(SendError::Full);
        }
        self.tx.try_send(frame).map_err(|e| {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            match e {
                TrySendError::Full(_) => SendError::Full,
                TrySendError::Closed(_) => SendError::Closed,
            }
        })
    }

    /// Closes the queue; its session reads `reason` after the frames already queued.
    pub fn end(self, reason: EndReason) {
        // The first reason given is the one that counts; an outbox ends only once anyway.
        let _ = self.ended.set(reason);
    }
}

impl Inbox {
    /// The next queued frame, or why the outbox ended once it has and every frame is read.
    pub async fn recv(&mut self) -> Outgoing {
        match self.rx.recv().await {
            Some(frame) => {
                self.queued.fetch_sub(frame.len(), Ordering::AcqRel);
                Outgoing::Frame(frame)
            }
            // An outbox dropped without a reason was dropped with its registry.
            None => Outgoing::End(self.ended.get().copied().unwrap_or(EndReason::Lost)),
        }
    }

    /// What [`Inbox::recv`] would give now, if anything: the next frame, or why the outbox
    /// ended once it has and every frame is read.
    pub fn try_next(&mut self) -> Option<Outgoing> {
        match self.rx.try_recv() {
            Ok(frame) => {
                self.queued.fetch_sub(frame.len(), Ordering::AcqRel);
                Some(Outgoing::Frame(frame))
            }
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                Some(Outgoing::End(self.ended.get().copied().unwrap_or(EndReason::Lost)))
            }
        }
    }

    /// The next queued frame, if one is there now.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }
}

/// One attached socket: its attachment's session number, its outbox and what the backend keeps
/// beside it.
#[derive(Debug)]
pub struct Attached<T> {
    /// The session number of the attachment.
    pub session: u64,
    outbox: Outbox,
    /// The backend's own data about the socket.
    pub data: T,
}

/// The outboxes of this node's attached sockets, by peer id.
#[derive(Debug)]
pub struct Outboxes<T> {
    by_peer: HashMap<PeerId, Attached<T>>,
}

impl<T> Default for Outboxes<T> {
    fn default() -> Self {
        Outboxes { by_peer: HashMap::new() }
    }
}

impl<T> Outboxes<T> {
    /// Makes `outbox` the way to reach `id`; an older attachment of the same place is ended as
    /// [`EndReason::Replaced`].
    pub fn attach(&mut self, id: PeerId, session: u64, outbox: Outbox, data: T) {
        if let Some(older) = self.by_peer.insert(id, Attached { session, outbox, data }) {
            older.outbox.end(EndReason::Replaced);
        }
    }

    /// Ends the outbox of `id` for `reason` if `session` is still its attachment; gives back
    /// what was kept with it.
    pub fn end(&mut self, id: PeerId, session: u64, reason: EndReason) -> Option<T> {
        let gone = self.take(id, session)?;
        gone.outbox.end(reason);
        Some(gone.data)
    }

    /// Forgets the outbox of `id` if `session` is still its attachment (its session is ending
    /// on its own); gives back what was kept with it.
    pub fn detach(&mut self, id: PeerId, session: u64) -> Option<T> {
        self.take(id, session).map(|gone| gone.data)
    }

    fn take(&mut self, id: PeerId, session: u64) -> Option<Attached<T>> {
        if self.by_peer.get(&id)?.session != session {
            return None;
        }
        self.by_peer.remove(&id)
    }

    /// The attachment of `id`, if it is attached here.
    pub fn get(&self, id: PeerId) -> Option<&Attached<T>> {
        self.by_peer.get(&id)
    }

    /// The attachment of `id`, to change what is kept with it.
    pub fn get_mut(&mut self, id: PeerId) -> Option<&mut Attached<T>> {
        self.by_peer.get_mut(&id)
    }

    /// Queues `frame` for each of `to` that is attached here. Those that do not keep up have
    /// their outbox ended as [`EndReason::TooSlow`]; they are given back (id, session and
    /// data) for the backend to remove from their rooms.
    pub fn deliver(&mut self, to: impl IntoIterator<Item = PeerId>, frame: &Frame) -> Vec<(PeerId, u64, T)> {
        let mut slow = Vec::new();
        for id in to {
            let Some(attached) = self.by_peer.get(&id) else { continue };
            // A closed outbox belongs to a session that is ending and removes itself.
            if attached.outbox.try_send(frame.clone()) == Err(SendError::Full) {
                tracing::warn!(peer = %id, "outbox full: removing a peer that does not keep up");
                let session = attached.session;
                if let Some(data) = self.end(id, session, EndReason::TooSlow) {
                    slow.push((id, session, data));
                }
            }
        }
        slow
    }

    /// Ends every outbox for `reason`; gives back who they were.
    pub fn end_all(&mut self, reason: EndReason) -> Vec<(PeerId, u64, T)> {
        self.by_peer
            .drain()
            .map(|(id, attached)| {
                attached.outbox.end(reason);
                (id, attached.session, attached.data)
            })
            .collect()
    }

    /// How many sockets are attached here.
    pub fn len(&self) -> usize {
        self.by_peer.len()
    }

    /// Whether no socket is attached here.
    pub fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::Signal;

    fn offer(n: usize) -> Frame {
        Frame::of(&ServerMsg::Signal { from: PeerId(1), signal: Signal::Offer { sdp: "v".repeat(n) } })
    }

    fn next_now(inbox: &mut Inbox) -> Outgoing {
        inbox.try_next().expect("something is queued")
    }

    #[test]
    fn an_outbox_is_full_at_its_message_bound_or_its_byte_bound() {
        let weight = offer(1000).len();
        let (tx, mut rx) = outbox_bounded(3, 2 * weight);
        tx.try_send(offer(1000)).unwrap();
        tx.try_send(offer(1000)).unwrap();
        assert_eq!(tx.try_send(offer(1)), Err(SendError::Full), "over the byte bound");
        // Reading frees its bytes.
        rx.try_recv().unwrap();
        tx.try_send(offer(1)).unwrap();
        tx.try_send(offer(1)).unwrap();
        assert_eq!(tx.try_send(offer(1)), Err(SendError::Full), "over the message bound");
        drop(rx);
        assert_eq!(tx.try_send(offer(1)), Err(SendError::Closed));
    }

    #[test]
    fn the_reason_comes_after_the_frames_queued_before_the_end() {
        let (tx, mut rx) = outbox();
        tx.try_send(offer(1)).unwrap();
        tx.end(EndReason::Replaced);
        assert_eq!(next_now(&mut rx), Outgoing::Frame(offer(1)));
        assert_eq!(next_now(&mut rx), Outgoing::End(EndReason::Replaced));
        let (tx, mut rx) = outbox();
        drop(tx);
        assert_eq!(next_now(&mut rx), Outgoing::End(EndReason::Lost), "dropped with its registry");
        let waited = futures::FutureExt::now_or_never(rx.recv());
        assert_eq!(waited, Some(Outgoing::End(EndReason::Lost)), "recv says the same");
        let (tx, mut rx) = outbox();
        assert_eq!(rx.try_next(), None, "nothing yet");
        tx.try_send(offer(1)).unwrap();
        assert_eq!(futures::FutureExt::now_or_never(rx.recv()), Some(Outgoing::Frame(offer(1))));
    }

    #[test]
    fn a_newer_attachment_replaces_the_older_and_late_cleanups_do_nothing() {
        let mut outboxes = Outboxes::default();
        let (old, mut old_rx) = outbox();
        let (new, mut new_rx) = outbox();
        outboxes.attach(PeerId(7), 1, old, "old");
        outboxes.attach(PeerId(7), 2, new, "new");
        assert_eq!(next_now(&mut old_rx), Outgoing::End(EndReason::Replaced));
        assert_eq!(outboxes.detach(PeerId(7), 1), None, "the old session's cleanup");
        assert_eq!(outboxes.end(PeerId(7), 1, EndReason::TooSlow), None);
        assert!(outboxes.deliver([PeerId(7)], &offer(1)).is_empty());
        assert_eq!(new_rx.try_recv(), Some(offer(1)));
        assert_eq!(outboxes.detach(PeerId(7), 2), Some("new"));
        assert!(outboxes.is_empty());
    }

    #[test]
    fn delivery_ends_and_gives_back_those_that_do_not_keep_up() {
        let mut outboxes = Outboxes::default();
        let (slow, mut slow_rx) = outbox_bounded(1, OUTBOX_BYTES);
        let (fine, mut fine_rx) = outbox();
        outboxes.attach(PeerId(1), 10, slow, ());
        outboxes.attach(PeerId(2), 20, fine, ());
        let everyone = [PeerId(1), PeerId(2), PeerId(3)];
        assert!(outboxes.deliver(everyone, &offer(1)).is_empty(), "an unknown peer is skipped");
        assert_eq!(outboxes.deliver(everyone, &offer(2)), vec![(PeerId(1), 10, ())]);
        assert!(outboxes.get(PeerId(1)).is_none());
        assert_eq!(outboxes.len(), 1);
        assert_eq!(next_now(&mut slow_rx), Outgoing::Frame(offer(1)));
        assert_eq!(next_now(&mut slow_rx), Outgoing::End(EndReason::TooSlow));
        assert_eq!(fine_rx.try_recv(), Some(offer(1)));
        assert_eq!(fine_rx.try_recv(), Some(offer(2)));
        assert_eq!(outboxes.end_all(EndReason::Lost), vec![(PeerId(2), 20, ())]);
        assert_eq!(next_now(&mut fine_rx), Outgoing::End(EndReason::Lost));
    }
}
