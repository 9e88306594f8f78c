//! Steered answers: NAPTR, SRV and A/AAAA records written from the steering core's plan.
//! The plan chooses the regions (its tiers, nearest healthy first) and the reason; this file
//! decides how they are written: NAPTR preferences in transport order (a transport no server
//! of the tiers is answered on leaves, NAPTR and SRV set), SRV priorities by tier
//! (10 per tier, one more for backup servers) with weights from the servers' headroom, and
//! which of the first tier's A/AAAA addresses are answered (at most `answers`, rotated by
//! client subnet). It writes through a [`Sink`]: a reply, or the sets to pre-sign
//! ([`plan_sets`]); in a signed zone with DO=1 each whole set is followed by its RRSIG.

use std::net::IpAddr;

use super::sink::{Signed, Sink, truncate, unsigned};
use super::summary::Steered;
use super::writer::{ADDITIONAL, ANSWER, Answer, Writer};
use crate::config::Transport;
use crate::dns::snapshot::Snapshot;
use crate::proto::{RCODE_SERVFAIL, TYPE_A, TYPE_AAAA, TYPE_NAPTR, TYPE_SRV};
use crate::routing::{SteerKind, SteerRef};
use crate::steering::{
    self, Asked, Plan, Reason, Service, Steering, serves_on, srv_weight, tier_servers,
};

/// Writes the steered answer for `qtype`; false when the name has no data of that type.
pub(crate) fn answer(
    snap: &Snapshot,
    sref: SteerRef,
    qtype: u16,
    owner: &[u8],
    client: IpAddr,
    w: &mut Writer,
    a: &mut Answer,
) -> bool {
    let st = &*snap.steering;
    let si = sref.service as usize;
    let Some(svc) = st.services.get(si) else {
        return false;
    };
    let (asked, srv) = match sref.kind {
        SteerKind::Service => (Asked::Service, None),
        SteerKind::Srv(t) => (Asked::Service, Some(t)),
        SteerKind::Region(p) => (Asked::Region(p), None),
        SteerKind::RegionSrv(p, t) => (Asked::Region(p), Some(t)),
    };
    match (srv, qtype) {
        (Some(_), TYPE_SRV) | (None, TYPE_NAPTR | TYPE_A | TYPE_AAAA) => {}
        _ => return false,
    }
    let plan = steering::plan(st, &snap.health, si, asked, client);
    let servfail = plan.reason == Reason::Warmup && snap.warmup_servfail;
    a.steered = Some(Steered {
        service: sref.service,
        region: plan
            .tiers()
            .first()
            .filter(|_| !servfail)
            .map(|&p| svc.regions[p as usize]),
        reason: plan.reason,
        fail_open: plan.fail_open,
    });
    if servfail {
        // Before the GeoIP map is in: no answer rather than one for the wrong region, so a
        // resolver asks another name server (and caches nothing of ours).
        w.clear_records();
        a.rcode = RCODE_SERVFAIL;
        a.aa = false;
        a.scope = 0;
        return true;
    }
    if plan.empty {
        return false;
    }
    let cx = Cx {
        st,
        snap,
        svc,
        plan: &plan,
        owner,
        ttl: steering::answer_ttl(st, &snap.health, svc, &plan),
    };
    let wrote = match (srv, qtype) {
        (Some(t), _) => {
            let mark = w.mark();
            let n = cx.srv_records(ANSWER, owner, t, w);
            match n {
                None => {
                    truncate(w, a);
                    return true;
                }
                Some(0) => return false,
                Some(_) => {
                    if !cx.answered(w, a, (owner, TYPE_SRV), mark) {
                        return true;
                    }
                    cx.addresses(&[t], w);
                    true
                }
            }
        }
        (None, TYPE_NAPTR) => cx.naptr(asked, w, a),
        (None, rtype) => {
            // NODATA when the client's region has no address of this family: it depends on
            // the client, so it carries the steering scope.
            a.scope = plan.scope;
            cx.addresses_answer(rtype, subnet_hash(client), w, a)
        }
    };
    if wrote && a.rcode != RCODE_SERVFAIL {
        a.scope = plan.scope;
    }
    wrote
}

/// Every RRset a steered name can answer under `plan` (for `asked` of service `si`), written
/// to `w`: the NAPTR set with the SRV sets and addresses it carries, the SRV answers, and the
/// A and AAAA answers of every rotation window (pre-signing).
pub(crate) fn plan_sets<S: Sink>(snap: &Snapshot, si: usize, asked: Asked, plan: &Plan, w: &mut S) {
    let st = &*snap.steering;
    let Some(svc) = st.services.get(si) else {
        return;
    };
    if plan.empty {
        return;
    }
    let (owner, srv_names) = match asked {
        Asked::Service => (&svc.name, &svc.srv_names),
        Asked::Region(p) => match (
            svc.region_names.get(p as usize),
            svc.region_srv_names.get(p as usize),
        ) {
            (Some(o), Some(n)) => (o, n),
            _ => return,
        },
    };
    let cx = Cx {
        st,
        snap,
        svc,
        plan,
        owner,
        ttl: steering::answer_ttl(st, &snap.health, svc, plan),
    };
    let mut a = Answer::new();
    cx.naptr(asked, w, &mut a);
    for (t, name) in srv_names {
        let mark = w.mark();
        if cx.srv_records(ANSWER, name, *t, w).is_some_and(|n| n > 0) {
            w.signed(ANSWER, name, TYPE_SRV, cx.ttl, mark);
        }
    }
    for rtype in [TYPE_A, TYPE_AAAA] {
        for start in 0..cx.rotations(rtype) {
            cx.addresses_answer(rtype, start, w, &mut a);
        }
    }
}

