//! The relay scenario: rooms of peers negotiating without pause, measuring the hub's relay
//! throughput and latency.
//!
//! Each of `rooms × peers` simulated participants connects (at most `concurrency` handshakes at a
//! time), joins its own room (names unique to this run) and learns its partners from the welcome
//! and `peer_joined`. When everyone is in, every peer sends `window` signals to each partner;
//! from then on each signal a peer receives is answered by the next one to its sender (closed
//! loop). A pair thus always has `2 × window` messages in flight, and no peer ever has more than
//! `2 × window × (peers − 1)` messages waiting for it in the server's outbox — far below its
//! capacity ([`SERVER_OUTBOX`]), so a peer dropped as too slow (close code 1013) is a finding,
//! not the generator's doing.
//!
//! The messages follow a negotiation: per pair one offer, one answer and eight candidates (see
//! [`Kind::nth`]), each stamped with its send time, so the receiver records the one-way latency
//! (sender's send → server → receiver's decode). After `warmup` the run counts for `measure`.

use crate::client::{self, close_kind, Ws};
use crate::payload::{now_ns, sent_at, Kind, Payloads};
use crate::stats::{error_line, round2, secs, Errors, Latencies, LatencySummary, Rss};
use crate::sys;
use anyhow::bail;
use confab_protocol::{ClientMsg, PeerId, ServerMsg};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Messages the server queues for one peer before it drops the peer as too slow (the registry's
/// `OUTBOX_CAPACITY` in `server/src/rooms.rs`).
pub const SERVER_OUTBOX: usize = 128;

/// Read buffer of one socket: an SDP frame (5 KB) fits, and a few thousand sockets stay small.
const READ_BUFFER: usize = 16 * 1024;

/// How the run is shaped.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Signaling URLs (`ws://host:port/ws`); peers are spread over them round-robin.
    pub urls: Vec<String>,
    /// Number of rooms.
    pub rooms: usize,
    /// Peers per room.
    pub peers: usize,
    /// Messages each peer keeps in flight towards each partner.
    pub window: usize,
    /// How long traffic runs before counting starts.
    pub warmup: Duration,
    /// How long traffic is counted.
    pub measure: Duration,
    /// Server processes whose memory and CPU time to read (may be empty).
    pub server_pids: Vec<u32>,
    /// WebSocket handshakes and joins in progress at once.
    pub concurrency: usize,
}

/// The figures of one run (printed as text, or as one JSON object).
#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    /// Always `"relay"`.
    pub scenario: &'static str,
    /// The signaling URLs.
    pub urls: Vec<String>,
    /// Rooms asked for.
    pub rooms: usize,
    /// Peers per room.
    pub peers_per_room: usize,
    /// Peers asked for (`rooms × peers_per_room`).
    pub peers: usize,
    /// Connections that opened and joined their room.
    pub connections: usize,
    /// Messages in flight per peer and partner.
    pub window: usize,
    /// Seconds from the first connection until every peer had joined and met its partners.
    pub setup_s: f64,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Seconds counted.
    pub measured_s: f64,
    /// Signals delivered to peers while counting.
    pub messages: u64,
    /// `messages / measured_s`.
    pub messages_per_s: f64,
    /// Mean size of a delivered frame, in bytes.
    pub mean_frame_bytes: f64,
    /// Delivered frame bytes per second, in MB (10⁶ bytes).
    pub mb_per_s: f64,
    /// One-way relay latency of the counted messages.
    pub latency: LatencySummary,
    /// What went wrong during the whole run, by kind (see [`Errors`]).
    pub errors: BTreeMap<String, u64>,
    /// The servers' memory, with `--server-pid`.
    pub server_rss: Option<Rss>,
    /// CPU cores the servers used while counting, with `--server-pid`.
    pub server_cpu_cores: Option<f64>,
    /// CPU cores this generator used while counting.
    pub loadgen_cpu_cores: Option<f64>,
    /// Server CPU time per delivered message, in microseconds (`server_cpu_cores /
    /// messages_per_s`): what one relay costs, nearly independent of how busy the machine is.
    pub server_cpu_us_per_message: Option<f64>,
    /// This generator's CPU time per delivered message, in microseconds.
    pub loadgen_cpu_us_per_message: Option<f64>,
    /// CPU cores the rest of the machine used while counting (other processes, and kernel work
    /// not charged to a process), out of [`RelayReport::machine_cores`].
    pub other_cpu_cores: Option<f64>,
    /// CPU cores of the machine.
    pub machine_cores: usize,
}

