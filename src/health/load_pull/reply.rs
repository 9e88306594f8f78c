//! One instant query's reply, read as it arrives and never built as a tree: each series is
//! looked up by label in a [`Matcher`] built once per config, the values of the series that
//! belong to a server are kept, and everything else is skipped (`walk`). What a reply costs is
//! bounded by the servers of the query, not by the reply: series are counted against a cap,
//! no string or number may be longer than [`MAX_TOKEN`] and nothing may nest deeper than
//! [`MAX_DEPTH`] (`bound`; skipped values are skipped without recursion, but with a stack of
//! one byte per level). NaN, infinite and negative values are kept as rejections with their
//! reason, never taken as load (`sample`).

use std::io::{BufReader, Read};

mod bound;
mod matcher;
mod sample;
#[cfg(test)]
mod tests;
mod walk;

pub use bound::{MAX_DEPTH, MAX_TOKEN};
pub use matcher::Matcher;
pub use sample::{Reason, Sample};

use bound::TokenBound;
use sample::{Parsed, sample};
use walk::{Kind, Stopped};

/// What one reply holds for the users of its query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Per user: the sample of its first series, if the reply had one.
    pub samples: Vec<Option<Sample>>,
    /// Series in the reply (1 for a scalar).
    pub series: usize,
}

/// Why a reply gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply is not JSON: {0}")]
    NotJson(String),
    /// Prometheus answered with an error of its own.
    #[error("prometheus says: {0}")]
    Failed(String),
    #[error("unsupported result type {0} (use an instant vector or scalar query)")]
    ResultType(String),
    #[error("reply has more than {0} series (load.max_series)")]
    TooManySeries(usize),
    #[error("reply holds a string or number longer than {MAX_TOKEN} bytes")]
    TokenTooLong,
    #[error("reply nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Reads one reply from `r`, keeping the samples of `m`'s users; fails past `max_series`.
pub fn read_reply<R: Read>(r: R, m: &Matcher, max_series: usize) -> Result<Reply, ReplyError> {
    let mut bound = TokenBound::new(r);
    let walked = walk::walk(BufReader::new(&mut bound), m, max_series);
    let w = walked.map_err(|e| match e {
        Stopped::Series => ReplyError::TooManySeries(max_series),
        Stopped::Json(_) if bound.too_long => ReplyError::TokenTooLong,
        Stopped::Json(_) if bound.too_deep => ReplyError::TooDeep,
        Stopped::Json(e) => ReplyError::NotJson(e),
    })?;
    if w.success != Some(true) {
        let msg = w.error.unwrap_or_else(|| "query failed".to_owned());
        return Err(ReplyError::Failed(msg));
    }
    let (mut samples, mut series) = (w.samples, w.series);
    let only = |p: Option<Parsed>| p.map(|p| sample(&p));
    match w.kind {
        Some(Kind::Vector) => {
            if m.users == 1 && series == 1 && samples[0].is_none() {
                samples[0] = only(w.first);
            }
        }
        Some(Kind::Scalar) => {
            samples.iter_mut().for_each(|s| *s = None);
            if m.users == 1 {
                samples[0] = only(w.scalar);
            }
            series = 1;
        }
        Some(Kind::Other(t)) => return Err(ReplyError::ResultType(t)),
        None => return Err(ReplyError::ResultType("none".to_owned())),
    }
    Ok(Reply { samples, series })
}
