//! The Prometheus metrics of one server, in the text exposition format.
//!
//! Labels carry only fixed words (an outcome or a status), never a handle, a name, a URL or a secret, so that a
//! scrape tells how the service is doing and nothing about whose connections it holds. Counters and the latency
//! histogram live in memory; the connection gauges are read from the database at scrape time, so every replica
//! reports the whole cluster's counts.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::model::Status;
use latchkey_core::{Error, Result};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The one label of the outcome counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The one label of the connections gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

/// Every status, so that a status without connections reads 0 rather than disappearing.
const STATUSES: [Status; 4] = [Status::Pending, Status::Connected, Status::NeedsReauth, Status::Error];

/// The metrics of a server. Cheap to clone; clones share the values.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    refreshes: Family<OutcomeLabel, Counter>,
    refresh_seconds: Histogram,
    token_requests: Family<OutcomeLabel, Counter>,
    webhook_deliveries: Family<OutcomeLabel, Counter>,
    connections: Family<StatusLabel, Gauge>,
    backlog: Gauge,
    database_up: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let refreshes = Family::<OutcomeLabel, Counter>::default();
        // 10 ms to about 82 s: provider round trips, and the waits for a lease held elsewhere.
        let refresh_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let token_requests = Family::<OutcomeLabel, Counter>::default();
        let webhook_deliveries = Family::<OutcomeLabel, Counter>::default();
        let connections = Family::<StatusLabel, Gauge>::default();
        let backlog = Gauge::default();
        let database_up = Gauge::default();
        let mut registry = Registry::with_prefix("latchkey");
        registry.register("refreshes", "Refreshes finished, by outcome", refreshes.clone());
        registry.register_with_unit(
            "refresh_duration",
            "How long refreshes took, from start to stored result",
            prometheus_client::registry::Unit::Seconds,
            refresh_seconds.clone(),
        );
        registry.register("token_requests", "Token endpoint requests answered, by outcome", token_requests.clone());
        registry.register("webhook_deliveries", "Webhook delivery attempts, by outcome", webhook_deliveries.clone());
        registry.register(
            "connections",
            "Connections by status, read from the database at scrape time",
            connections.clone(),
        );
        registry.register(
            "refresh_backlog",
            "Connections whose refresh is due now and not taken by any replica, read at scrape time",
            backlog.clone(),
        );
        registry.register("database_up", "1 when the scrape could read the database, else 0", database_up.clone());
        Self {
            inner: Arc::new(Inner {
                registry,
                refreshes,
                refresh_seconds,
                token_requests,
                webhook_deliveries,
                connections,
                backlog,
                database_up,
            }),
        }
    }
}

impl Metrics {
    /// Records a finished refresh (whatever triggered it) and how long it took.
    pub fn refresh_finished<T>(&self, result: &Result<T>, took: Duration) {
        let outcome = match result {
            Ok(_) => "success",
            Err(err) => error_outcome(err),
        };
        self.inner.refreshes.get_or_create(&OutcomeLabel { outcome }).inc();
        self.inner.refresh_seconds.observe(took.as_secs_f64());
    }

    /// Records a token endpoint answer by its HTTP status.
    pub fn token_request_finished(&self, status: u16) {
        let outcome = match status {
            200..=299 => "success",
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            429 => "rate_limited",
            502..=504 => "provider_error",
            _ => "error",
        };
        self.inner.token_requests.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Records a webhook delivery attempt: `delivered`, `retry` or `failed`.
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.inner.webhook_deliveries.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The text exposition, with the gauges set from `counts` (connections by status, then the backlog), or
    /// `database_up 0` when the database could not be read.
    #[must_use]
    pub fn render(&self, counts: Result<(Vec<(Status, u64)>, u64)>) -> String {
        match counts {
            Ok((by_status, backlog)) => {
                for status in STATUSES {
                    let n = by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                    self.inner.connections.get_or_create(&StatusLabel { status: status.as_str() }).set(gauge(n));
                }
                self.inner.backlog.set(gauge(backlog));
                self.inner.database_up.set(1);
            }
            Err(err) => {
                tracing::warn!(error = %err, "metrics: the database could not be read");
                self.inner.database_up.set(0);
            }
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.inner.registry).is_err() {
            tracing::error!("metrics: the exposition could not be written");
        }
        text
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The outcome word of a failed refresh.
fn error_outcome(err: &Error) -> &'static str {
    match err {
        Error::NeedsReauth(_) => "needs_reauth",
        Error::Provider { retryable: true, .. } => "provider_unavailable",
        Error::Provider { retryable: false, .. } => "provider_error",
        Error::Conflict { .. } => "conflict",
        Error::Unavailable(_) => "busy",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_outcome_words_only() {
        let metrics = Metrics::default();
        metrics.refresh_finished(&Ok::<(), Error>(()), Duration::from_millis(20));
        let secretive = Error::NeedsReauth("reconnect 'acme-crm-SECRET' in the UI".to_owned());
        metrics.refresh_finished(&Err::<(), Error>(secretive), Duration::from_millis(5));
        metrics.token_request_finished(200);
        metrics.token_request_finished(502);
        let text = metrics.render(Ok((vec![(Status::Connected, 3)], 2)));
        assert!(text.contains(r#"latchkey_refreshes_total{outcome="success"} 1"#), "{text}");
        assert!(text.contains(r#"latchkey_refreshes_total{outcome="needs_reauth"} 1"#), "{text}");
        assert!(text.contains("latchkey_refresh_duration_seconds_count 2"), "{text}");
        assert!(text.contains(r#"latchkey_token_requests_total{outcome="provider_error"} 1"#), "{text}");
        assert!(text.contains(r#"latchkey_connections{status="connected"} 3"#), "{text}");
        assert!(text.contains(r#"latchkey_connections{status="needs_reauth"} 0"#), "{text}");
        assert!(text.contains("latchkey_refresh_backlog 2"), "{text}");
        assert!(!text.contains("acme-crm"), "{text}");
    }

    #[test]
    fn a_database_failure_reads_as_database_down() {
        let metrics = Metrics::default();
        let text = metrics.render(Err(Error::Storage("gone".to_owned())));
        assert!(text.contains("latchkey_database_up 0"), "{text}");
    }
}
