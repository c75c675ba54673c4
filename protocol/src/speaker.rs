//! Who is speaking: the one rule for the highlight, used by the browser (from `getStats`'
//! levels, peer to peer) and by the SFU (from the RTP audio levels it forwards).

/// Picks who is speaking from audio levels sampled a few times a second, without flicker: the
/// highlight moves only to someone who has been the loudest for
/// [`ActiveSpeaker::SWITCH_SAMPLES`] samples in a row, and leaves a speaker only after
/// [`ActiveSpeaker::HOLD_SAMPLES`] samples of quiet.
#[derive(Debug, Clone)]
pub struct ActiveSpeaker<K> {
    current: Option<K>,
    quiet: u32,
    challenger: Option<(K, u32)>,
}

impl<K> Default for ActiveSpeaker<K> {
    fn default() -> Self {
        ActiveSpeaker { current: None, quiet: 0, challenger: None }
    }
}

impl<K: Clone + PartialEq> ActiveSpeaker<K> {
    /// An audio level (0 to 1, as `getStats` reports it) above which someone is speaking.
    pub const THRESHOLD: f64 = 0.02;
    /// Samples in a row someone must be the loudest to take the highlight.
    pub const SWITCH_SAMPLES: u32 = 2;
    /// Samples of quiet before the highlight goes.
    pub const HOLD_SAMPLES: u32 = 5;

    /// Takes one sample of everyone's level; returns who is highlighted now.
    pub fn update(&mut self, levels: &[(K, f64)]) -> Option<K> {
        let loudest = levels
            .iter()
            .filter(|(_, level)| *level >= Self::THRESHOLD)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(key, _)| key.clone());
        let current_speaks =
            self.current.as_ref().is_some_and(|c| levels.iter().any(|(k, l)| k == c && *l >= Self::THRESHOLD));
        match loudest {
            Some(key) if self.current.as_ref() == Some(&key) => {
                self.challenger = None;
                self.quiet = 0;
            }
            Some(key) => {
                let count = match &self.challenger {
                    Some((k, n)) if *k == key => n + 1,
                    _ => 1,
                };
                if count >= Self::SWITCH_SAMPLES {
                    self.current = Some(key);
                    self.challenger = None;
                    self.quiet = 0;
                } else {
                    self.challenger = Some((key, count));
                    if current_speaks {
                        self.quiet = 0;
                    }
                }
            }
            None => {
                self.challenger = None;
                if self.current.is_some() {
                    self.quiet += 1;
                    if self.quiet >= Self::HOLD_SAMPLES {
                        self.current = None;
                        self.quiet = 0;
                    }
                }
            }
        }
        self.current.clone()
    }

    /// Forgets `key` (it left): if it held the highlight, nobody does.
    pub fn forget(&mut self, key: &K) {
        if self.current.as_ref() == Some(key) {
            self.current = None;
            self.quiet = 0;
        }
        if self.challenger.as_ref().is_some_and(|(k, _)| k == key) {
            self.challenger = None;
        }
    }

    /// Who holds the highlight.
    pub fn current(&self) -> Option<&K> {
        self.current.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_speaker_needs_two_loud_samples_and_holds_through_short_pauses() {
        let mut speaker = ActiveSpeaker::default();
        assert_eq!(speaker.update(&[("ada", 0.3), ("bob", 0.0)]), None, "one sample is not enough");
        assert_eq!(speaker.update(&[("ada", 0.3), ("bob", 0.0)]), Some("ada"));
        // A cough from Bob does not move the highlight.
        assert_eq!(speaker.update(&[("ada", 0.1), ("bob", 0.5)]), Some("ada"));
        assert_eq!(speaker.update(&[("ada", 0.1), ("bob", 0.0)]), Some("ada"));
        // A pause between sentences keeps it.
        for _ in 0..4 {
            assert_eq!(speaker.update(&[("ada", 0.0), ("bob", 0.0)]), Some("ada"));
        }
        assert_eq!(speaker.update(&[("ada", 0.2), ("bob", 0.0)]), Some("ada"));
        // Bob talks on: the highlight moves.
        assert_eq!(speaker.update(&[("ada", 0.0), ("bob", 0.4)]), Some("ada"));
        assert_eq!(speaker.update(&[("ada", 0.0), ("bob", 0.4)]), Some("bob"));
        // Silence long enough: nobody.
        for _ in 0..4 {
            assert_eq!(speaker.update(&[("ada", 0.0), ("bob", 0.0)]), Some("bob"));
        }
        assert_eq!(speaker.update(&[("ada", 0.0), ("bob", 0.0)]), None);
    }

    #[test]
    fn a_speaker_who_leaves_loses_the_highlight_at_once() {
        let mut speaker = ActiveSpeaker::default();
        speaker.update(&[("ada", 0.3)]);
        assert_eq!(speaker.update(&[("ada", 0.3)]), Some("ada"));
        speaker.forget(&"ada");
        assert_eq!(speaker.current(), None);
        assert_eq!(speaker.update(&[("bob", 0.3)]), None, "Bob needs his two samples");
    }
}
