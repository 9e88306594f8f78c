//! The answer path: one request's bytes and the current snapshot in, the reply's bytes out.
//! A plain synchronous function shared by every transport; it never blocks or allocates
//! beyond the reply buffer it is given.

use std::net::IpAddr;

use super::defences::Request;
use super::denial::Pending;
use super::negative::{any_answer, negative, nxdomain};
use super::rrl::Verdict;
use super::steered;
use super::wire::{self, Parsed, Query};
use super::writer::{ADDITIONAL, ANSWER, AUTHORITY, Answer, OptOut, Signer, Writer, truncate};
use crate::dns::snapshot::Snapshot;
use crate::routing::{Node, SteerRef, Zone};

pub use super::summary::{Proto, Summary};

/// Most CNAME links followed inside our zones.
const MAX_CHAIN: usize = 8;

/// Answers one request. `None` means send nothing. A name that does not exist in a signed
/// zone, asked with DO=1, whose proof is not kept yet gets the NXDOMAIN with the signed SOA
/// only (the serving path hands such a query to the signer thread instead, see
/// [`respond_pending`]).
pub fn respond(
    snap: &Snapshot,
    client: IpAddr,
    proto: Proto,
    req: &[u8],
    out: &mut Vec<u8>,
) -> Option<Summary> {
    let mut pending = None;
    let mut summary = respond_pending(snap, client, proto, req, out, &mut pending)?;
    if pending.is_some() && out.len() >= 4 {
        out[3] = (out[3] & 0xF0) | wire::RCODE_NXDOMAIN;
        summary.rcode = u16::from(wire::RCODE_NXDOMAIN);
    }
    Some(summary)
}

/// Answers one request like [`respond`]; a reply that waits for a proof to be signed is
/// finished but for the proof, and `pending` says which (the NXNAME proof of RFC 9824 and
/// where it goes; the rcode is already NOERROR).
pub(crate) fn respond_pending(
    snap: &Snapshot,
    client: IpAddr,
    proto: Proto,
    req: &[u8],
    out: &mut Vec<u8>,
    pending: &mut Option<Pending>,
) -> Option<Summary> {
    let mut lower = [0; wire::MAX_NAME];
    let q = match wire::parse(req, &mut lower) {
        Parsed::Drop => return None,
        Parsed::Error {
            id,
            flags,
            rcode,
            question,
            edns,
        } => {
            let e = Malformed {
                id,
                flags,
                rcode,
                question,
                dnssec_ok: edns.map(|e| e.dnssec_ok),
            };
            return error_reply(snap, client, proto, e, out);
        }
        Parsed::Query(q) => q,
    };
    let req = Request {
        query: &q,
        client,
        proto,
        payload: snap.udp_payload,
    };
    let pre = snap.defences.before(&req);
    let limit = match (proto, q.edns) {
        (Proto::Tcp | Proto::Tls | Proto::Https, _) => u16::MAX as usize,
        (Proto::Udp, None) => 512,
        (Proto::Udp, Some(e)) => e.payload.clamp(512, snap.udp_payload) as usize,
    };
    // Every ECS query gets the option back; a /0 one (the resolver withholds the client's
    // address) is located by the packet's source and echoed with scope 0 (RFC 7871 7.2.1).
    let ecs = q.edns.and_then(|e| e.ecs);
    let opt_reserve = q.edns.map_or(0, |_| {
        OptOut {
            payload: 0,
            ext_rcode: 0,
            ecs: ecs.map(|e| (e, 0)),
            dnssec_ok: false,
        }
        .wire_len()
            + pre.reserve()
    });
    // Location comes from ECS when the resolver sent one, else from the packet's source.
    let located = ecs
        .filter(|e| e.source > 0)
        .map_or(crate::geo::canonical(client), |e| e.addr);
    let mut w = Writer::new(out, q.id, Some(q.question), q.name, limit, opt_reserve);
    w.set_dnssec_ok(q.edns.is_some_and(|e| e.dnssec_ok));
    let mut a = Answer {
        rcode: wire::RCODE_NOERROR,
        aa: true,
        tc: false,
        scope: 0,
        steered: None,
        zone: None,
        proof: None,
        nxname: false,
    };
    answer(snap, &q, located, &mut w, &mut a);
    let opt = q.edns.map(|e| OptOut {
        payload: snap.udp_payload,
        ext_rcode: 0,
        ecs: ecs.map(|c| {
            let located = a.rcode == 0 && c.source > 0;
            (c, if located { a.scope } else { 0 })
        }),
        dnssec_ok: e.dnssec_ok,
    });
    let done = w.finish(q.flags, a.aa, a.tc, a.rcode, opt);
    match snap.defences.after(&pre, &req, &a, done, out) {
        Verdict::Drop => return None,
        Verdict::Slip => a.tc = true,
        Verdict::Send => {
            *pending = a.proof.map(|p| Pending {
                at: done.opt_at,
                ..p
            });
        }
    }
    Some(Summary {
        proto,
        rcode: u16::from(a.rcode),
        qtype: q.qtype,
        truncated: a.tc,
        ecs: ecs.is_some_and(|e| e.source > 0),
        steered: a.steered,
        zone: a.zone,
    })
}