struct Cx<'a> {
    st: &'a Steering,
    snap: &'a Snapshot,
    svc: &'a Service,
    plan: &'a Plan,
    /// The name answered (the question, or a CNAME target in the zone).
    owner: &'a [u8],
    ttl: u32,
}

impl Cx<'_> {
    /// Marks the answer set written since `mark` as whole: true when it stands (signed, or
    /// not signing); else the reply is truncated (it did not fit with its RRSIG) or SERVFAIL
    /// (no RRSIG yet).
    fn answered<S: Sink>(
        &self,
        w: &mut S,
        a: &mut Answer,
        (owner, rtype): (&[u8], u16),
        mark: S::Mark,
    ) -> bool {
        match w.signed(ANSWER, owner, rtype, self.ttl, mark) {
            Signed::Yes => true,
            Signed::DidNotFit => {
                truncate(w, a);
                false
            }
            Signed::Missing => {
                unsigned(w, a);
                false
            }
        }
    }

    /// SRV records for transport `t` over every tier. `None` if they did not fit.
    fn srv_records<S: Sink>(
        &self,
        section: usize,
        owner: &[u8],
        t: Transport,
        w: &mut S,
    ) -> Option<usize> {
        let mark = w.mark();
        let mut n = 0;
        for (k, &pos) in self.plan.tiers().iter().enumerate() {
            let region = self.svc.regions[pos as usize];
            for (si, s) in tier_servers(self.st, &self.snap.health, region, self.plan) {
                if !serves_on(&self.snap.health, s, t, self.plan) {
                    continue;
                }
                let host = &self.svc.hosts[pos as usize][si];
                let prio = 10 * (k as u16 + 1) + u16::from(s.backup);
                let weight = srv_weight(s.weight, self.snap.health.headroom(s.slot));
                let port = s.port_for(t);
                let ok = w.record_with(section, owner, TYPE_SRV, self.ttl, 6 + host.len(), |b| {
                    srv_rdata(b, prio, weight, port, host);
                });
                if !ok {
                    w.rollback(mark);
                    return None;
                }
                n += 1;
            }
        }
        Some(n)
    }

    /// A and AAAA of every SRV target for the given transports, as many as fit; signed,
    /// a host's set of one family whole with its RRSIG or not at all.
    fn addresses<S: Sink>(&self, transports: &[Transport], w: &mut S) {
        for &pos in self.plan.tiers() {
            let region = self.svc.regions[pos as usize];
            for (si, s) in tier_servers(self.st, &self.snap.health, region, self.plan) {
                let health = &self.snap.health;
                if !transports
                    .iter()
                    .any(|&t| serves_on(health, s, t, self.plan))
                {
                    continue;
                }
                let host = &self.svc.hosts[pos as usize][si];
                self.host_set(w, host, TYPE_A, s.v4.iter().map(|a| &a[..]));
                self.host_set(w, host, TYPE_AAAA, s.v6.iter().map(|a| &a[..]));
            }
        }
    }

    /// One host's addresses of one family in the additional section.
    fn host_set<'a, S: Sink>(
        &self,
        w: &mut S,
        host: &[u8],
        rtype: u16,
        addrs: impl Iterator<Item = &'a [u8]>,
    ) {
        let mark = w.mark();
        let (mut all, mut any) = (true, false);
        for a in addrs {
            let ok = w.record(ADDITIONAL, host, rtype, self.ttl, a);
            all &= ok;
            any |= ok;
        }
        if !any || !w.signing() {
            return;
        }
        if all {
            w.signed(ADDITIONAL, host, rtype, self.ttl, mark);
        } else {
            w.rollback(mark);
        }
    }

    /// NAPTR per transport, then the SRV sets and addresses in the additional section.
    fn naptr<S: Sink>(&self, asked: Asked, w: &mut S, a: &mut Answer) -> bool {
        let srv_names = match asked {
            Asked::Service => &self.svc.srv_names,
            Asked::Region(p) => &self.svc.region_srv_names[p as usize],
        };
        let mark = w.mark();
        let mut written = 0;
        for (i, (t, name)) in srv_names.iter().enumerate() {
            if !self.answered_on(*t) {
                // No server of the tiers is answered on it: its NAPTR leaves with its SRV set.
                continue;
            }
            written += 1;
            let service = steering::naptr_service(*t);
            let pref = 10 * (i as u16 + 1);
            let ok = w.record_with(
                ANSWER,
                self.owner,
                TYPE_NAPTR,
                self.ttl,
                8 + service.len() + name.len(),
                |b| {
                    b.extend_from_slice(&10u16.to_be_bytes());
                    b.extend_from_slice(&pref.to_be_bytes());
                    b.extend_from_slice(&[1, b'S', service.len() as u8]);
                    b.extend_from_slice(service);
                    b.push(0);
                    b.extend_from_slice(name);
                },
            );
            if !ok {
                truncate(w, a);
                return true;
            }
        }
        if written == 0 {
            return false;
        }
        if !self.answered(w, a, (self.owner, TYPE_NAPTR), mark) {
            return true;
        }
        for (t, name) in srv_names {
            if !self.answered_on(*t) {
                continue;
            }
            let mark = w.mark();
            match self.srv_records(ADDITIONAL, name, *t, w) {
                None => w.rollback(mark),
                Some(0) => {}
                Some(_) => {
                    w.signed(ADDITIONAL, name, TYPE_SRV, self.ttl, mark);
                }
            }
        }
        self.addresses(&self.svc.transports, w);
        true
    }

    /// The distinct windows of A or AAAA answers (1 when every address fits in one).
    fn rotations(&self, rtype: u16) -> u32 {
        let count = self.first_tier_addresses(rtype == TYPE_A);
        if count > self.svc.answers {
            count as u32
        } else {
            u32::from(count > 0)
        }
    }

    /// Addresses of one family among the first tier's answered servers.
    fn first_tier_addresses(&self, v4: bool) -> usize {
        let Some(&pos) = self.plan.tiers().first() else {
            return 0;
        };
        let region = self.svc.regions[pos as usize];
        tier_servers(self.st, &self.snap.health, region, self.plan)
            .map(|(_, s)| if v4 { s.v4.len() } else { s.v6.len() })
            .sum()
    }

    /// A or AAAA from the first tier only (the client's region), at most `answers`, rotated
    /// by client subnet (`hash`) so one subnet always gets the same set. A region without an
    /// address of this family gives NODATA (false): never another region's address, so a
    /// dual-stack client's A and AAAA lead to the same region.
    fn addresses_answer<S: Sink>(&self, rtype: u16, hash: u32, w: &mut S, a: &mut Answer) -> bool {
        let v4 = rtype == TYPE_A;
        let Some(&pos) = self.plan.tiers().first() else {
            return false;
        };
        let region = self.svc.regions[pos as usize];
        let count = self.first_tier_addresses(v4);
        if count == 0 {
            return false;
        }
        let start = hash as usize % count;
        let mark = w.mark();
        for j in 0..count.min(self.svc.answers) {
            let Some(addr) = self.nth_address(region, v4, (start + j) % count) else {
                break;
            };
            if !w.record_with(ANSWER, self.owner, rtype, self.ttl, addr.len(), |b| {
                b.extend_from_slice(addr);
            }) {
                truncate(w, a);
                return true;
            }
        }
        self.answered(w, a, (self.owner, rtype), mark);
        true
    }
}

