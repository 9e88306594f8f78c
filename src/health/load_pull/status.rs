//! What `/v1/status` shows under `load_pull`: where load comes from, how the last rounds went,
//! the caps in force and the values refused.

use serde::Serialize;

/// Rejections of one round listed in full (the rest are only counted).
pub(super) const LISTED: usize = 16;

/// What `/v1/status` shows about pulled load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullStatus {
    pub url: String,
    pub servers: usize,
    /// Distinct queries sent per interval.
    pub queries_per_interval: usize,
    pub last_attempt_unix: u64,
    pub last_success_unix: u64,
    pub last_error: Option<String>,
    pub queries_ok: u64,
    pub queries_failed: u64,
    /// A reply with more series than this fails its query.
    pub max_series: usize,
    /// A reply with more bytes than this fails its query.
    pub max_bytes: u64,
    /// How long the last round took, from its first query to its loads recorded.
    pub last_round_ms: u64,
    /// Series read in the last round, over every query.
    pub last_round_series: usize,
    /// Servers that got a load in the last round.
    pub last_round_loads: usize,
    /// Values refused in the last round (NaN, infinite, negative, not a number).
    pub last_round_rejected: usize,
    pub rejected_total: u64,
    /// The values refused in the last round (the first few).
    pub rejections: Vec<Rejection>,
}

/// One value refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// `region/server`.
    pub server: String,
    /// `calls` or `cps`.
    pub field: &'static str,
    /// As Prometheus wrote it.
    pub value: String,
    /// `nan`, `inf`, `negative` or `not_a_number`.
    pub reason: &'static str,
}
