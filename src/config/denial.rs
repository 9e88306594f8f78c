//! `dnssec.denial` in `sipsteer.yaml`: the bounds of the compact denial proofs (RFC 9824)
//! of names that do not exist in a signed zone, signed off the query path: how many signed
//! proofs are kept, and how many queries may wait for the signer thread.

use super::error::Sink;
use super::raw;

/// Signed proofs kept by default (about 300 bytes each for a 30-byte name).
const DEFAULT_CACHE: usize = 65_536;
/// Queries waiting for the signer by default (a signature takes 50-300 µs).
const DEFAULT_QUEUE: usize = 1_024;
const MAX_CACHE: u32 = 10_000_000;
const MAX_QUEUE: u32 = 1_000_000;

/// `dnssec.denial`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenialSettings {
    /// Signed NXNAME proofs kept (by zone key and name).
    pub cache: usize,
    /// Queries waiting for a proof to be signed; one more is dropped and counted.
    pub queue: usize,
}

impl Default for DenialSettings {
    fn default() -> Self {
        DenialSettings {
            cache: DEFAULT_CACHE,
            queue: DEFAULT_QUEUE,
        }
    }
}

/// Reads `dnssec.denial`, reporting values out of bounds.
pub(super) fn settings(d: Option<&raw::MainDnssec>, sink: &mut Sink) -> DenialSettings {
    let mut s = DenialSettings::default();
    let Some(d) = d.and_then(|d| d.denial.as_ref()) else {
        return s;
    };
    if let Some(c) = &d.cache {
        if c.value == 0 || c.value > MAX_CACHE {
            let msg = format!("must be between 1 and {MAX_CACHE}");
            sink.on(c, "dnssec.denial.cache", msg);
        } else {
            s.cache = c.value as usize;
        }
    }
    if let Some(q) = &d.queue {
        if q.value == 0 || q.value > MAX_QUEUE {
            let msg = format!("must be between 1 and {MAX_QUEUE}");
            sink.on(q, "dnssec.denial.queue", msg);
        } else {
            s.queue = q.value as usize;
        }
    }
    s
}
