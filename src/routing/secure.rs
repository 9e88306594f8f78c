//! The DNSSEC parts of a signed zone's compile: the apex's key sets (DNSKEY, CDNSKEY, CDS),
//! each set's RRSIG as a record set, no signatures at or below a delegation, and the NSEC
//! proofs of NODATA (RFC 9824 compact denial: the owner's own types, next name `\000.owner`),
//! and the signed RFC 8482 answer to ANY at each name, each signed here, off the packet path.

use hickory_proto::rr::Name;

use super::sign::Signing;
use super::{NameMap, Node, RRset, SteerKind, rrset};

/// The set's RRSIG as a record set of its own.
pub(super) fn rrsig_set(ttl: u32, rdata: Vec<u8>, origin: &Name) -> Box<RRset> {
    Box::new(rrset(
        crate::proto::TYPE_RRSIG,
        &[(ttl, rdata)],
        origin,
        Vec::new(),
    ))
}

/// Delegation NS sets and everything below a cut (glue) are not the zone's to sign. The
/// cut keeps its NSEC (types NS, RRSIG, NSEC): it proves that the delegation has no DS (an
/// unsigned child), in referrals and in the NODATA of a DS query.
pub(super) fn unsign_below_cuts(nodes: &mut NameMap<Node>, apex: &[u8]) {
    let cuts: Vec<Box<[u8]>> = nodes
        .iter()
        .filter(|(_, n)| n.cut)
        .map(|(k, _)| k.clone())
        .collect();
    for (name, node) in nodes.iter_mut() {
        let mut cur: &[u8] = name;
        while cur.len() > apex.len() {
            if cuts.iter().any(|c| **c == *cur) {
                for set in &mut node.sets {
                    set.rrsig = None;
                }
                if !node.cut {
                    node.nsec = None;
                    node.steered_nsec.clear();
                }
                node.any = None;
                break;
            }
            match super::parent(cur) {
                Some(p) => cur = p,
                None => break,
            }
        }
    }
}

/// The apex's DNSKEY set (every published key) and the child-side copies for the parent
/// (RFC 7344): CDNSKEY and CDS (SHA-256) of the keys the parent's DS should point at (the
/// active KSKs, or the CSK). Each set is signed by every published KSK (double-KSK
/// rollover). Every answer of the zone is signed (steered ones from the answer path's
/// signature cache), so a parent may take the DS from them.
pub(super) fn key_sets(
    ks: &crate::dnssec::KeySet,
    origin: &Name,
    ttl: u32,
    window: crate::dnssec::Window,
) -> Vec<RRset> {
    use crate::proto::{TYPE_CDNSKEY, TYPE_CDS, TYPE_DNSKEY};
    let data = |keys: &[std::sync::Arc<crate::dnssec::ZoneKey>]| -> Vec<Vec<u8>> {
        keys.iter().map(|k| k.dnskey_rdata().to_vec()).collect()
    };
    let ds = ks.cds.iter().map(|k| k.ds_rdata(origin)).collect();
    let sets = vec![
        (TYPE_DNSKEY, data(&ks.dnskey)),
        (TYPE_CDNSKEY, data(&ks.cds)),
        (TYPE_CDS, ds),
    ];
    let signers: Vec<Signing<'_>> = ks
        .ksks
        .iter()
        .map(|k| Signing::new(k, origin, window))
        .collect();
    sets.into_iter()
        .filter(|(_, rds)| !rds.is_empty())
        .map(|(t, rds)| {
            let items: Vec<(u32, Vec<u8>)> = rds.iter().map(|rd| (ttl, rd.clone())).collect();
            let mut set = rrset(t, &items, origin, Vec::new());
            let sigs: Vec<(u32, Vec<u8>)> = signers
                .iter()
                .map(|sg| (ttl, sg.raw(origin, t, ttl, &rds)))
                .collect();
            set.rrsig = Some(Box::new(rrset(
                crate::proto::TYPE_RRSIG,
                &sigs,
                origin,
                Vec::new(),
            )));
            set
        })
        .collect()
}

