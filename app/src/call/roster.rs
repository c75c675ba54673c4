//! Who else is in the call, by key, and what a welcome changes about it. Pure: no browser API,
//! so it is tested natively (`cargo test -p confab-app`).
//!
//! A participant is their [`PeerKey`]: the engine keys everything by it. The server addresses
//! them by a [`PeerId`] that changes when they rejoin a restarted server; the roster remembers
//! each one's current id so that the signaling layer, and only it, can translate between the
//! two ([`Roster::key_of`], [`Roster::id_of`]).

use confab_protocol::{PeerId, PeerInfo, PeerKey};

/// What the engine keeps per participant (their tile, their connection).
pub trait Payload {
    /// The value for someone new to us.
    fn new(info: &PeerInfo) -> Self;
    /// Someone we know is listed again (their media state may have changed).
    fn update(&mut self, info: &PeerInfo);
    /// A connection to them exists (negotiation started).
    fn connected(&self) -> bool;
}

/// One remote participant.
struct Member<T> {
    /// Their stable key.
    key: PeerKey,
    /// Their current id (changes if they rejoin a restarted server).
    id: PeerId,
    /// We are the polite side of this pair (our key is the smaller).
    polite: bool,
    /// Seen in the room since our last fresh join.
    confirmed: bool,
    /// The engine's data for them.
    value: T,
}

/// Everyone else in the room, in the order they appeared.
pub struct Roster<T> {
    /// Our own key, once welcomed.
    me: Option<PeerKey>,
    /// The others.
    members: Vec<Member<T>>,
    /// Counts fresh (not resumed) welcomes, so an old sweep of unconfirmed peers does nothing.
    welcomes: u32,
}

/// What a welcome asks of the engine.
pub struct Welcomed<T> {
    /// Peers to call: after a resume, those who joined while we were away (their offer never
    /// reached us) or whom we never got connected to.
    pub to_call: Vec<PeerKey>,
    /// Peers gone while we were away (resumed welcome only), to drop.
    pub gone: Vec<T>,
    /// After a fresh welcome: the generation to give [`Roster::sweep`] once the others had time
    /// to come back.
    pub sweep: Option<u32>,
    /// Someone was added or dropped: the tiles must follow.
    pub changed: bool,
}

impl<T> Default for Roster<T> {
    fn default() -> Self {
        Roster { me: None, members: Vec::new(), welcomes: 0 }
    }
}

impl<T: Payload> Roster<T> {
    /// Our key, once welcomed.
    pub fn me(&self) -> Option<&PeerKey> {
        self.me.as_ref()
    }

    /// How many others are in the call.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The data kept for `key`.
    pub fn get(&self, key: &PeerKey) -> Option<&T> {
        self.members.iter().find(|m| m.key == *key).map(|m| &m.value)
    }

    /// The data kept for `key`, to change.
    pub fn get_mut(&mut self, key: &PeerKey) -> Option<&mut T> {
        self.members.iter_mut().find(|m| m.key == *key).map(|m| &mut m.value)
    }

    /// Whether we are the polite side with `key`.
    pub fn polite(&self, key: &PeerKey) -> bool {
        self.members.iter().any(|m| m.key == *key && m.polite)
    }

