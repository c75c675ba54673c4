//! The cluster registry: rooms kept in Redis, so that any node serves any room (`--redis-url`).
//!
//! Every node holds only its own sockets (their outboxes, by peer id). Who is in which room, the
//! password, the chat history and the counts live in Redis, and every change of a room is one Lua
//! script (`*.lua` beside this file), so Redis applies it atomically however many nodes race. A script
//! that has something to tell members publishes it to each concerned node's channel
//! (`confab:node:<node>`), one [`envelope`] per node; each node subscribes to its own channel and
//! hands what arrives to the right outboxes. Messages are encoded once, by the node they start
//! from, and reach the sockets of every node as those same bytes. A signal between two peers on the same node takes
//! the same way (one script call, one publish), so there is only one path to test.
//!
//! # Presence
//! A node keeps `confab:alive:<node>` alive with a TTL. When a node dies (or loses Redis for
//! longer than the TTL) its key expires; the other nodes notice within half a TTL and run
//! `reap.lua`, which removes the dead node's members and announces them as left. Their browsers
//! meanwhile reconnect through the load balancer to a live node and take their places back by
//! key (a resume), so a call whose node died goes on without anyone leaving, as long as its
//! people come back within the TTL. A node that finds its own presence lapsed (Redis was gone
//! too long and the others reaped it) closes its sockets with 1013, so that their browsers join
//! again as new.
//!
//! # Failure
//! Commands go through the `redis` crate's reconnecting `ConnectionManager`; a command that
//! fails ends the socket that asked with 1013 (try again later), and the browser reconnects and
//! resumes. The subscription reconnects on its own; deliveries published while it was down are
//! lost (browsers recover from lost negotiation messages with an ICE restart or by resuming).
//!
//! The layout assumes one Redis (with replicas if wanted), not Redis Cluster: scripts touch keys
//! they derive from the room name.

mod envelope;
mod presence;

use super::outboxes::Outboxes;
use super::password::{matches, salted_digest};
use super::{
    media_announcement, stamp_chat, welcome_chat, EndReason, Frame, JoinError, Joined, Joiner, Limits, RelayError,
    Unavailable, CHAT_HISTORY, JOIN_WINDOW,
};
use confab_protocol::{ChatMessage, ListedRoom, MediaState, PeerId, PeerInfo, RoomName, ServerMsg};
use envelope::Envelope;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How long a command may wait for Redis's answer.
const REDIS_ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The prefix of every key and channel (the scripts use the same).
const PREFIX: &str = "confab:";

impl From<redis::RedisError> for Unavailable {
    fn from(e: redis::RedisError) -> Self {
        Unavailable(e.to_string())
    }
}

impl From<redis::ParsingError> for Unavailable {
    fn from(e: redis::ParsingError) -> Self {
        Unavailable(format!("unexpected answer: {e}"))
    }
}

/// The scripts, loaded once (the `redis` crate sends EVALSHA and falls back to EVAL).
struct Scripts {
    lookup: Script,
    join: Script,
    relay: Script,
    update: Script,
    chat: Script,
    leave: Script,
    reap: Script,
    listed: Script,
}

macro_rules! with_prelude {
    ($file:literal) => {
        Script::new(concat!(include_str!("prelude.lua"), include_str!($file)))
    };
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            lookup: with_prelude!("lookup.lua"),
            join: with_prelude!("join.lua"),
            relay: Script::new(include_str!("relay.lua")),
            update: with_prelude!("update.lua"),
            chat: with_prelude!("chat.lua"),
            leave: with_prelude!("leave.lua"),
            reap: with_prelude!("reap.lua"),
            listed: with_prelude!("listed.lua"),
        }
    }
}

/// What this node keeps beside the outbox of each of its sockets.
#[derive(Debug)]
struct Local {
    room: RoomName,
    info: PeerInfo,
}

/// The part of the cluster registry its background tasks share.
struct Shared {
    /// This node's name in Redis (random per process).
    node: String,
    redis: ConnectionManager,
    scripts: Scripts,
    /// The sockets of this node.
    local: Mutex<Outboxes<Local>>,
    /// Who waits for which of its markers to come back ([`Cluster::flush`]).
    markers: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

/// The Redis-backed room registry of one node.
pub struct Cluster {
    shared: Arc<Shared>,
    limits: Limits,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.shared.node).field("limits", &self.limits).finish()
    }
}

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port/db`, `rediss://…` or `redis+unix:///path`.
    pub url: String,
    /// How long a node's presence lasts without a refresh; its members are removed after that.
    pub presence_ttl: Duration,
}

