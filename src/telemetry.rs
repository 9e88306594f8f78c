//! The metrics of one running instance. `app` creates one [`Telemetry`] and hands it down to
//! every layer that counts, so two instances in one process never share a counter and tests
//! can assert exact counts. Everything off the query path (reloads, probes, flips, shed
//! connections) registers its series here and keeps the handles; the query path counts into
//! `dns::stats`, which publishes its sums here at scrape time. `/metrics` is this registry's
//! one rendering, by the Prometheus exporter, which escapes every label value.

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
        .map(|(k, v)| Label::new(*k, exporter_value(v)))
        .collect();
    Key::from_parts(name, labels)
}

/// A label value as the exporter must be given it to render it escaped exactly once. The
/// exporter escapes `"`, `\` and a line feed, but takes a backslash that precedes another
/// backslash or a quote as an escape already made and copies the pair unchanged, so a value
/// such as `a\"b` would come out meaning `a"b`. With every backslash doubled, each pair it
/// sees stands for one backslash of the value, and what it renders reads back as the value.
fn exporter_value(v: &str) -> String {
    if v.contains('\\') {
        v.replace('\\', "\\\\")
    } else {
        v.to_owned()
    }
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
        "sipsteer_sip_tls_cert_expiry_seconds",
        "seconds until the notAfter of a TLS-checked server's certificate (negative once expired)",
    ),
    (
        "sipsteer_dnssec_signing_failures_total",
        "DNSSEC signatures that could not be made (the set went out without that RRSIG)",
    ),
    (
        "sipsteer_dnssec_keys",
        "DNSSEC keys of a signed zone by role (csk, ksk, zsk) and state",
    ),
    (
        "sipsteer_dnssec_next_key_event_timestamp_seconds",
        "when a DNSSEC key of the zone next changes state (0: nothing planned)",
    ),
    (
        "sipsteer_dnssec_key_successor_missing",
        "1 while the zone's next ZSK is due and could not be written",
    ),
    (
        "sipsteer_dnssec_signatures_total",
        "DNSSEC signatures made, by thread (signer; query: on a thread answering a query, 0 by design)",
    ),
    (
        "sipsteer_dnssec_signature_cache_entries",
        "signed steered record sets kept in the signature cache",
    ),
    (
        "sipsteer_dnssec_signature_cache_capacity",
        "the signature cache's bound (dns.signature_cache)",
    ),
    (
        "sipsteer_dnssec_signature_cache_misses_total",
        "DO=1 queries that found a steered set unsigned (SERVFAIL, or the set left out of the additional section)",
    ),
    (
        "sipsteer_dnssec_signature_cache_full_total",
        "steered sets a pre-signing round could not keep because the cache was full",
    ),
    (
        "sipsteer_dnssec_signature_queue_dropped_total",
        "unsigned steered sets not queued for the signer task because its queue was full",
    ),
    (
        "sipsteer_dnssec_presign_timestamp_seconds",
        "when the last pre-signing round of steered sets ended",
    ),
    (
        "sipsteer_dnssec_presign_variants",
        "steered record sets the last pre-signing round went through",
    ),
    (
        "sipsteer_dnssec_presign_signatures",
        "signatures the last pre-signing round made (sets not in the cache yet)",
    ),
    (
        "sipsteer_dnssec_presign_duration_seconds",
        "how long the last pre-signing round took",
    ),
    (
        "sipsteer_dnssec_nxname_signed_total",
        "proofs that a name does not exist (RFC 9824) signed by the signer thread",
    ),
    (
        "sipsteer_dnssec_nxname_cache_hits_total",
        "proofs that a name does not exist answered from the proof cache",
    ),
    (
        "sipsteer_dnssec_nxname_handoffs_total",
        "queries for names that do not exist handed to the signer thread",
    ),
    (
        "sipsteer_dnssec_nxname_dropped_total",
        "queries for names that do not exist dropped because the signer thread's queue was full",
    ),
    (
        "sipsteer_sip_tls_failures_total",
        "failed TLS checks by reason (expired, name_mismatch, untrusted, handshake, timeout)",
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
    (
        "sipsteer_task_failures_total",
        "tasks and listener threads that panicked or ended before shutdown, by task",
    ),
    (
        "sipsteer_queries_total",
        "DNS queries answered, by type, rcode and steering reason",
    ),
    (
        "sipsteer_queries_ecs_total",
        "DNS queries with and without EDNS Client Subnet",
    ),
    ("sipsteer_truncated_total", "UDP answers sent with TC set"),
    (
        "sipsteer_zone_queries_total",
        "DNS queries answered from each zone",
    ),
    (
        "sipsteer_region_answers_total",
        "steered answers whose first region is this one",
    ),
    (
        "sipsteer_dns_cookies_total",
        "queries with a DNS cookie, by what the cookie proved",
    ),
    (
        "sipsteer_rrl_responses_total",
        "UDP responses held back by rate limiting: dropped, slipped (empty and truncated) or replaced by BADCOOKIE",
    ),
    (
        "sipsteer_rrl_prefix_limited_total",
        "UDP responses held back (dropped, slipped or replaced by BADCOOKIE) because their client prefix exceeded dns.rrl.all_per_second",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A label value of the text format read back: `None` for an escape it does not have.
    fn unescape(v: &str) -> Option<String> {
        let mut out = String::new();
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next()? {
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    'n' => out.push('\n'),
                    _ => return None,
                },
                '"' | '\n' => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    #[test]
    fn label_values_render_escaped_and_read_back_as_they_were() {
        let t = Telemetry::new();
        let values = [
            "quote\"d",
            "back\\slash",
            "line\nfeed",
            "escaped\\\"quote",
            "two\\\\backslashes",
            "ends\\",
            r"dns\010name.",
        ];
        for (i, v) in values.iter().enumerate() {
            t.counter("sipsteer_probes_total", &[("server", v)])
                .increment(i as u64 + 1);
        }
        let out = t.render();
        let mut read = Vec::new();
        for line in out.lines() {
            let Some(rest) = line.strip_prefix("sipsteer_probes_total{server=\"") else {
                continue;
            };
            let (value, count) = rest.rsplit_once("\"} ").expect("one label");
            let v = unescape(value).unwrap_or_else(|| panic!("bad escape in {line:?}"));
            read.push((count.parse::<usize>().expect("count"), v));
        }
        read.sort();
        let want: Vec<(usize, String)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i + 1, (*v).to_string()))
            .collect();
        assert_eq!(read, want, "{out}");
    }

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
