//! `sfu`: rooms of bots calling through the media engine (`confab-media`), over real UDP on
//! loopback: every bot is a full WebRTC endpoint (str0m: ICE, DTLS-SRTP) publishing a synthetic
//! camera (three simulcast layers with `--simulcast`) and microphone, and receiving everyone
//! else in its room.
//!
//! The engine runs in this process on a thread of its own, so its CPU time is read apart from
//! the bots' (`/proc/self/task/<tid>/stat`): forwarded video streams per fully used core is the
//! number of streams divided by the share of one core the engine used. Signaling goes straight
//! to the engine's handle, not over the server's WebSocket.

use std::time::{Duration, Instant};

use confab_media::bot::{Bot, BotOptions, BotReport, Latency};
use confab_media::{MediaConfig, MediaHandle, MediaStats, Member, Notice};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::stats::round2;
use crate::sys;

/// What to run.
pub struct SfuOptions {
    pub rooms: usize,
    pub participants: usize,
    pub simulcast: bool,
    /// The engine estimates downlinks and paces (`MediaConfig::bwe`).
    pub bwe: bool,
    pub frame_bytes: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What was measured over the counted seconds.
#[derive(Debug, Serialize)]
pub struct SfuReport {
    pub rooms: usize,
    pub participants: usize,
    pub simulcast: bool,
    pub seconds: f64,
    /// (viewer, source) pairs whose video arrived during the counted seconds.
    pub video_streams: u64,
    pub audio_streams: u64,
    pub video_frames_per_second: f64,
    pub audio_packets_per_second: f64,
    /// Frames and packets sent but not received, in percent of those sent.
    pub loss_percent: f64,
    /// Send-to-receive time (both ends in this process), microseconds, 100 µs steps.
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
    /// From the engine reading a packet to sending its last copy, microseconds, 100 µs steps.
    pub forwarding_p50_us: u64,
    pub forwarding_p99_us: u64,
    pub forwarding_max_us: u64,
    /// The engine thread's CPU, in percent of one core.
    pub engine_cpu_percent: f64,
    /// Video streams forwarded per fully used core.
    pub video_streams_per_core: f64,
    /// This whole process (engine and bots), in percent of one core.
    pub process_cpu_percent: f64,
    pub datagrams_per_second: f64,
    pub forwarded_per_second: f64,
    pub engine_errors: u64,
}

impl std::fmt::Display for SfuReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sfu: {} room(s) × {} participants{}, {:.1} s counted",
            self.rooms,
            self.participants,
            if self.simulcast { ", simulcast" } else { "" },
            self.seconds
        )?;
        writeln!(
            f,
            "  video streams   {} ({:.0} frames/s received)",
            self.video_streams, self.video_frames_per_second
        )?;
        writeln!(
            f,
            "  audio streams   {} ({:.0} packets/s received)",
            self.audio_streams, self.audio_packets_per_second
        )?;
        writeln!(f, "  loss            {:.3} %", self.loss_percent)?;
        let ms = |us: u64| us as f64 / 1000.0;
        let (p50, p99, max) = (self.latency_p50_us, self.latency_p99_us, self.latency_max_us);
        writeln!(f, "  latency         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", ms(p50), ms(p99), ms(max))?;
        let (p50, p99, max) = (self.forwarding_p50_us, self.forwarding_p99_us, self.forwarding_max_us);
        writeln!(
            f,
            "  forwarding      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (engine: packet read → last copy sent)",
            ms(p50),
            ms(p99),
            ms(max)
        )?;
        writeln!(
            f,
            "  engine CPU      {:.1} % of a core → {:.0} video streams per core",
            self.engine_cpu_percent, self.video_streams_per_core
        )?;
        write!(
            f,
            "  process CPU     {:.1} % of a core; {:.0} datagrams/s in, {:.0} writes/s forwarded",
            self.process_cpu_percent, self.datagrams_per_second, self.forwarded_per_second
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
    Stop,
}

/// Starts the engine on a thread of its own (estimating downlinks if `bwe`); its handle and the
/// thread's id.
fn engine_thread(bwe: bool) -> anyhow::Result<(MediaHandle, i32)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("media-engine".into()).spawn(move || {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let config =
                MediaConfig { max_participants: 10_000, max_tracks_per_room: 1_000, bwe, ..MediaConfig::default() };
            let _ = tx.send(confab_media::spawn(config).map(|h| (h, tid)));
            std::future::pending::<()>().await
        });
    })?;
    Ok(rx.recv()??)
}

/// One bot: joins, answers the engine's offers, and returns its report at the start and at the
/// end of the counted seconds.
async fn participant(
    sfu: MediaHandle,
    member: Member,
    options: BotOptions,
    mut phase: watch::Receiver<Phase>,
) -> anyhow::Result<(BotReport, BotReport)> {
    let (notices_tx, mut notices) = mpsc::channel(64);
    let mut bot = Bot::new(std::net::Ipv4Addr::LOCALHOST.into(), options)?;
    let answer = sfu.join(member.clone(), bot.offer(), notices_tx).await?;
    bot.accept_answer(&answer.sdp, &answer.tracks).map_err(anyhow::Error::msg)?;
    let mut start = None;
    loop {
        while let Ok(notice) = notices.try_recv() {
            match notice {
                Notice::Offer { sdp, tracks } => {
                    let answer = bot.accept_offer(&sdp, &tracks).map_err(anyhow::Error::msg)?;
                    sfu.answer(member.clone(), answer).await?;
                }
                Notice::Closed { reason } => anyhow::bail!("participant {} dropped: {reason}", member.id.0),
                Notice::Connected | Notice::Disconnected | Notice::ActiveSpeaker { .. } => {}
            }
        }
        bot.run_for(Duration::from_millis(20)).await?;
        match *phase.borrow_and_update() {
            Phase::Warmup => {}
            Phase::Measure => {
                start.get_or_insert_with(|| bot.report().clone());
            }
            Phase::Stop => {
                let start = start.unwrap_or_default();
                return Ok((start, bot.report().clone()));
            }
        }
    }
}

