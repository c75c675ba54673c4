//! Connection statistics for the per-tile panel: rates from two `getStats` samples, a short
//! history for the sparklines, and the sparklines' geometry. Pure, so it is tested natively;
//! `call.rs` reads the numbers out of the browser's reports.

use std::collections::VecDeque;

/// How many samples (about one a second) a tile's history keeps.
pub const HISTORY: usize = 30;

/// Running totals of one connection at one moment, as `getStats` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// When, in milliseconds (the report's `timestamp`).
    pub at_ms: f64,
    /// Bytes received over all inbound streams.
    pub bytes_in: f64,
    /// Bytes sent over all outbound streams.
    pub bytes_out: f64,
    /// Packets received over all inbound streams.
    pub packets_received: f64,
    /// Packets lost over all inbound streams.
    pub packets_lost: f64,
}

/// What the panel shows for one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// Round-trip time of the pair in use, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Received, in kilobits a second.
    pub kbps_in: f64,
    /// Sent, in kilobits a second.
    pub kbps_out: f64,
    /// Share of packets lost since the previous sample, in percent.
    pub loss_percent: f64,
    /// The received video codec (`VP8`, `H264`…).
    pub codec: Option<String>,
    /// The received video's size.
    pub resolution: Option<(u32, u32)>,
    /// The received video's frames a second.
    pub fps: Option<f64>,
}

impl Sample {
    /// The panel's rows: what (`labels`, in the order of `Texts::stat_rows`) and how much.
    pub fn rows(&self, labels: [&'static str; 7]) -> Vec<(&'static str, String)> {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "–".into());
        let values = [
            or_dash(self.rtt_ms.map(|ms| format!("{} ms", fixed(ms, 1)))),
            format!("{} kbit/s", fixed(self.kbps_in, 0)),
            format!("{} kbit/s", fixed(self.kbps_out, 0)),
            format!("{} %", fixed(self.loss_percent, 1)),
            or_dash(self.codec.clone()),
            or_dash(self.resolution.map(|(w, h)| format!("{w}×{h}"))),
            or_dash(self.fps.map(|f| format!("{} fps", fixed(f, 0)))),
        ];
        labels.into_iter().zip(values).collect()
    }
}

/// `value` rounded to `decimals` places (at most 3), as `format!("{value:.decimals$}")` would
/// print it for the numbers the panel shows. Integer arithmetic: Rust's float formatting would
/// add about 20 KB to the wasm for these few numbers.
pub fn fixed(value: f64, decimals: u32) -> String {
    let decimals = decimals.min(3);
    let scale = 10_i64.pow(decimals);
    // `as` saturates, and NaN becomes 0: the panel never shows garbage.
    let scaled = (value * scale as f64).round() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let (whole, part) = (scaled.unsigned_abs() / scale as u64, scaled.unsigned_abs() % scale as u64);
    if decimals == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{part:0width$}", width = decimals as usize)
    }
}

/// Rates between two samples: kbps in, kbps out, and loss in percent. Counters that went
/// backwards (a new connection) count as zero.
pub fn rates(before: &Counters, now: &Counters) -> (f64, f64, f64) {
    let seconds = (now.at_ms - before.at_ms) / 1000.0;
    if seconds <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let per_second = |a: f64, b: f64| ((b - a).max(0.0) * 8.0 / 1000.0) / seconds;
    let received = (now.packets_received - before.packets_received).max(0.0);
    let lost = (now.packets_lost - before.packets_lost).max(0.0);
    let loss = if received + lost > 0.0 { lost * 100.0 / (received + lost) } else { 0.0 };
    (per_second(before.bytes_in, now.bytes_in), per_second(before.bytes_out, now.bytes_out), loss)
}

/// Adds `sample` to `history`, dropping the oldest beyond [`HISTORY`].
pub fn remember(history: &mut VecDeque<Sample>, sample: Sample) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(sample);
}

