//! The cluster registry: rooms kept in Redis, so that any node serves any room (`--redis-url`).
//!
//! Every node holds only its own sockets (their outboxes, by peer id). Who is in which room, the
//! password, the chat history and the counts live in Redis, and every change of a room is one Lua
//! script (`cluster/*.lua`), so Redis applies it atomically however many nodes race. A script
//! that has something to tell members publishes it to each concerned node's channel
//! (`confab:node:<node>`), one message per node; each node subscribes to its own channel and
//! hands what arrives to the right outboxes. A signal between two peers on the same node takes
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

use crate::rooms::{
    salted_digest, welcome_chat, JoinError, Joined, Joiner, Limits, Outbox, RelayError, SendError, CHAT_HISTORY,
    JOIN_WINDOW,
};
use confab_protocol::{ChatMessage, ListedRoom, MediaState, PeerId, PeerInfo, RoomName, ServerMsg, Signal};
use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// The prefix of every key and channel (the scripts use the same).
const PREFIX: &str = "confab:";

/// The registry could not reach Redis.
#[derive(Debug, thiserror::Error)]
#[error("the room store is unavailable: {0}")]
pub struct Unavailable(String);

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

/// Why a socket's outbox was dropped by the cluster registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Another socket took the place (same key).
    Replaced,
    /// The socket did not keep up, or this node lost its presence.
    Dropped,
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
        Script::new(concat!(include_str!("cluster/prelude.lua"), include_str!($file)))
    };
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            lookup: with_prelude!("cluster/lookup.lua"),
            join: with_prelude!("cluster/join.lua"),
            relay: Script::new(include_str!("cluster/relay.lua")),
            update: with_prelude!("cluster/update.lua"),
            chat: with_prelude!("cluster/chat.lua"),
            leave: with_prelude!("cluster/leave.lua"),
            reap: with_prelude!("cluster/reap.lua"),
            listed: with_prelude!("cluster/listed.lua"),
        }
    }
}

/// One socket of this node.
struct Local {
    room: RoomName,
    session: u64,
    outbox: Outbox,
    info: PeerInfo,
}

/// What scripts publish to a node's channel.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Envelope {
    /// Give `msg` to these local peers.
    Deliver { to: Vec<PeerId>, msg: ServerMsg },
    /// The socket of `id` attached as `session` lost its place to a newer one.
    Drop { id: PeerId, session: u64 },
}

