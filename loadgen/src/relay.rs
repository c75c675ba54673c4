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
//!
//! With a `rate` the run is an open loop instead: the peers send on a fixed schedule (see
//! [`crate::pace`]: the total rate spread evenly over the peers, each with a random phase), never
//! waiting for receipts, so the latency is the server's under that load rather than the queue of
//! a window. Each message is stamped with its *scheduled* send time, so lateness of the sender
//! counts too (no coordinated omission). A peer never lets more messages be outstanding towards a
//! partner (sent to it by anyone, not yet read by it) than the server's outbox holds: a send that
//! would reach [`SERVER_OUTBOX`] is skipped and counted as a `backlog` error, since the server is
//! not keeping up with the rate.

use crate::client::{self, close_kind, Ws};
use crate::pace::{self, Schedule};
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
    /// Messages each peer keeps in flight towards each partner (closed loop; unused with a
    /// `rate`).
    pub window: usize,
    /// Messages per second in all, sent on a schedule (open loop); `None` for the closed loop.
    pub rate: Option<f64>,
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
    /// Messages in flight per peer and partner (0 in the open loop of `--rate`).
    pub window: usize,
    /// The rate asked for with `--rate`, messages per second in all; `None` for the closed loop.
    pub target_rate: Option<f64>,
    /// With `--rate`: messages sent per second while counting (the achieved rate on the sending
    /// side; `messages_per_s` is the delivered one).
    pub sent_per_s: Option<f64>,
    /// With `--rate`: how late the generator itself sent, from the scheduled time to the send
    /// call (counted in `latency` too); large values mean the generator, not the server, lagged.
    pub send_lag: Option<LatencySummary>,
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
        let mode = match self.target_rate {
            Some(rate) => format!("open loop at {rate:.0} msg/s"),
            None => format!("window {}", self.window),
        };
        writeln!(
            f,
            "relay: {} rooms x {} peers over {} server URL(s), {mode}",
            self.rooms,
            self.peers_per_room,
            self.urls.len(),
        )?;
        writeln!(f, "peers:        {} ({} connections joined in {:.2} s)", self.peers, self.connections, self.setup_s)?;
        writeln!(
            f,
            "relayed:      {} messages in {:.2} s after {:.2} s warm-up = {:.0} msg/s ({:.1} MB/s, mean frame {:.0} B)",
            self.messages, self.measured_s, self.warmup_s, self.messages_per_s, self.mb_per_s, self.mean_frame_bytes
        )?;
        if let Some(target) = self.target_rate {
            writeln!(
                f,
                "rate:         target {target:.0} msg/s, sent {:.0} msg/s, delivered {:.0} msg/s",
                self.sent_per_s.unwrap_or(0.0),
                self.messages_per_s
            )?;
        }
        writeln!(f, "latency:      {}", self.latency)?;
        if let Some(lag) = &self.send_lag {
            writeln!(f, "send lag:     {lag} (generator's own lateness, included above)")?;
        }
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
    /// An open-loop run (`rate`): keep the outstanding-message counts.
    open_loop: bool,
    /// True while counting.
    counting: AtomicBool,
    /// Signals delivered while counting.
    messages: AtomicU64,
    /// Bytes of those signals' frames.
    bytes: AtomicU64,
    /// Open loop: signals sent while counting.
    sent: AtomicU64,
    /// Open loop: the generator's own lateness (scheduled time to send call) while counting.
    send_lag: Latencies,
    /// Each peer's id once it has joined ([`NO_ID`] before), by run number.
    ids: Vec<AtomicU64>,
    /// Signals sent to each peer, by run number (open loop: the outstanding-messages check).
    sent_to: Vec<AtomicU64>,
    /// Signals each peer has read, by run number.
    received: Vec<AtomicU64>,
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
    /// Open loop: the scheduled times of its sends, from the pacer.
    due: Option<mpsc::UnboundedReceiver<u64>>,
}

/// What [`Shared::ids`] holds for a peer that has not joined.
const NO_ID: u64 = u64::MAX;

impl Shared {
    /// The run number of peer `id` in the room of run number `n` (rooms are consecutive run
    /// numbers), once it has joined.
    fn run_number(&self, n: usize, id: PeerId) -> Option<usize> {
        let first = n / self.peers * self.peers;
        (first..first + self.peers).find(|&i| self.ids.get(i).is_some_and(|x| x.load(Ordering::Relaxed) == id.0))
    }
}

