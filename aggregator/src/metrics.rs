//! Prometheus metrics, served as text on `/metrics`. Labels are bounded: a rejection reason
//! is one of a fixed set, never a sensor id or an address.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The label of a rejection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// One of [`crate::http::Reject::reason`]'s values (or, for withheld events, of
    /// [`teiten_store::sources::Withheld::name`]'s).
    pub reason: &'static str,
}

/// The labels of a ClickHouse error: its [`teiten_store::Cause`]. Bounded: `code` is a server
/// error code (about 1000 exist) or `none`, `name` the code's name or empty.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClickHouseErrorLabels {
    /// `transient` or `permanent`.
    pub class: &'static str,
    /// [`teiten_store::Category::name`].
    pub category: &'static str,
    /// The server's error code, or `none` for client-side errors (network, timeout).
    pub code: String,
    /// The code's name (`NO_SUCH_COLUMN_IN_TABLE`), `NETWORK`, `TIMED_OUT`..., or empty.
    pub name: String,
}

/// Every metric the aggregator exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Batches stored (new).
    pub batches_stored: Counter,
    /// Batches acknowledged as duplicates (already stored).
    pub batches_duplicate: Counter,
    /// Events stored.
    pub events_stored: Counter,
    /// Batches rejected, by reason.
    pub batches_rejected: Family<ReasonLabel, Counter>,
    /// Seconds per INSERT statement.
    pub insert_seconds: Histogram,
    /// INSERT statements that failed.
    pub insert_errors: Counter,
    /// ClickHouse errors of the ingest path (INSERTs and the checks whether a batch is
    /// stored), by class and cause; count with [`Metrics::clickhouse_error`].
    pub clickhouse_errors: Family<ClickHouseErrorLabels, Counter>,
    /// Events decoded and waiting for ClickHouse.
    pub pending_events: Gauge,
    /// Events whose source country was unknown.
    pub geo_unknown: Counter,
    /// Source lookups in the geo database (one an event).
    pub geo_lookups: Counter,
    /// Events whose source autonomous system was unknown.
    pub asn_unknown: Counter,
    /// Geo database reloads that succeeded.
    pub geo_reloads: Counter,
    /// Partitions dropped by retention.
    pub partitions_dropped: Counter,
    /// Events re-inserted when repairing a partly stored batch.
    pub events_repaired: Counter,
    /// Reloads of the sensor registry from ClickHouse (periodic and on unknown tokens).
    pub registry_reloads: Counter,
    /// Events stored whose source is withheld from partners and public counts, by reason
    /// (one of [`teiten_store::sources::Withheld::name`]'s values).
    pub events_withheld: Family<ReasonLabel, Counter>,
    /// Rounds of the investigation loop.
    pub cases_rounds: Counter,
    /// Cases opened.
    pub cases_opened: Counter,
    /// Questionnaire requests and reminders mailed.
    pub cases_requested: Counter,
    /// Unanswered cases escalated.
    pub cases_escalated: Counter,
    /// Cases the CSIRT was alerted of.
    pub cases_alerted: Counter,
    /// Monthly summaries mailed.
    pub cases_summaries: Counter,
    /// Steps of the loop that failed (retried next round).
    pub cases_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("teiten_aggregator");
        let m = Metrics {
            batches_stored: Counter::default(),
            batches_duplicate: Counter::default(),
            events_stored: Counter::default(),
            batches_rejected: Family::default(),
            insert_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            insert_errors: Counter::default(),
            clickhouse_errors: Family::default(),
            pending_events: Gauge::default(),
            geo_unknown: Counter::default(),
            geo_lookups: Counter::default(),
            asn_unknown: Counter::default(),
            geo_reloads: Counter::default(),
            partitions_dropped: Counter::default(),
            events_repaired: Counter::default(),
            registry_reloads: Counter::default(),
            events_withheld: Family::default(),
            cases_rounds: Counter::default(),
            cases_opened: Counter::default(),
            cases_requested: Counter::default(),
            cases_escalated: Counter::default(),
            cases_alerted: Counter::default(),
            cases_summaries: Counter::default(),
            cases_errors: Counter::default(),
            registry: Registry::default(),
        };
        teiten_service::register_metrics!(registry, m, {
            batches_stored: "Batches stored in ClickHouse",
            batches_duplicate: "Re-sent batches acknowledged without storing them again",
            events_stored: "Events stored in ClickHouse",
            batches_rejected: "Batches refused, by reason",
            insert_seconds: "Duration of one INSERT into ClickHouse",
            insert_errors: "INSERT statements that failed",
            clickhouse_errors: "ClickHouse errors on the ingest path, by class (transient: retried; \
                permanent: batches refused), category, server error code and its name",
            pending_events: "Events decoded and waiting to be committed",
            geo_unknown: "Events whose source country is unknown",
            geo_lookups: "Source lookups in the geo database (one an event)",
            asn_unknown: "Events whose source autonomous system is unknown",
            geo_reloads: "Geo database reloads",
            partitions_dropped: "Day partitions dropped by retention",
            events_repaired: "Events inserted to complete a partly stored batch",
            registry_reloads: "Reloads of the sensor registry from ClickHouse",
            events_withheld: "Events stored whose source is withheld from partner files and public \
                counts, by reason",
            cases_rounds: "Rounds of the investigation loop",
            cases_opened: "Cases opened for internal reports",
            cases_requested: "Questionnaire requests and reminders mailed",
            cases_escalated: "Unanswered cases escalated to the manager and the CSIRT",
            cases_alerted: "Cases the CSIRT was alerted of (mail and webhook)",
            cases_summaries: "Monthly summaries mailed",
            cases_errors: "Steps of the investigation loop that failed (tried again next round)",
        });
        Metrics { registry, ..m }
    }

    /// Counts one ClickHouse error.
    pub fn clickhouse_error(&self, cause: &teiten_store::Cause) {
        self.clickhouse_errors
            .get_or_create(&ClickHouseErrorLabels {
                class: cause.class.name(),
                category: cause.category.name(),
                code: cause.code.map_or_else(|| "none".into(), |c| c.to_string()),
                name: cause.name.clone(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