/// The `points` of an SVG polyline drawing `values` left to right in a `width` × `height` box,
/// scaled so the largest value touches the top (a flat zero line sits at the bottom).
pub fn sparkline(values: &[f64], width: f64, height: f64) -> String {
    if values.is_empty() {
        return String::new();
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let step = if values.len() > 1 { width / (values.len() - 1) as f64 } else { 0.0 };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = if max > 0.0 { height - v / max * height } else { height };
            format!("{},{}", fixed(i as f64 * step, 1), fixed(y, 1))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_prints_like_float_formatting() {
        for (value, decimals) in
            [(0.0, 1), (12.34, 1), (12.35, 0), (999.96, 1), (-3.21, 1), (0.04, 1), (-0.04, 1), (2.5, 0), (1234.5678, 3)]
        {
            let expected = format!("{value:.prec$}", prec = decimals as usize);
            // Rust rounds half to even where it is exact; `fixed` rounds half away from zero.
            if value == 2.5 {
                assert_eq!(fixed(value, decimals), "3");
                continue;
            }
            // `format!` keeps the sign of a negative number that rounds to zero; the panel does not.
            let expected = if expected == "-0.0" { "0.0".to_owned() } else { expected };
            assert_eq!(fixed(value, decimals), expected, "{value} to {decimals}");
        }
        assert_eq!(fixed(f64::NAN, 1), "0.0");
    }

    #[test]
    fn rates_over_one_second() {
        let before =
            Counters { at_ms: 1_000.0, bytes_in: 0.0, bytes_out: 0.0, packets_received: 0.0, packets_lost: 0.0 };
        let now = Counters {
            at_ms: 2_000.0,
            bytes_in: 62_500.0,
            bytes_out: 12_500.0,
            packets_received: 95.0,
            packets_lost: 5.0,
        };
        assert_eq!(rates(&before, &now), (500.0, 100.0, 5.0));
        // Half a second doubles the rate; no time passed gives nothing.
        let half = Counters { at_ms: 1_500.0, ..now };
        assert_eq!(rates(&before, &half).0, 1_000.0);
        assert_eq!(rates(&now, &now), (0.0, 0.0, 0.0));
        // A counter that went backwards (a new connection) is not a negative rate.
        assert_eq!(rates(&now, &Counters { at_ms: 3_000.0, ..before }), (0.0, 0.0, 0.0));
    }

    #[test]
    fn rows_read_like_a_person_would_say_them() {
        let sample = Sample {
            rtt_ms: Some(12.34),
            kbps_in: 498.7,
            kbps_out: 120.0,
            // Exactly half way: rounded away from zero, as a person would.
            loss_percent: 0.25,
            codec: Some("VP8".into()),
            resolution: Some((640, 480)),
            fps: Some(29.6),
        };
        assert_eq!(
            sample.rows(crate::i18n::EN.stat_rows),
            vec![
                ("Round trip", "12.3 ms".to_owned()),
                ("Receiving", "499 kbit/s".to_owned()),
                ("Sending", "120 kbit/s".to_owned()),
                ("Packet loss", "0.3 %".to_owned()),
                ("Codec", "VP8".to_owned()),
                ("Video", "640×480".to_owned()),
                ("Frame rate", "30 fps".to_owned()),
            ]
        );
        assert_eq!(Sample::default().rows(crate::i18n::EN.stat_rows)[0].1, "–");
    }

    #[test]
    fn history_keeps_the_last_samples() {
        let mut history = VecDeque::new();
        for n in 0..(HISTORY + 5) {
            remember(&mut history, Sample { kbps_in: n as f64, ..Sample::default() });
        }
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history.front().unwrap().kbps_in, 5.0);
    }

    #[test]
    fn sparkline_scales_to_the_box() {
        assert_eq!(sparkline(&[0.0, 5.0, 10.0], 100.0, 20.0), "0.0,20.0 50.0,10.0 100.0,0.0");
        assert_eq!(sparkline(&[0.0, 0.0], 100.0, 20.0), "0.0,20.0 100.0,20.0");
        assert_eq!(sparkline(&[], 100.0, 20.0), "");
    }
}