/// Runs the scenario and reports.
pub async fn run(opts: RelayOptions) -> anyhow::Result<RelayReport> {
    if opts.urls.is_empty() || opts.rooms == 0 || opts.peers < 2 || opts.window == 0 {
        bail!("need at least one URL, one room, two peers per room and a window of one");
    }
    if opts.rate.is_some_and(|rate| !(rate > 0.0 && rate.is_finite())) {
        bail!("the rate must be a positive number of messages per second");
    }
    let worst_outbox = 2 * opts.window * (opts.peers - 1);
    if opts.rate.is_none() && worst_outbox >= SERVER_OUTBOX {
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
        open_loop: opts.rate.is_some(),
        counting: AtomicBool::new(false),
        messages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        send_lag: Latencies::new(16),
        ids: (0..total).map(|_| AtomicU64::new(NO_ID)).collect(),
        sent_to: (0..total).map(|_| AtomicU64::new(0)).collect(),
        received: (0..total).map(|_| AtomicU64::new(0)).collect(),
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
    let mut pacer_targets = Vec::new();
    for n in 0..total {
        let due = opts.rate.map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            pacer_targets.push(tx);
            rx
        });
        let url = opts.urls[n % opts.urls.len()].clone();
        let plan = Plan { n, url, room: format!("{run_id}-{}", n / opts.peers), due };
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
    let pacer = match opts.rate {
        Some(rate) => {
            let schedule = Schedule::new(rate, total, pace::seed());
            eprintln!("open loop: {rate:.0} msg/s, each peer every {:.2} ms", schedule.interval().as_secs_f64() * 1e3);
            Some(pace::spawn_pacer(schedule, now_ns(), pacer_targets, shared.stop.clone())?)
        }
        None => None,
    };
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
    if let Some(pacer) = pacer {
        let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
    }
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
        window: if opts.rate.is_some() { 0 } else { opts.window },
        target_rate: opts.rate,
        sent_per_s: opts.rate.map(|_| round2(per_s(shared.sent.load(Ordering::Relaxed) as f64))),
        send_lag: opts.rate.map(|_| LatencySummary::of(&shared.send_lag.merged())),
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
    /// Its run number, once known (open loop: where its outstanding messages are counted).
    n: Option<usize>,
    /// Messages sent to it so far (picks the next message's kind).
    sent: u64,
}

impl Partner {
    fn new(id: PeerId) -> Self {
        Partner { id, n: None, sent: 0 }
    }
}

/// One simulated participant from connect to close. Reports on `ready` once it is set up (or
/// has failed to); errors go to the shared tally.
async fn peer(mut plan: Plan, shared: Arc<Shared>, slots: Arc<Semaphore>, ready: mpsc::UnboundedSender<()>) {
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
    shared.ids[plan.n].store(me.0, Ordering::Relaxed);
    let mut partners: Vec<Partner> = joined.peers.into_iter().map(Partner::new).collect();

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
                Ok(ServerMsg::PeerJoined { peer }) => partners.push(Partner::new(peer.id)),
                Ok(ServerMsg::PeerLeft { id }) => {
                    shared.errors.add("peer_left");
                    partners.retain(|p| p.id != id);
                }
                Ok(ServerMsg::Error { code, message, .. }) => shared.errors.note(format!("error:{}", code.as_str()), message),
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

    let mut tally = Tally::default();
    match plan.due.take() {
        Some(due) => open_loop(&plan, &shared, &mut ws, me, &mut partners, due, &mut tally).await,
        None => closed_loop(&plan, &shared, &mut ws, me, &mut partners, &mut tally).await,
    }
    shared.messages.fetch_add(tally.messages, Ordering::Relaxed);
    shared.bytes.fetch_add(tally.bytes, Ordering::Relaxed);
    shared.sent.fetch_add(tally.sent, Ordering::Relaxed);
    close(ws).await;
}

/// What one peer counted while the run was counting.
#[derive(Default)]
struct Tally {
    /// Signals received.
    messages: u64,
    /// Their frames' bytes.
    bytes: u64,
    /// Signals sent (open loop).
    sent: u64,
}

/// The closed loop: opens the window towards every partner, then answers each message with the
/// next, until the stop or the end of the socket.
async fn closed_loop(
    plan: &Plan,
    shared: &Shared,
    ws: &mut Ws,
    me: PeerId,
    partners: &mut Vec<Partner>,
    tally: &mut Tally,
) {
    for partner in partners.iter_mut() {
        for _ in 0..shared.window {
            let frame = next_frame(&shared.payloads, me, partner, now_ns());
            if let Err(e) = ws.send(frame).await {
                return shared.errors.note("send_failed", e);
            }
        }
    }
    loop {
        let frame = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return,
            frame = ws.next() => frame,
        };
        match incoming(plan, shared, partners, frame, tally) {
            Incoming::Signal(index) => {
                let frame = next_frame(&shared.payloads, me, &mut partners[index], now_ns());
                if let Err(e) = ws.send(frame).await {
                    return shared.errors.note("send_failed", e);
                }
            }
            Incoming::Other => {}
            Incoming::End => return,
        }
    }
}