impl Cluster {
    /// Connects to Redis, subscribes to this node's channel and starts keeping the node's
    /// presence, until `shutdown`. Fails if Redis cannot be reached now.
    pub async fn connect(
        config: ClusterConfig,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> Result<Self, Unavailable> {
        let client = redis::Client::open(config.url.as_str())?;
        // The crate's default gives up on an answer after 500 ms; a busy host (or Redis doing a
        // background save) can take longer without anything being wrong, and a command given up
        // on closes a socket. Two seconds, then the socket is closed with 1013.
        let manager = redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(REDIS_ANSWER_WITHIN));
        let redis = client.get_connection_manager_with_config(manager).await?;
        let node = format!("{:016x}", rand::random::<u64>());
        let shared = Arc::new(Shared {
            node,
            redis,
            scripts: Scripts::new(),
            local: Mutex::default(),
            markers: Mutex::default(),
        });
        // Subscribed before the first join, so that no delivery to this node is missed.
        let pubsub = presence::subscribe(&client, &shared).await?;
        let ttl = config.presence_ttl.max(Duration::from_millis(300));
        shared.refresh_presence(ttl).await?;
        tokio::spawn(presence::receive(shared.clone(), client, pubsub, shutdown.clone()));
        tokio::spawn(presence::keep(shared.clone(), ttl, shutdown));
        tracing::info!(node = %shared.node, "joined the cluster");
        Ok(Cluster { shared, limits: limits.clamped() })
    }

    /// This node's name in Redis.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// The most members one room may hold.
    pub fn capacity(&self) -> usize {
        self.limits.room_capacity
    }

    /// See [`super::Registry::join`]: the capacity, password and totals are checked in Redis.
    pub async fn join(&self, room: &RoomName, joiner: Joiner) -> Result<Result<Joined, JoinError>, Unavailable> {
        let mut redis = self.shared.redis.clone();
        let password = joiner.password();
        // A room this join creates gets this password (if one was given).
        let new_salt: [u8; 16] = rand::random();
        let (new_salt, new_digest) = match password {
            Some(p) => (hex(&new_salt), hex(&salted_digest(&new_salt, p))),
            None => (String::new(), String::new()),
        };
        let passwords = &self.limits.passwords;
        // Optimistic: look, decide, and let the script check that nothing changed in between.
        for _ in 0..8 {
            let (old_id, old_info, salt, digest, fresh): (String, String, String, String, u64) =
                self.shared.scripts.lookup.arg(room.as_str()).arg(&joiner.key.0).invoke_async(&mut redis).await?;
            // The password is checked here, in constant time, against the digest the room had
            // when we looked; the script takes the verdict only if the room still has that
            // digest, and keeps the guessing budgets.
            let verdict = match (password, unhex::<16>(&salt), unhex::<32>(&digest)) {
                (None, _, _) => "",
                (Some(p), Some(salt), Some(digest)) if matches(&salt, &digest, p) => "1",
                (Some(_), _, _) => "0",
            };
            let session = fresh;
            let resumed_id = old_id.parse::<u64>().ok().map(PeerId);
            let id = resumed_id.unwrap_or(PeerId(fresh - 1));
            let info = PeerInfo { id, name: joiner.name.clone(), key: joiner.key.clone(), media: joiner.media };
            let announce = match resumed_id {
                Some(id) => {
                    let before = serde_json::from_str::<PeerInfo>(&old_info).map(|i| i.media).ok();
                    media_announcement(id, before, joiner.media)
                }
                None => Some(Frame::of(&ServerMsg::PeerJoined { peer: info.clone() })),
            };
            let info_json = serde_json::to_string(&info).map_err(|e| Unavailable(e.to_string()))?;
            let answer: Value = self
                .shared
                .scripts
                .join
                .arg(room.as_str())
                .arg(&joiner.key.0)
                .arg(if resumed_id.is_some() { "resume" } else { "new" })
                .arg(id.0)
                .arg(session)
                .arg(&self.shared.node)
                .arg(&info_json)
                .arg(announce.as_ref().map_or("", Frame::as_str))
                .arg(&salt)
                .arg(&digest)
                .arg(&new_salt)
                .arg(&new_digest)
                .arg(if joiner.listed { "1" } else { "0" })
                .arg(self.limits.room_capacity)
                .arg(self.limits.max_rooms)
                .arg(self.limits.max_peers)
                .arg(joiner.ip.to_string())
                .arg(self.limits.max_places_per_ip)
                .arg(self.limits.max_joins_per_ip_per_sec)
                .arg(millis(JOIN_WINDOW))
                .arg(verdict)
                .arg(passwords.failures_per_ip)
                .arg(millis(passwords.ip_window))
                .arg(passwords.free_failures_per_room)
                .arg(millis(passwords.room_delay))
                .arg(millis(passwords.room_max_delay))
                .arg(millis(passwords.room_memory))
                .invoke_async(&mut redis)
                .await?;
            let (resumed, locked, peers, chat) = match JoinAnswer::parse(answer, &self.limits)? {
                JoinAnswer::Retry => continue,
                JoinAnswer::Refused(e) => return Ok(Err(e)),
                JoinAnswer::Ok { resumed, locked, peers, chat } => (resumed, locked, peers, chat),
            };
            self.shared.lock_local().attach(id, session, joiner.outbox, Local { room: room.clone(), info });
            return Ok(Ok(Joined { id, session, peers, resumed, locked, chat }));
        }
        Err(Unavailable("the room kept changing during the join".into()))
    }