impl Cx<'_> {
    /// Whether a server of the plan's tiers is answered on transport `t`.
    fn answered_on(&self, t: Transport) -> bool {
        self.plan.tiers().iter().any(|&pos| {
            let region = self.svc.regions[pos as usize];
            tier_servers(self.st, &self.snap.health, region, self.plan)
                .any(|(_, s)| serves_on(&self.snap.health, s, t, self.plan))
        })
    }

    /// The `k`-th address of one family among a tier region's answered servers.
    fn nth_address(&self, region: usize, v4: bool, k: usize) -> Option<&[u8]> {
        tier_servers(self.st, &self.snap.health, region, self.plan)
            .flat_map(|(_, s)| {
                let (a, b): (&[[u8; 4]], &[[u8; 16]]) =
                    if v4 { (&s.v4, &[]) } else { (&[], &s.v6) };
                a.iter().map(|x| &x[..]).chain(b.iter().map(|x| &x[..]))
            })
            .nth(k)
    }
}

fn srv_rdata(b: &mut Vec<u8>, prio: u16, weight: u16, port: u16, host: &[u8]) {
    b.extend_from_slice(&prio.to_be_bytes());
    b.extend_from_slice(&weight.to_be_bytes());
    b.extend_from_slice(&port.to_be_bytes());
    b.extend_from_slice(host);
}

/// A stable hash of the client's /24 (IPv4) or /56 (IPv6).
fn subnet_hash(ip: IpAddr) -> u32 {
    let bytes: &[u8] = &match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            [o[0], o[1], o[2], 0, 0, 0, 0, 0]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[0], o[1], o[2], o[3], o[4], o[5], o[6], 0]
        }
    };
    bytes.iter().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}