/// The part of the cluster registry its background tasks share.
struct Shared {
    /// This node's name in Redis (random per process).
    node: String,
    redis: ConnectionManager,
    scripts: Scripts,
    /// The sockets of this node, by peer id.
    local: Mutex<HashMap<PeerId, Local>>,
    /// Why outboxes were dropped, for their sessions to read.
    ended: Mutex<HashMap<(PeerId, u64), Ended>>,
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
        let redis = client.get_connection_manager().await?;
        let node = format!("{:016x}", rand::random::<u64>());
        let shared =
            Arc::new(Shared { node, redis, scripts: Scripts::new(), local: Mutex::default(), ended: Mutex::default() });
        // Subscribed before the first join, so that no delivery to this node is missed.
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(shared.channel(&shared.node)).await?;
        let ttl = config.presence_ttl.max(Duration::from_millis(300));
        shared.refresh_presence(ttl).await?;
        tokio::spawn(receive(shared.clone(), client, pubsub, shutdown.clone()));
        tokio::spawn(keep_presence(shared.clone(), ttl, shutdown));
        tracing::info!(node = %shared.node, "joined the cluster");
        Ok(Cluster { shared, limits: Limits { room_capacity: limits.room_capacity.max(1), ..limits } })
    }

    /// This node's name in Redis.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// The most members one room may hold.
    pub fn capacity(&self) -> usize {
        self.limits.room_capacity
    }

    /// Like [`crate::rooms::Rooms::join`], cluster-wide: the capacity, password and totals are
    /// checked in Redis.
    pub async fn join(&self, room: &RoomName, joiner: Joiner) -> Result<Result<Joined, JoinError>, Unavailable> {
        let mut redis = self.shared.redis.clone();
        let password = joiner.password.as_deref().filter(|p| !p.is_empty());
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
            let verdict = match (password, unhex16(&salt), unhex32(&digest)) {
                (None, _, _) => "",
                (Some(p), Some(salt), Some(digest)) if bool::from(salted_digest(&salt, p).ct_eq(&digest)) => "1",
                (Some(_), _, _) => "0",
            };
            let (mode, id, announce) = match old_id.parse::<u64>() {
                Ok(id) => {
                    let id = PeerId(id);
                    let old_media = serde_json::from_str::<PeerInfo>(&old_info).map(|i| i.media).ok();
                    let announce = if old_media != Some(joiner.media) {
                        ServerMsg::PeerMedia { id, media: joiner.media }.to_json()
                    } else {
                        String::new()
                    };
                    ("resume", id, announce)
                }
                Err(_) => ("new", PeerId(fresh - 1), String::new()),
            };
            let session = fresh;
            let info = PeerInfo { id, name: joiner.name.clone(), key: joiner.key.clone(), media: joiner.media };
            let announce =
                if mode == "new" { ServerMsg::PeerJoined { peer: info.clone() }.to_json() } else { announce };
            let info_json = serde_json::to_string(&info).expect("a PeerInfo serializes");
            let answer: Value = self
                .shared
                .scripts
                .join
                .arg(room.as_str())
                .arg(&joiner.key.0)
                .arg(mode)
                .arg(id.0)
                .arg(session)
                .arg(&self.shared.node)
                .arg(&info_json)
                .arg(&announce)
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
            let answer = JoinAnswer::parse(answer, &self.limits)?;
            let (resumed, locked, peers, chat) = match answer {
                JoinAnswer::Retry => continue,
                JoinAnswer::Refused(e) => return Ok(Err(e)),
                JoinAnswer::Ok { resumed, locked, peers, chat } => (resumed, locked, peers, chat),
            };
            self.shared.attach(id, Local { room: room.clone(), session, outbox: joiner.outbox, info });
            return Ok(Ok(Joined { id, session, peers, resumed, locked, chat }));
        }
        Err(Unavailable("the room kept changing during the join".into()))
    }

    /// Like [`crate::rooms::Rooms::relay`].
    pub async fn relay(
        &self,
        room: &RoomName,
        from: PeerId,
        to: PeerId,
        signal: Signal,
    ) -> Result<Result<(), RelayError>, Unavailable> {
        if from == to {
            return Ok(Err(RelayError::UnknownPeer(to)));
        }
        let msg = ServerMsg::Signal { from, signal }.to_json();
        let mut redis = self.shared.redis.clone();
        let found: u8 = self
            .shared
            .scripts
            .relay
            .arg(room.as_str())
            .arg(from.0)
            .arg(to.0)
            .arg(msg)
            .invoke_async(&mut redis)
            .await?;
        Ok(if found == 1 { Ok(()) } else { Err(RelayError::UnknownPeer(to)) })
    }

    /// Like [`crate::rooms::Rooms::chat`].
    pub async fn chat(&self, room: &RoomName, id: PeerId, text: String, at_ms: u64) -> Result<(), Unavailable> {
        let Some(sender) = self.shared.local_info(id) else { return Ok(()) };
        let message = ChatMessage { id: rand::random(), from: sender.key, name: sender.name, text, at_ms };
        let message_json = serde_json::to_string(&message).expect("a chat message serializes");
        let msg = ServerMsg::Chat { message }.to_json();
        let mut redis = self.shared.redis.clone();
        let _: u8 = self
            .shared
            .scripts
            .chat
            .arg(room.as_str())
            .arg(id.0)
            .arg(message_json)
            .arg(msg)
            .arg(CHAT_HISTORY)
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Like [`crate::rooms::Rooms::set_media`].
    pub async fn set_media(&self, room: &RoomName, id: PeerId, media: MediaState) -> Result<(), Unavailable> {
        let changed = {
            let mut local = self.shared.lock_local();
            match local.get_mut(&id) {
                Some(l) if l.info.media != media => {
                    l.info.media = media;
                    Some((l.session, l.info.clone()))
                }
                _ => None,
            }
        };
        let Some((session, info)) = changed else { return Ok(()) };
        let mut redis = self.shared.redis.clone();
        let _: u8 = self
            .shared
            .scripts
            .update
            .arg(room.as_str())
            .arg(id.0)
            .arg(session)
            .arg(serde_json::to_string(&info).expect("a PeerInfo serializes"))
            .arg(ServerMsg::PeerMedia { id, media }.to_json())
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Like [`crate::rooms::Rooms::leave`].
    pub async fn leave(&self, room: &RoomName, id: PeerId, session: u64) -> Result<(), Unavailable> {
        self.shared.detach_local(id, session);
        self.shared.leave(room, id, session, "leave").await.map(|_| ())
    }

    /// Like [`crate::rooms::Rooms::detach`].
    pub async fn detach(&self, room: &RoomName, id: PeerId, session: u64) -> Result<bool, Unavailable> {
        self.shared.detach_local(id, session);
        self.shared.leave(room, id, session, "detach").await
    }

    /// Like [`crate::rooms::Rooms::expire`].
    pub async fn expire(&self, room: &RoomName, id: PeerId, session: u64) -> Result<(), Unavailable> {
        self.shared.leave(room, id, session, "expire").await.map(|_| ())
    }

    /// Why the outbox of `id` attached as `session` was dropped.
    pub fn ended(&self, id: PeerId, session: u64) -> Ended {
        self.shared.lock_ended().remove(&(id, session)).unwrap_or(Ended::Dropped)
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

    fn lock_local(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Local>> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_ended(&self) -> std::sync::MutexGuard<'_, HashMap<(PeerId, u64), Ended>> {
        self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn local_info(&self, id: PeerId) -> Option<PeerInfo> {
        self.lock_local().get(&id).map(|l| l.info.clone())
    }

    /// Makes `local` the socket of its peer id on this node; an older socket of the same place
    /// on this node is replaced.
    fn attach(&self, id: PeerId, local: Local) {
        let older = self.lock_local().insert(id, local);
        if let Some(older) = older {
            self.lock_ended().insert((id, older.session), Ended::Replaced);
        }
    }

    /// Forgets the local socket of `id` if it is still `session`.
    fn detach_local(&self, id: PeerId, session: u64) {
        let mut local = self.lock_local();
        if local.get(&id).is_some_and(|l| l.session == session) {
            local.remove(&id);
        }
        drop(local);
        self.lock_ended().remove(&(id, session));
    }

    /// Drops the outbox of `id` if it is still `session`, telling its session why.
    fn end_local(&self, id: PeerId, session: u64, why: Ended) -> Option<RoomName> {
        let mut local = self.lock_local();
        if local.get(&id).is_none_or(|l| l.session != session) {
            return None;
        }
        let gone = local.remove(&id)?;
        drop(local);
        self.lock_ended().insert((id, session), why);
        Some(gone.room)
    }

    async fn leave(&self, room: &RoomName, id: PeerId, session: u64, mode: &str) -> Result<bool, Unavailable> {
        let mut redis = self.redis.clone();
        let changed: u8 =
            self.scripts.leave.arg(room.as_str()).arg(id.0).arg(session).arg(mode).invoke_async(&mut redis).await?;
        Ok(changed == 1)
    }

    /// Hands one published envelope to the local sockets.
    fn deliver(self: &Arc<Self>, envelope: Envelope) {
        match envelope {
            Envelope::Deliver { to, msg } => {
                let mut slow = Vec::new();
                {
                    let local = self.lock_local();
                    for id in to {
                        let Some(l) = local.get(&id) else { continue };
                        if let Err(SendError::Full) = l.outbox.try_send(msg.clone()) {
                            tracing::warn!(peer = %id, "outbox full: removing a peer that does not keep up");
                            slow.push((id, l.session));
                        }
                    }
                }
                for (id, session) in slow {
                    if let Some(room) = self.end_local(id, session, Ended::Dropped) {
                        let shared = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = shared.leave(&room, id, session, "leave").await {
                                tracing::warn!(peer = %id, "could not remove a slow peer: {e}");
                            }
                        });
                    }
                }
            }
            Envelope::Drop { id, session } => {
                self.end_local(id, session, Ended::Replaced);
            }
        }
    }

    /// Sets this node's presence key; false if it had lapsed (the others may have reaped it).
    async fn refresh_presence(&self, ttl: Duration) -> Result<bool, Unavailable> {
        let mut redis = self.redis.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let alive = key(&format!("alive:{}", self.node));
        let (existed, _): (Option<String>, i64) = redis::pipe()
            .cmd("SET")
            .arg(&alive)
            .arg(1)
            .arg("PX")
            .arg(ms)
            .arg("GET")
            .sadd(key("nodes"), &self.node)
            .query_async(&mut redis)
            .await?;
        Ok(existed.is_some())
    }

    /// Removes the members of every node whose presence expired.
    async fn reap_dead_nodes(&self) -> Result<(), Unavailable> {
        let mut redis = self.redis.clone();
        let nodes: Vec<String> = redis.smembers(key("nodes")).await?;
        for node in nodes.iter().filter(|n| **n != self.node) {
            let alive: bool = redis.exists(key(&format!("alive:{node}"))).await?;
            if !alive {
                let removed: u64 = self.scripts.reap.arg(node).invoke_async(&mut redis).await?;
                tracing::info!(%node, removed, "a node's presence expired: removed its members");
            }
        }
        Ok(())
    }
}

/// Receives this node's deliveries until `shutdown`, resubscribing after a lost connection.
async fn receive(shared: Arc<Shared>, client: redis::Client, pubsub: redis::aio::PubSub, shutdown: CancellationToken) {
    let mut pubsub = Some(pubsub);
    loop {
        let mut current = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&client, &shared).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("cannot subscribe to this node's channel: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            },
        };
        let mut messages = current.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                        Ok(envelope) => shared.deliver(envelope),
                        Err(e) => tracing::warn!("unreadable delivery: {e}"),
                    },
                    None => {
                        tracing::warn!("lost the subscription to this node's channel; resubscribing");
                        break;
                    }
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

async fn subscribe(client: &redis::Client, shared: &Shared) -> Result<redis::aio::PubSub, Unavailable> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(shared.channel(&shared.node)).await?;
    Ok(pubsub)
}