    /// Delivers `frame` (a signal from `from`) to `to`, if both are in `room`: one script call,
    /// one publish, wherever the two are.
    pub async fn relay(
        &self,
        room: &RoomName,
        from: PeerId,
        to: PeerId,
        frame: Frame,
    ) -> Result<Result<(), RelayError>, Unavailable> {
        let mut redis = self.shared.redis.clone();
        let found: u8 = self
            .shared
            .scripts
            .relay
            .arg(room.as_str())
            .arg(from.0)
            .arg(to.0)
            .arg(frame.as_str())
            .invoke_async(&mut redis)
            .await?;
        Ok(if found == 1 { Ok(()) } else { Err(RelayError::UnknownPeer(to)) })
    }

    /// See [`super::Registry::chat`].
    pub async fn chat(&self, room: &RoomName, id: PeerId, text: String, at_ms: u64) -> Result<(), Unavailable> {
        let Some(sender) = self.shared.lock_local().get(id).map(|l| l.data.info.clone()) else { return Ok(()) };
        let message = stamp_chat(&sender, text, at_ms);
        let kept = serde_json::to_string(&message).map_err(|e| Unavailable(e.to_string()))?;
        let frame = Frame::of(&ServerMsg::Chat { message });
        let mut redis = self.shared.redis.clone();
        let _: u8 = self
            .shared
            .scripts
            .chat
            .arg(room.as_str())
            .arg(id.0)
            .arg(kept)
            .arg(frame.as_str())
            .arg(CHAT_HISTORY)
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }

    /// See [`super::Registry::set_media`].
    pub async fn set_media(&self, room: &RoomName, id: PeerId, media: MediaState) -> Result<(), Unavailable> {
        let changed = {
            let mut local = self.shared.lock_local();
            local.get_mut(id).and_then(|l| {
                let announce = media_announcement(id, Some(l.data.info.media), media)?;
                l.data.info.media = media;
                Some((l.session, l.data.info.clone(), announce))
            })
        };
        let Some((session, info, announce)) = changed else { return Ok(()) };
        let info = serde_json::to_string(&info).map_err(|e| Unavailable(e.to_string()))?;
        let mut redis = self.shared.redis.clone();
        let _: u8 = self
            .shared
            .scripts
            .update
            .arg(room.as_str())
            .arg(id.0)
            .arg(session)
            .arg(info)
            .arg(announce.as_str())
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }

    /// See [`super::Registry::leave`].
    pub async fn leave(&self, room: &RoomName, id: PeerId, session: u64) -> Result<(), Unavailable> {
        self.shared.lock_local().detach(id, session);
        self.shared.leave(room, id, session, "leave").await.map(|_| ())
    }

