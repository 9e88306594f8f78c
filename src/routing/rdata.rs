//! Record data in wire form, with names compressed against the zone apex where RFC 3597
//! section 4 allows it: only in the RFC 1035 types NS, CNAME, PTR, MX and SOA. SRV (RFC 2782)
//! and NAPTR (RFC 3403) names and every other type are written in full.
//!
//! A name ending in the apex is written as its labels in front of the apex and a two-byte
//! pointer whose target is filled in per reply (the apex sits inside the question name), so the
//! offsets of those pointers are returned with the data.

use hickory_proto::ProtoError;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData};

use crate::config::records;
use crate::config::service_names::wire_name;

/// Placeholder written where the apex pointer goes (patched by the writer).
pub(crate) const APEX_PTR: [u8; 2] = [0xC0, 0x00];

/// Wire data of one record and the offsets (within the data) of its apex pointers; an error
/// for data without a wire form, which validation refuses ([`crate::config::records::parse`]).
pub(crate) fn encode(rdata: &RData, apex: &[u8]) -> Result<(Vec<u8>, Vec<usize>), ProtoError> {
    let mut out = Vec::with_capacity(64);
    let mut ptrs = Vec::new();
    match rdata {
        RData::NS(n) => name(&n.0, apex, &mut out, &mut ptrs),
        RData::CNAME(n) => name(&n.0, apex, &mut out, &mut ptrs),
        RData::PTR(n) => name(&n.0, apex, &mut out, &mut ptrs),
        RData::MX(m) => {
            out.extend_from_slice(&m.preference.to_be_bytes());
            name(&m.exchange, apex, &mut out, &mut ptrs);
        }
        RData::SOA(s) => return Ok(soa(s, apex)),
        other => return Ok((records::wire(other)?, Vec::new())),
    }
    Ok((out, ptrs))
}

/// Wire data of an SOA record and the offsets of its apex pointers.
pub(crate) fn soa(s: &SOA, apex: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(64);
    let mut ptrs = Vec::new();
    name(&s.mname, apex, &mut out, &mut ptrs);
    name(&s.rname, apex, &mut out, &mut ptrs);
    for v in [
        s.serial,
        s.refresh as u32,
        s.retry as u32,
        s.expire as u32,
        s.minimum,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    (out, ptrs)
}

/// Writes `n` lowercased, ending in an apex pointer when it is the apex or below it.
fn name(n: &Name, apex: &[u8], out: &mut Vec<u8>, ptrs: &mut Vec<usize>) {
    let w = wire_name(n);
    match apex_prefix(&w, apex) {
        Some(p) => {
            out.extend_from_slice(&w[..p]);
            ptrs.push(out.len());
            out.extend_from_slice(&APEX_PTR);
        }
        None => out.extend_from_slice(&w),
    }
}

/// If `name` ends with `apex`, the length of the labels in front of it.
pub(crate) fn apex_prefix(name: &[u8], apex: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while pos < name.len() {
        if name.len() - pos == apex.len() {
            return (&name[pos..] == apex).then_some(pos);
        }
        match name[pos] {
            0 => return None,
            l => pos += l as usize + 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{MX, NS, SRV};

    #[test]
    fn compresses_only_rfc1035_types() {
        let apex = b"\x07example\x03com\x00";
        let n = |s: &str| Name::from_ascii(s).unwrap();
        let encode = |r: &RData, apex: &[u8]| encode(r, apex).unwrap();
        let (d, p) = encode(&RData::MX(MX::new(10, n("Mail.example.com."))), apex);
        assert_eq!(d, b"\x00\x0a\x04mail\xc0\x00");
        assert_eq!(p, [7]);
        let (d, p) = encode(&RData::NS(NS(n("example.com."))), apex);
        assert_eq!((d, p), (b"\xc0\x00".to_vec(), vec![0]));
        let (d, p) = encode(&RData::NS(NS(n("ns.example.net."))), apex);
        assert_eq!((d, p.len()), (b"\x02ns\x07example\x03net\x00".to_vec(), 0));
        let srv = RData::SRV(SRV::new(1, 2, 3, n("sip.example.com.")));
        let (d, p) = encode(&srv, apex);
        assert!(p.is_empty() && d.ends_with(b"\x03sip\x07example\x03com\x00"));
    }
}
