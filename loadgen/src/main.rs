//! `confab-loadgen`: load for a running confab signaling server, over real WebSockets and the
//! real protocol ([`confab_protocol`]).
//!
//! Two scenarios:
//! - `relay`: rooms of peers negotiating without pause (SDP offers and answers of 3–5 KB, ICE
//!   candidates of ~200 B) in a closed loop, or at a fixed rate (`--rate`, open loop); reports
//!   relayed messages per second, one-way relay latency percentiles, errors, and the server's
//!   memory and CPU.
//! - `idle`: many participants sitting in calls of two; reports how many stay open over the
//!   hold and what each costs the server in memory.
//! - `sfu`: rooms of media bots (str0m WebRTC endpoints over loopback UDP) calling through the
//!   media engine run in this process: forwarded streams, loss, latency and the engine's CPU.
//!
//! The server must allow the load: raise `--rate-burst`, `--rate-per-second`,
//! `--max-connections-per-ip`, `--max-places-per-ip`, `--max-joins-per-ip-per-sec`,
//! `--max-connections`, `--max-peers` and `--max-rooms`. Build
//! both in release mode; they share the machine's cores, so the generator is kept lean.
//!
//! # Layout
//! - `relay` / `idle`: the two scenarios and their reports.
//! - `client`: connect, join, send and receive protocol messages.
//! - `payload`: realistic SDPs and candidates with the send time inside.
//! - `pace`: the open-loop send schedule and the thread that keeps it.
//! - `stats`: latency histograms, error tallies, memory figures and how they print.
//! - `sys`: `/proc` readings (RSS, CPU time) and the open-files limit.

mod client;
mod idle;
mod pace;
mod payload;
mod relay;
mod sfu;
mod stats;
mod sys;

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

/// Load generator for the confab signaling server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The scenario.
    #[command(subcommand)]
    scenario: Scenario,
}

/// The scenarios.
#[derive(Subcommand, Debug)]
enum Scenario {
    /// Rooms of peers relaying offers, answers and candidates in a closed loop (or at a fixed
    /// rate with `--rate`): throughput and latency.
    Relay(RelayArgs),
    /// Many joined, idle connections held open: how many survive and what each costs.
    Idle(IdleArgs),
    /// Rooms of media bots through the SFU engine (in this process): streams, loss, latency,
    /// the engine's CPU per forwarded stream.
    Sfu(SfuArgs),
}

/// Options of `sfu`.
#[derive(Args, Debug)]
struct SfuArgs {
    /// Number of rooms.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Participants per room.
    #[arg(long, default_value_t = 25)]
    participants: usize,
    /// Publish three simulcast layers (a ninth, a third and all of --frame-bytes).
    #[arg(long)]
    simulcast: bool,
    /// Run the engine with downlink estimation and its pacing (the server's --sfu-bwe).
    #[arg(long)]
    bwe: bool,
    /// Bytes per video frame of the full layer, at 30 frames a second.
    #[arg(long, default_value_t = 1_200)]
    frame_bytes: usize,
    /// Seconds counted, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of media before counting starts.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What both scenarios take.
#[derive(Args, Debug)]
struct Common {
    /// Signaling URLs, comma-separated (`ws://127.0.0.1:3000/ws`); sockets are spread over them
    /// round-robin, so with two URLs the two peers of a room sit on different nodes.
    #[arg(long, value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// Server process ids (comma-separated) whose memory (VmRSS) and CPU time to report.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// WebSocket handshakes and joins in progress at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `relay`.
#[derive(Args, Debug)]
struct RelayArgs {
    #[command(flatten)]
    common: Common,
    /// Number of rooms.
    #[arg(long, default_value_t = 1000)]
    rooms: usize,
    /// Peers per room (the server's `--room-capacity` must allow them).
    #[arg(long, default_value_t = 2)]
    peers: usize,
    /// Seconds counted, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of traffic before counting starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Messages each peer keeps in flight towards each partner (closed loop).
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Open loop: send this many messages per second in all, spread evenly over the peers (each
    /// with a random phase), whatever comes back; latency counts from each message's scheduled
    /// send time. Without it, the closed loop of `--window`.
    #[arg(long, conflicts_with = "window")]
    rate: Option<f64>,
}

/// Options of `idle`.
#[derive(Args, Debug)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open (joined in rooms of two).
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Seconds to hold them once all are in.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
}

/// The text of a report, or its JSON.
fn print<R: serde::Serialize + std::fmt::Display>(report: &R, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// A name prefix for this run's rooms, unique among runs (process id and start time).
fn run_id() -> String {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("lg{}-{}", std::process::id(), since_epoch.as_millis() % 100_000_000)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match sys::raise_open_files_limit() {
        Ok(limit) => eprintln!("open files limit: {limit}"),
        Err(e) => eprintln!("could not raise the open files limit: {e}"),
    }
    payload::clock_base();
    match cli.scenario {
        Scenario::Relay(args) => {
            let opts = relay::RelayOptions {
                urls: args.common.url,
                rooms: args.rooms,
                peers: args.peers,
                window: args.window,
                rate: args.rate,
                warmup: Duration::from_secs_f64(args.warmup),
                measure: Duration::from_secs_f64(args.seconds),
                server_pids: args.common.server_pid,
                concurrency: args.common.concurrency,
            };
            print(&relay::run(opts).await?, args.common.json)
        }
        Scenario::Idle(args) => {
            let opts = idle::IdleOptions {
                urls: args.common.url,
                connections: args.connections,
                hold: Duration::from_secs_f64(args.seconds),
                server_pids: args.common.server_pid,
                concurrency: args.common.concurrency,
            };
            print(&idle::run(opts).await?, args.common.json)
        }
        Scenario::Sfu(args) => {
            let opts = sfu::SfuOptions {
                rooms: args.rooms,
                participants: args.participants,
                simulcast: args.simulcast,
                bwe: args.bwe,
                frame_bytes: args.frame_bytes,
                warmup: Duration::from_secs_f64(args.warmup),
                measure: Duration::from_secs_f64(args.seconds),
            };
            print(&sfu::run(opts).await?, args.json)
        }
    }
}
