//! The sensor's counters, exported in Prometheus text format on `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use teiten_wire::SensorStats;

/// Every counter the sensor keeps. Cheap to clone (all handles are shared).
#[derive(Clone, Default)]
pub struct Metrics {
    /// Packets handed over by the capture layer.
    pub packets_captured: Counter,
    /// Packets dropped by the kernel (ring full or interface drops).
    pub kernel_drops: Counter,
    /// Events recorded (inbound to a monitored prefix).
    pub events_recorded: Counter,
    /// IP packets ignored because they were not inbound to a monitored prefix, or were not IP.
    pub filtered: Counter,
    /// Packets that could not be decoded (truncated, garbled).
    pub malformed: Counter,
    /// Batches sealed into the spool.
    pub batches_sealed: Counter,
    /// Batch deliveries attempted.
    pub batches_sent: Counter,
    /// Batches the aggregator acknowledged.
    pub batches_acked: Counter,
    /// Batches the aggregator refused (malformed, or refused by its ClickHouse with a
    /// permanent error: `storage_rejected`), moved to the spool's `rejected/`.
    pub batches_rejected: Counter,
    /// Failed deliveries (network errors, 5xx, 401/403), retried later.
    pub send_failures: Counter,
    /// Events dropped because the spool was full.
    pub spool_dropped_events: Counter,
    /// Bytes in the spool.
    pub spool_bytes: Gauge,
    /// Batches in the spool.
    pub spool_batches: Gauge,
}

impl Metrics {
    /// The counters a batch carries to the aggregator.
    pub fn stats(&self) -> SensorStats {
        SensorStats {
            packets_captured: self.packets_captured.get(),
            kernel_drops: self.kernel_drops.get(),
            events_recorded: self.events_recorded.get(),
            filtered: self.filtered.get(),
            malformed: self.malformed.get(),
            spool_bytes: self.spool_bytes.get().max(0) as u64,
            spool_dropped_events: self.spool_dropped_events.get(),
        }
    }

    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("teiten_sensor");
        let c = |r: &mut Registry, name: &str, help: &str, m: &Counter| {
            r.register(name, help, m.clone())
        };
        c(
            &mut r,
            "packets_captured",
            "Packets handed over by the capture layer",
            &self.packets_captured,
        );
        c(
            &mut r,
            "kernel_drops",
            "Packets dropped by the kernel before capture",
            &self.kernel_drops,
        );
        c(
            &mut r,
            "events_recorded",
            "Events recorded on monitored prefixes",
            &self.events_recorded,
        );
        c(
            &mut r,
            "packets_filtered",
            "Packets ignored: not inbound to a monitored prefix, or not IP",
            &self.filtered,
        );
        c(
            &mut r,
            "packets_malformed",
            "Packets that could not be decoded",
            &self.malformed,
        );
        c(
            &mut r,
            "batches_sealed",
            "Batches sealed into the spool",
            &self.batches_sealed,
        );
        c(
            &mut r,
            "batches_sent",
            "Batch deliveries attempted",
            &self.batches_sent,
        );
        c(
            &mut r,
            "batches_acked",
            "Batches acknowledged by the aggregator",
            &self.batches_acked,
        );
        c(
            &mut r,
            "batches_rejected",
            "Batches refused by the aggregator (malformed, or refused by its storage), moved to rejected/",
            &self.batches_rejected,
        );
        c(
            &mut r,
            "send_failures",
            "Failed deliveries, retried later",
            &self.send_failures,
        );
        c(
            &mut r,
            "spool_dropped_events",
            "Events dropped because the spool was full",
            &self.spool_dropped_events,
        );
        r.register(
            "spool_bytes",
            "Bytes waiting in the spool",
            self.spool_bytes.clone(),
        );
        r.register(
            "spool_batches",
            "Batches waiting in the spool",
            self.spool_batches.clone(),
        );
        r
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry()).expect("writing to a String cannot fail");
        out
    }

    /// Serves `GET /metrics` on `addr` from a background thread.
    pub fn serve(self: &Arc<Self>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("metrics listener has no IP address"))?;
        let metrics = Arc::clone(self);
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for req in server.incoming_requests() {
                    let resp = if req.url() == "/metrics" {
                        let header = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"text/plain; version=0.0.4"[..],
                        )
                        .expect("static header is valid");
                        tiny_http::Response::from_string(metrics.render()).with_header(header)
                    } else {
                        tiny_http::Response::from_string("not found: try /metrics\n")
                            .with_status_code(404)
                    };
                    let _ = req.respond(resp);
                }
            })?;
        Ok(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter() {
        let m = Metrics::default();
        m.kernel_drops.inc_by(3);
        m.spool_bytes.set(42);
        let text = m.render();
        assert!(
            text.contains("teiten_sensor_kernel_drops_total 3"),
            "{text}"
        );
        assert!(text.contains("teiten_sensor_spool_bytes 42"), "{text}");
        for name in [
            "packets_captured_total",
            "events_recorded_total",
            "packets_filtered_total",
            "packets_malformed_total",
            "batches_sent_total",
            "batches_acked_total",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        assert_eq!(m.stats().kernel_drops, 3);
    }
}
