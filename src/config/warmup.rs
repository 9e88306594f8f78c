//! `geoip.warmup`: how steered names that need the GeoIP map answer between a start and the
//! moment the database is compiled (in their fallback order with a short TTL, or SERVFAIL).

use super::error::Sink;
use super::raw;

/// What a steered answer that needs the GeoIP map is before the map is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmupAnswer {
    /// The service's fallback order, ECS scope 0, TTL at most [`Warmup::ttl`].
    Fallback,
    /// SERVFAIL (with Extended DNS Error 14, Not Ready), so resolvers ask another name server.
    Servfail,
}

/// The `geoip.warmup` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warmup {
    pub answer: WarmupAnswer,
    /// Largest TTL of a warm-up answer (its records and, for NODATA, its SOA).
    pub ttl: u32,
}

impl Default for Warmup {
    fn default() -> Self {
        Warmup {
            answer: WarmupAnswer::Fallback,
            ttl: DEFAULT_TTL,
        }
    }
}

/// Seconds a warm-up answer may be cached by default.
const DEFAULT_TTL: u32 = 5;
/// The largest `geoip.warmup.ttl` accepted.
const MAX_TTL: u32 = 3600;

/// Reads `geoip.warmup` (defaults without it).
pub(super) fn settings(g: Option<&raw::Geoip>, sink: &mut Sink) -> Warmup {
    let mut w = Warmup::default();
    let Some(raw) = g.and_then(|g| g.warmup.as_ref()) else {
        return w;
    };
    if let Some(a) = &raw.answer {
        match a.value.as_str() {
            "fallback" => w.answer = WarmupAnswer::Fallback,
            "servfail" => w.answer = WarmupAnswer::Servfail,
            other => sink.on(
                a,
                "geoip.warmup.answer",
                format!("unknown answer `{other}`: expected fallback or servfail"),
            ),
        }
    }
    if let Some(t) = &raw.ttl {
        if t.value <= MAX_TTL {
            w.ttl = t.value;
        } else {
            sink.on(
                t,
                "geoip.warmup.ttl",
                format!("must be between 0 and {MAX_TTL} seconds"),
            );
        }
    }
    w
}
