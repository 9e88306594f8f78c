//! The metrics of one running instance. `app` creates one [`Telemetry`] and hands it down to
//! every layer that counts, so two instances in one process never share a counter and tests
//! can assert exact counts. Everything off the query path (reloads, probes, flips, shed
//! connections) registers its series here; the query path counts into `dns::stats`, which
//! `/metrics` renders next to this.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Buckets of the probe round-trip histogram, in seconds.
const RTT_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0,
];

const META: Metadata<'static> = Metadata::new("sipsteer", Level::INFO, None);

/// One instance's metric registry and its Prometheus rendering.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A registry with every family described and the always-present series at 0.
    pub fn new() -> Telemetry {
        let builder = PrometheusBuilder::new();
        // Only fails on an empty bucket list.
        let builder = match builder.set_buckets(&RTT_BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let t = Telemetry { recorder, handle };
        t.describe();
        t.present_from_start();
        t
    }

    /// The counter `name` with `labels`, registered on first use.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &META)
    }

    /// The gauge `name` with `labels`, registered on first use.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &META)
    }

    /// The histogram `name` with `labels`, registered on first use.
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder.register_histogram(&key(name, labels), &META)
    }

    /// The Prometheus text exposition of every series registered here.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Series present from the first scrape, so "absent" alerts do not fire on a healthy
    /// instance.
    fn present_from_start(&self) {
        for result in ["ok", "error"] {
            self.counter("sipsteer_config_reloads_total", &[("result", result)])
                .increment(0);
            self.counter("sipsteer_load_queries_total", &[("result", result)])
                .increment(0);
        }
        for reason in ["evicted_idle", "full", "per_source"] {
            self.counter("sipsteer_tcp_shed_total", &[("reason", reason)])
                .increment(0);
            self.counter(
                "sipsteer_admin_connections_shed_total",
                &[("reason", reason)],
            )
            .increment(0);
        }
        for reason in ["nan", "inf", "negative", "not_a_number"] {
            self.counter("sipsteer_load_values_rejected_total", &[("reason", reason)])
                .increment(0);
        }
        for limit in ["series", "bytes", "token", "depth"] {
            self.counter("sipsteer_load_replies_refused_total", &[("limit", limit)])
                .increment(0);
        }
        for reason in ["empty_frame", "not_a_query", "slow_frame"] {
            self.counter("sipsteer_tcp_bad_frames_total", &[("reason", reason)])
                .increment(0);
        }
        for transport in ["tls", "https"] {
            self.counter(
                "sipsteer_dns_encrypted_queries_total",
                &[("transport", transport)],
            )
            .increment(0);
            for reason in ["evicted_idle", "full", "per_source"] {
                self.counter(
                    "sipsteer_dns_encrypted_shed_total",
                    &[("transport", transport), ("reason", reason)],
                )
                .increment(0);
            }
        }
        for reason in ["empty_frame", "not_a_query", "slow_frame"] {
            self.counter(
                "sipsteer_dns_encrypted_bad_frames_total",
                &[("transport", "tls"), ("reason", reason)],
            )
            .increment(0);
        }
        for name in [
            "sipsteer_dns_tls_refused_total",
            "sipsteer_state_file_errors_total",
        ] {
            self.counter(name, &[]).increment(0);
        }
        // 0 until load is pulled from Prometheus at least once.
        self.gauge("sipsteer_load_last_success_timestamp_seconds", &[])
            .set(0.0);
    }

    fn describe(&self) {
        for (name, help) in HELP {
            let (name, help) = (KeyName::from(*name), (*help).into());
            match name.as_str() {
                n if n.ends_with("_total") => self.recorder.describe_counter(name, None, help),
                n if n.ends_with("_rtt_seconds") => {
                    self.recorder.describe_histogram(name, None, help);
                }
                _ => self.recorder.describe_gauge(name, None, help),
            }
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect();
    Key::from_parts(name, labels)
}

/// The help text of every family registered here.
const HELP: &[(&str, &str)] = &[
    (
        "sipsteer_config_reloads_total",
        "config loads by result (the first load counts as ok)",
    ),
    (
        "sipsteer_config_generation",
        "generation of the config being served",
    ),
    (
        "sipsteer_config_last_success_timestamp_seconds",
        "time of the last successful config load (the first load counts)",
    ),
    (
        "sipsteer_probes_total",
        "health probes by server and result",
    ),
    (
        "sipsteer_probe_rtt_seconds",
        "round-trip time of successful probes",
    ),
    ("sipsteer_state_flips_total", "server state changes"),
    (
        "sipsteer_suspect_total",
        "times a server became suspect (up, but its latest probes failed)",
    ),
    ("sipsteer_servers", "servers by state"),
    (
        "sipsteer_servers_suspect",
        "servers up but being confirmed at the suspect cadence",
    ),
    (
        "sipsteer_probe_last_tick_timestamp_seconds",
        "last time the probe scheduler ran",
    ),
    (
        "sipsteer_region_healthy_servers",
        "servers of a region that are answered: up, or not yet probed",
    ),
    (
        "sipsteer_probe_targets",
        "distinct addresses the prober probes",
    ),
    (
        "sipsteer_geoip_build_seconds",
        "time to load and compile the GeoIP database",
    ),
    (
        "sipsteer_geoip_build_epoch_seconds",
        "build time recorded in the GeoIP database",
    ),
    (
        "sipsteer_tcp_shed_total",
        "dns tcp connections shed: an idle one evicted for a new one, or a new one closed (full, per_source)",
    ),
    (
        "sipsteer_tcp_bad_frames_total",
        "dns tcp connections closed for what they sent (empty_frame, not_a_query, slow_frame)",
    ),
    (
        "sipsteer_admin_connections_shed_total",
        "admin api connections shed: an idle one evicted for a new one, or a new one closed (full, per_source)",
    ),
    (
        "sipsteer_dns_encrypted_queries_total",
        "queries received over DNS over TLS and DNS over HTTPS",
    ),
    (
        "sipsteer_dns_tls_refused_total",
        "DNS over TLS and HTTPS connections refused at the connection cap",
    ),
    (
        "sipsteer_dns_encrypted_shed_total",
        "DNS over TLS and HTTPS connections shed: an idle one evicted for a new one, or a new one closed (full, per_source)",
    ),
    (
        "sipsteer_dns_encrypted_bad_frames_total",
        "DNS over TLS connections closed for what they sent (empty_frame, not_a_query, slow_frame)",
    ),
    (
        "sipsteer_accept_errors_total",
        "failed accepts of a stream listener, by reason (emfile, enfile, enobufs, enomem, other)",
    ),
    (
        "sipsteer_state_file_errors_total",
        "failed writes of the admin state file",
    ),
    (
        "sipsteer_load_queries_total",
        "queries sent to the Prometheus load source, by result",
    ),
    (
        "sipsteer_load_last_success_timestamp_seconds",
        "last time every load query succeeded",
    ),
    (
        "sipsteer_load_values_rejected_total",
        "load values from Prometheus refused, by reason (nan, inf, negative, not_a_number)",
    ),
    (
        "sipsteer_load_replies_refused_total",
        "Prometheus replies refused over a cap (series, bytes, token, depth), failing their query",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_instances_count_apart() {
        let (a, b) = (Telemetry::new(), Telemetry::new());
        a.counter("sipsteer_tcp_shed_total", &[("reason", "full")])
            .increment(3);
        b.counter("sipsteer_tcp_shed_total", &[("reason", "full")])
            .increment(1);
        assert!(
            a.render()
                .contains("sipsteer_tcp_shed_total{reason=\"full\"} 3\n")
        );
        assert!(
            b.render()
                .contains("sipsteer_tcp_shed_total{reason=\"full\"} 1\n")
        );
    }
}
