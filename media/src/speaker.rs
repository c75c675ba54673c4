//! The active speaker of each room, from the audio level every browser writes into its RTP
//! packets (RFC 6464, `urn:ietf:params:rtp-hdrext:ssrc-audio-level`): the SFU reads one header
//! extension per packet it forwards anyway, so nobody decodes audio or polls `getStats` on
//! dozens of streams. Every [`SPEAKER_WINDOW`] the loudest level each participant sent in that
//! window goes through the same [`ActiveSpeaker`] rule the browsers use peer to peer.

use std::collections::HashMap;
use std::time::Duration;

use confab_protocol::ActiveSpeaker;

use crate::ParticipantId;

/// How often a room's speaker is decided (the browsers sample `getStats` as often).
pub(crate) const SPEAKER_WINDOW: Duration = Duration::from_millis(300);

/// The linear level (0 to 1, as `getStats`' `audioLevel`) of an RFC 6464 level in dBov (0 the
/// loudest, -127 silence; str0m gives it as a negative number, some senders as a positive one).
pub(crate) fn linear_level(dbov: i8) -> f64 {
    let db = -f64::from(dbov.unsigned_abs().min(127));
    10f64.powf(db / 20.0)
}

/// One room's levels in the current window and its speaker.
#[derive(Debug, Default)]
pub(crate) struct RoomSpeaker {
    /// The loudest level each participant sent in the current window.
    window: HashMap<ParticipantId, f64>,
    speaker: ActiveSpeaker<ParticipantId>,
}

impl RoomSpeaker {
    /// A packet from `id` carried `dbov`.
    pub fn heard(&mut self, id: ParticipantId, dbov: i8) {
        let level = linear_level(dbov);
        let loudest = self.window.entry(id).or_insert(0.0);
        *loudest = loudest.max(level);
    }

    /// Ends a window over the room's `members` (a member that sent nothing counts as silent);
    /// returns the new speaker if it changed.
    pub fn decide(&mut self, members: impl Iterator<Item = ParticipantId>) -> Option<Option<ParticipantId>> {
        let before = self.speaker.current().copied();
        let levels: Vec<(ParticipantId, f64)> =
            members.map(|id| (id, self.window.get(&id).copied().unwrap_or(0.0))).collect();
        self.window.clear();
        let now = self.speaker.update(&levels);
        (now != before).then_some(now)
    }

    /// `id` left the room; returns true if it was the speaker (nobody is now).
    pub fn forget(&mut self, id: ParticipantId) -> bool {
        self.window.remove(&id);
        let was = self.speaker.current() == Some(&id);
        self.speaker.forget(&id);
        was
    }

    pub fn current(&self) -> Option<ParticipantId> {
        self.speaker.current().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: ParticipantId = ParticipantId(1);
    const BOB: ParticipantId = ParticipantId(2);

    #[test]
    fn levels_in_dbov_become_linear() {
        assert!((linear_level(0) - 1.0).abs() < 1e-9);
        assert!((linear_level(-20) - 0.1).abs() < 1e-9);
        assert!((linear_level(20) - 0.1).abs() < 1e-9, "either sign");
        assert!(linear_level(-127) < 1e-6);
        assert!(linear_level(i8::MIN) < 1e-6);
        // The browsers' threshold lies between a voice and the silence of a muted track.
        assert!(linear_level(-30) > ActiveSpeaker::<u8>::THRESHOLD);
        assert!(linear_level(-40) < ActiveSpeaker::<u8>::THRESHOLD);
    }

    #[test]
    fn the_loudest_of_a_window_counts_and_a_silent_member_is_heard_as_silence() {
        let mut room = RoomSpeaker::default();
        let members = || [ADA, BOB].into_iter();
        // Ada speaks over two windows (one loud packet among quiet ones is enough per window).
        for _ in 0..2 {
            room.heard(ADA, -127);
            room.heard(ADA, -25);
            room.heard(BOB, -127);
            if room.current().is_none() {
                let changed = room.decide(members());
                assert!(changed.is_none() || changed == Some(Some(ADA)));
            }
        }
        assert_eq!(room.current(), Some(ADA));
        // Nothing changes while she goes on.
        room.heard(ADA, -20);
        assert_eq!(room.decide(members()), None);
        // Windows with no packets at all (a page that stopped sending) are silence: she loses it.
        let mut changes = Vec::new();
        for _ in 0..ActiveSpeaker::<u8>::HOLD_SAMPLES {
            changes.extend(room.decide(members()));
        }
        assert_eq!(changes, vec![None]);
    }

    #[test]
    fn a_speaker_who_leaves_is_forgotten() {
        let mut room = RoomSpeaker::default();
        for _ in 0..2 {
            room.heard(BOB, -10);
            room.decide([ADA, BOB].into_iter());
        }
        assert_eq!(room.current(), Some(BOB));
        assert!(room.forget(BOB));
        assert_eq!(room.current(), None);
        assert!(!room.forget(ADA));
    }
}
