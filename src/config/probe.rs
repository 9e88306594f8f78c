//! How servers are probed: the `health:` defaults of `sipsteer.yaml`, a region's or a
//! server's `health:` over what it inherits, and check names resolved against a server's
//! transports.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::checks;
use super::error::Sink;
use super::raw;
use super::values::parse_duration;
use super::{Check, ProbeConfig, TlsCheck, Transport, TransportCheck};

/// The check name that gives each transport of a server its own check.
const PER_TRANSPORT: &str = "per-transport";

/// Probe defaults from the top-level `health:` section.
pub(super) struct HealthDefaults {
    pub probe: ProbeConfig,
    /// `None` = pick from the server's transports.
    pub check: Option<String>,
    pub max_concurrent: usize,
}

impl HealthDefaults {
    pub(super) fn from_raw(h: Option<&raw::Health>, sink: &mut Sink) -> HealthDefaults {
        let base = ProbeConfig {
            check: Some(Check::SipUdp),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            suspect_interval: Duration::from_millis(500),
            suspect_timeout: Duration::from_millis(500),
            rise: 2,
            fall: 3,
            healthy_codes: Vec::new(),
        };
        let mut d = HealthDefaults {
            probe: base,
            check: None,
            max_concurrent: 256,
        };
        if let Some(h) = h {
            let (probe, check) = overlay(&d.probe, None, h, "health", sink);
            d.probe = probe;
            d.check = check;
            if let Some(m) = &h.max_concurrent {
                if (1..=10_000).contains(&m.value) {
                    d.max_concurrent = m.value as usize;
                } else {
                    sink.on(m, "health.max_concurrent", "must be between 1 and 10000");
                }
            }
        }
        d
    }
}

/// Applies one `health:` section over inherited settings.
pub(super) fn overlay(
    base: &ProbeConfig,
    base_check: Option<String>,
    h: &raw::Health,
    path: &str,
    sink: &mut Sink,
) -> (ProbeConfig, Option<String>) {
    let mut p = base.clone();
    let mut check = base_check;
    if let Some(c) = &h.check {
        if c.value == PER_TRANSPORT || check_kind(&c.value, &[Transport::Udp], false).is_some() {
            check = Some(c.value.clone());
        } else {
            sink.on(c, format!("{path}.check"), bad_check(&c.value));
        }
    }
    let mut dur = |v: &Option<Spanned<String>>, field: &str, out: &mut Duration| {
        if let Some(v) = v {
            match parse_duration(&v.value) {
                Ok(d) if d >= Duration::from_millis(100) => *out = d,
                Ok(_) => sink.on(v, format!("{path}.{field}"), "must be at least 100ms"),
                Err(e) => sink.on(v, format!("{path}.{field}"), e),
            }
        }
    };
    dur(&h.interval, "interval", &mut p.interval);
    dur(&h.timeout, "timeout", &mut p.timeout);
    dur(
        &h.suspect_interval,
        "suspect_interval",
        &mut p.suspect_interval,
    );
    dur(
        &h.suspect_timeout,
        "suspect_timeout",
        &mut p.suspect_timeout,
    );
    for (v, field, out) in [
        (&h.rise, "rise", &mut p.rise),
        (&h.fall, "fall", &mut p.fall),
    ] {
        if let Some(v) = v {
            if (1..=100).contains(&v.value) {
                *out = v.value;
            } else {
                sink.on(v, format!("{path}.{field}"), "must be between 1 and 100");
            }
        }
    }
    if let Some(codes) = &h.healthy_codes {
        p.healthy_codes.clear();
        for (s, loc) in codes.value.items(codes.referenced) {
            match code_range(s) {
                Some(r) => p.healthy_codes.push(r),
                None => sink.at(
                    loc,
                    format!("{path}.healthy_codes"),
                    format!("invalid SIP status code or range `{s}` (use e.g. 200 or 200-299)"),
                ),
            }
        }
    }
    if let Some(f) = &h.tls_ca_file
        && path != "health"
    {
        sink.on(
            f,
            format!("{path}.tls_ca_file"),
            "belongs in the top-level health section",
        );
    }
    if p.timeout > p.interval {
        let loc = h.timeout.as_ref().or(h.interval.as_ref());
        if let Some(l) = loc {
            sink.on(
                l,
                format!("{path}.timeout"),
                "timeout must not exceed interval",
            );
        }
    }
    (p, check)
}

fn code_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    ((200..=699).contains(&a) && (200..=699).contains(&b) && a <= b).then_some((a, b))
}

