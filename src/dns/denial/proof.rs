//! One NXNAME proof (RFC 9824 3): the NSEC owned by a name that does not exist, next name
//! `\000.<name>` (its immediate successor in canonical order, so it covers no other name),
//! types RRSIG NSEC NXNAME, TTL the smaller of the SOA's TTL and its minimum (RFC 9077), and
//! its RRSIG made with the zone's key in the zone's signature window. Written into a reply
//! on a query thread from the cache ([`Proof::records`]), or spliced into a finished reply by
//! the signer thread ([`Proof::splice`]).

use std::cell::Cell;

use super::Counts;
use crate::dnssec::ZoneKey;
use crate::proto::{MAX_NAME, TYPE_NSEC, TYPE_NXNAME, TYPE_RRSIG};
use crate::routing::ZoneData;

// The bitmap below is written for these numbers.
const _: () = assert!(TYPE_RRSIG == 46 && TYPE_NSEC == 47 && TYPE_NXNAME == 128);
/// The NSEC type bitmap of RRSIG (46), NSEC (47) and NXNAME (128): window 0, 17 bytes.
const BITMAP: [u8; 19] = [
    0, 17, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80,
];

/// The name a proof is for, in lowercase wire form, and whether it is the question name (the
/// proof's owner is then a pointer to the question, keeping the case asked).
#[derive(Clone, Copy)]
pub(crate) struct Owner {
    len: u8,
    name: [u8; MAX_NAME],
    pub at_qname: bool,
}

impl Owner {
    pub(crate) fn new(name: &[u8], at_qname: bool) -> Owner {
        let mut o = Owner {
            len: 0,
            name: [0; MAX_NAME],
            at_qname,
        };
        let n = name.len().min(MAX_NAME);
        o.name[..n].copy_from_slice(&name[..n]);
        o.len = n as u8;
        o
    }

    pub(crate) fn name(&self) -> &[u8] {
        &self.name[..self.len as usize]
    }

    /// Bytes the owner takes in a reply.
    fn wire_len(&self) -> usize {
        if self.at_qname { 2 } else { self.name().len() }
    }

    fn put(&self, out: &mut Vec<u8>) {
        if self.at_qname {
            out.extend_from_slice(&[0xC0, 0x0C]);
        } else {
            out.extend_from_slice(self.name());
        }
    }
}

/// A signed proof: the NSEC and RRSIG record data, and what they were made with.
#[derive(Debug)]
pub(crate) struct Proof {
    /// The DNSKEY data of the key that signed it.
    dnskey: Box<[u8]>,
    ttl: u32,
    nsec: Box<[u8]>,
    rrsig: Box<[u8]>,
}

/// The TTL of a zone's NSEC records (RFC 9077): the smaller of the SOA's TTL and minimum.
pub(super) fn ttl(zone: &ZoneData) -> u32 {
    zone.source.soa.minimum.min(zone.source.ttl)
}

/// The NSEC record data of the proof for `owner`.
fn nsec_rdata(owner: &[u8]) -> Vec<u8> {
    let mut rd = Vec::with_capacity(2 + owner.len() + BITMAP.len());
    rd.extend_from_slice(&[1, 0]);
    rd.extend_from_slice(owner);
    rd.extend_from_slice(&BITMAP);
    rd
}

/// Largest signature of the key's algorithm (ECDSA P-256 and Ed25519: 64 bytes).
fn signature_len(key: &ZoneKey) -> usize {
    match key.algorithm().number() {
        13 | 15 => 64,
        _ => 512,
    }
}

/// Bytes the proof for `owner` takes in a reply: the NSEC and its RRSIG.
pub(crate) fn reply_len(owner: &Owner, zone: &ZoneData, key: &ZoneKey) -> usize {
    let nsec = owner.wire_len() + 10 + 2 + owner.name().len() + BITMAP.len();
    let rrsig = owner.wire_len() + 10 + 18 + zone.apex.len() + signature_len(key);
    nsec + rrsig
}

