//! Compiled zones: every owner name of every zone, with its record sets encoded to wire format
//! once at load, so answering is a hash lookup and a few copies.

pub(crate) mod build;

pub(crate) mod rdata;

mod secure;
mod sign;

pub(crate) use sign::Signing;

use std::collections::HashMap;

pub use build::compile;
pub(crate) use secure::RFC8482_HINFO;

/// Names (lowercase wire form) to what they hold. Looked up once or more per query, so hashed
/// with foldhash (seeded per process) rather than SipHash; the keys come from the config.
pub type NameMap<V> = HashMap<Box<[u8]>, V, foldhash::fast::RandomState>;

/// Every zone sipsteer is authoritative for.
#[derive(Debug, Default)]
pub struct Routing {
    pub zones: Vec<Zone>,
    apexes: NameMap<usize>,
    /// Fewest labels of any apex (a shortcut for the zone search).
    min_apex_labels: usize,
}

/// One zone: its place in this [`Routing`] and its compiled data, shared with the previous
/// reload's routing while its zone map and the regions it names did not change.
#[derive(Debug)]
pub struct Zone {
    /// Position in [`Routing::zones`].
    pub index: u32,
    /// Index in the snapshot's services of this zone's first service (a node's
    /// [`SteerRef::service`] counts from here).
    pub service_base: u32,
    pub data: std::sync::Arc<ZoneData>,
}

impl std::ops::Deref for Zone {
    type Target = ZoneData;
    fn deref(&self) -> &ZoneData {
        &self.data
    }
}

/// The compiled data of one zone, independent of the other zones.
#[derive(Debug)]
pub struct ZoneData {
    /// The validated zone this was compiled from.
    pub source: std::sync::Arc<crate::config::ZoneConfig>,
    /// The regions its services name (global index and value) when it was compiled; the
    /// values are shared by every zone compiled in the same pass, so a reload compares each
    /// distinct value with the new config once, not once per zone.
    pub regions: Vec<(usize, std::sync::Arc<crate::config::RegionConfig>)>,
    /// Lowercase wire name of the apex.
    pub apex: Box<[u8]>,
    pub origin: hickory_proto::rr::Name,
    /// The SOA as it goes in the authority section of negative answers (TTL = SOA minimum).
    pub negative_soa: RRset,
    pub nodes: NameMap<Node>,
    /// Whether any node below the apex is a delegation.
    pub has_cuts: bool,
    /// The signing key when the zone is signed; its DNSKEY, CDNSKEY and CDS sets are at the
    /// apex node.
    pub key: Option<std::sync::Arc<crate::dnssec::ZoneKey>>,
    /// The zone's key set as it was when the zone compiled (what it published and signed
    /// the key sets with; when its next key event is).
    pub key_set: Option<std::sync::Arc<crate::dnssec::KeySet>>,
    /// The signature window its RRSIGs were made in (a compile in a later period signs again).
    pub window: crate::dnssec::Window,
}

/// The data at one owner name.
#[derive(Debug, Default)]
pub struct Node {
    pub sets: Vec<RRset>,
    /// NS records here below the apex: a delegation point.
    pub cut: bool,
    /// The name is answered by the steering core.
    pub steer: Option<SteerRef>,
    /// In a signed zone, the NSEC (with its RRSIG) proving NODATA here (RFC 9824).
    pub nsec: Option<Box<RRset>>,
    /// At a steered name of a signed zone, per steered type, the NSEC proving that this
    /// client's answer has no data of that type (its region has no address of the family,
    /// no server of the transport, or every region is down with `all_down: nodata`): the
    /// name's types without that one.
    pub steered_nsec: Vec<(u16, RRset)>,
    /// In a signed zone, the RFC 8482 answer to ANY here (HINFO "RFC8482" ""), with its
    /// RRSIG; at every name with data but a CNAME.
    pub any: Option<Box<RRset>>,
}

impl Node {
    pub fn set(&self, rtype: u16) -> Option<&RRset> {
        self.sets.iter().find(|s| s.rtype == rtype)
    }
    /// An empty non-terminal: exists only because names below it do.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.steer.is_none()
    }
}

/// Which steered answer a name gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteerRef {
    /// Index into the snapshot's services: counted from the zone's [`Zone::service_base`] in a
    /// node, global once [`SteerRef::global`] has been applied.
    pub service: u32,
    pub kind: SteerKind,
}

