//! Simulcast layers: which one a subscriber gets of a source's camera, and when it may switch.
//!
//! A publisher sends its camera up to three times (rids `l`, `m`, `h`: a quarter, half and full
//! resolution). Each subscriber says which layer it wants of each source (the size of the tile it
//! shows). The engine forwards the highest layer being published at or below that, switching only
//! at a keyframe of the new layer (a decoder cannot start mid-stream), and asks the publisher for
//! that keyframe. A camera without simulcast is one layer, [`Layer::High`].

use std::time::{Duration, Instant};

/// A layer of a source's video, as a subscriber wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// No video (the tile is not visible). Audio is never affected.
    Off,
    Low,
    Medium,
    High,
}

/// Layers not seen for this long count as no longer published (a browser drops its top layers
/// when its uplink or its CPU is short).
pub const LAYER_STALE: Duration = Duration::from_millis(1500);

/// A layer also counts as stopped once this many frames of the other layers have come since its
/// last one: the layers of one camera are captured together, so while they are all sent their
/// frames take turns, and a camera that sends one frame a second (a disabled track's black frames)
/// does not look stopped. A viewer of a layer that stops (at 15 frames a second, two layers) waits
/// about a third of a second for this, not [`LAYER_STALE`], before it is moved to one that flows.
pub const OVERTAKEN_AFTER_FRAMES: u32 = 5;

impl Layer {
    /// The layer an RTP stream id names (`None` for a stream without simulcast: one full layer).
    pub fn from_rid(rid: Option<&str>) -> Option<Layer> {
        match rid {
            None | Some("h") | Some("f") => Some(Layer::High),
            Some("m") => Some(Layer::Medium),
            Some("l") | Some("q") => Some(Layer::Low),
            Some(_) => None,
        }
    }

    /// The rid browsers are asked to send this layer under.
    pub fn rid(self) -> Option<&'static str> {
        match self {
            Layer::Off => None,
            Layer::Low => Some("l"),
            Layer::Medium => Some("m"),
            Layer::High => Some("h"),
        }
    }

    fn index(self) -> usize {
        match self {
            Layer::Off | Layer::Low => 0,
            Layer::Medium => 1,
            Layer::High => 2,
        }
    }

    const PUBLISHED: [Layer; 3] = [Layer::Low, Layer::Medium, Layer::High];
}

/// How long the bytes of each layer are summed before its bitrate is updated.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The layers a publisher is sending now, from when each was last seen, and what each costs.
#[derive(Clone, Debug, Default)]
pub struct Published {
    last_seen: [Option<Instant>; 3],
    /// Per layer, the frames of other layers since its last one.
    overtaken_by: [u32; 3],
    /// Per layer, bytes received since `window_start`.
    bytes: [u64; 3],
    window_start: Option<Instant>,
    /// Per layer, bits per second over the last whole window.
    bps: [u64; 3],
}

impl Published {
    /// A packet of `layer` with `bytes` bytes of payload arrived, the first of a frame or not.
    pub fn saw_packet(&mut self, layer: Layer, bytes: usize, frame_start: bool, now: Instant) {
        if frame_start {
            self.saw(layer, now);
        }
        if layer == Layer::Off {
            return;
        }
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
            for (bps, bytes) in self.bps.iter_mut().zip(&mut self.bytes) {
                *bps = *bytes * 8 * 1_000_000 / micros;
                *bytes = 0;
            }
            self.window_start = Some(now);
        }
        self.bytes[layer.index()] += bytes as u64;
    }

    /// Bits per second `layer` took over the last whole window (0 before one has passed).
    pub fn bitrate(&self, layer: Layer) -> u64 {
        if layer == Layer::Off {
            0
        } else {
            self.bps[layer.index()]
        }
    }

    /// The published layers up to the one [`Published::choose`] gives for `want`, lowest
    /// first, with their bitrates: what a subscriber's bandwidth may lower the video to.
    pub fn steps(&self, want: Layer, now: Instant) -> Vec<(Layer, u64)> {
        let Some(top) = self.choose(want, now) else {
            return Vec::new();
        };
        Layer::PUBLISHED
            .into_iter()
            .filter(|&l| l <= top && self.is_published(l, now))
            .map(|l| (l, self.bitrate(l)))
            .collect()
    }

    pub fn saw(&mut self, layer: Layer, now: Instant) {
        if layer == Layer::Off {
            return;
        }
        for (i, count) in self.overtaken_by.iter_mut().enumerate() {
            *count = if i == layer.index() { 0 } else { count.saturating_add(1) };
        }
        self.last_seen[layer.index()] = Some(now);
    }

    pub fn is_published(&self, layer: Layer, now: Instant) -> bool {
        if layer == Layer::Off {
            return false;
        }
        self.last_seen[layer.index()].is_some_and(|seen| now.saturating_duration_since(seen) < LAYER_STALE)
            && self.overtaken_by[layer.index()] < OVERTAKEN_AFTER_FRAMES
    }

    /// The layer to forward to a subscriber who wants `want`: the highest published one at or
    /// below it, else the lowest published one (a small tile of a source that only sends full
    /// resolution still shows it). `None` when video is off or nothing is published.
    pub fn choose(&self, want: Layer, now: Instant) -> Option<Layer> {
        if want == Layer::Off {
            return None;
        }
        let published = || Layer::PUBLISHED.into_iter().filter(|&l| self.is_published(l, now));
        published().filter(|&l| l <= want).max().or_else(|| published().min())
    }
}