    /// See [`super::Registry::detach`].
    pub async fn detach(&self, room: &RoomName, id: PeerId, session: u64) -> Result<bool, Unavailable> {
        self.shared.lock_local().detach(id, session);
        self.shared.leave(room, id, session, "detach").await
    }

    /// See [`super::Registry::expire`].
    pub async fn expire(&self, room: &RoomName, id: PeerId, session: u64) -> Result<(), Unavailable> {
        self.shared.leave(room, id, session, "expire").await.map(|_| ())
    }

    /// The rooms listed on the start page, fullest first, at most `limit`: one script that
    /// reads a sorted set and the `limit` rooms it answers with, however many rooms are listed.
    pub async fn listed(&self, limit: usize) -> Result<Vec<ListedRoom>, Unavailable> {
        let mut redis = self.shared.redis.clone();
        let flat: Vec<(String, usize, bool)> = self.shared.scripts.listed.arg(limit).invoke_async(&mut redis).await?;
        Ok(flat
            .into_iter()
            .filter(|(_, people, _)| *people > 0)
            .filter_map(|(name, people, locked)| {
                Some(ListedRoom { name: RoomName::parse(&name).ok()?, people, locked })
            })
            .collect())
    }

    /// How many rooms exist in the cluster.
    pub async fn room_count(&self) -> Result<usize, Unavailable> {
        let mut redis = self.shared.redis.clone();
        Ok(redis.scard(key("rooms")).await?)
    }

    /// How many members all rooms of the cluster have together.
    pub async fn peer_count(&self) -> Result<usize, Unavailable> {
        let mut redis = self.shared.redis.clone();
        let n: Option<i64> = redis.get(key("peer_count")).await?;
        Ok(usize::try_from(n.unwrap_or(0)).unwrap_or(0))
    }

    /// How many members `room` has.
    pub async fn member_count(&self, room: &RoomName) -> Result<usize, Unavailable> {
        let mut redis = self.shared.redis.clone();
        Ok(redis.hlen(key(&format!("route:{}", room.as_str()))).await?)
    }

    /// Waits until every delivery published to this node before the call has been handed to its
    /// sockets: a marker published on the node's own channel comes back after all of them (a
    /// channel keeps its order). Sessions never need it; tests use it to compare the backends
    /// step by step.
    pub async fn flush(&self) -> Result<(), Unavailable> {
        let token = rand::random::<u64>();
        let (tx, rx) = oneshot::channel();
        self.shared.lock_markers().insert(token, tx);
        let mut redis = self.shared.redis.clone();
        let published: Result<i64, _> =
            redis.publish(self.shared.channel(&self.shared.node), format!("M{token}")).await;
        if let Err(e) = published {
            self.shared.lock_markers().remove(&token);
            return Err(e.into());
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.shared.lock_markers().remove(&token);
                Err(Unavailable("the node's own marker did not come back".into()))
            }
        }
    }

    /// How many sockets of this node are in rooms.
    pub fn local_count(&self) -> usize {
        self.shared.lock_local().len()
    }
}

/// The answer of `join.lua`.
enum JoinAnswer {
    Ok { resumed: bool, locked: bool, peers: Vec<PeerInfo>, chat: Vec<ChatMessage> },
    Refused(JoinError),
    Retry,
}

