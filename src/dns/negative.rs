//! Negative answers and the answer to ANY: NXDOMAIN and NODATA with the SOA in the authority
//! section and, with DO=1 in a signed zone, a name that does not exist answered by RFC 9824
//! compact denial (its NXNAME proof from the cache, or the reply left for the signer thread,
//! see `dns::denial`); ANY by RFC 8482's one HINFO, signed in a signed zone.

use super::denial::{Owner, Pending, Proof};
use super::wire;
use super::writer::{ANSWER, AUTHORITY, Answer, Writer, truncate};
use crate::dns::snapshot::Snapshot;
use crate::routing::{Node, Zone};

/// NXDOMAIN or NODATA, with the SOA in the authority section.
pub(super) fn negative(zone: &Zone, rcode: u8, w: &mut Writer, a: &mut Answer) {
    a.rcode = rcode;
    a.scope = 0;
    if !w.rrset_at(AUTHORITY, &zone.apex, &zone.negative_soa) {
        truncate(w, a);
    }
}

/// `owner` does not exist (`at_qname`: it is the question name, else the end of a CNAME
/// chain). With DO=1 in a signed zone, RFC 9824 compact denial: NOERROR, the signed SOA and
/// the NXNAME proof of `owner`, from the cache; when it is not kept, the reply is left
/// waiting for the signer thread (`Answer::proof`), with room kept for the proof.
pub(super) fn nxdomain(
    snap: &Snapshot,
    zone: &Zone,
    owner: &[u8],
    at_qname: bool,
    w: &mut Writer,
    a: &mut Answer,
) {
    negative(zone, wire::RCODE_NXDOMAIN, w, a);
    if a.tc || !w.dnssec_ok() {
        return;
    }
    let Some(key) = zone.key.as_deref() else {
        return;
    };
    if let Some(p) = snap.denial.lookup(zone, owner) {
        if write_proof(w, owner, &p) {
            a.rcode = wire::RCODE_NOERROR;
            a.nxname = true;
        } else {
            truncate(w, a);
        }
        return;
    }
    let owner = Owner::new(owner, at_qname);
    if !w.room(super::denial::reply_len(&owner, zone, key)) {
        truncate(w, a);
        return;
    }
    a.rcode = wire::RCODE_NOERROR;
    a.nxname = true;
    a.proof = Some(Pending {
        zone: zone.index,
        owner,
        at: 0,
    });
}

/// RFC 8482: one synthesized HINFO instead of every record set; with DO=1 in a signed zone,
/// the one signed when the zone compiled, with its RRSIG.
pub(super) fn any_answer(zone: &Zone, name: &[u8], node: &Node, w: &mut Writer, a: &mut Answer) {
    if w.dnssec_ok()
        && let Some(set) = node.any.as_deref()
    {
        if !w.rrset_at_qname(ANSWER, set) {
            truncate(w, a);
        }
        return;
    }
    let ttl = zone.negative_soa_ttl();
    if !w.record(
        ANSWER,
        name,
        wire::TYPE_HINFO,
        ttl,
        crate::routing::RFC8482_HINFO,
    ) {
        truncate(w, a);
    }
}

impl Zone {
    fn negative_soa_ttl(&self) -> u32 {
        let wire = &self.negative_soa.wire;
        wire.get(6..10)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Writes a kept proof's NSEC and RRSIG at `owner` into the authority section; false
/// (nothing written) when they do not fit.
fn write_proof(w: &mut Writer, owner: &[u8], p: &Proof) -> bool {
    let before = w.mark();
    let (records, ttl) = p.records();
    for (rtype, rdata) in records {
        if !w.record(AUTHORITY, owner, rtype, ttl, rdata) {
            w.rollback(before);
            return false;
        }
    }
    true
}
