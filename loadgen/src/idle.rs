//! The idle scenario: many participants sitting in calls, measuring what an open connection
//! costs the server.
//!
//! `connections` sockets connect (at most `concurrency` handshakes at a time) and join rooms of
//! two, like the participants of calls whose negotiation is long over. Each socket then has a
//! task that only reads: that answers the server's heartbeat pings (tungstenite queues the pong
//! when it reads a ping and sends it with the next read) and notices a close. After `hold` the
//! run counts the sockets still open, reads the server's memory, and closes everything.

use crate::client::{self, close_kind};
use crate::stats::{error_line, round2, secs, Errors, Rss};
use crate::sys;
use anyhow::bail;
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Read buffer of one idle socket: a welcome or a `peer_joined` fits; larger frames still work
/// (the buffer grows).
const READ_BUFFER: usize = 4 * 1024;

/// How the run is shaped.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// Signaling URLs; sockets are spread over them round-robin.
    pub urls: Vec<String>,
    /// Sockets to open.
    pub connections: usize,
    /// How long to hold them once all are in.
    pub hold: Duration,
    /// Server processes whose memory and CPU time to read (may be empty).
    pub server_pids: Vec<u32>,
    /// WebSocket handshakes and joins in progress at once.
    pub concurrency: usize,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Always `"idle"`.
    pub scenario: &'static str,
    /// The signaling URLs.
    pub urls: Vec<String>,
    /// Sockets asked for.
    pub connections: usize,
    /// Sockets that opened and joined.
    pub joined: usize,
    /// Seconds from the first connect until all had joined (or failed).
    pub connect_s: f64,
    /// Joins per second over that time.
    pub joins_per_s: f64,
    /// Seconds held.
    pub held_s: f64,
    /// Sockets still open at the end of the hold.
    pub open_at_end: usize,
    /// What went wrong, by kind (see [`Errors`]).
    pub errors: BTreeMap<String, u64>,
    /// The servers' memory, with `--server-pid` (`end` is after the hold).
    pub server_rss: Option<Rss>,
    /// CPU cores the servers used during the hold (heartbeats), with `--server-pid`.
    pub server_cpu_cores: Option<f64>,
    /// This generator's own memory at the end of the hold, in KiB.
    pub loadgen_rss_kib: Option<u64>,
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "idle: {} connections in rooms of 2 over {} server URL(s)", self.connections, self.urls.len())?;
        writeln!(f, "joined:       {} in {:.2} s ({:.0} joins/s)", self.joined, self.connect_s, self.joins_per_s)?;
        writeln!(
            f,
            "held:         {:.2} s; {} of {} still open at the end",
            self.held_s, self.open_at_end, self.joined
        )?;
        writeln!(f, "errors:       {}", error_line(&self.errors))?;
        if let Some(rss) = &self.server_rss {
            writeln!(f, "server RSS:   {rss}")?;
        }
        if let Some(cores) = self.server_cpu_cores {
            writeln!(f, "server CPU:   {cores:.3} cores while holding")?;
        }
        match self.loadgen_rss_kib {
            Some(kib) => write!(f, "loadgen RSS:  {:.1} MiB", kib as f64 / 1024.0),
            None => Ok(()),
        }
    }
}

/// What all socket tasks share.
struct Shared {
    /// Errors of the whole run.
    errors: Errors,
    /// Sockets that joined.
    joined: AtomicUsize,
    /// Sockets that joined and are still open.
    open: AtomicUsize,
    /// The hold is over: close.
    stop: CancellationToken,
}

/// Runs the scenario and reports.
pub async fn run(opts: IdleOptions) -> anyhow::Result<IdleReport> {
    if opts.urls.is_empty() || opts.connections == 0 {
        bail!("need at least one URL and one connection");
    }
    let pids = &opts.server_pids;
    let rss_before = sys::total_rss_kib(pids);
    let shared = Arc::new(Shared {
        errors: Errors::default(),
        joined: AtomicUsize::new(0),
        open: AtomicUsize::new(0),
        stop: CancellationToken::new(),
    });
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let run_id = crate::run_id();
    let mut tasks = JoinSet::new();
    for n in 0..opts.connections {
        let url = opts.urls[n % opts.urls.len()].clone();
        let room = format!("{run_id}-idle-{}", n / 2);
        tasks.spawn(sit(n, url, room, shared.clone(), slots.clone(), ready_tx.clone()));
    }
    drop(ready_tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30 + opts.connections as u64 / 50);
    let mut settled = 0;
    while settled < opts.connections {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(())) => settled += 1,
            Ok(None) => break,
            Err(_) => {
                eprintln!("setup: {settled} of {} sockets settled at the deadline", opts.connections);
                break;
            }
        }
    }
    let connect = started.elapsed();
    let joined = shared.joined.load(Ordering::Relaxed);
    let rss_joined = sys::total_rss_kib(pids);
    eprintln!("setup: {joined} of {} joined in {:.2} s; holding", opts.connections, connect.as_secs_f64());

    let cpu_before = sys::total_cpu_seconds(pids);
    let holding_since = Instant::now();
    tokio::time::sleep(opts.hold).await;
    let held = holding_since.elapsed();
    let cpu_after = sys::total_cpu_seconds(pids);
    let open_at_end = shared.open.load(Ordering::Relaxed);
    let rss_end = sys::total_rss_kib(pids);
    let loadgen_rss_kib = sys::rss_kib(std::process::id());

    shared.stop.cancel();
    if tokio::time::timeout(Duration::from_secs(30), async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        eprintln!("some sockets did not close within 30 s");
        tasks.abort_all();
    }
    Ok(IdleReport {
        scenario: "idle",
        urls: opts.urls.clone(),
        connections: opts.connections,
        joined,
        connect_s: secs(connect),
        joins_per_s: round2(joined as f64 / connect.as_secs_f64()),
        held_s: secs(held),
        open_at_end,
        errors: shared.errors.snapshot(),
        server_rss: (!pids.is_empty()).then(|| Rss::new(rss_before, rss_joined, rss_end, joined)),
        server_cpu_cores: (!pids.is_empty())
            .then(|| ((cpu_after - cpu_before) / held.as_secs_f64() * 1000.0).round() / 1000.0),
        loadgen_rss_kib,
    })
}

/// One idle participant: connect, join, then read until the run stops or the server closes.
async fn sit(
    n: usize,
    url: String,
    room: String,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<()>,
) {
    let permit = slots.acquire_owned().await.expect("the semaphore is never closed");
    let mut ws = match client::connect(&url, READ_BUFFER).await {
        Ok(ws) => ws,
        Err(e) => {
            shared.errors.note("connect_failed", format!("{e:#}"));
            let _ = ready.send(());
            return;
        }
    };
    if let Err(e) = client::join(&mut ws, &room, &format!("Idle {n}"), n).await {
        shared.errors.note("join_failed", format!("{e:#}"));
        let _ = ready.send(());
        return;
    }
    drop(permit);
    shared.joined.fetch_add(1, Ordering::Relaxed);
    shared.open.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(());
    loop {
        let frame = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            frame = ws.next() => frame,
        };
        match frame {
            Some(Ok(Message::Close(frame))) => shared.errors.add(close_kind(frame.as_ref())),
            Some(Ok(_)) => continue,
            Some(Err(e)) => shared.errors.note("socket_error", e),
            None => shared.errors.add("dropped"),
        }
        shared.open.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
}