impl SteerRef {
    /// This reference with the service index of the snapshot (a node's counts within `zone`).
    #[inline]
    pub fn global(self, zone: &Zone) -> SteerRef {
        SteerRef {
            service: zone.service_base + self.service,
            kind: self.kind,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteerKind {
    /// `sip.example.com`: NAPTR, A, AAAA for the client's ranking.
    Service,
    /// `_sip._udp.sip.example.com` and friends: SRV for one transport.
    Srv(crate::config::Transport),
    /// `uk.sip.example.com`: pinned to one region (index into the service's regions).
    Region(u16),
    /// `_sip._udp.uk.sip.example.com`: SRV pinned to one region.
    RegionSrv(u16, crate::config::Transport),
}

/// One record set in wire form: every record starts with the owner pointer `0xC00C`
/// (the question name), followed by type, class, TTL, length and data.
#[derive(Debug, Clone)]
pub struct RRset {
    pub rtype: u16,
    pub count: u16,
    pub wire: Box<[u8]>,
    /// In-zone names whose addresses belong in the additional section (MX, SRV, NS targets).
    pub targets: Box<[Box<[u8]>]>,
    /// The CNAME target, lowercase wire form.
    pub cname: Option<Box<[u8]>>,
    /// Offsets in `wire` of pointers to the zone apex, filled in per reply ([`rdata`]).
    pub apex_ptrs: Box<[u16]>,
    /// In a signed zone, the set's RRSIG (one record, owner pointer `0xC00C` like the set's),
    /// written after the set when the query has DO=1.
    pub rrsig: Option<Box<RRset>>,
}

impl RRset {
    /// Each record without its 2-byte owner pointer.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest: &[u8] = &self.wire;
        std::iter::from_fn(move || {
            if rest.len() < 12 {
                return None;
            }
            let len = 12 + u16::from_be_bytes([rest[10], rest[11]]) as usize;
            let (rec, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            Some(&rec[2..])
        })
    }
}

impl Routing {
    /// Whether a signed zone's RRSIGs were made in another signature window than `now`'s:
    /// the zone must compile (and sign) again, though no file changed.
    /// A zone whose key set has an event due (a key changes state, a ZSK successor is due)
    /// compiles again too.
    pub fn signed_before(&self, now: crate::dnssec::Window) -> bool {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.zones.iter().any(|z| {
            z.key.is_some()
                && (z.window != now
                    || z.key_set
                        .as_ref()
                        .and_then(|s| s.next_event)
                        .is_some_and(|t| secs >= t))
        })
    }

    /// The most specific zone containing `name` (lowercase wire form), and the offset of the
    /// apex within `name`.
    pub fn find_zone(&self, name: &[u8]) -> Option<(&Zone, usize)> {
        let mut pos = 0usize;
        let mut labels_left = count_labels(name);
        while labels_left >= self.min_apex_labels {
            if let Some(&i) = self.apexes.get(&name[pos..]) {
                return self.zones.get(i).map(|z| (z, pos));
            }
            let l = *name.get(pos)? as usize;
            if l == 0 {
                return None;
            }
            pos += l + 1;
            labels_left -= 1;
        }
        None
    }
}

/// Labels in a wire name, not counting the root.
pub fn count_labels(name: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(&l) = name.get(pos) {
        if l == 0 {
            break;
        }
        n += 1;
        pos += l as usize + 1;
    }
    n
}

/// A wire name (lowercase, uncompressed) as a hickory name.
pub(crate) fn name_of(wire: &[u8]) -> Option<hickory_proto::rr::Name> {
    let mut labels: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    while let Some(&l) = wire.get(pos) {
        if l == 0 {
            return hickory_proto::rr::Name::from_labels(labels).ok();
        }
        labels.push(wire.get(pos + 1..pos + 1 + l as usize)?);
        pos += l as usize + 1;
    }
    None
}

/// The parent of a wire name (`None` for the root).
pub fn parent(name: &[u8]) -> Option<&[u8]> {
    let l = *name.first()? as usize;
    if l == 0 {
        return None;
    }
    name.get(l + 1..)
}

/// Builds one wire record set from (ttl, rdata) pairs of one type.
pub(crate) fn rrset(
    rtype: u16,
    items: &[(u32, Vec<u8>)],
    origin: &hickory_proto::rr::Name,
    targets: Vec<hickory_proto::rr::Name>,
) -> RRset {
    let items: Vec<(u32, Vec<u8>, Vec<usize>)> = items
        .iter()
        .map(|(t, d)| (*t, d.clone(), Vec::new()))
        .collect();
    rrset_with_ptrs(rtype, &items, origin, targets)
}

/// Like [`rrset`], for data with apex pointers at the given offsets.
pub(crate) fn rrset_with_ptrs(
    rtype: u16,
    items: &[(u32, Vec<u8>, Vec<usize>)],
    origin: &hickory_proto::rr::Name,
    targets: Vec<hickory_proto::rr::Name>,
) -> RRset {
    let mut wire = Vec::new();
    let mut apex_ptrs = Vec::new();
    for (ttl, rd, ptrs) in items {
        apex_ptrs.extend(ptrs.iter().map(|p| (wire.len() + 12 + p) as u16));
        wire.extend_from_slice(&[0xC0, 0x0C]);
        wire.extend_from_slice(&rtype.to_be_bytes());
        wire.extend_from_slice(&1u16.to_be_bytes());
        wire.extend_from_slice(&ttl.to_be_bytes());
        wire.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        wire.extend_from_slice(rd);
    }
    let targets: Vec<Box<[u8]>> = targets
        .iter()
        .filter(|t| origin.zone_of(t))
        .map(crate::config::service_names::wire_name)
        .collect();
    RRset {
        rtype,
        count: items.len() as u16,
        wire: wire.into_boxed_slice(),
        targets: targets.into_boxed_slice(),
        cname: None,
        apex_ptrs: apex_ptrs.into_boxed_slice(),
        rrsig: None,
    }
}
