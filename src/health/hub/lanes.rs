//! A server's lanes: each of its checks with the transports whose health it decides. A
//! server checked as a whole has one lane for all its transports; a server with health per
//! transport has one per transport. The first lane's state machine is the entry's own
//! (`Entry::health`, which also holds the forced state and the load); the others keep only
//! what their probes say. A server is answered on a transport while its lane's state
//! serves, and for A/AAAA and its region's health while any lane's does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Entry, Identity, Inner};
use crate::config::{Check, ServerConfig, Transport};
use crate::health::state::{Observed, ServerHealth};
use crate::health::vocab::{Target, Thresholds};
use crate::steering::{HealthView, RECENT_FLIP, Status};

/// A lane after the first: its transports, check, target and what its probes say.
#[derive(Debug, Clone)]
pub(super) struct Lane {
    pub mask: u8,
    pub check: Option<Check>,
    pub target: Option<Target>,
    pub health: ServerHealth,
}

/// The probe target of one lane of a server: its first address, on the port its check
/// uses (a connect check: the SIP port when the lane has UDP or TCP, else the port of its
/// first transport).
pub(super) fn target_of(s: &ServerConfig, mask: u8, check: Option<Check>) -> Option<Target> {
    let ip = *s.addresses.first()?;
    let check = check?;
    let port = match check {
        Check::SipUdp | Check::SipTcp => s.port,
        Check::SipTls => s.tls_port,
        Check::SipWs => s.ws_port,
        Check::SipWss => s.wss_port,
        Check::Tcp => Transport::in_mask(mask)
            .next()
            .map_or(s.port, |t| s.port_for(t)),
    };
    let tls = if matches!(check, Check::SipTls | Check::SipWss) {
        Some(s.tls_check.clone()?)
    } else {
        None
    };
    let path = matches!(check, Check::SipWs | Check::SipWss).then(|| s.ws_path.clone());
    Some(Target {
        addr: SocketAddr::new(ip, port),
        check,
        tls,
        path,
    })
}

/// What makes server `s` the same across reloads, and its first lane's transports and check.
pub(super) fn identity_of(s: &ServerConfig) -> (Identity, u8, Option<Check>) {
    let all = s.lanes();
    let (mask, check) = all.first().copied().unwrap_or((0, None));
    let identity = Identity {
        target: target_of(s, mask, check),
        more: all
            .iter()
            .skip(1)
            .map(|&(m, c)| (m, target_of(s, m, c)))
            .collect(),
        capacity: s.capacity,
        rise: s.probe.rise,
        fall: s.probe.fall,
    };
    (identity, mask, check)
}

/// The lanes after the first of a server, new (nothing observed yet); an unprobed lane is
/// up from `now`.
pub(super) fn more_lanes(s: &ServerConfig, now: Instant) -> Vec<Lane> {
    let t = Thresholds {
        rise: s.probe.rise,
        fall: s.probe.fall,
    };
    s.lanes()
        .into_iter()
        .skip(1)
        .map(|(mask, check)| {
            let mut health = ServerHealth::new(t, None, now);
            let target = target_of(s, mask, check);
            if target.is_none() {
                health.assume_up(now);
            }
            Lane {
                mask,
                check,
                target,
                health,
            }
        })
        .collect()
}

/// How good a state is for a server with several lanes: the best lane's state is the
/// server's.
fn rank(s: Status) -> u8 {
    match s {
        Status::Up => 0,
        Status::Unknown => 1,
        Status::Full => 2,
        Status::Down => 3,
        Status::Drained => 4,
    }
}

/// How good an observed state is, as [`rank`].
fn rank_observed(o: Observed) -> u8 {
    match o {
        Observed::Up => 0,
        Observed::Unknown => 1,
        Observed::Full => 2,
        Observed::Down => 3,
    }
}

impl Entry {
    /// Every lane: its transports, check, target and state machine.
    pub(super) fn lanes(
        &self,
    ) -> impl Iterator<Item = (u8, Option<Check>, Option<&Target>, &ServerHealth)> {
        std::iter::once((
            self.mask,
            self.check,
            self.identity.target.as_ref(),
            &self.health,
        ))
        .chain(
            self.more
                .iter()
                .map(|l| (l.mask, l.check, l.target.as_ref(), &l.health)),
        )
    }

