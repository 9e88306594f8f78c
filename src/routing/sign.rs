//! Signing a zone's static RRsets while it compiles, off the packet path: the RRSIG record
//! data of each set (the records' data in canonical form: names lowercase, uncompressed),
//! made once per compile with the zone's key and the current signature window; the same
//! signing for the steered RRsets the answer path's signature cache holds (`dns::sigs`).

use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::dnssec::{Window, ZoneKey, canonical_name};

/// A signed zone's key, its apex (the signer name) and the window of this compile.
pub(crate) struct Signing<'k> {
    key: &'k ZoneKey,
    signer: Vec<u8>,
    window: Window,
}

impl<'k> Signing<'k> {
    pub(crate) fn new(key: &'k ZoneKey, origin: &Name, window: Window) -> Signing<'k> {
        Signing {
            key,
            signer: canonical_name(origin),
            window,
        }
    }

    /// The RRSIG record data over the records `rdatas` (canonical data) of `rtype` at `owner`.
    pub(super) fn raw(&self, owner: &Name, rtype: u16, ttl: u32, rdatas: &[Vec<u8>]) -> Vec<u8> {
        let owner = canonical_name(owner);
        self.key
            .rrsig(&owner, &self.signer, rtype, ttl, rdatas, self.window)
    }

    /// The RRSIG record data over the records `rdatas` (canonical data) of `rtype` at the
    /// owner `owner`, given in canonical wire form (lowercase, uncompressed).
    pub(crate) fn wire(&self, owner: &[u8], rtype: u16, ttl: u32, rdatas: &[Vec<u8>]) -> Vec<u8> {
        self.key
            .rrsig(owner, &self.signer, rtype, ttl, rdatas, self.window)
    }

    /// The RRSIG record data over records given as hickory data; `None` when one of them has
    /// no wire form (it is left out of the set too).
    pub(super) fn records<'a>(
        &self,
        owner: &Name,
        rtype: u16,
        ttl: u32,
        data: impl Iterator<Item = &'a RData>,
    ) -> Option<Vec<u8>> {
        let rdatas: Option<Vec<Vec<u8>>> = data.map(canonical_rdata).collect();
        Some(self.raw(owner, rtype, ttl, &rdatas?))
    }
}

/// Record data in canonical form (RFC 4034 6.2): every name in it lowercase and uncompressed.
fn canonical_rdata(r: &RData) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut e = BinEncoder::new(&mut out);
    e.set_name_encoding(NameEncoding::UncompressedLowercase);
    r.emit(&mut e).ok()?;
    Some(out)
}