/// The nice value of the bots' threads: the load generator shares the machine with the engine it
/// loads, and must not take the engine's core from it (on a server of its own the SFU has its
/// cores); the engine's CPU time is counted apart either way.
const BOTS_NICE: i32 = 10;

pub async fn run(options: SfuOptions) -> anyhow::Result<SfuReport> {
    let (sfu, engine_tid) = engine_thread(options.bwe)?;
    sys::lower_other_threads(engine_tid, BOTS_NICE);
    let (phase_tx, phase) = watch::channel(Phase::Warmup);
    let bot_options =
        BotOptions { simulcast: options.simulcast, frame_bytes: options.frame_bytes, ..BotOptions::default() };
    let run = crate::run_id();
    let mut tasks = Vec::new();
    for room in 0..options.rooms {
        for id in 0..options.participants {
            let member = Member::new(&format!("{run}-{room}"), id as u64 + 1);
            tasks.push(tokio::spawn(participant(sfu.clone(), member, bot_options, phase.clone())));
        }
    }
    tokio::time::sleep(options.warmup).await;

    let engine_cpu = || sys::thread_cpu_seconds(engine_tid).unwrap_or(0.0);
    let process_cpu = || sys::cpu_seconds(std::process::id()).unwrap_or(0.0);
    let stats = sfu.stats();
    let counters = || (MediaStats::get(&stats.datagrams), MediaStats::get(&stats.forwarded));
    let forwarding = || stats.forwarding.lock().map(|l| l.clone()).unwrap_or_default();
    let forwarding0 = forwarding();
    phase_tx.send_replace(Phase::Measure);
    let (engine0, process0, (datagrams0, forwarded0), t0) = (engine_cpu(), process_cpu(), counters(), Instant::now());
    tokio::time::sleep(options.measure).await;
    let (engine1, process1, (datagrams1, forwarded1), seconds) =
        (engine_cpu(), process_cpu(), counters(), t0.elapsed().as_secs_f64());
    phase_tx.send_replace(Phase::Stop);
    let forwarded = forwarding().since(&forwarding0);

    let mut report = SfuReport {
        rooms: options.rooms,
        participants: options.participants,
        simulcast: options.simulcast,
        seconds: round2(seconds),
        video_streams: 0,
        audio_streams: 0,
        video_frames_per_second: 0.0,
        audio_packets_per_second: 0.0,
        loss_percent: 0.0,
        latency_p50_us: 0,
        latency_p99_us: 0,
        latency_max_us: 0,
        forwarding_p50_us: forwarded.percentile_us(50.0),
        forwarding_p99_us: forwarded.percentile_us(99.0),
        forwarding_max_us: forwarded.max_us,
        engine_cpu_percent: round2((engine1 - engine0) / seconds * 100.0),
        video_streams_per_core: 0.0,
        process_cpu_percent: round2((process1 - process0) / seconds * 100.0),
        datagrams_per_second: round2((datagrams1 - datagrams0) as f64 / seconds),
        forwarded_per_second: round2((forwarded1 - forwarded0) as f64 / seconds),
        engine_errors: MediaStats::get(&stats.errors),
    };
    let (mut video, mut audio, mut sent, mut received) = (0u64, 0u64, 0u64, 0u64);
    let mut latency = Latency::default();
    for task in tasks {
        let (start, end) = task.await??;
        for (source, at_end) in &end.sources {
            let at_start = start.sources.get(source).cloned().unwrap_or_default();
            let frames = at_end.video_frames - at_start.video_frames;
            let packets = at_end.audio_packets - at_start.audio_packets;
            if frames > 0 {
                report.video_streams += 1;
            }
            if packets > 0 {
                report.audio_streams += 1;
            }
            video += frames;
            audio += packets;
            // Sequence numbers count what the source sent of the layer this viewer gets.
            if at_start.last_video_seq > 0 {
                sent += at_end.last_video_seq - at_start.last_video_seq;
                received += frames;
            }
            if at_start.last_audio_seq > 0 {
                sent += at_end.last_audio_seq - at_start.last_audio_seq;
                received += packets;
            }
            latency.merge(&at_end.latency.since(&at_start.latency));
        }
    }
    report.video_frames_per_second = round2(video as f64 / seconds);
    report.audio_packets_per_second = round2(audio as f64 / seconds);
    report.loss_percent =
        if sent == 0 { 0.0 } else { round2(sent.saturating_sub(received) as f64 / sent as f64 * 100.0) };
    report.latency_p50_us = latency.percentile_us(50.0);
    report.latency_p99_us = latency.percentile_us(99.0);
    report.latency_max_us = latency.max_us;
    if report.engine_cpu_percent > 0.0 {
        report.video_streams_per_core = round2(report.video_streams as f64 / (report.engine_cpu_percent / 100.0));
    }
    Ok(report)
}