    /// Everyone, in the order they appeared.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerKey, &T)> {
        self.members.iter().map(|m| (&m.key, &m.value))
    }

    /// The key of the participant the server calls `id` (translation at the signaling edge).
    pub fn key_of(&self, id: PeerId) -> Option<PeerKey> {
        self.members.iter().find(|m| m.id == id).map(|m| m.key.clone())
    }

    /// The id the server knows `key` by now (translation at the signaling edge).
    pub fn id_of(&self, key: &PeerKey) -> Option<PeerId> {
        self.members.iter().find(|m| m.key == *key).map(|m| m.id)
    }

    /// Adds a participant, or updates the one we have under the same key (someone who
    /// rejoined: new id, same connection). Returns true if they are new to us.
    pub fn upsert(&mut self, info: &PeerInfo) -> bool {
        if let Some(member) = self.members.iter_mut().find(|m| m.key == info.key) {
            member.id = info.id;
            member.confirmed = true;
            member.value.update(info);
            return false;
        }
        let polite = self.me.as_ref().is_some_and(|me| *me < info.key);
        self.members.push(Member { key: info.key.clone(), id: info.id, polite, confirmed: true, value: T::new(info) });
        true
    }

    /// Removes `key`; its data, to be dropped by the caller.
    pub fn remove(&mut self, key: &PeerKey) -> Option<T> {
        let at = self.members.iter().position(|m| m.key == *key)?;
        Some(self.members.remove(at).value)
    }

    /// Removes everyone (hang-up); their data, to be dropped by the caller.
    pub fn clear(&mut self) -> Vec<T> {
        self.members.drain(..).map(|m| m.value).collect()
    }

    /// Joined (again) as `me`, with `peers` in the room as the server sees it. A resumed
    /// welcome means we kept our place (nobody was told we left): whoever is not listed left
    /// meanwhile. A fresh one (server restart, grace period over) means everyone rejoins with
    /// new ids: those not back by the time of [`Roster::sweep`] are gone.
    pub fn welcome(&mut self, me: PeerKey, peers: &[PeerInfo], resumed: bool) -> Welcomed<T> {
        self.me = Some(me);
        for member in &mut self.members {
            member.confirmed = false;
        }
        let mut to_call = Vec::new();
        let mut added = false;
        for info in peers {
            let new = self.upsert(info);
            added |= new;
            let unconnected = self.get(&info.key).is_some_and(|p| !p.connected());
            if resumed && (new || unconnected) {
                to_call.push(info.key.clone());
            }
        }
        let (gone, sweep) = if resumed {
            (self.drop_unconfirmed(), None)
        } else {
            self.welcomes += 1;
            (Vec::new(), Some(self.welcomes))
        };
        let changed = added || !gone.is_empty();
        Welcomed { to_call, gone, sweep, changed }
    }

    /// Drops the peers not seen since the fresh welcome of `generation`, unless another fresh
    /// welcome came since. Their data, to be dropped by the caller.
    pub fn sweep(&mut self, generation: u32) -> Vec<T> {
        if self.welcomes != generation {
            return Vec::new();
        }
        self.drop_unconfirmed()
    }

    fn drop_unconfirmed(&mut self) -> Vec<T> {
        let (kept, gone) = std::mem::take(&mut self.members).into_iter().partition(|m| m.confirmed);
        self.members = kept;
        gone.into_iter().map(|m| m.value).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{DisplayName, MediaState};

    /// A stand-in for a tile and a connection.
    #[derive(Debug, PartialEq)]
    struct Fake {
        name: String,
        muted: bool,
        connected: bool,
    }

    impl Payload for Fake {
        fn new(info: &PeerInfo) -> Self {
            Fake { name: info.name.to_string(), muted: info.media.muted, connected: false }
        }
        fn update(&mut self, info: &PeerInfo) {
            self.muted = info.media.muted;
        }
        fn connected(&self) -> bool {
            self.connected
        }
    }

    fn info(id: u64, key: &str) -> PeerInfo {
        PeerInfo {
            id: PeerId(id),
            name: DisplayName::parse(key).unwrap(),
            key: PeerKey(key.into()),
            media: MediaState::default(),
        }
    }

    fn key(k: &str) -> PeerKey {
        PeerKey(k.into())
    }

    fn keys(roster: &Roster<Fake>) -> Vec<&str> {
        roster.iter().map(|(k, _)| k.0.as_str()).collect()
    }

    #[test]
    fn the_smaller_key_is_polite() {
        let mut roster = Roster::<Fake>::default();
        roster.welcome(key("m"), &[info(1, "a"), info(2, "z")], false);
        assert!(!roster.polite(&key("a")));
        assert!(roster.polite(&key("z")));
    }

    #[test]
    fn ids_translate_both_ways_and_follow_a_rejoin() {
        let mut roster = Roster::<Fake>::default();
        roster.welcome(key("me"), &[info(1, "ada")], false);
        assert_eq!(roster.key_of(PeerId(1)), Some(key("ada")));
        // Ada rejoins a restarted server: new id, same key, same data.
        roster.get_mut(&key("ada")).unwrap().connected = true;
        assert!(!roster.upsert(&info(7, "ada")));
        assert_eq!(roster.key_of(PeerId(1)), None);
        assert_eq!(roster.id_of(&key("ada")), Some(PeerId(7)));
        assert!(roster.get(&key("ada")).unwrap().connected);
    }

    #[test]
    fn a_known_peer_listed_again_is_updated_not_added() {
        let mut roster = Roster::<Fake>::default();
        roster.welcome(key("me"), &[info(1, "ada")], false);
        let mut muted = info(1, "ada");
        muted.media.muted = true;
        assert!(!roster.upsert(&muted));
        assert_eq!(roster.len(), 1);
        assert!(roster.get(&key("ada")).unwrap().muted);
        assert_eq!(roster.get(&key("ada")).unwrap().name, "ada");
    }

    #[test]
    fn a_resumed_welcome_calls_newcomers_and_the_unconnected_and_drops_the_gone() {
        let mut roster = Roster::<Fake>::default();
        roster.welcome(key("me"), &[info(1, "ada"), info(2, "bob"), info(3, "cy")], false);
        roster.get_mut(&key("ada")).unwrap().connected = true;
        roster.get_mut(&key("cy")).unwrap().connected = true;
        // Away for a moment: Cy left, Dee joined, Bob never got connected.
        let welcomed = roster.welcome(key("me"), &[info(1, "ada"), info(2, "bob"), info(4, "dee")], true);
        assert_eq!(welcomed.to_call, vec![key("bob"), key("dee")]);
        assert_eq!(welcomed.gone.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["cy"]);
        assert_eq!(welcomed.sweep, None);
        assert!(welcomed.changed);
        assert_eq!(keys(&roster), vec!["ada", "bob", "dee"]);
    }

    #[test]
    fn a_fresh_welcome_keeps_everyone_until_the_sweep() {
        let mut roster = Roster::<Fake>::default();
        roster.welcome(key("me"), &[info(1, "ada"), info(2, "bob")], false);
        // The server restarted: only Ada is back so far, with a new id.
        let welcomed = roster.welcome(key("me"), &[info(10, "ada")], false);
        assert!(welcomed.to_call.is_empty());
        assert!(welcomed.gone.is_empty());
        assert!(!welcomed.changed);
        assert_eq!(keys(&roster), vec!["ada", "bob"]);
        let generation = welcomed.sweep.unwrap();
        // Bob comes back in time through peer_joined.
        assert!(!roster.upsert(&info(11, "bob")));
        assert!(roster.sweep(generation).is_empty());
        assert_eq!(keys(&roster), vec!["ada", "bob"]);
    }

    #[test]
    fn the_sweep_drops_who_did_not_come_back_unless_a_newer_welcome_came() {
        let mut roster = Roster::<Fake>::default();
        roster.welcome(key("me"), &[info(1, "ada"), info(2, "bob")], false);
        let first = roster.welcome(key("me"), &[info(10, "ada")], false).sweep.unwrap();
        let second = roster.welcome(key("me"), &[info(20, "ada")], false).sweep.unwrap();
        assert!(roster.sweep(first).is_empty(), "an old sweep does nothing");
        let gone = roster.sweep(second);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].name, "bob");
        assert_eq!(keys(&roster), vec!["ada"]);
    }

    #[test]
    fn remove_and_clear_hand_the_data_back() {
        let mut roster = Roster::<Fake>::default();
        roster.welcome(key("me"), &[info(1, "ada"), info(2, "bob")], false);
        assert_eq!(roster.remove(&key("ada")).unwrap().name, "ada");
        assert!(roster.remove(&key("ada")).is_none());
        assert_eq!(roster.clear().len(), 1);
        assert_eq!(roster.len(), 0);
    }
}
