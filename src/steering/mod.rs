//! The steering core: which regions and servers a client gets, and why.
//!
//! Pure: values in (compiled config, health view, client address), a [`Plan`] out. No I/O,
//! clock or randomness, so the DNS handler, `explain` and `/v1/explain` share it and tests
//! need no sockets. [`compile`] builds the data once per config and GeoIP load.

mod compile;
mod policy;
mod rank;
mod traffic;

use std::net::IpAddr;

pub use compile::{
    Region, Server, Service, Steering, compile, compile_keeping, compile_reusing, narrow,
};
pub use rank::{Ranking, rank_location, rank_pinned};
pub use traffic::{
    SPLIT_PREFIX_V4, SPLIT_PREFIX_V6, Split, client_prefix, compile_split, in_share, prefix_hash,
    shed_hash, split_target, threshold,
};

use crate::config::{AllDown, MAX_TIERS, Transport};

/// A server's state: what the health hub works out (`ServerHealth::effective`) and steering
/// answers from. The one place that says whether a server is answered ([`Status::serves`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No probe result yet: treated as up.
    Unknown,
    Up,
    Down,
    /// Overloaded (503 or a load report over capacity).
    Full,
    /// Taken out by an operator.
    Drained,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Up => "up",
            Status::Down => "down",
            Status::Full => "full",
            Status::Drained => "drained",
        }
    }

    /// Whether the server may be answered.
    pub fn serves(self) -> bool {
        matches!(self, Status::Up | Status::Unknown)
    }
}

/// Health of every server, indexed by server slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthView {
    pub status: Vec<Status>,
    /// Remaining capacity (0..=1) when load is known; scales SRV weights.
    pub headroom: Vec<Option<f32>>,
    /// Up, but its latest probes failed: being confirmed at the suspect cadence.
    pub suspect: Vec<bool>,
    /// Its state changed a moment ago ([`RECENT_FLIP`]).
    pub flipped: Vec<bool>,
    /// The share of clients a server is left out for while its load is between the
    /// shedding watermarks (`capacity.shed`), as a threshold on the shedding hash
    /// ([`threshold`]); 0 = none.
    pub shed: Vec<u64>,
    /// Whether any server sheds: only then is a client's shedding hash computed.
    pub shedding: bool,
    /// The transports (a mask of [`Transport::bit`]) a server is not answered on while its
    /// state serves: those whose own check (health per transport) says it does not; 0 when
    /// one check decides the whole server.
    pub not_on: Vec<u8>,
}

/// How long a server counts as recently flipped, for the trouble TTL.
pub const RECENT_FLIP: std::time::Duration = std::time::Duration::from_secs(60);

impl HealthView {
    /// Every server up, nothing known about load (`explain` offline, and before probing).
    pub fn all_up(slots: usize) -> HealthView {
        HealthView {
            status: vec![Status::Unknown; slots],
            headroom: vec![None; slots],
            suspect: vec![false; slots],
            flipped: vec![false; slots],
            shed: vec![0; slots],
            shedding: false,
            not_on: vec![0; slots],
        }
    }
    /// Whether the server is left out on transport `t` by that transport's own health.
    pub fn out_on(&self, slot: usize, t: Transport) -> bool {
        self.not_on.get(slot).is_some_and(|m| m & t.bit() != 0)
    }
    /// The server's shedding threshold (0 when it sheds nobody).
    pub fn shed(&self, slot: usize) -> u64 {
        self.shed.get(slot).copied().unwrap_or(0)
    }
    /// Whether the server is answered to a client whose shedding hash is `key`: it serves,
    /// and it does not shed that client.
    pub fn serves_client(&self, slot: usize, key: Option<u64>) -> bool {
        self.status(slot).serves() && !key.is_some_and(|k| self.sheds(slot, k))
    }
    /// Whether the server leaves out a client whose shedding hash is `key`.
    pub fn sheds(&self, slot: usize, key: u64) -> bool {
        let t = self.shed(slot);
        t != 0 && in_share(key, t)
    }
    pub fn status(&self, slot: usize) -> Status {
        self.status.get(slot).copied().unwrap_or(Status::Unknown)
    }
    pub fn headroom(&self, slot: usize) -> Option<f32> {
        self.headroom.get(slot).copied().flatten()
    }
    pub fn suspect(&self, slot: usize) -> bool {
        self.suspect.get(slot).copied().unwrap_or(false)
    }
    /// Suspect, recently flipped, full or shedding: answers that include it may soon change.
    pub fn troubled(&self, slot: usize) -> bool {
        self.suspect(slot)
            || self.flipped.get(slot).copied().unwrap_or(false)
            || self.status(slot) == Status::Full
            || self.shed(slot) != 0
    }
}