/// The open loop: sends one signal at each time the pacer hands over (to the partners in turn,
/// stamped with that scheduled time), and reads whatever comes meanwhile, until the stop or the
/// end of the socket.
async fn open_loop(
    plan: &Plan,
    shared: &Shared,
    ws: &mut Ws,
    me: PeerId,
    partners: &mut Vec<Partner>,
    mut due: mpsc::UnboundedReceiver<u64>,
    tally: &mut Tally,
) {
    let mut turn = 0usize;
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return,
            Some(scheduled) = due.recv() => {
                if partners.is_empty() {
                    shared.errors.add("no_partner");
                    continue;
                }
                turn = (turn + 1) % partners.len();
                let partner = &mut partners[turn];
                let Some(to) = partner.n.or_else(|| shared.run_number(plan.n, partner.id)) else {
                    shared.errors.add("unknown_partner");
                    continue;
                };
                partner.n = Some(to);
                let outstanding =
                    shared.sent_to[to].load(Ordering::Relaxed).saturating_sub(shared.received[to].load(Ordering::Relaxed));
                if reaches_outbox(outstanding) {
                    shared.errors.note(
                        "backlog",
                        format!("{outstanding} messages outstanding towards one peer, at the server's outbox bound ({SERVER_OUTBOX}): the server is not keeping up with the rate; sends are skipped"),
                    );
                    continue;
                }
                shared.sent_to[to].fetch_add(1, Ordering::Relaxed);
                if shared.counting.load(Ordering::Relaxed) {
                    shared.send_lag.record(plan.n, now_ns().saturating_sub(scheduled));
                    tally.sent += 1;
                }
                let frame = next_frame(&shared.payloads, me, partner, scheduled);
                if let Err(e) = ws.send(frame).await {
                    return shared.errors.note("send_failed", e);
                }
            }
            frame = ws.next() => {
                if let Incoming::End = incoming(plan, shared, partners, frame, tally) {
                    return;
                }
            }
        }
    }
}

/// Whether one more message towards a peer that has `outstanding` messages sent to it and not
/// yet read would reach the server's outbox bound (the same rule as the window check of the
/// closed loop: at most `SERVER_OUTBOX − 1` waiting).
fn reaches_outbox(outstanding: u64) -> bool {
    outstanding + 1 >= SERVER_OUTBOX as u64
}

/// What a frame read from the server means for the loop.
enum Incoming {
    /// A signal from the partner at this index of the partners.
    Signal(usize),
    /// Anything else that leaves the connection open.
    Other,
    /// The connection is over.
    End,
}

/// Takes in one frame (or the end of the stream): records a signal's latency and size while
/// counting, keeps the partner list up to date, and tallies errors.
fn incoming(
    plan: &Plan,
    shared: &Shared,
    partners: &mut Vec<Partner>,
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    tally: &mut Tally,
) -> Incoming {
    let text = match frame {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Close(frame))) => {
            shared.errors.add(close_kind(frame.as_ref()));
            return Incoming::End;
        }
        Some(Ok(_)) => return Incoming::Other,
        Some(Err(e)) => {
            shared.errors.note("socket_error", e);
            return Incoming::End;
        }
        None => {
            shared.errors.add("dropped");
            return Incoming::End;
        }
    };
    match ServerMsg::from_json(text.as_str()) {
        Ok(ServerMsg::Signal { from, signal }) => {
            if shared.open_loop {
                shared.received[plan.n].fetch_add(1, Ordering::Relaxed);
            }
            if shared.counting.load(Ordering::Relaxed) {
                if let Some(sent) = sent_at(&signal) {
                    shared.latencies.record(plan.n, now_ns().saturating_sub(sent));
                }
                tally.messages += 1;
                tally.bytes += text.len() as u64;
            }
            let index = match partners.iter().position(|p| p.id == from) {
                Some(index) => index,
                None => {
                    partners.push(Partner::new(from));
                    partners.len() - 1
                }
            };
            Incoming::Signal(index)
        }
        Ok(ServerMsg::Error { code, message, .. }) => {
            shared.errors.note(format!("error:{}", code.as_str()), message);
            Incoming::Other
        }
        Ok(ServerMsg::PeerLeft { id }) => {
            shared.errors.add("peer_left");
            partners.retain(|p| p.id != id);
            Incoming::Other
        }
        Ok(ServerMsg::PeerJoined { peer }) => {
            partners.push(Partner::new(peer.id));
            Incoming::Other
        }
        Ok(_) => Incoming::Other,
        Err(e) => {
            shared.errors.note("undecodable", e);
            Incoming::Other
        }
    }
}

/// The next signal from `me` to `partner`, stamped `ts_ns`, as a frame. The peer with the smaller
/// id offers, the other answers; the SDP size changes from one negotiation to the next.
fn next_frame(payloads: &Payloads, me: PeerId, partner: &mut Partner, ts_ns: u64) -> Message {
    let kind = Kind::nth(me < partner.id, partner.sent);
    let signal = payloads.signal(kind, partner.sent / 5 + me.0, ts_ns);
    partner.sent += 1;
    Message::text(ClientMsg::Signal { to: partner.id, signal }.to_json())
}

/// Closes a socket politely (a close frame, so the server removes the member at once instead of
/// holding its place for a resume), giving up after a second.
async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_check_stops_below_the_server_outbox() {
        assert!(!reaches_outbox(0));
        assert!(!reaches_outbox(SERVER_OUTBOX as u64 - 2));
        assert!(reaches_outbox(SERVER_OUTBOX as u64 - 1));
        assert!(reaches_outbox(10 * SERVER_OUTBOX as u64));
    }
}