impl JoinAnswer {
    fn parse(value: Value, limits: &Limits) -> Result<Self, Unavailable> {
        let bad = |what: &str| Unavailable(format!("unexpected join answer: {what}"));
        let Value::Array(items) = value else { return Err(bad("not an array")) };
        let mut items = items.into_iter();
        let status: String = redis::from_redis_value(items.next().ok_or_else(|| bad("empty"))?)?;
        match status.as_str() {
            "ok" => {
                let resumed: i64 = redis::from_redis_value(items.next().ok_or_else(|| bad("resumed"))?)?;
                let locked: i64 = redis::from_redis_value(items.next().ok_or_else(|| bad("locked"))?)?;
                let peers: Vec<String> = redis::from_redis_value(items.next().ok_or_else(|| bad("peers"))?)?;
                let chat: Vec<String> = redis::from_redis_value(items.next().ok_or_else(|| bad("chat"))?)?;
                let mut peers: Vec<PeerInfo> = peers.iter().filter_map(|p| serde_json::from_str(p).ok()).collect();
                // Ids grow with every join in the cluster: by id is in the order they joined.
                peers.sort_by_key(|p| p.id);
                let chat = welcome_chat(chat.iter().map(|c| (c.len(), c)))
                    .into_iter()
                    .filter_map(|c| serde_json::from_str(c).ok())
                    .collect();
                Ok(JoinAnswer::Ok { resumed: resumed == 1, locked: locked == 1, peers, chat })
            }
            "retry" => Ok(JoinAnswer::Retry),
            "full" => Ok(JoinAnswer::Refused(JoinError::Full { capacity: limits.room_capacity })),
            "too_many_joins" => {
                let ms: i64 = redis::from_redis_value(items.next().ok_or_else(|| bad("retry after"))?)?;
                // A key without a time to live cannot happen inside the script; a second then.
                let ms = u64::try_from(ms).ok().filter(|ms| *ms > 0).unwrap_or(1000);
                Ok(JoinAnswer::Refused(JoinError::TooManyJoins { retry_after: Duration::from_millis(ms) }))
            }
            "too_many_places" => Ok(JoinAnswer::Refused(JoinError::TooManyPlaces { max: limits.max_places_per_ip })),
            "too_many_attempts" => {
                let ms: i64 = redis::from_redis_value(items.next().ok_or_else(|| bad("retry after"))?)?;
                let ms = u64::try_from(ms).ok().filter(|ms| *ms > 0).unwrap_or(1000);
                Ok(JoinAnswer::Refused(JoinError::TooManyAttempts { retry_after: Duration::from_millis(ms) }))
            }
            "password_required" => Ok(JoinAnswer::Refused(JoinError::PasswordRequired)),
            "wrong_password" => Ok(JoinAnswer::Refused(JoinError::WrongPassword)),
            "server_full" => Ok(JoinAnswer::Refused(JoinError::ServerFull)),
            other => Err(bad(other)),
        }
    }
}

impl Shared {
    fn channel(&self, node: &str) -> String {
        key(&format!("node:{node}"))
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, Outboxes<Local>> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_markers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        self.markers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn leave(&self, room: &RoomName, id: PeerId, session: u64, mode: &str) -> Result<bool, Unavailable> {
        let mut redis = self.redis.clone();
        let changed: u8 =
            self.scripts.leave.arg(room.as_str()).arg(id.0).arg(session).arg(mode).invoke_async(&mut redis).await?;
        Ok(changed == 1)
    }

    /// Hands one published envelope to the local sockets; those that do not keep up leave
    /// their rooms.
    fn deliver(self: &Arc<Self>, envelope: Envelope) {
        let slow = match envelope {
            Envelope::Deliver { to, frame } => self.lock_local().deliver(to, &frame),
            Envelope::Left { to, gone } => self.lock_local().deliver(to, &Frame::of(&ServerMsg::PeerLeft { id: gone })),
            Envelope::Replaced { id, session } => {
                self.lock_local().end(id, session, EndReason::Replaced);
                Vec::new()
            }
            Envelope::Marker(token) => {
                if let Some(waiter) = self.lock_markers().remove(&token) {
                    let _ = waiter.send(());
                }
                Vec::new()
            }
        };
        for (id, session, Local { room, .. }) in slow {
            let shared = self.clone();
            tokio::spawn(async move {
                if let Err(e) = shared.leave(&room, id, session, "leave").await {
                    tracing::warn!(peer = %id, "could not remove a slow peer: {e}");
                }
            });
        }
    }
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A duration in whole milliseconds, as scripts take it.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_go_through_hex() {
        let salt: [u8; 16] = rand::random();
        assert_eq!(unhex::<16>(&hex(&salt)), Some(salt));
        assert_eq!(unhex::<16>(""), None);
        assert_eq!(unhex::<16>("zz"), None);
        let digest: [u8; 32] = rand::random();
        assert_eq!(unhex::<32>(&hex(&digest)), Some(digest));
        assert_eq!(unhex::<32>(&hex(&salt)), None);
    }
}