/// How much more than its cost the budget must be before a source's video goes up a layer:
/// an estimate that wobbles around a layer's bitrate does not switch it back and forth.
pub const UP_MARGIN: f64 = 1.25;

/// The layer each source's video gets within a subscriber's downlink of `budget` bits per
/// second. Each source is given as the layers it may go down to ([`Published::steps`]), lowest
/// first; it starts at its top one, then, while the sum is over the budget, the source whose
/// current layer costs most steps down one. A source never goes below its lowest published
/// layer: bandwidth lowers the picture, it does not freeze it.
pub fn fit(budget: u64, sources: &[Vec<(Layer, u64)>]) -> Vec<Option<Layer>> {
    let mut at: Vec<usize> = sources.iter().map(|steps| steps.len().saturating_sub(1)).collect();
    let mut total: u64 = sources.iter().zip(&at).filter_map(|(steps, &i)| steps.get(i)).map(|s| s.1).sum();
    while total > budget {
        let costliest = (0..sources.len()).filter(|&k| at[k] > 0).max_by_key(|&k| sources[k][at[k]].1);
        let Some(k) = costliest else { break };
        total = total - sources[k][at[k]].1 + sources[k][at[k] - 1].1;
        at[k] -= 1;
    }
    sources.iter().zip(at).map(|(steps, i)| steps.get(i).map(|s| s.0)).collect()
}

/// The new cap of each source, given the current caps: down to what fits in `down_budget` (the
/// highest estimate of the last moments, so that a dip does not count), up only to what fits in
/// `up_budget` (the latest estimate) with [`UP_MARGIN`] to spare.
pub fn refit(
    down_budget: u64,
    up_budget: u64,
    sources: &[Vec<(Layer, u64)>],
    current: &[Option<Layer>],
) -> Vec<Option<Layer>> {
    let down = fit(down_budget, sources);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let up = fit((up_budget as f64 / UP_MARGIN) as u64, sources);
    down.into_iter()
        .zip(up)
        .zip(current)
        .map(|((down, up), &now)| match (now, down) {
            (_, None) => None,
            (None, down) => down,
            (Some(now), Some(down)) if down < now => Some(down),
            (Some(now), Some(_)) => Some(up.map_or(now, |up| up.max(now))),
        })
        .collect()
}

/// What to do with one frame of a source's video for one subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward it (the subscriber's current layer).
    Forward,
    /// Forward it: a keyframe of the layer the subscriber switches to. Timestamps continue from
    /// the previous layer's.
    Switch,
    /// Drop it.
    Skip,
    /// Drop it, and ask the publisher for a keyframe of this layer so the switch can happen.
    NeedKeyframe(Layer),
}

/// Which layer one subscriber currently receives of one source's video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    current: Option<Layer>,
}

