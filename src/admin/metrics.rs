//! Metrics. The query path counts into per-listener blocks of plain atomics (no locks, no
//! label hashing, no contention); everything slower (reloads, probes, flips) goes through the
//! `metrics` crate and its Prometheus exporter. `/metrics` renders both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::dns::answer::Summary;
use crate::dns::wire;

const TYPES: [(u16, &str); 8] = [
    (wire::TYPE_A, "A"),
    (wire::TYPE_AAAA, "AAAA"),
    (wire::TYPE_NAPTR, "NAPTR"),
    (wire::TYPE_SRV, "SRV"),
    (wire::TYPE_SOA, "SOA"),
    (wire::TYPE_NS, "NS"),
    (wire::TYPE_ANY, "ANY"),
    (0, "other"),
];
const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];
const REASONS: [&str; 8] = [
    "static",
    "network",
    "country",
    "continent",
    "distance",
    "fallback",
    "pinned",
    "all_down",
];

fn type_index(t: u16) -> usize {
    TYPES.iter().position(|(c, _)| *c == t).unwrap_or(7)
}
fn rcode_index(r: u16) -> usize {
    match r {
        0..=5 => r as usize,
        16 => 6,
        _ => 7,
    }
}
fn reason_index(s: &Summary) -> usize {
    match &s.steered {
        None => 0,
        Some(st) if st.fail_open => 7,
        Some(st) => match st.reason {
            crate::steering::Reason::Network => 1,
            crate::steering::Reason::Country => 2,
            crate::steering::Reason::Continent => 3,
            crate::steering::Reason::Distance => 4,
            crate::steering::Reason::Fallback => 5,
            crate::steering::Reason::Pinned => 6,
        },
    }
}

/// Counters of one listener (a UDP worker thread, or all TCP connections).
#[repr(align(128))]
pub struct QueryStats {
    by_key: [AtomicU64; 512],
    ecs: [AtomicU64; 2],
    truncated: AtomicU64,
}

static STATS: Mutex<Vec<Arc<QueryStats>>> = Mutex::new(Vec::new());

impl QueryStats {
    /// A new block, included in every scrape from now on.
    pub fn registered() -> Arc<QueryStats> {
        let s = Arc::new(QueryStats {
            by_key: std::array::from_fn(|_| AtomicU64::new(0)),
            ecs: [AtomicU64::new(0), AtomicU64::new(0)],
            truncated: AtomicU64::new(0),
        });
        if let Ok(mut all) = STATS.lock() {
            all.push(s.clone());
        }
        s
    }

    #[inline]
    pub fn record(&self, s: &Summary) {
        let k = (type_index(s.qtype) << 6) | (rcode_index(s.rcode) << 3) | reason_index(s);
        self.by_key[k].fetch_add(1, Ordering::Relaxed);
        self.ecs[usize::from(s.ecs)].fetch_add(1, Ordering::Relaxed);
        if s.truncated {
            self.truncated.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A counter kept across reloads for one named thing (a zone, a region).
#[derive(Default)]
struct Named {
    zones: BTreeMap<String, Arc<AtomicU64>>,
    regions: BTreeMap<String, Arc<AtomicU64>>,
}

static NAMED: Mutex<Option<Named>> = Mutex::new(None);

fn named(f: impl FnOnce(&mut Named) -> Arc<AtomicU64>) -> Arc<AtomicU64> {
    match NAMED.lock() {
        Ok(mut g) => f(g.get_or_insert_with(Named::default)),
        Err(_) => Arc::new(AtomicU64::new(0)),
    }
}

/// The query counter of a zone (the same one across reloads).
pub fn zone_counter(zone: &str) -> Arc<AtomicU64> {
    named(|n| n.zones.entry(zone.to_owned()).or_default().clone())
}

/// The steered-answer counter of a region.
pub fn region_counter(region: &str) -> Arc<AtomicU64> {
    named(|n| n.regions.entry(region.to_owned()).or_default().clone())
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once).
pub fn init() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0,
            ])
            .ok()?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok()?;
        describe();
        // Present from the first scrape, so "absent" alerts do not fire on a healthy instance.
        for result in ["ok", "error"] {
            metrics::counter!("sipsteer_config_reloads_total", "result" => result).increment(0);
            metrics::counter!("sipsteer_load_queries_total", "result" => result).increment(0);
        }
        for reason in ["evicted_idle", "full", "per_source"] {
            metrics::counter!("sipsteer_tcp_shed_total", "reason" => reason).increment(0);
        }
        for reason in ["empty_frame", "not_a_query", "slow_frame"] {
            metrics::counter!("sipsteer_tcp_bad_frames_total", "reason" => reason).increment(0);
        }
        for transport in ["tls", "https"] {
            metrics::counter!("sipsteer_dns_encrypted_queries_total", "transport" => transport)
                .increment(0);
        }
        for name in [
            "sipsteer_admin_connections_shed_total",
            "sipsteer_dns_tls_refused_total",
            "sipsteer_state_file_errors_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        // 0 until load is pulled from Prometheus at least once.
        metrics::gauge!("sipsteer_load_last_success_timestamp_seconds").set(0.0);
        Some(handle)
    });
}