/// What the reply to a request that is not a query, or not one we answer, is made of.
struct Malformed<'q> {
    id: u16,
    flags: u16,
    rcode: u16,
    question: Option<&'q [u8]>,
    /// The request's DO bit, when it had EDNS.
    dnssec_ok: Option<bool>,
}

/// The error reply to a request the parser refused (FORMERR, NOTIMP, BADVERS, ...).
fn error_reply(
    snap: &Snapshot,
    client: IpAddr,
    proto: Proto,
    e: Malformed,
    out: &mut Vec<u8>,
) -> Option<Summary> {
    let lower = e
        .question
        .map_or(&[][..], |q| &q[..q.len().saturating_sub(4)]);
    let w = Writer::new(out, e.id, e.question, lower, usize::MAX, 0);
    let opt = e.dnssec_ok.map(|dnssec_ok| OptOut {
        payload: snap.udp_payload,
        ext_rcode: (e.rcode >> 4) as u8,
        ecs: None,
        dnssec_ok,
    });
    let done = w.finish(e.flags, false, false, (e.rcode & 0xF) as u8, opt);
    if !snap
        .defences
        .after_error(client, proto, e.rcode, out, done.opt_at)
    {
        return None;
    }
    Some(Summary {
        proto,
        rcode: e.rcode,
        qtype: 0,
        truncated: false,
        ecs: false,
        steered: None,
        zone: None,
    })
}

fn answer<'s>(snap: &'s Snapshot, q: &Query, client: IpAddr, w: &mut Writer<'s>, a: &mut Answer) {
    if q.qclass != wire::CLASS_IN {
        a.rcode = wire::RCODE_REFUSED;
        a.aa = false;
        return;
    }
    match q.qtype {
        wire::TYPE_AXFR | wire::TYPE_IXFR => {
            a.rcode = wire::RCODE_REFUSED;
            a.aa = false;
            return;
        }
        wire::TYPE_OPT => {
            a.rcode = wire::RCODE_FORMERR;
            a.aa = false;
            return;
        }
        _ => {}
    }
    let name = q.name;
    let Some((zone, apex_off)) = snap.routing.find_zone(name) else {
        a.rcode = wire::RCODE_REFUSED;
        a.aa = false;
        return;
    };
    w.set_apex_offset(apex_off);
    a.zone = Some(zone.index);
    if w.dnssec_ok() && zone.key.is_some() {
        w.set_signer(Signer {
            cache: &snap.sigs,
            zone: &zone.data,
        });
    }
    if zone.has_cuts
        && let Some(cut) = delegation(zone, name, apex_off, q.qtype)
    {
        referral(zone, cut, w, a);
        return;
    }
    let Some(node) = zone.nodes.get(name) else {
        nxdomain(snap, zone, name, true, w, a);
        return;
    };
    if q.qtype == wire::TYPE_ANY {
        if node.is_empty() {
            nodata(zone, name, node, q.qtype, w, a);
        } else if let Some(cname) = node.set(wire::TYPE_CNAME) {
            // The CNAME is the only data at its owner: answer it, never a synthesized HINFO.
            if !w.rrset_at_qname(ANSWER, cname) {
                truncate(w, a);
            }
        } else {
            any_answer(zone, name, node, w, a);
        }
        return;
    }
    let cx = InZone {
        snap,
        zone,
        client,
        qtype: q.qtype,
    };
    if let Some(sref) = node.steer {
        cx.steered_or_nodata(sref.global(zone), name, node, w, a);
        return;
    }
    if let Some(set) = node.set(q.qtype) {
        if !w.rrset_at_qname(ANSWER, set) {
            truncate(w, a);
            return;
        }
        additional_for(zone, &set.targets, w);
        return;
    }
    if let Some(cname) = node.set(wire::TYPE_CNAME) {
        if !w.rrset_at_qname(ANSWER, cname) {
            truncate(w, a);
            return;
        }
        cx.follow(cname.cname.as_deref(), w, a);
        return;
    }
    nodata(zone, name, node, q.qtype, w, a);
}

/// One question inside the zone that holds its name: what a steered answer and a CNAME
/// chain are written with.
struct InZone<'z> {
    snap: &'z Snapshot,
    zone: &'z Zone,
    /// The address the client is located by (the ECS address when the resolver sent one).
    client: IpAddr,
    qtype: u16,
}

impl<'z> InZone<'z> {
    /// A steered answer, or NODATA. A NODATA that depends on the client's region (its region
    /// has no address of the asked family) keeps the steering scope, so a resolver caches it
    /// only for clients of that region.
    fn steered_or_nodata(
        &self,
        sref: SteerRef,
        owner: &[u8],
        node: &Node,
        w: &mut Writer,
        a: &mut Answer,
    ) {
        let snap = self.snap;
        let mark = w.mark();
        if !steered::answer(snap, sref, self.qtype, owner, self.client, w, a) {
            let scope = a.scope;
            nodata(self.zone, owner, node, self.qtype, w, a);
            a.scope = scope;
            // A NODATA from the fallback order before the GeoIP map is in is cached no longer
            // than the warm-up answers.
            if let (Some(ttl), Some(st)) = (snap.steering.warmup_ttl, a.steered)
                && st.reason == crate::steering::Reason::Warmup
            {
                w.cap_ttls(mark, ttl);
            }
        }
    }

