//! A node's life in the cluster: its subscription to its own channel, its presence key, and the
//! reaping of nodes whose presence expired (see the module above for why).

use super::envelope::Envelope;
use super::{key, EndReason, Shared, Unavailable};
use axum::body::Bytes;
use futures::StreamExt;
use redis::AsyncCommands;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Shared {
    /// Sets this node's presence key; false if it had lapsed (the others may have reaped it).
    pub(super) async fn refresh_presence(&self, ttl: Duration) -> Result<bool, Unavailable> {
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

/// A subscription to this node's channel.
pub(super) async fn subscribe(client: &redis::Client, shared: &Shared) -> Result<redis::aio::PubSub, Unavailable> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(shared.channel(&shared.node)).await?;
    Ok(pubsub)
}

/// Receives this node's deliveries until `shutdown`, resubscribing after a lost connection.
pub(super) async fn receive(
    shared: Arc<Shared>,
    client: redis::Client,
    pubsub: redis::aio::PubSub,
    shutdown: CancellationToken,
) {
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
                    // One copy out of the connection's buffer; the frames inside share it.
                    Some(msg) => match Envelope::parse(Bytes::copy_from_slice(msg.get_payload_bytes())) {
                        Ok(envelope) => shared.deliver(envelope),
                        Err(e) => tracing::warn!("{e}"),
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

/// Refreshes this node's presence three times a TTL and reaps dead nodes every half TTL, until
/// `shutdown`. After a shutdown the key expires on its own: browsers have a TTL to resume their
/// places on other nodes before they are announced as left.
pub(super) async fn keep(shared: Arc<Shared>, ttl: Duration, shutdown: CancellationToken) {
    let mut refresh = tokio::time::interval(ttl / 3);
    let mut reap = tokio::time::interval(ttl / 2);
    loop {
        tokio::select! {
            _ = refresh.tick() => match shared.refresh_presence(ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("this node's presence had lapsed: closing its sockets so that they join again");
                    shared.lock_local().end_all(EndReason::Lost);
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