impl fmt::Display for RelayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "relay: {} rooms x {} peers over {} server URL(s), window {}",
            self.rooms,
            self.peers_per_room,
            self.urls.len(),
            self.window
        )?;
        writeln!(f, "peers:        {} ({} connections joined in {:.2} s)", self.peers, self.connections, self.setup_s)?;
        writeln!(
            f,
            "relayed:      {} messages in {:.2} s after {:.2} s warm-up = {:.0} msg/s ({:.1} MB/s, mean frame {:.0} B)",
            self.messages, self.measured_s, self.warmup_s, self.messages_per_s, self.mb_per_s, self.mean_frame_bytes
        )?;
        writeln!(f, "latency:      {}", self.latency)?;
        writeln!(f, "errors:       {}", error_line(&self.errors))?;
        if let Some(rss) = &self.server_rss {
            writeln!(f, "server RSS:   {rss}")?;
        }
        let cores = |c: Option<f64>| c.map_or("?".into(), |c| format!("{c:.2}"));
        writeln!(
            f,
            "CPU/message:  server {} µs, load generator {} µs",
            cores(self.server_cpu_us_per_message),
            cores(self.loadgen_cpu_us_per_message)
        )?;
        write!(
            f,
            "CPU cores:    server {}, load generator {}, rest of the machine {} of {} (while counting)",
            cores(self.server_cpu_cores),
            cores(self.loadgen_cpu_cores),
            cores(self.other_cpu_cores),
            self.machine_cores
        )
    }
}

/// What all peer tasks share.
struct Shared {
    /// Payload templates.
    payloads: Payloads,
    /// Latencies of counted messages.
    latencies: Latencies,
    /// Errors of the whole run.
    errors: Errors,
    /// Messages per peer and partner in flight.
    window: usize,
    /// Peers per room.
    peers: usize,
    /// True while counting.
    counting: AtomicBool,
    /// Signals delivered while counting.
    messages: AtomicU64,
    /// Bytes of those signals' frames.
    bytes: AtomicU64,
    /// Connections open and joined.
    joined: AtomicUsize,
    /// Everyone is in: start sending.
    go: CancellationToken,
    /// The run is over: stop and close.
    stop: CancellationToken,
}

/// One simulated participant's plan.
struct Plan {
    /// Its number in the run (also picks its latency shard and its secret).
    n: usize,
    /// Where it connects.
    url: String,
    /// Its room.
    room: String,
}