/// Why the ranking (or the answer) is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A `networks:` override matched the client.
    Network,
    /// The client's country is listed on the first region.
    Country,
    /// The client's continent is listed on the first region.
    Continent,
    /// Nearest by great-circle distance.
    Distance,
    /// No location known: the service's fallback order.
    Fallback,
    /// A per-region name: that region first, then the regions nearest to it.
    Pinned,
    /// The GeoIP database is not compiled yet (after a start): the service's fallback order
    /// with the warm-up TTL, or SERVFAIL (`geoip.warmup`).
    Warmup,
    /// Nearest by distance once the service's `bias:` is applied, which changed the order.
    Bias,
    /// The client's prefix is in a `split:` share of its region: sent to the split's target.
    Split,
    /// Proportional shedding (`capacity.shed`) left this client's nearest region out.
    Shed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Network => "network",
            Reason::Country => "country",
            Reason::Continent => "continent",
            Reason::Distance => "distance",
            Reason::Fallback => "fallback",
            Reason::Pinned => "pinned",
            Reason::Warmup => "warmup",
            Reason::Bias => "bias",
            Reason::Split => "split",
            Reason::Shed => "shed",
        }
    }
}

/// What a query asks steering for (a probe target is `health::probe::Target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// `sip.example.com` and its SRV names: ranked for the client.
    Service,
    /// `uk.sip.example.com`: pinned to one of the service's regions (position in its list).
    Region(u16),
}

/// The answer plan: the regions to answer, nearest healthy first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Plan {
    /// Positions in the service's region list; `tiers[..len]` are used.
    pub tiers: [u16; MAX_TIERS],
    pub len: u8,
    pub reason: Reason,
    /// ECS scope: the widest prefix around the client with the same ranking (0 = not
    /// location dependent).
    pub scope: u8,
    /// Every candidate was down: answering the nearest anyway (`all_down: nearest`).
    pub fail_open: bool,
    /// Every candidate was down and the policy is `nodata`: answer nothing.
    pub empty: bool,
    /// The split target the client's prefix falls to (a position), whether or not it is
    /// healthy: it leads the order, and the rest follow as ranked.
    pub split: Option<u16>,
    /// The client's shedding hash while a server sheds (`None`: nobody is left out).
    pub shed_key: Option<u64>,
}

impl Plan {
    pub fn tiers(&self) -> &[u16] {
        &self.tiers[..self.len as usize]
    }
}