fn describe() {
    metrics::describe_counter!(
        "sipsteer_config_reloads_total",
        "config loads by result (the first load counts as ok)"
    );
    metrics::describe_gauge!(
        "sipsteer_config_generation",
        "generation of the config being served"
    );
    metrics::describe_gauge!(
        "sipsteer_config_last_success_timestamp_seconds",
        "time of the last successful config load (the first load counts)"
    );
    metrics::describe_counter!(
        "sipsteer_probes_total",
        "health probes by server and result"
    );
    metrics::describe_histogram!(
        "sipsteer_probe_rtt_seconds",
        "round-trip time of successful probes"
    );
    metrics::describe_counter!("sipsteer_state_flips_total", "server state changes");
    metrics::describe_gauge!("sipsteer_servers", "servers by state");
    metrics::describe_gauge!(
        "sipsteer_probe_last_tick_timestamp_seconds",
        "last time the probe scheduler ran"
    );
    metrics::describe_gauge!(
        "sipsteer_region_healthy_servers",
        "servers of a region that are answered: up, or not yet probed"
    );
    metrics::describe_gauge!(
        "sipsteer_probe_targets",
        "distinct addresses the prober probes"
    );
    metrics::describe_gauge!(
        "sipsteer_geoip_build_seconds",
        "time to load and compile the GeoIP database"
    );
    metrics::describe_gauge!(
        "sipsteer_geoip_build_epoch_seconds",
        "build time recorded in the GeoIP database"
    );
    metrics::describe_counter!(
        "sipsteer_tcp_shed_total",
        "dns tcp connections shed: an idle one evicted for a new one, or a new one closed (full, per_source)"
    );
    metrics::describe_counter!(
        "sipsteer_tcp_bad_frames_total",
        "dns tcp connections closed for what they sent (empty_frame, not_a_query, slow_frame)"
    );
    metrics::describe_counter!(
        "sipsteer_admin_connections_shed_total",
        "admin api connections closed at once because the connection cap was reached"
    );
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Counts a reload by result.
pub fn reload(ok: bool) {
    metrics::counter!("sipsteer_config_reloads_total", "result" => if ok { "ok" } else { "error" })
        .increment(1);
    if ok {
        metrics::gauge!("sipsteer_config_last_success_timestamp_seconds").set(unix_now());
    }
}

pub fn generation(g: u64) {
    metrics::gauge!("sipsteer_config_generation").set(g as f64);
}

/// The Prometheus text exposition of everything.
pub fn render() -> String {
    let mut out = HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(|h| h.render())
        .unwrap_or_default();
    let mut by_key = [0u64; 512];
    let mut ecs = [0u64; 2];
    let mut tc = 0u64;
    if let Ok(all) = STATS.lock() {
        for s in all.iter() {
            for (i, c) in s.by_key.iter().enumerate() {
                by_key[i] += c.load(Ordering::Relaxed);
            }
            ecs[0] += s.ecs[0].load(Ordering::Relaxed);
            ecs[1] += s.ecs[1].load(Ordering::Relaxed);
            tc += s.truncated.load(Ordering::Relaxed);
        }
    }
    let _ = writeln!(
        out,
        "# HELP sipsteer_queries_total DNS queries answered, by type, rcode and steering reason"
    );
    let _ = writeln!(out, "# TYPE sipsteer_queries_total counter");
    for (k, v) in by_key.iter().enumerate() {
        if *v > 0 {
            let _ = writeln!(
                out,
                "sipsteer_queries_total{{type=\"{}\",rcode=\"{}\",reason=\"{}\"}} {v}",
                TYPES[k >> 6].1,
                RCODES[(k >> 3) & 7],
                REASONS[k & 7]
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sipsteer_queries_ecs_total DNS queries with and without EDNS Client Subnet"
    );
    let _ = writeln!(out, "# TYPE sipsteer_queries_ecs_total counter");
    let _ = writeln!(
        out,
        "sipsteer_queries_ecs_total{{ecs=\"absent\"}} {}",
        ecs[0]
    );
    let _ = writeln!(
        out,
        "sipsteer_queries_ecs_total{{ecs=\"present\"}} {}",
        ecs[1]
    );
    let _ = writeln!(
        out,
        "# HELP sipsteer_truncated_total UDP answers sent with TC set"
    );
    let _ = writeln!(out, "# TYPE sipsteer_truncated_total counter");
    let _ = writeln!(out, "sipsteer_truncated_total {tc}");
    crate::dns::defences::render(&mut out);
    if let Ok(g) = NAMED.lock()
        && let Some(n) = g.as_ref()
    {
        let _ = writeln!(
            out,
            "# HELP sipsteer_zone_queries_total DNS queries answered from each zone"
        );
        let _ = writeln!(out, "# TYPE sipsteer_zone_queries_total counter");
        for (z, c) in &n.zones {
            let _ = writeln!(
                out,
                "sipsteer_zone_queries_total{{zone=\"{z}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sipsteer_region_answers_total steered answers whose first region is this one"
        );
        let _ = writeln!(out, "# TYPE sipsteer_region_answers_total counter");
        for (r, c) in &n.regions {
            let _ = writeln!(
                out,
                "sipsteer_region_answers_total{{region=\"{r}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
    }
    out
}