/// Runs the scenario and reports.
pub async fn run(opts: RelayOptions) -> anyhow::Result<RelayReport> {
    if opts.urls.is_empty() || opts.rooms == 0 || opts.peers < 2 || opts.window == 0 {
        bail!("need at least one URL, one room, two peers per room and a window of one");
    }
    let worst_outbox = 2 * opts.window * (opts.peers - 1);
    if worst_outbox >= SERVER_OUTBOX {
        bail!(
            "window {} with {} peers per room could queue {worst_outbox} messages for one peer; the server \
             drops a peer at {SERVER_OUTBOX}: use a smaller window",
            opts.window,
            opts.peers
        );
    }
    let total = opts.rooms * opts.peers;
    let pids = &opts.server_pids;
    let rss_before = sys::total_rss_kib(pids);
    let shared = Arc::new(Shared {
        payloads: Payloads::new(),
        latencies: Latencies::new(16),
        errors: Errors::default(),
        window: opts.window,
        peers: opts.peers,
        counting: AtomicBool::new(false),
        messages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        joined: AtomicUsize::new(0),
        go: CancellationToken::new(),
        stop: CancellationToken::new(),
    });

    // Set up: connect and join everyone, then wait until each peer has met its partners.
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let run_id = crate::run_id();
    let mut tasks = JoinSet::new();
    for n in 0..total {
        let plan =
            Plan { n, url: opts.urls[n % opts.urls.len()].clone(), room: format!("{run_id}-{}", n / opts.peers) };
        tasks.spawn(peer(plan, shared.clone(), slots.clone(), ready_tx.clone()));
    }
    drop(ready_tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30 + total as u64 / 50);
    let mut settled = 0;
    while settled < total {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(())) => settled += 1,
            Ok(None) => break,
            Err(_) => {
                eprintln!("setup: {settled} of {total} peers ready at the deadline; going on with them");
                break;
            }
        }
    }
    let setup = started.elapsed();
    let connections = shared.joined.load(Ordering::Relaxed);
    let rss_joined = sys::total_rss_kib(pids);
    eprintln!("setup: {connections} of {total} peers joined in {:.2} s; warming up", setup.as_secs_f64());

    // Traffic: warm up, then count.
    shared.go.cancel();
    tokio::time::sleep(opts.warmup).await;
    let me = std::process::id();
    let cpu_before = (sys::total_cpu_seconds(pids), sys::cpu_seconds(me), sys::machine_busy_seconds());
    shared.counting.store(true, Ordering::Relaxed);
    let counting_since = Instant::now();
    tokio::time::sleep(opts.measure).await;
    shared.counting.store(false, Ordering::Relaxed);
    let measured = counting_since.elapsed();
    let cpu_after = (sys::total_cpu_seconds(pids), sys::cpu_seconds(me), sys::machine_busy_seconds());
    let rss_end = sys::total_rss_kib(pids);

    // Stop, close every socket, and add up.
    shared.stop.cancel();
    if tokio::time::timeout(Duration::from_secs(30), async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        eprintln!("some peers did not close within 30 s");
        tasks.abort_all();
    }
    let messages = shared.messages.load(Ordering::Relaxed);
    let bytes = shared.bytes.load(Ordering::Relaxed);
    let per_s = |x: f64| x / measured.as_secs_f64();
    let cores = |before: f64, after: f64| per_s(after - before);
    let us_per_message = |cores: f64| (messages > 0).then(|| round2(cores * 1e6 / per_s(messages as f64)));
    let server_cpu_cores = (!pids.is_empty()).then(|| cores(cpu_before.0, cpu_after.0));
    let loadgen_cpu_cores = cpu_before.1.zip(cpu_after.1).map(|(b, a)| cores(b, a));
    Ok(RelayReport {
        scenario: "relay",
        urls: opts.urls.clone(),
        rooms: opts.rooms,
        peers_per_room: opts.peers,
        peers: total,
        connections,
        window: opts.window,
        setup_s: secs(setup),
        warmup_s: secs(opts.warmup),
        measured_s: secs(measured),
        messages,
        messages_per_s: round2(per_s(messages as f64)),
        mean_frame_bytes: if messages == 0 { 0.0 } else { round2(bytes as f64 / messages as f64) },
        mb_per_s: round2(per_s(bytes as f64) / 1e6),
        latency: LatencySummary::of(&shared.latencies.merged()),
        errors: shared.errors.snapshot(),
        server_rss: (!pids.is_empty()).then(|| Rss::new(rss_before, rss_joined, rss_end, connections)),
        server_cpu_cores: server_cpu_cores.map(round2),
        loadgen_cpu_cores: loadgen_cpu_cores.map(round2),
        server_cpu_us_per_message: server_cpu_cores.and_then(us_per_message),
        loadgen_cpu_us_per_message: loadgen_cpu_cores.and_then(us_per_message),
        other_cpu_cores: match (cpu_before, cpu_after) {
            ((server_b, Some(me_b), Some(all_b)), (server_a, Some(me_a), Some(all_a))) => {
                Some(round2(cores(all_b - me_b - server_b, all_a - me_a - server_a).max(0.0)))
            }
            _ => None,
        },
        machine_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

/// One partner of a peer, and how many messages the peer sent it.
struct Partner {
    /// Its id.
    id: PeerId,
    /// Messages sent to it so far (picks the next message's kind).
    sent: u64,
}

/// One simulated participant from connect to close. Reports on `ready` once it is set up (or
/// has failed to); errors go to the shared tally.
async fn peer(plan: Plan, shared: Arc<Shared>, slots: Arc<Semaphore>, ready: mpsc::UnboundedSender<()>) {
    let permit = slots.acquire_owned().await.expect("the semaphore is never closed");
    let mut ws = match client::connect(&plan.url, READ_BUFFER).await {
        Ok(ws) => ws,
        Err(e) => {
            shared.errors.note("connect_failed", format!("{e:#}"));
            let _ = ready.send(());
            return;
        }
    };
    let name = format!("Peer {}", plan.n);
    let joined = match client::join(&mut ws, &plan.room, &name, plan.n).await {
        Ok(joined) => joined,
        Err(e) => {
            shared.errors.note("join_failed", format!("{e:#}"));
            let _ = ready.send(());
            return;
        }
    };
    drop(permit);
    shared.joined.fetch_add(1, Ordering::Relaxed);
    let me = joined.id;
    let mut partners: Vec<Partner> = joined.peers.into_iter().map(|id| Partner { id, sent: 0 }).collect();

    // Wait for the rest of the room, then for everyone; keep reading meanwhile (that answers the
    // server's pings).
    let mut ready = Some(ready);
    loop {
        if partners.len() + 1 >= shared.peers {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
        }
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return close(ws).await,
            _ = shared.go.cancelled() => break,
            msg = client::recv(&mut ws) => match msg {
                Ok(ServerMsg::PeerJoined { peer }) => partners.push(Partner { id: peer.id, sent: 0 }),
                Ok(ServerMsg::PeerLeft { id }) => {
                    shared.errors.add("peer_left");
                    partners.retain(|p| p.id != id);
                }
                Ok(ServerMsg::Error { code, message }) => shared.errors.note(format!("error:{}", code.as_str()), message),
                Ok(_) => {}
                Err(e) => {
                    shared.errors.note("lost_before_start", format!("{e:#}"));
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    return;
                }
            },
        }
    }
    drop(ready);

    // Open the window towards every partner, then answer each message with the next.
    for partner in &mut partners {
        for _ in 0..shared.window {
            let frame = next_frame(&shared.payloads, me, partner);
            if let Err(e) = ws.send(frame).await {
                return shared.errors.note("send_failed", e);
            }
        }
    }
    let (mut messages, mut bytes) = (0u64, 0u64);
    loop {
        let frame = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            frame = ws.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                shared.errors.add(close_kind(frame.as_ref()));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                shared.errors.note("socket_error", e);
                break;
            }
            None => {
                shared.errors.add("dropped");
                break;
            }
        };
        match ServerMsg::from_json(text.as_str()) {
            Ok(ServerMsg::Signal { from, signal }) => {
                if shared.counting.load(Ordering::Relaxed) {
                    if let Some(sent) = sent_at(&signal) {
                        shared.latencies.record(plan.n, now_ns().saturating_sub(sent));
                    }
                    messages += 1;
                    bytes += text.len() as u64;
                }
                let index = match partners.iter().position(|p| p.id == from) {
                    Some(index) => index,
                    None => {
                        partners.push(Partner { id: from, sent: 0 });
                        partners.len() - 1
                    }
                };
                let frame = next_frame(&shared.payloads, me, &mut partners[index]);
                if let Err(e) = ws.send(frame).await {
                    shared.errors.note("send_failed", e);
                    break;
                }
            }
            Ok(ServerMsg::Error { code, message }) => shared.errors.note(format!("error:{}", code.as_str()), message),
            Ok(ServerMsg::PeerLeft { id }) => {
                shared.errors.add("peer_left");
                partners.retain(|p| p.id != id);
            }
            Ok(ServerMsg::PeerJoined { peer }) => partners.push(Partner { id: peer.id, sent: 0 }),
            Ok(_) => {}
            Err(e) => shared.errors.note("undecodable", e),
        }
    }
    shared.messages.fetch_add(messages, Ordering::Relaxed);
    shared.bytes.fetch_add(bytes, Ordering::Relaxed);
    close(ws).await;
}

/// The next signal from `me` to `partner`, stamped now, as a frame. The peer with the smaller id
/// offers, the other answers; the SDP size changes from one negotiation to the next.
fn next_frame(payloads: &Payloads, me: PeerId, partner: &mut Partner) -> Message {
    let kind = Kind::nth(me < partner.id, partner.sent);
    let signal = payloads.signal(kind, partner.sent / 5 + me.0, now_ns());
    partner.sent += 1;
    Message::text(ClientMsg::Signal { to: partner.id, signal }.to_json())
}

/// Closes a socket politely (a close frame, so the server removes the member at once instead of
/// holding its place for a resume), giving up after a second.
async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}