/// Gives every node of a signed zone the NSEC proof of its
/// NODATA answers: owner = the node, next = `\000.owner`, types = what it holds (steered
/// types for a steered name; none but RRSIG and NSEC at an empty non-terminal); TTL `ttl`
/// (RFC 9077: the smaller of the SOA's TTL and its minimum).
pub(super) fn nsec_sets(nodes: &mut NameMap<Node>, origin: &Name, ttl: u32, sg: &Signing) {
    use crate::proto::{TYPE_A, TYPE_AAAA, TYPE_NAPTR, TYPE_NSEC, TYPE_RRSIG, TYPE_SRV};
    for (wire, node) in nodes.iter_mut() {
        let Some(owner) = super::name_of(wire) else {
            continue;
        };
        let mut types: Vec<u16> = node.sets.iter().map(|s| s.rtype).collect();
        match node.steer.map(|s| s.kind) {
            Some(SteerKind::Service | SteerKind::Region(_)) => {
                types.extend([TYPE_NAPTR, TYPE_A, TYPE_AAAA]);
            }
            Some(SteerKind::Srv(_) | SteerKind::RegionSrv(..)) => types.push(TYPE_SRV),
            None => {}
        }
        types.extend([TYPE_RRSIG, TYPE_NSEC]);
        let steered: Vec<u16> = match node.steer.map(|s| s.kind) {
            Some(SteerKind::Service | SteerKind::Region(_)) => vec![TYPE_NAPTR, TYPE_A, TYPE_AAAA],
            Some(SteerKind::Srv(_) | SteerKind::RegionSrv(..)) => vec![TYPE_SRV],
            None => Vec::new(),
        };
        node.steered_nsec = steered
            .into_iter()
            .map(|t| {
                let without: Vec<u16> = types.iter().copied().filter(|&x| x != t).collect();
                (t, nsec_set(wire, &owner, &without, ttl, origin, sg))
            })
            .collect();
        node.nsec = Some(Box::new(nsec_set(wire, &owner, &types, ttl, origin, sg)));
    }
}

/// The compact-denial NSEC at `wire` (next name `\000.owner`) listing `types`, signed.
fn nsec_set(
    wire: &[u8],
    owner: &Name,
    types: &[u16],
    ttl: u32,
    origin: &Name,
    sg: &Signing,
) -> RRset {
    use crate::proto::TYPE_NSEC;
    let mut rdata = Vec::with_capacity(wire.len() + 40);
    rdata.extend_from_slice(&[1, 0]);
    rdata.extend_from_slice(wire);
    rdata.extend_from_slice(&crate::dnssec::type_bitmap(types));
    let mut set = rrset(TYPE_NSEC, &[(ttl, rdata.clone())], origin, Vec::new());
    set.rrsig = Some(rrsig_set(
        ttl,
        sg.raw(owner, TYPE_NSEC, ttl, &[rdata]),
        origin,
    ));
    set
}

/// The RFC 8482 data of the answer to ANY: HINFO with CPU "RFC8482" and an empty OS.
pub(crate) const RFC8482_HINFO: &[u8] = b"\x07RFC8482\x00";

/// Gives every name of a signed zone that holds data (a steered name too), but not a CNAME,
/// its signed answer to ANY (RFC 8482 4.2: one HINFO set, signed like any other), with the
/// TTL of the unsigned one (`ttl`, the SOA minimum).
pub(super) fn any_sets(nodes: &mut NameMap<Node>, origin: &Name, ttl: u32, sg: &Signing) {
    use crate::proto::{TYPE_CNAME, TYPE_HINFO};
    for (wire, node) in nodes.iter_mut() {
        if node.is_empty() || node.set(TYPE_CNAME).is_some() {
            continue;
        }
        let Some(owner) = super::name_of(wire) else {
            continue;
        };
        let rdata = RFC8482_HINFO.to_vec();
        let mut set = rrset(TYPE_HINFO, &[(ttl, rdata.clone())], origin, Vec::new());
        set.rrsig = Some(rrsig_set(
            ttl,
            sg.raw(&owner, TYPE_HINFO, ttl, &[rdata]),
            origin,
        ));
        node.any = Some(Box::new(set));
    }
}
