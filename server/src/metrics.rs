//! Prometheus metrics (OpenMetrics text at `/metrics`), with the `prometheus-client` crate.
//!
//! Counters are bumped where things happen; the gauges of what exists now (connections, rooms,
//! people, TURN allocations) are read from their owners at scrape time, so they cannot drift.

use confab_protocol::ErrorCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<TypeLabel, Counter>,
    errors: Family<CodeLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
    joins: Counter,
    connections: Gauge,
    http_connections: Gauge,
    rooms: Gauge,
    peers: Gauge,
    turn_allocations: Gauge,
    turn_nonces: Gauge,
    turn_refused: Family<ReasonLabel, Counter>,
}

/// What exists at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Open WebSocket sessions.
    pub connections: usize,
    /// Open connections that are not WebSockets.
    pub http_connections: usize,
    /// Rooms with at least one member.
    pub rooms: usize,
    /// Members over all rooms.
    pub peers: usize,
    /// Allocations on the embedded TURN server.
    pub turn_allocations: usize,
    /// Nonces the embedded TURN server holds.
    pub turn_nonces: usize,
    /// What the embedded TURN server refused or dropped since start, by reason.
    pub turn_refused: Vec<(&'static str, u64)>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("confab");
        let metrics = Metrics {
            messages: Family::default(),
            errors: Family::default(),
            refused: Family::default(),
            joins: Counter::default(),
            connections: Gauge::default(),
            http_connections: Gauge::default(),
            rooms: Gauge::default(),
            peers: Gauge::default(),
            turn_allocations: Gauge::default(),
            turn_nonces: Gauge::default(),
            turn_refused: Family::default(),
            registry: Registry::default(),
        };
        registry.register("messages", "Client messages carried out, by type", metrics.messages.clone());
        registry.register("errors", "Error frames sent to clients, by code", metrics.errors.clone());
        registry.register(
            "connections_refused",
            "WebSocket upgrades refused before they started, by reason",
            metrics.refused.clone(),
        );
        registry.register("joins", "Joins admitted (resumes included)", metrics.joins.clone());
        registry.register("connections", "Open WebSocket connections", metrics.connections.clone());
        registry.register(
            "http_connections",
            "Open connections that are not WebSockets",
            metrics.http_connections.clone(),
        );
        registry.register("rooms", "Rooms with at least one member", metrics.rooms.clone());
        registry.register("peers", "People in rooms, over all rooms", metrics.peers.clone());
        registry.register(
            "turn_allocations",
            "Allocations on the embedded TURN server",
            metrics.turn_allocations.clone(),
        );
        registry.register(
            "turn_nonces",
            "Nonces the embedded TURN server holds (of authenticated requests only)",
            metrics.turn_nonces.clone(),
        );
        registry.register(
            "turn_refused",
            "Datagrams the embedded TURN server refused or dropped, by reason",
            metrics.turn_refused.clone(),
        );
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    /// Counts one client message of `kind` (`offer`, `answer`, `candidate`, `media`, `join`, `leave`).
    pub fn message(&self, kind: &'static str) {
        self.messages.get_or_create(&TypeLabel { r#type: kind }).inc();
    }

    /// Counts one error frame.
    pub fn error(&self, code: ErrorCode) {
        self.errors.get_or_create(&CodeLabel { code: code.as_str() }).inc();
    }

    /// Counts one refused upgrade (`origin`, `per_ip`, `connections`).
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts one admitted join.
    pub fn joined(&self) {
        self.joins.inc();
    }

    /// The OpenMetrics text for `now`.
    pub fn render(&self, now: Snapshot) -> String {
        let set = |gauge: &Gauge, n: usize| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        set(&self.connections, now.connections);
        set(&self.http_connections, now.http_connections);
        set(&self.rooms, now.rooms);
        set(&self.peers, now.peers);
        set(&self.turn_allocations, now.turn_allocations);
        set(&self.turn_nonces, now.turn_nonces);
        for (reason, count) in now.turn_refused {
            // Counted by the TURN server itself; the counter catches up at each scrape.
            let counter = self.turn_refused.get_or_create(&ReasonLabel { reason });
            counter.inc_by(count.saturating_sub(counter.get()));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let metrics = Metrics::default();
        metrics.message("offer");
        metrics.message("offer");
        metrics.error(ErrorCode::RoomFull);
        metrics.refused("origin");
        metrics.joined();
        let text = metrics.render(Snapshot {
            connections: 3,
            http_connections: 4,
            rooms: 1,
            peers: 2,
            turn_allocations: 0,
            turn_nonces: 4,
            turn_refused: vec![("forbidden_peer", 5)],
        });
        for line in [
            "confab_messages_total{type=\"offer\"} 2",
            "confab_errors_total{code=\"room_full\"} 1",
            "confab_connections_refused_total{reason=\"origin\"} 1",
            "confab_joins_total 1",
            "confab_connections 3",
            "confab_http_connections 4",
            "confab_rooms 1",
            "confab_peers 2",
            "confab_turn_allocations 0",
            "confab_turn_nonces 4",
            "confab_turn_refused_total{reason=\"forbidden_peer\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
