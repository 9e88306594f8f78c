//! One round's replies turned into loads: each server's calls and cps taken from the replies
//! of its queries by its place among their users (no search), refused values counted by
//! reason and the first few kept to show.

use super::fetch::PullError;
use super::plan::{Plan, Slot};
use super::reply::{Reason, Reply, Sample};
use super::status::{LISTED, Rejection};

/// One load to record: region, server, calls, cps.
pub(super) type Report<'a> = (&'a str, &'a str, Option<u32>, Option<u32>);

/// What a round brought.
pub(super) struct Loads<'a> {
    /// Every server that got a value.
    pub reports: Vec<Report<'a>>,
    /// Refused values, counted per reason in the order of [`Reason::ALL`].
    pub rejected: [u64; 4],
    /// The first refused values.
    pub listed: Vec<Rejection>,
}

impl Loads<'_> {
    pub(super) fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

/// The loads of `plan`'s servers from `replies` (one per query, `None` when it did not run).
pub(super) fn loads<'a>(plan: &'a Plan, replies: &[Option<Result<Reply, PullError>>]) -> Loads<'a> {
    let mut out = Loads {
        reports: Vec::with_capacity(plan.source.servers.len()),
        rejected: [0; 4],
        listed: Vec::new(),
    };
    for (s, [calls, cps]) in plan.source.servers.iter().zip(&plan.slots) {
        let mut value = |slot: &Option<Slot>, field: &'static str| {
            let slot = (*slot)?;
            let reply = replies.get(slot.query)?.as_ref()?.as_ref().ok()?;
            match reply.samples.get(slot.user)?.as_ref()? {
                Sample::Value(v) => Some(v.round().min(f64::from(u32::MAX)) as u32),
                Sample::Rejected(reason, text) => {
                    out.rejected[index(*reason)] += 1;
                    if out.listed.len() < LISTED {
                        out.listed.push(Rejection {
                            server: format!("{}/{}", s.region, s.server),
                            field,
                            value: text.clone(),
                            reason: reason.as_str(),
                        });
                    }
                    None
                }
            }
        };
        let calls = value(calls, "calls");
        let cps = value(cps, "cps");
        if calls.is_some() || cps.is_some() {
            out.reports
                .push((s.region.as_str(), s.server.as_str(), calls, cps));
        }
    }
    out
}

fn index(r: Reason) -> usize {
    Reason::ALL.iter().position(|x| *x == r).unwrap_or(0)
}