thread_local! {
    /// Set on the signer thread: a signature made anywhere else is counted.
    static SIGNER: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as the signer.
pub(super) fn on_signer_thread() {
    SIGNER.with(|s| s.set(true));
}

impl Proof {
    /// Signs the proof for `owner` (lowercase wire form) in `zone`; `None` for an unsigned
    /// zone. Only the signer thread calls this; a call on any other thread is counted.
    pub(super) fn sign(zone: &ZoneData, owner: &[u8], counts: &Counts) -> Option<Proof> {
        let key = zone.key.as_deref()?;
        if !SIGNER.with(Cell::get) {
            Counts::add(&counts.query_thread);
        }
        let ttl = ttl(zone);
        let nsec = nsec_rdata(owner);
        let rrsig = key.rrsig(
            owner,
            &zone.apex,
            TYPE_NSEC,
            ttl,
            std::slice::from_ref(&nsec),
            zone.window,
        );
        Counts::add(&counts.signed);
        Some(Proof {
            dnskey: key.dnskey_rdata().into(),
            ttl,
            nsec: nsec.into(),
            rrsig: rrsig.into(),
        })
    }

    /// Whether the proof was made with `key` and `ttl` (a key or TTL changed by a reload
    /// makes a kept proof useless).
    pub(super) fn fits(&self, key: &ZoneKey, ttl: u32) -> bool {
        self.ttl == ttl && *self.dnskey == *key.dnskey_rdata()
    }

    /// The proof's records: (type, data) of the NSEC and of its RRSIG, and their TTL.
    pub(crate) fn records(&self) -> ([(u16, &[u8]); 2], u32) {
        (
            [(TYPE_NSEC, &self.nsec), (TYPE_RRSIG, &self.rrsig)],
            self.ttl,
        )
    }

    /// Inserts the NSEC and its RRSIG at `at` of a finished reply (the end of its
    /// authority section) and counts them in its header; false when `at` is not in the reply.
    pub(super) fn splice(&self, reply: &mut Vec<u8>, at: usize, owner: &Owner) -> bool {
        if at > reply.len() || reply.len() < 12 {
            return false;
        }
        let mut recs =
            Vec::with_capacity(2 * (owner.wire_len() + 10) + self.nsec.len() + self.rrsig.len());
        for (rtype, rdata) in [(TYPE_NSEC, &self.nsec), (TYPE_RRSIG, &self.rrsig)] {
            owner.put(&mut recs);
            recs.extend_from_slice(&rtype.to_be_bytes());
            recs.extend_from_slice(&1u16.to_be_bytes());
            recs.extend_from_slice(&self.ttl.to_be_bytes());
            recs.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            recs.extend_from_slice(rdata);
        }
        reply.splice(at..at, recs);
        let ns = u16::from_be_bytes([reply[8], reply[9]]).saturating_add(2);
        reply[8..10].copy_from_slice(&ns.to_be_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_is_rrsig_nsec_nxname() {
        assert_eq!(
            crate::dnssec::type_bitmap(&[TYPE_RRSIG, TYPE_NSEC, TYPE_NXNAME]),
            BITMAP.to_vec()
        );
        assert_eq!(
            nsec_rdata(b"\x01x\x00"),
            [&[1, 0, 1, b'x', 0][..], &BITMAP].concat()
        );
    }

    /// A measurement, not a test: microseconds per NXNAME proof signed, per algorithm (run in
    /// release: `cargo test --release --lib denial::proof -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn sign_speed() {
        use crate::dnssec::{Algorithm, Window};
        for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let pem = ZoneKey::generate_pem(alg).expect("generate");
            let key = ZoneKey::from_pkcs8(alg, pem.as_bytes()).expect("load");
            let apex = b"\x07example\x03com\x00";
            let n = 2000;
            let start = std::time::Instant::now();
            for i in 0..n {
                let owner = [&[8][..], format!("name{i:04}").as_bytes(), apex].concat();
                let nsec = nsec_rdata(&owner);
                let sig = key.rrsig(&owner, apex, TYPE_NSEC, 60, &[nsec], Window::now());
                assert!(sig.len() > 64);
            }
            let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            println!("{}: {us:.1} us per proof", alg.mnemonic());
        }
    }
}