fn bad_check(s: &str) -> String {
    format!(
        "unknown check `{s}` (use sip-options, sip-options-udp, sip-options-tcp, sip-options-tls, sip-options-ws, sip-options-wss, tcp-connect, per-transport or none)"
    )
}

/// Resolves a check name against the transports a server speaks: `None` for an unknown
/// name, `Some(None)` for `none`. `sip-options` goes over UDP, else TCP, else TLS (with a
/// `tls_name` to verify), else WebSocket, else secure WebSocket (with a `tls_name`); else it
/// is a TCP connect.
fn check_kind(s: &str, transports: &[Transport], has_tls_name: bool) -> Option<Option<Check>> {
    Some(Some(match s {
        "sip-options" if transports.contains(&Transport::Udp) => Check::SipUdp,
        "sip-options" if transports.contains(&Transport::Tcp) => Check::SipTcp,
        "sip-options" if has_tls_name && transports.contains(&Transport::Tls) => Check::SipTls,
        "sip-options" if transports.contains(&Transport::Ws) => Check::SipWs,
        "sip-options" if has_tls_name && transports.contains(&Transport::Wss) => Check::SipWss,
        "sip-options" => Check::Tcp,
        "sip-options-udp" => Check::SipUdp,
        "sip-options-tcp" => Check::SipTcp,
        "sip-options-tls" => Check::SipTls,
        "sip-options-ws" => Check::SipWs,
        "sip-options-wss" => Check::SipWss,
        "tcp" | "tcp-connect" => Check::Tcp,
        "none" => return Some(None),
        _ => return None,
    }))
}

/// How one server is probed: its `health:` over the inherited settings, its `check:` (or
/// the inherited one) resolved against the transports it speaks; with `per-transport` (the
/// default when no `check:` applies) or a `checks:` map, one check per transport (and
/// `probe.check` is `None`).
pub(super) fn for_server(
    s: &raw::Server,
    transports: &[Transport],
    base: &ProbeConfig,
    base_check: Option<&str>,
    path: &str,
    sink: &mut Sink,
) -> (ProbeConfig, Vec<TransportCheck>) {
    let (mut probe, mut check) = (base.clone(), base_check.map(str::to_owned));
    if let Some(h) = &s.health {
        (probe, check) = overlay(base, check, h, &format!("{path}.health"), sink);
    }
    if let Some(c) = &s.check {
        check = Some(c.value.clone());
        if let Some(m) = &s.checks {
            sink.on(
                m,
                format!("{path}.checks"),
                "use `check` (one check for the whole server) or `checks` (one per transport), not both",
            );
        }
    }
    let check_name = check.as_deref().unwrap_or(PER_TRANSPORT);
    if s.checks.is_some() || check_name == PER_TRANSPORT {
        probe.check = None;
        return (probe, checks::per_transport(s, transports, path, sink));
    }
    match check_kind(check_name, transports, s.tls_name.is_some()) {
        Some(k) => probe.check = k,
        None => {
            if let Some(c) = &s.check {
                sink.on(c, format!("{path}.check"), bad_check(&c.value));
            }
        }
    }
    (probe, Vec::new())
}

/// What a server's `sip-options-tls` (or `sip-options-wss`) check verifies: its `tls_name`
/// (required by that check, refused without one); the trust anchors are set once the whole
/// file is read.
pub(super) fn tls_check(
    s: &raw::Server,
    uses_tls: Option<Check>,
    path: &str,
    sink: &mut Sink,
) -> Option<std::sync::Arc<TlsCheck>> {
    let name = s.tls_name.as_ref();
    let Some(check) = uses_tls else {
        if let Some(n) = name {
            sink.on(
                n,
                format!("{path}.tls_name"),
                "applies only to checks sip-options-tls and sip-options-wss",
            );
        }
        return None;
    };
    let Some(n) = name else {
        let at = checks::tls_location(s);
        sink.at(
            at,
            format!("{path}.tls_name"),
            format!(
                "check {} needs `tls_name`, the SIP domain its certificate must name",
                check.as_str()
            ),
        );
        return None;
    };
    let ok = !n.value.is_empty()
        && n.value.parse::<std::net::IpAddr>().is_err()
        && rustls::pki_types::ServerName::try_from(n.value.as_str()).is_ok();
    if !ok {
        sink.on(
            n,
            format!("{path}.tls_name"),
            format!("invalid DNS name `{}`", n.value),
        );
        return None;
    }
    Some(std::sync::Arc::new(TlsCheck {
        name: n.value.trim_end_matches('.').to_ascii_lowercase(),
        ca: None,
    }))
}
