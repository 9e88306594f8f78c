//! The per-server probe metrics, registered once per server (at the reload that adds it) and
//! kept across reloads, so a probe result costs a few atomic adds, not a registry lookup. A
//! flip's counter is registered at the server's first flip to that state; the TLS series at
//! the server's first TLS check; a transport's series (health per transport) at its first
//! flip or scrape.

use std::sync::OnceLock;

use crate::config::Transport;
use crate::health::state::Observed;
use crate::health::vocab::{Outcome, TlsFailure};
use crate::telemetry::Telemetry;

pub(super) struct Meters {
    /// `region/server`, the `server` label.
    name: String,
    up: metrics::Counter,
    full: metrics::Counter,
    down: metrics::Counter,
    rtt: metrics::Histogram,
    suspect: metrics::Counter,
    /// `sipsteer_region_healthy_servers` of the server's region (one series shared by the
    /// region's servers).
    region_healthy: metrics::Gauge,
    /// By the state flipped to.
    flips: [OnceLock<metrics::Counter>; 4],
    region: String,
    server: String,
    /// `sipsteer_sip_tls_cert_expiry_seconds`, from the first certificate read.
    cert_expiry: OnceLock<metrics::Gauge>,
    /// `sipsteer_sip_tls_failures_total`, by [`TlsFailure::ALL`], from the first TLS check.
    tls_failures: OnceLock<[metrics::Counter; 5]>,
    /// `sipsteer_transport_flips_total`, by transport and the state flipped to (health per
    /// transport only).
    transport_flips: [[OnceLock<metrics::Counter>; 4]; 5],
    /// `sipsteer_server_transport_up`, by transport (health per transport only).
    transport_up: [OnceLock<metrics::Gauge>; 5],
}

impl Meters {
    /// The meters of `region/server`.
    pub(super) fn new(region: &str, server: &str, t: &Telemetry) -> Meters {
        let name = format!("{region}/{server}");
        let count = |result: &'static str| {
            t.counter(
                "sipsteer_probes_total",
                &[("server", &name), ("result", result)],
            )
        };
        // Present from the start (0), like the probe counters.
        let suspect = t.counter("sipsteer_suspect_total", &[("server", &name)]);
        suspect.increment(0);
        Meters {
            up: count("up"),
            full: count("full"),
            down: count("down"),
            rtt: t.histogram("sipsteer_probe_rtt_seconds", &[("server", &name)]),
            suspect,
            region_healthy: t.gauge("sipsteer_region_healthy_servers", &[("region", region)]),
            flips: Default::default(),
            name,
            region: region.to_owned(),
            server: server.to_owned(),
            cert_expiry: OnceLock::new(),
            tls_failures: OnceLock::new(),
            transport_flips: Default::default(),
            transport_up: Default::default(),
        }
    }

    /// The healthy-servers gauge of the server's region.
    pub(super) fn region_healthy(&self) -> &metrics::Gauge {
        &self.region_healthy
    }

    /// Counts the server turning suspect.
    pub(super) fn suspect(&self) {
        self.suspect.increment(1);
    }

    /// Counts a flip to `to` (its series registered on `t` the first time).
    pub(super) fn flip(&self, to: Observed, t: &Telemetry) {
        self.flips[to as usize]
            .get_or_init(|| {
                t.counter(
                    "sipsteer_state_flips_total",
                    &[("server", &self.name), ("to", to.as_str())],
                )
            })
            .increment(1);
    }

    /// Counts a flip of one transport's health to `to` (health per transport).
    pub(super) fn transport_flip(&self, tr: Transport, to: Observed, t: &Telemetry) {
        self.transport_flips[tr as usize][to as usize]
            .get_or_init(|| {
                t.counter(
                    "sipsteer_transport_flips_total",
                    &[
                        ("server", &self.name),
                        ("transport", tr.as_str()),
                        ("to", to.as_str()),
                    ],
                )
            })
            .increment(1);
    }

    /// Sets whether the server is answered on transport `tr` (health per transport).
    pub(super) fn transport_up(&self, tr: Transport, up: bool, t: &Telemetry) {
        self.transport_up[tr as usize]
            .get_or_init(|| {
                t.gauge(
                    "sipsteer_server_transport_up",
                    &[("server", &self.name), ("transport", tr.as_str())],
                )
            })
            .set(f64::from(u8::from(up)));
    }

    /// Counts one probe result (and its round trip when the server answered).
    pub(super) fn record(&self, outcome: Outcome, rtt: std::time::Duration) {
        match outcome {
            Outcome::Up => self.up.increment(1),
            Outcome::Full => self.full.increment(1),
            Outcome::Down => self.down.increment(1),
        }
        if outcome != Outcome::Down {
            self.rtt.record(rtt.as_secs_f64());
        }
    }

    /// Counts a TLS check's result: every reason's series exists (at 0) from the server's
    /// first TLS check on.
    pub(super) fn tls(&self, failure: Option<TlsFailure>, t: &Telemetry) {
        let counters = self.tls_failures.get_or_init(|| {
            TlsFailure::ALL.map(|f| {
                let c = t.counter(
                    "sipsteer_sip_tls_failures_total",
                    &[
                        ("region", &self.region),
                        ("server", &self.server),
                        ("reason", f.as_str()),
                    ],
                );
                c.increment(0);
                c
            })
        });
        if let Some(f) = failure
            && let Some(i) = TlsFailure::ALL.iter().position(|x| *x == f)
        {
            counters[i].increment(1);
        }
    }

    /// Sets the seconds left before the certificate's notAfter (negative once expired).
    pub(super) fn cert_expiry(&self, left: i64, t: &Telemetry) {
        self.cert_expiry
            .get_or_init(|| {
                t.gauge(
                    "sipsteer_sip_tls_cert_expiry_seconds",
                    &[("region", &self.region), ("server", &self.server)],
                )
            })
            .set(left as f64);
    }
}