/// Refreshes this node's presence three times a TTL and reaps dead nodes every half TTL, until
/// `shutdown`. After a shutdown the key expires on its own: browsers have a TTL to resume their
/// places on other nodes before they are announced as left.
async fn keep_presence(shared: Arc<Shared>, ttl: Duration, shutdown: CancellationToken) {
    let mut refresh = tokio::time::interval(ttl / 3);
    let mut reap = tokio::time::interval(ttl / 2);
    loop {
        tokio::select! {
            _ = refresh.tick() => match shared.refresh_presence(ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("this node's presence had lapsed: closing its sockets so that they join again");
                    let all: Vec<(PeerId, u64)> = shared.lock_local().iter().map(|(id, l)| (*id, l.session)).collect();
                    for (id, session) in all {
                        shared.end_local(id, session, Ended::Dropped);
                    }
                }
                Err(e) => tracing::warn!("cannot refresh this node's presence: {e}"),
            },
            _ = reap.tick() => {
                if let Err(e) = shared.reap_dead_nodes().await {
                    tracing::warn!("cannot look for dead nodes: {e}");
                }
            }
            _ = shutdown.cancelled() => return,
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

fn unhex16(s: &str) -> Option<[u8; 16]> {
    unhex(s)
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    unhex(s)
}

/// A duration in whole milliseconds, as scripts take it.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_as_the_scripts_write_them() {
        let deliver = r#"{"t":"deliver","to":[3,7],"msg":{"type":"peer_left","id":5}}"#;
        assert_eq!(
            serde_json::from_str::<Envelope>(deliver).unwrap(),
            Envelope::Deliver { to: vec![PeerId(3), PeerId(7)], msg: ServerMsg::PeerLeft { id: PeerId(5) } }
        );
        let drop = r#"{"t":"drop","id":4,"session":12}"#;
        assert_eq!(serde_json::from_str::<Envelope>(drop).unwrap(), Envelope::Drop { id: PeerId(4), session: 12 });
    }

    #[test]
    fn salts_go_through_hex() {
        let salt: [u8; 16] = rand::random();
        assert_eq!(unhex16(&hex(&salt)), Some(salt));
        assert_eq!(unhex16(""), None);
        assert_eq!(unhex16("zz"), None);
        let digest: [u8; 32] = rand::random();
        assert_eq!(unhex32(&hex(&digest)), Some(digest));
        assert_eq!(unhex32(&hex(&salt)), None);
    }
}