    /// The state machine of lane `k`.
    pub(super) fn lane(&self, k: u8) -> Option<&ServerHealth> {
        match k {
            0 => Some(&self.health),
            k => self.more.get(usize::from(k) - 1).map(|l| &l.health),
        }
    }

    /// The transports (a mask) of lane `k`.
    pub(super) fn lane_mask(&self, k: u8) -> u8 {
        match k {
            0 => self.mask,
            k => self.more.get(usize::from(k) - 1).map_or(0, |l| l.mask),
        }
    }

    /// The state machine of lane `k`, to apply a result to.
    pub(super) fn lane_mut(&mut self, k: u8) -> Option<&mut ServerHealth> {
        match k {
            0 => Some(&mut self.health),
            k => self.more.get_mut(usize::from(k) - 1).map(|l| &mut l.health),
        }
    }

    /// Whether the server's health is per transport (it has a lane per transport).
    pub(super) fn per_transport(&self) -> bool {
        self.per_transport
    }

    /// The state of each lane: its transports, its state and the observed one.
    pub(super) fn lane_states(
        &self,
        now: Instant,
        overflow_at: f64,
        ttl: Duration,
    ) -> impl Iterator<Item = (u8, Status, Observed)> + '_ {
        self.lanes().map(move |(mask, _, _, h)| {
            let o = h.observed();
            (mask, self.health.effective_as(o, now, overflow_at, ttl), o)
        })
    }

    /// The server's state (the best of its lanes') and the transports (a mask) it is not
    /// answered on while the state serves.
    pub(super) fn status(&self, now: Instant, overflow_at: f64, ttl: Duration) -> (Status, u8) {
        if self.more.is_empty() {
            return (self.health.effective(now, overflow_at, ttl), 0);
        }
        let mut best = Status::Drained;
        let mut out = 0;
        for (mask, st, _) in self.lane_states(now, overflow_at, ttl) {
            if !st.serves() {
                out |= mask;
            }
            if rank(st) < rank(best) {
                best = st;
            }
        }
        (best, out)
    }

    /// What the probes say of the server: the best lane's observed state.
    pub(super) fn observed(&self) -> Observed {
        self.lanes()
            .map(|(_, _, _, h)| h.observed())
            .min_by_key(|o| rank_observed(*o))
            .unwrap_or(Observed::Unknown)
    }

    /// Up, but the latest probes of a lane failed.
    pub(super) fn suspect(&self) -> bool {
        self.lanes().any(|(_, _, _, h)| h.suspect())
    }

    /// A lane's state changed within `window`.
    pub(super) fn flipped_within(&self, now: Instant, window: Duration) -> bool {
        self.lanes()
            .any(|(_, _, _, h)| h.flipped_within(now, window))
    }

    /// When the server's state last changed (its latest lane change).
    pub(super) fn since(&self) -> Instant {
        self.lanes()
            .map(|(_, _, _, h)| h.since())
            .max()
            .unwrap_or_else(|| self.health.since())
    }
}

/// The health view of the entries, indexed by server slot.
pub(super) fn view(inner: &Inner, now: Instant) -> HealthView {
    let shed: Vec<u64> = match inner.shed {
        Some(marks) => inner
            .entries
            .iter()
            .map(|e| e.health.shed_threshold(now, marks, inner.report_ttl))
            .collect(),
        None => vec![0; inner.entries.len()],
    };
    let states: Vec<(Status, u8)> = inner
        .entries
        .iter()
        .map(|e| e.status(now, inner.overflow_at, inner.report_ttl))
        .collect();
    HealthView {
        shedding: shed.iter().any(|&t| t != 0),
        shed,
        status: states.iter().map(|s| s.0).collect(),
        not_on: states.iter().map(|s| s.1).collect(),
        headroom: inner
            .entries
            .iter()
            .map(|e| e.health.headroom(now, inner.report_ttl).map(|h| h as f32))
            .collect(),
        suspect: inner.entries.iter().map(Entry::suspect).collect(),
        flipped: inner
            .entries
            .iter()
            .map(|e| e.flipped_within(now, RECENT_FLIP))
            .collect(),
    }
}