    /// Follows a CNAME chain inside the zone, into steered names too.
    fn follow(&self, mut target: Option<&'z [u8]>, w: &mut Writer, a: &mut Answer) {
        let zone = self.zone;
        for _ in 0..MAX_CHAIN {
            let Some(t) = target else { return };
            if !ends_with_apex(t, &zone.apex) {
                return; // out of zone: the resolver follows it
            }
            let Some(node) = zone.nodes.get(t) else {
                nxdomain(self.snap, zone, t, false, w, a);
                return;
            };
            if let Some(sref) = node.steer {
                self.steered_or_nodata(sref.global(zone), t, node, w, a);
                return;
            }
            if !self.step(node, t, &mut target, w, a) {
                return;
            }
        }
    }

    /// Answers from one static node of the chain; true to go on to `target`.
    fn step(
        &self,
        node: &'z Node,
        t: &[u8],
        target: &mut Option<&'z [u8]>,
        w: &mut Writer,
        a: &mut Answer,
    ) -> bool {
        let (zone, qtype) = (self.zone, self.qtype);
        if let Some(set) = node.set(qtype) {
            if !w.rrset_at(ANSWER, t, set) {
                truncate(w, a);
            }
            return false;
        }
        match node.set(wire::TYPE_CNAME) {
            Some(c) => {
                if !w.rrset_at(ANSWER, t, c) {
                    truncate(w, a);
                    return false;
                }
                *target = c.cname.as_deref();
                true
            }
            None => {
                nodata(zone, t, node, qtype, w, a);
                false
            }
        }
    }
}

fn ends_with_apex(name: &[u8], apex: &[u8]) -> bool {
    let mut pos = 0;
    while pos < name.len() {
        if name.len() - pos == apex.len() {
            return &name[pos..] == apex;
        }
        pos += name[pos] as usize + 1;
    }
    false
}

/// The highest delegation point at or above `name` (below the apex), if any. A DS query at
/// the cut itself is answered by the parent side.
fn delegation<'z>(
    zone: &'z Zone,
    name: &[u8],
    apex_off: usize,
    qtype: u16,
) -> Option<(&'z [u8], &'z Node)> {
    // Walk from the label just under the apex down to the name itself.
    let mut starts = [0usize; 128];
    let mut n = 0;
    let mut pos = 0;
    while pos < apex_off && n < starts.len() {
        starts[n] = pos;
        n += 1;
        pos += name[pos] as usize + 1;
    }
    for i in (0..n).rev() {
        let sub = &name[starts[i]..];
        if let Some((k, node)) = zone.nodes.get_key_value(sub)
            && node.cut
        {
            if i == 0 && qtype == wire::TYPE_DS {
                return None;
            }
            return Some((k, node));
        }
    }
    None
}

fn referral(zone: &Zone, (cut, node): (&[u8], &Node), w: &mut Writer, a: &mut Answer) {
    a.aa = false;
    let Some(ns) = node.set(wire::TYPE_NS) else {
        return;
    };
    if !w.rrset_at(AUTHORITY, cut, ns) {
        truncate(w, a);
        return;
    }
    // With DO=1 in a signed zone: the NSEC proving the child has no DS (it is unsigned).
    if w.dnssec_ok()
        && let Some(nsec) = node.nsec.as_deref()
        && !w.rrset_at(AUTHORITY, cut, nsec)
    {
        truncate(w, a);
        return;
    }
    additional_for(zone, &ns.targets, w);
}

/// NODATA at `owner`; with DO=1 in a signed zone, with the NSEC that proves it (RFC 9824).
/// A steered name's NODATA for a steered type (this client's region has none) is proved by
/// an NSEC listing the name's types without that one.
fn nodata(zone: &Zone, owner: &[u8], node: &Node, qtype: u16, w: &mut Writer, a: &mut Answer) {
    negative(zone, wire::RCODE_NOERROR, w, a);
    if a.tc || !w.dnssec_ok() {
        return;
    }
    let steered = node
        .steered_nsec
        .iter()
        .find(|(t, _)| *t == qtype)
        .map(|(_, s)| s);
    let nsec = match (node.steer, steered) {
        (Some(_), Some(s)) => Some(s),
        _ => node.nsec.as_deref(),
    };
    if let Some(nsec) = nsec
        && !w.rrset_at(AUTHORITY, owner, nsec)
    {
        truncate(w, a);
    }
}

/// Addresses of in-zone targets, as many as fit; never truncates.
fn additional_for(zone: &Zone, targets: &[Box<[u8]>], w: &mut Writer) {
    for t in targets {
        if let Some(node) = zone.nodes.get(&t[..]) {
            for rtype in [wire::TYPE_A, wire::TYPE_AAAA] {
                if let Some(set) = node.set(rtype) {
                    w.rrset_at(ADDITIONAL, t, set);
                }
            }
        }
    }
}