impl Selector {
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// Decides for a frame of `layer` when the subscriber should be on `target`.
    pub fn decide(&mut self, layer: Layer, keyframe: bool, target: Option<Layer>) -> Decision {
        let Some(target) = target else {
            self.current = None;
            return Decision::Skip;
        };
        if layer == target {
            if self.current == Some(target) {
                Decision::Forward
            } else if keyframe {
                self.current = Some(target);
                Decision::Switch
            } else {
                Decision::NeedKeyframe(target)
            }
        } else if self.current == Some(layer) {
            // The old layer keeps flowing until the new one's keyframe arrives.
            Decision::Forward
        } else {
            Decision::Skip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(layers: &[Layer], now: Instant) -> Published {
        let mut p = Published::default();
        for &l in layers {
            p.saw(l, now);
        }
        p
    }

    #[test]
    fn rids_name_layers() {
        assert_eq!(Layer::from_rid(None), Some(Layer::High));
        assert_eq!(Layer::from_rid(Some("l")), Some(Layer::Low));
        assert_eq!(Layer::from_rid(Some("m")), Some(Layer::Medium));
        assert_eq!(Layer::from_rid(Some("h")), Some(Layer::High));
        assert_eq!(Layer::from_rid(Some("x")), None);
        for l in [Layer::Low, Layer::Medium, Layer::High] {
            assert_eq!(Layer::from_rid(l.rid()), Some(l));
        }
    }

    #[test]
    fn the_highest_published_layer_at_or_below_the_wish_is_chosen() {
        let now = Instant::now();
        let all = published(&[Layer::Low, Layer::Medium, Layer::High], now);
        assert_eq!(all.choose(Layer::Low, now), Some(Layer::Low));
        assert_eq!(all.choose(Layer::Medium, now), Some(Layer::Medium));
        assert_eq!(all.choose(Layer::High, now), Some(Layer::High));
        assert_eq!(all.choose(Layer::Off, now), None);

        let no_top = published(&[Layer::Low, Layer::Medium], now);
        assert_eq!(no_top.choose(Layer::High, now), Some(Layer::Medium));

        let only_full = published(&[Layer::High], now);
        assert_eq!(only_full.choose(Layer::Low, now), Some(Layer::High));

        assert_eq!(Published::default().choose(Layer::High, now), None);
    }

    #[test]
    fn a_layer_not_seen_lately_is_not_published() {
        let then = Instant::now();
        let later = then + LAYER_STALE + Duration::from_millis(1);
        let mut p = published(&[Layer::Low, Layer::High], then);
        assert_eq!(p.choose(Layer::High, then), Some(Layer::High));
        p.saw(Layer::Low, later);
        assert_eq!(p.choose(Layer::High, later), Some(Layer::Low));
    }

    #[test]
    fn a_layer_the_others_have_overtaken_is_stopped() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut p = Published::default();
        // Both layers at 15 frames a second: both published.
        for frame in 0..10 {
            p.saw(Layer::Medium, ms(frame * 66));
            p.saw(Layer::High, ms(frame * 66 + 3));
        }
        assert_eq!(p.choose(Layer::High, ms(600)), Some(Layer::High));
        // The full layer stops; the half one goes on. For a few frames it is still there, then
        // the viewer of the full layer is given the half one.
        for frame in 10..10 + OVERTAKEN_AFTER_FRAMES as u64 - 1 {
            p.saw(Layer::Medium, ms(frame * 66));
        }
        assert_eq!(p.choose(Layer::High, ms(14 * 66)), Some(Layer::High));
        p.saw(Layer::Medium, ms(14 * 66));
        assert_eq!(p.choose(Layer::High, ms(14 * 66)), Some(Layer::Medium));
        // It comes back.
        p.saw(Layer::High, ms(21 * 66));
        assert_eq!(p.choose(Layer::High, ms(21 * 66)), Some(Layer::High));

        // One frame a second of both layers (a disabled camera's black frames): still both.
        let mut slow = Published::default();
        for second in 0..5 {
            slow.saw(Layer::Medium, ms(second * 1000));
            slow.saw(Layer::High, ms(second * 1000 + 4));
        }
        assert_eq!(slow.choose(Layer::High, ms(4_900)), Some(Layer::High));
        slow.saw(Layer::Medium, ms(5_000));
        assert_eq!(slow.choose(Layer::High, ms(5_000)), Some(Layer::High));
    }

    #[test]
    fn each_layer_s_bitrate_is_measured_over_a_window() {
        let t0 = Instant::now();
        let mut p = Published::default();
        // 30 frames a second for a second: 3,000-byte full frames, 1,000-byte half ones.
        for frame in 0..=30_u64 {
            let at = t0 + Duration::from_millis(frame * 1000 / 30);
            p.saw_packet(Layer::High, 3_000, true, at);
            p.saw_packet(Layer::Medium, 1_000, true, at);
        }
        assert!((700_000..=740_000).contains(&p.bitrate(Layer::High)), "{}", p.bitrate(Layer::High));
        assert!((230_000..=250_000).contains(&p.bitrate(Layer::Medium)), "{}", p.bitrate(Layer::Medium));
        assert_eq!(p.bitrate(Layer::Low), 0);
        let end = t0 + Duration::from_secs(1);
        assert_eq!(
            p.steps(Layer::High, end),
            vec![(Layer::Medium, p.bitrate(Layer::Medium)), (Layer::High, p.bitrate(Layer::High))]
        );
        assert_eq!(p.steps(Layer::Medium, end).len(), 1);
        assert!(p.steps(Layer::Off, end).is_empty());
    }

    const L: Layer = Layer::Low;
    const M: Layer = Layer::Medium;
    const H: Layer = Layer::High;

    fn three_layers() -> Vec<(Layer, u64)> {
        vec![(L, 100_000), (M, 300_000), (H, 900_000)]
    }

    #[test]
    fn a_small_downlink_lowers_the_costliest_video_first() {
        let two = [three_layers(), three_layers()];
        assert_eq!(fit(5_000_000, &two), [Some(H), Some(H)]);
        // 1.2 Mbit/s: one full layer and one half fit (of equals, the later one goes down).
        assert_eq!(fit(1_200_000, &two), [Some(H), Some(M)]);
        assert_eq!(fit(600_000, &two), [Some(M), Some(M)]);
        // Too little even for the smallest: the smallest, not nothing.
        assert_eq!(fit(10_000, &two), [Some(L), Some(L)]);
        // A source whose tile wants only the half layer, and one with nothing to send.
        assert_eq!(fit(1_000_000, &[three_layers()[..2].to_vec(), three_layers(), vec![]]), [Some(M), Some(M), None]);
    }

    #[test]
    fn the_video_goes_down_at_once_and_up_only_with_room_to_spare() {
        let one = [three_layers()];
        assert_eq!(refit(1_000_000, 1_000_000, &one, &[None]), [Some(H)]);
        assert_eq!(refit(800_000, 800_000, &one, &[Some(H)]), [Some(M)], "down at once");
        // 950 kbit/s would hold the full layer, but not with the margin: it stays.
        assert_eq!(refit(950_000, 950_000, &one, &[Some(M)]), [Some(M)]);
        assert_eq!(refit(1_200_000, 1_200_000, &one, &[Some(M)]), [Some(H)]);
        assert_eq!(refit(1_200_000, 1_200_000, &[vec![]], &[Some(M)]), [None]);
        // A dip of the latest estimate alone does not lower it while an estimate of the last
        // moments still holds it; nor does a brief high one raise it past the margin.
        assert_eq!(refit(1_200_000, 500_000, &one, &[Some(H)]), [Some(H)]);
        assert_eq!(refit(500_000, 500_000, &one, &[Some(H)]), [Some(M)]);
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_of_the_new_layer() {
        let mut s = Selector::default();
        // Nothing yet: the first frame has to be a keyframe.
        assert_eq!(s.decide(Layer::Low, false, Some(Layer::Low)), Decision::NeedKeyframe(Layer::Low));
        assert_eq!(s.decide(Layer::Low, true, Some(Layer::Low)), Decision::Switch);
        assert_eq!(s.decide(Layer::Low, false, Some(Layer::Low)), Decision::Forward);
        assert_eq!(s.decide(Layer::High, false, Some(Layer::Low)), Decision::Skip);

        // The viewer enlarges the tile: low keeps flowing until high's keyframe.
        assert_eq!(s.decide(Layer::High, false, Some(Layer::High)), Decision::NeedKeyframe(Layer::High));
        assert_eq!(s.decide(Layer::Low, false, Some(Layer::High)), Decision::Forward);
        assert_eq!(s.decide(Layer::High, true, Some(Layer::High)), Decision::Switch);
        assert_eq!(s.current(), Some(Layer::High));
        assert_eq!(s.decide(Layer::Low, false, Some(Layer::High)), Decision::Skip);

        // Hidden: nothing, and the next showing starts at a keyframe again.
        assert_eq!(s.decide(Layer::High, true, None), Decision::Skip);
        assert_eq!(s.current(), None);
        assert_eq!(s.decide(Layer::High, false, Some(Layer::High)), Decision::NeedKeyframe(Layer::High));
    }
}
