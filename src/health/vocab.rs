//! The words every part of health speaks, in one leaf that imports nothing else of health:
//! what is probed ([`Target`]) and how ([`ProbeSpec`]: cadence, thresholds, healthy codes),
//! what a probe yields ([`ProbeResult`], [`ProbeError`]), how results travel to the hub
//! ([`Batch`]), and the time they run on (the common [`TICK`], [`first_delay`], [`jitter`]).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::{Check, TlsCheck};

/// What is probed: the identity used to run one probe per distinct target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: SocketAddr,
    pub check: Check,
    /// What a `sip-options-tls` or `sip-options-wss` check verifies; `None` for every other
    /// check.
    pub tls: Option<Arc<TlsCheck>>,
    /// The path of a WebSocket check's upgrade request; `None` for every other check.
    pub path: Option<Arc<str>>,
}

impl Target {
    /// A target of a check that is not over TLS.
    pub fn plain(addr: SocketAddr, check: Check) -> Target {
        Target {
            addr,
            check,
            tls: None,
            path: None,
        }
    }
}

/// Why a TLS check failed, the `reason` label of `sipsteer_sip_tls_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate is past its notAfter (or not yet valid).
    Expired,
    /// The certificate does not name the server's `tls_name`.
    NameMismatch,
    /// The chain does not lead to a trusted root (or is otherwise invalid).
    Untrusted,
    /// The TCP connection or the handshake failed for another reason.
    Handshake,
    /// Connecting, the handshake or the request did not finish within the probe timeout.
    Timeout,
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 5] = [
        TlsFailure::Expired,
        TlsFailure::NameMismatch,
        TlsFailure::Untrusted,
        TlsFailure::Handshake,
        TlsFailure::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::Expired => "expired",
            TlsFailure::NameMismatch => "name_mismatch",
            TlsFailure::Untrusted => "untrusted",
            TlsFailure::Handshake => "handshake",
            TlsFailure::Timeout => "timeout",
        }
    }
}

/// What a TLS check saw of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsSeen {
    /// The leaf certificate's notAfter (Unix seconds), read whether or not it verified.
    pub not_after: Option<i64>,
    /// Why the check failed at the TLS layer, if it did.
    pub failure: Option<TlsFailure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Up,
    /// Alive but overloaded (SIP 503).
    Full,
    Down,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub outcome: Outcome,
    pub code: Option<u16>,
    pub rtt: Duration,
    /// `200 OK`, `503 Service Unavailable (retry-after 30)`, `timeout after 2s`, ...
    pub detail: String,
    /// What a TLS check saw of the certificate (`None` for other checks).
    pub tls: Option<TlsSeen>,
}

/// Which final SIP codes mean a healthy server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CodePolicy {
    /// `None`: every final code but 500, 502, 504 (down) and 503 (full).
    healthy: Option<Vec<(u16, u16)>>,
}

impl CodePolicy {
    /// Only these codes (inclusive ranges) are healthy; 503 is always full.
    pub fn from_ranges(r: &[(u16, u16)]) -> CodePolicy {
        CodePolicy {
            healthy: Some(r.to_vec()),
        }
    }

    pub fn classify(&self, code: u16) -> Outcome {
        if code == 503 {
            return Outcome::Full;
        }
        match &self.healthy {
            None if matches!(code, 500 | 502 | 504) => Outcome::Down,
            None => Outcome::Up,
            Some(r) if r.iter().any(|(a, b)| (*a..=*b).contains(&code)) => Outcome::Up,
            Some(_) => Outcome::Down,
        }
    }
}

/// The SIP retransmission timer T1: a UDP request is sent again at T1, 3·T1, 7·T1...
pub(crate) const T1: Duration = Duration::from_millis(500);

impl ProbeResult {
    /// The result of a probe that ended with `r` after `rtt`.
    pub(crate) fn from_res(r: Res, rtt: Duration) -> ProbeResult {
        match r {
            Ok((outcome, code, detail)) => ProbeResult {
                outcome,
                code,
                rtt,
                detail,
                tls: None,
            },
            Err(e) => ProbeResult {
                outcome: Outcome::Down,
                code: None,
                rtt,
                detail: e.to_string(),
                tls: None,
            },
        }
    }
}

/// Why a probe got no final answer from its target (the target counts as down). The text is
/// the probe's `detail` in `/v1/servers` and the logs, beside the server it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connection refused")]
    Refused,
    #[error("connection reset")]
    Reset,
    #[error("network error: {0}")]
    Network(std::io::Error),
    #[error("timeout after {}", fmt_dur(*.0))]
    Timeout(Duration),
    /// What the target sent could not be read as a SIP response.
    #[error("bad response: {0}")]
    BadResponse(String),
    #[error("connection closed without a final response")]
    Closed,
    #[error("probe socket closed")]
    SocketClosed,
    /// The TLS handshake failed (the text says why: the certificate, or the peer).
    #[error("tls: {0}")]
    Tls(String),
}

