//! What `explain` says of traffic engineering: the split of the client's region and where
//! its prefix falls, and each server's shedding share and whether it leaves this client out.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::dns::snapshot::Snapshot;
use crate::steering::{self, Plan, Service};

#[derive(Debug, Serialize)]
pub(crate) struct SplitOut {
    /// The region whose clients are split: the client's first region as ranked.
    pub region: String,
    /// The prefix hashed: the client's /24 or /56.
    pub prefix: String,
    pub targets: Vec<SplitTargetOut>,
    /// The target this prefix falls to; `None`: it stays with the region.
    pub target: Option<String>,
    /// The target is answered first (false when it is down, or no target took the prefix).
    pub answered: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct SplitTargetOut {
    pub region: String,
    pub percent: f64,
}

/// The split that applies to a client of `svc` ranked with `first` first, if any.
pub(super) fn split_out(
    snap: &Snapshot,
    svc: &Service,
    first: Option<u16>,
    plan: &Plan,
    located: IpAddr,
) -> Option<SplitOut> {
    let first = first?;
    let rules = svc.splits.get(first as usize).filter(|r| !r.is_empty())?;
    let name = |pos: u16| {
        snap.steering.regions[svc.regions[pos as usize]]
            .name
            .clone()
    };
    Some(SplitOut {
        region: name(first),
        prefix: prefix_text(located),
        targets: rules
            .iter()
            .map(|r| SplitTargetOut {
                region: name(r.to),
                percent: r.percent,
            })
            .collect(),
        target: plan.split.map(name),
        answered: plan.split.is_some() && plan.tiers().first().copied() == plan.split,
    })
}

/// The client prefix that splits and shedding hash, as CIDR.
pub(super) fn prefix_text(located: IpAddr) -> String {
    let (key, _) = steering::client_prefix(located);
    match key[0] {
        4 => format!("{}.{}.{}.0/24", key[1], key[2], key[3]),
        _ => {
            let mut o = [0u8; 16];
            o[..7].copy_from_slice(&key[1..]);
            format!("{}/56", std::net::Ipv6Addr::from(o))
        }
    }
}

/// The share of clients a server sheds, in percent to one decimal; `None` when it sheds
/// nobody.
pub(super) fn shed_percent(snap: &Snapshot, slot: usize) -> Option<f64> {
    let t = snap.health.shed(slot);
    (t != 0).then(|| (t as f64 / 18_446_744_073_709_551_616.0 * 1000.0).round() / 10.0)
}

/// The `split` line.
pub(super) fn render_split(s: &mut String, sp: &SplitOut) {
    let targets: Vec<String> = sp
        .targets
        .iter()
        .map(|t| format!("{} {}%", t.region, t.percent))
        .collect();
    let _ = writeln!(
        s,
        "split     {} of {}: {} -> {}",
        sp.prefix,
        sp.region,
        targets.join(", "),
        match (&sp.target, sp.answered) {
            (Some(t), true) => format!("sent to {t}"),
            (Some(t), false) => format!("{t}, which does not serve this client: as ranked"),
            (None, _) => format!("stays with {}", sp.region),
        }
    );
}