/// Plans the answer for one client. `client` is the ECS address when the resolver sent one.
pub fn plan(
    st: &Steering,
    health: &HealthView,
    service: usize,
    asked: Asked,
    client: IpAddr,
) -> Plan {
    let Some(svc) = st.services.get(service) else {
        let mut p = blank(Reason::Fallback, None, None);
        p.empty = true;
        return p;
    };
    let (ranking, scope) = match asked {
        Asked::Region(pos) => (svc.pinned.get(pos as usize).unwrap_or(&svc.fallback), 0),
        Asked::Service => st.ranking_for(service, client),
    };
    // The hash of the client's prefix, only when a split or shedding can use it.
    let splits = splits_of(svc, asked, ranking);
    let prefix = (splits.is_some() || health.shedding).then(|| client_prefix(client));
    let split = match (splits, prefix) {
        (Some(rules), Some((key, _))) => split_target(rules, &key),
        _ => None,
    };
    let shed_key = prefix
        .filter(|_| health.shedding)
        .map(|(key, _)| shed_hash(&key));
    let (mut p, looked) = plan_for(st, health, svc, ranking, split, shed_key);
    p.scope = scope;
    if let (Some(_), Some((_, len))) = (splits, prefix) {
        p.scope = p.scope.max(len);
    }
    if let Some((_, len)) = prefix.filter(|_| looked) {
        p.scope = p.scope.max(len);
    }
    p
}

/// A plan with no tiers yet.
fn blank(reason: Reason, split: Option<u16>, shed_key: Option<u64>) -> Plan {
    Plan {
        tiers: [0; MAX_TIERS],
        len: 0,
        reason,
        scope: 0,
        fail_open: false,
        empty: false,
        split,
        shed_key,
    }
}

/// The split rules a client of `ranking` is subject to: a service name (not a pinned region
/// name) whose ranking is not a `networks:` override, when its first region splits.
pub fn splits_of<'s>(svc: &'s Service, asked: Asked, ranking: &Ranking) -> Option<&'s [Split]> {
    match asked {
        Asked::Service if ranking.reason != Reason::Network => ranking
            .order
            .first()
            .and_then(|&f| svc.splits.get(f as usize))
            .filter(|r| !r.is_empty())
            .map(|r| &r[..]),
        _ => None,
    }
}

/// The plan for a client of `ranking` whose prefix falls to the split target `split` and
/// whose shedding hash is `shed_key` (scope 0: the caller knows the client's). Also says
/// whether a shedding server was looked at (the scope then narrows to the client's prefix).
/// [`plan`] for one client; the pre-signing of steered answers for every client there is.
pub fn plan_for(
    st: &Steering,
    health: &HealthView,
    svc: &Service,
    ranking: &Ranking,
    split: Option<u16>,
    shed_key: Option<u64>,
) -> (Plan, bool) {
    // Before the GeoIP map is compiled only the fallback ranking stands for a location.
    let reason = match ranking.reason {
        Reason::Fallback if st.warmup_ttl.is_some() => Reason::Warmup,
        r => r,
    };
    let mut p = blank(reason, split, shed_key);
    let (mut looked, mut shed_before) = (false, false);
    if shed_key.is_some() {
        (looked, shed_before) = walk(st, health, svc, ranking, &mut p);
        if p.len == 0 {
            // Shedding never leaves a client without a region that serves: then nobody is
            // left out.
            p.shed_key = None;
            shed_before = false;
            walk(st, health, svc, ranking, &mut p);
        }
    } else {
        walk(st, health, svc, ranking, &mut p);
    }
    if p.len == 0 {
        match svc.all_down {
            AllDown::Nearest => {
                if let Some(&first) = ranking.order.first() {
                    p.tiers[0] = first;
                    p.len = 1;
                    p.fail_open = true;
                }
            }
            AllDown::Nodata => p.empty = true,
        }
        return (p, looked);
    }
    if p.split.is_some() && p.split == p.tiers().first().copied() {
        p.reason = Reason::Split;
    }
    if shed_before {
        p.reason = Reason::Shed;
    }
    (p, looked)
}

