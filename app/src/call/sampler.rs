//! `getStats` of every connection that is up, a few times a second: audio levels for the
//! speaking highlight, and about once a second the numbers of the stats panel (through the SFU,
//! whose server names the speaker, only the latter). A person reached through the SFU is read from the SFU
//! connection's report, its `inbound-rtp` entries picked by the `mid`s that carry them.
//!
//! Stats reports are read with `Reflect`: each entry is a plain record whose members depend on
//! its `type` and on the browser, and web-sys's stats dictionaries follow an old draft (no
//! `kind`, `audioLevel`, `frameWidth`, `framesPerSecond` or `media-source` entries).

use super::{Engine, WeakEngine};
use crate::stats;
use confab_protocol::{ActiveSpeaker, PeerKey};
use gloo_timers::future::TimeoutFuture;
use js_sys::{Array, Reflect};
use leptos::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::RtcPeerConnection;

/// How often audio levels are sampled for the active-speaker highlight.
const SPEAKER_SAMPLE_MS: u32 = 300;

fn string_prop(target: &JsValue, name: &str) -> String {
    Reflect::get(target, &name.into()).ok().and_then(|v| v.as_string()).unwrap_or_default()
}

fn number_prop(target: &JsValue, name: &str) -> Option<f64> {
    Reflect::get(target, &name.into()).ok().and_then(|v| v.as_f64())
}

/// Samples everyone's audio level (received, and our own as sent) and moves the speaking
/// highlight, until the call ends.
pub(super) async fn watch(engine: WeakEngine) {
    let mut speaker = ActiveSpeaker::default();
    // Counters of each connection at the last stats sample, for the rates.
    let mut counted: Vec<(PeerKey, stats::Counters)> = Vec::new();
    let mut tick: u32 = 0;
    let mut layers = super::sfu::AskedLayers::default();
    loop {
        tick = tick.wrapping_add(1);
        // The stats panel's numbers, about once a second (every third level sample).
        let sample_stats = tick.is_multiple_of(3);
        TimeoutFuture::new(SPEAKER_SAMPLE_MS).await;
        let Some(strong) = engine.upgrade() else { return };
        if sample_stats {
            super::sfu::send_layers(&strong, &mut layers);
        }
        let Some((connections, me, muted, ui, via_sfu)) = snapshot(&strong) else { return };
        drop(strong);
        // Through the SFU the server names the speaker: its connection is read only for the
        // stats panel, once a second (`getStats` on a connection carrying everyone is not cheap,
        // and a joiner's first second is when its main thread is busiest).
        if via_sfu && !sample_stats {
            continue;
        }
        let mut levels = Vec::new();
        let mut own = 0.0_f64;
        // The SFU connection's report, read once for everyone it carries.
        let mut shared: Option<JsValue> = None;
        for (key, pc, mids) in connections {
            let report = match (&mids, &shared) {
                (Some(_), Some(report)) => report.clone(),
                _ => {
                    let Ok(report) = JsFuture::from(pc.get_stats()).await else { continue };
                    if mids.is_some() {
                        shared = Some(report.clone());
                    }
                    report
                }
            };
            let mids = mids.as_deref();
            let (heard, sent) = audio_levels(&report, mids);
            if sample_stats {
                let (counters, mut sample) = read_stats(&report, mids);
                if let Some((_, before)) = counted.iter().find(|(k, _)| *k == key) {
                    (sample.kbps_in, sample.kbps_out, sample.loss_percent) = stats::rates(before, &counters);
                    if let Some(strong) = engine.upgrade() {
                        if let Some(peer) = strong.borrow().roster.get(&key) {
                            peer.tile.stats.update(|history| stats::remember(history, sample));
                        }
                    }
                }
                counted.retain(|(k, _)| *k != key);
                counted.push((key.clone(), counters));
            }
            levels.push((key, heard));
            own = own.max(sent);
        }
        if let Some(me) = me {
            levels.push((me, if muted { 0.0 } else { own }));
        }
        // On the SFU the server names the speaker (`active_speaker`) from everyone's RTP audio
        // levels; the levels read here once a second go on feeding the rule for the way back
        // to peer to peer.
        let now = speaker.update(&levels);
        if !via_sfu && ui.speaking.try_get_untracked().flatten() != now {
            ui.speaking.try_set(now);
        }
    }
}