impl From<std::io::Error> for ProbeError {
    fn from(e: std::io::Error) -> ProbeError {
        match e.kind() {
            ErrorKind::ConnectionRefused => ProbeError::Refused,
            ErrorKind::ConnectionReset => ProbeError::Reset,
            _ => ProbeError::Network(e),
        }
    }
}

/// A final answer: its outcome, SIP code (none for a TCP connect) and detail text.
pub(crate) type Res = Result<(Outcome, Option<u16>, String), ProbeError>;

/// A final response as a probe's detail: `503 Service Unavailable (retry-after 30)`.
pub(crate) fn describe(code: u16, reason: &str, retry_after: Option<u32>) -> String {
    let mut s = format!("{code} {reason}");
    if let Some(r) = retry_after {
        s.push_str(&format!(" (retry-after {r})"));
    }
    s
}

fn fmt_dur(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    pub rise: u32,
    pub fall: u32,
}

/// How a target's probes are spaced and bounded: the steady cadence, and the short one
/// while the server is suspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cadence {
    pub interval: Duration,
    pub timeout: Duration,
    pub suspect_interval: Duration,
    pub suspect_timeout: Duration,
}

/// How one target is probed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProbeSpec {
    pub target: Target,
    pub cadence: Cadence,
    pub thresholds: Thresholds,
    pub policy: Arc<CodePolicy>,
}

/// The probe results of one pass of the scheduler, on their way to the hub.
pub(crate) type Batch = Vec<(Target, ProbeResult)>;
/// Where the scheduler sends its batches.
pub(crate) type Results = mpsc::Sender<Batch>;

/// Timers of all probes fire on a common 10 ms tick, so the probes due in one tick run in one
/// wake-up of the runtime instead of one each.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// `after` from now, rounded up to the next tick of a grid aligned on the wall clock (so every
/// timer of the process shares the same ticks without a shared origin).
pub(crate) fn on_tick(after: Duration) -> tokio::time::Instant {
    let at = Instant::now() + after;
    let wall = std::time::SystemTime::now() + after;
    let since = wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tick = TICK.as_nanos();
    let up = Duration::from_nanos(((tick - since % tick) % tick) as u64);
    tokio::time::Instant::from_std(at + up)
}

/// When a new target's first probe starts: `r` (0..1) of the way into its interval, so the
/// probes of targets added together spread over the interval.
pub(crate) fn first_delay(interval: Duration, r: f64) -> Duration {
    interval.mul_f64(r.clamp(0.0, 1.0))
}

/// The factor (0.9..=1.1) a steady interval is scaled by, from `r` (0..1).
pub(crate) fn jitter(r: f64) -> f64 {
    0.9 + 0.2 * r.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_policy() {
        let d = CodePolicy::default();
        assert_eq!(d.classify(200), Outcome::Up);
        assert_eq!(d.classify(404), Outcome::Up);
        assert_eq!(d.classify(501), Outcome::Up);
        assert_eq!(d.classify(503), Outcome::Full);
        assert_eq!(d.classify(500), Outcome::Down);
        assert_eq!(d.classify(504), Outcome::Down);
        let p = CodePolicy::from_ranges(&[(200, 299), (404, 404)]);
        assert_eq!(p.classify(202), Outcome::Up);
        assert_eq!(p.classify(404), Outcome::Up);
        assert_eq!(p.classify(403), Outcome::Down);
        assert_eq!(p.classify(503), Outcome::Full);
    }

    #[test]
    fn first_probes_spread_over_the_interval_and_jitter_stays_within_ten_percent() {
        let i = Duration::from_secs(5);
        assert_eq!(first_delay(i, 0.0), Duration::ZERO);
        assert_eq!(first_delay(i, 0.5), Duration::from_millis(2500));
        assert!(first_delay(i, 0.999_999) < i);
        assert_eq!(first_delay(i, 7.0), i, "clamped");
        assert!((jitter(0.0) - 0.9).abs() < 1e-12);
        assert!((jitter(1.0) - 1.1).abs() < 1e-12);
        for _ in 0..10_000 {
            let j = jitter(rand::random::<f64>());
            assert!((0.9..=1.1).contains(&j), "{j}");
            let f = first_delay(i, rand::random::<f64>());
            assert!(f <= i, "{f:?}");
        }
    }
}