/// Fills the plan's tiers: the split target first (when there is one), then the ranking's
/// order, healthy regions only, up to the failover depth. With the plan's shedding hash, a
/// region is healthy for this client only (its shedding servers leave the client out);
/// returns whether a shedding server was looked at, and whether shedding alone left out a
/// region before the first tier.
fn walk(
    st: &Steering,
    health: &HealthView,
    svc: &Service,
    ranking: &Ranking,
    p: &mut Plan,
) -> (bool, bool) {
    let lead = p.split;
    let order = lead
        .into_iter()
        .chain(ranking.order.iter().copied().filter(|&x| Some(x) != lead));
    let (mut looked, mut moved) = (false, false);
    for pos in order {
        if p.len as usize >= svc.failover.min(MAX_TIERS) {
            break;
        }
        let region = svc.regions[pos as usize];
        let healthy = if let Some(key) = p.shed_key {
            let (serves, plain, sheds) = st.region_serves_client(region, health, key);
            looked |= sheds;
            moved |= p.len == 0 && plain && !serves;
            serves
        } else {
            st.region_healthy(region, health)
        };
        if healthy {
            p.tiers[p.len as usize] = pos;
            p.len += 1;
        }
    }
    (looked, moved)
}

/// Whether a tier region is answered with its backups: when none of its primaries serves
/// the plan's client. Failing open, backups stand in only for a region without primaries.
pub fn uses_backups(st: &Steering, health: &HealthView, region: usize, plan: &Plan) -> bool {
    let Some(r) = st.regions.get(region) else {
        return false;
    };
    !r.servers
        .iter()
        .any(|s| !s.backup && (plan.fail_open || health.serves_client(s.slot, plan.shed_key)))
}

/// The servers answered for a tier region of `plan` (indexes into its servers), in config
/// order.
pub fn tier_servers<'a>(
    st: &'a Steering,
    health: &'a HealthView,
    region: usize,
    plan: &Plan,
) -> impl Iterator<Item = (usize, &'a Server)> + 'a {
    let backups = uses_backups(st, health, region, plan);
    let (fail_open, key) = (plan.fail_open, plan.shed_key);
    st.regions
        .get(region)
        .into_iter()
        .flat_map(|r| r.servers.iter().enumerate())
        .filter(move |(_, s)| {
            s.backup == backups && (fail_open || health.serves_client(s.slot, key))
        })
}

/// Whether a server answered for a tier of `plan` is answered on transport `t`: it lists
/// `t`, and (unless the plan fails open) `t`'s own health does not leave it out.
pub fn serves_on(health: &HealthView, s: &Server, t: Transport, plan: &Plan) -> bool {
    s.transports.contains(&t) && (plan.fail_open || !health.out_on(s.slot, t))
}

/// The TTL of a planned answer: the service's trouble TTL while any server of its tier
/// regions is in trouble, else its TTL; at most the warm-up TTL for a warm-up answer.
pub fn answer_ttl(st: &Steering, health: &HealthView, svc: &Service, plan: &Plan) -> u32 {
    let ttl = if svc.trouble_ttl >= svc.ttl {
        svc.ttl
    } else {
        let troubled = plan.tiers().iter().any(|&pos| {
            svc.regions
                .get(pos as usize)
                .and_then(|&r| st.regions.get(r))
                .is_some_and(|r| r.servers.iter().any(|s| health.troubled(s.slot)))
        });
        if troubled { svc.trouble_ttl } else { svc.ttl }
    };
    match st.warmup_ttl {
        Some(w) if plan.reason == Reason::Warmup => ttl.min(w),
        _ => ttl,
    }
}

/// SRV weight: the configured weight, scaled by the headroom left when load is known.
pub fn srv_weight(weight: u16, headroom: Option<f32>) -> u16 {
    match headroom {
        Some(h) => ((f32::from(weight) * h.clamp(0.0, 1.0)).round() as u16).max(1),
        None => weight,
    }
}

/// SRV owner labels and NAPTR service field for a transport.
pub fn naptr_service(t: Transport) -> &'static [u8] {
    match t {
        Transport::Udp => b"SIP+D2U",
        Transport::Tcp => b"SIP+D2T",
        Transport::Tls => b"SIPS+D2T",
        Transport::Ws => b"SIP+D2W",
        Transport::Wss => b"SIPS+D2W",
    }
}