/// Whom to sample on which connection (with the `mid`s that carry them on the SFU connection),
/// our key, mute, the signals and whether an SFU connection is open; `None` once the call ended.
#[allow(clippy::type_complexity)]
fn snapshot(
    engine: &Engine,
) -> Option<(Vec<(PeerKey, RtcPeerConnection, Option<Vec<String>>)>, Option<PeerKey>, bool, crate::model::CallUi, bool)>
{
    let state = engine.borrow();
    if state.ended {
        return None;
    }
    let connections = state
        .roster
        .iter()
        .filter_map(|(k, p)| match (&p.conn, &state.sfu) {
            (Some(c), _) => Some((k.clone(), c.pc.clone(), None)),
            (None, Some(sfu)) => Some((k.clone(), sfu.pc().clone(), Some(sfu.mids_of(k)))),
            (None, None) => None,
        })
        // A connection not yet up has nothing to read.
        .filter(|(_, pc, _)| pc.connection_state() == web_sys::RtcPeerConnectionState::Connected)
        .collect();
    Some((connections, state.roster.me().cloned(), state.media.muted, state.ui, state.sfu.is_some()))
}

/// Whether an `inbound-rtp` entry is one of `mids` (all are, without a list).
fn picked(stat: &JsValue, mids: Option<&[String]>) -> bool {
    mids.is_none_or(|mids| mids.contains(&string_prop(stat, "mid")))
}

/// The counters and the instant values (RTT, codec, video size and rate) of one stats report.
fn read_stats(report: &JsValue, mids: Option<&[String]>) -> (stats::Counters, stats::Sample) {
    let mut counters = stats::Counters::default();
    let mut sample = stats::Sample::default();
    let Ok(Some(entries)) = js_sys::try_iter(report) else { return (counters, sample) };
    let all: Vec<JsValue> = entries.flatten().map(|entry| Array::from(&entry).get(1)).collect();
    let mut codec_id = None;
    for stat in &all {
        counters.at_ms = counters.at_ms.max(number_prop(stat, "timestamp").unwrap_or(0.0));
        match string_prop(stat, "type").as_str() {
            "inbound-rtp" if picked(stat, mids) => {
                counters.bytes_in += number_prop(stat, "bytesReceived").unwrap_or(0.0);
                counters.packets_received += number_prop(stat, "packetsReceived").unwrap_or(0.0);
                counters.packets_lost += number_prop(stat, "packetsLost").unwrap_or(0.0).max(0.0);
                if string_prop(stat, "kind") == "video" {
                    let size = (number_prop(stat, "frameWidth"), number_prop(stat, "frameHeight"));
                    if let (Some(w), Some(h)) = size {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let size = (w as u32, h as u32);
                        sample.resolution = Some(size);
                    }
                    sample.fps = number_prop(stat, "framesPerSecond");
                    codec_id = Some(string_prop(stat, "codecId"));
                }
            }
            "outbound-rtp" => counters.bytes_out += number_prop(stat, "bytesSent").unwrap_or(0.0),
            "candidate-pair" if string_prop(stat, "state") == "succeeded" => {
                let nominated = Reflect::get(stat, &"nominated".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false);
                if let (true, Some(rtt)) = (nominated, number_prop(stat, "currentRoundTripTime")) {
                    sample.rtt_ms = Some(rtt * 1000.0);
                }
            }
            _ => {}
        }
    }
    if let Some(codec_id) = codec_id {
        sample.codec = all
            .iter()
            .find(|s| string_prop(s, "id") == codec_id)
            .map(|codec| string_prop(codec, "mimeType").trim_start_matches("video/").to_owned());
    }
    (counters, sample)
}

/// The received (`inbound-rtp`) and sent (`media-source`) audio levels in one stats report.
fn audio_levels(report: &JsValue, mids: Option<&[String]>) -> (f64, f64) {
    let (mut heard, mut sent) = (0.0_f64, 0.0_f64);
    let Ok(Some(entries)) = js_sys::try_iter(report) else { return (0.0, 0.0) };
    for entry in entries.flatten() {
        let stat = Array::from(&entry).get(1);
        if string_prop(&stat, "kind") != "audio" {
            continue;
        }
        let level = number_prop(&stat, "audioLevel").unwrap_or(0.0);
        match string_prop(&stat, "type").as_str() {
            "inbound-rtp" if picked(&stat, mids) => heard = heard.max(level),
            "media-source" => sent = sent.max(level),
            _ => {}
        }
    }
    (heard, sent)
}
