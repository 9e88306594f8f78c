//! Writing a response into a caller's buffer: header, the question as asked, records with
//! owner names compressed against the question, and the OPT record. Every write checks the
//! size limit first, so a UDP reply never exceeds what the client can take. [`Answer`] holds
//! what the answer path decides beside the records (rcode, flags, ECS scope), and
//! [`truncate`] turns a reply that does not fit into an empty one with TC.

use super::summary::Steered;
use super::wire::{Ecs, MAX_NAME, OPT_ECS, TYPE_OPT};
use crate::routing::RRset;

pub(crate) const ANSWER: usize = 0;
pub(crate) const AUTHORITY: usize = 1;
pub(crate) const ADDITIONAL: usize = 2;

/// The OPT record of a reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptOut {
    pub payload: u16,
    /// Upper 8 bits of the extended rcode.
    pub ext_rcode: u8,
    /// ECS echoed with this scope.
    pub ecs: Option<(Ecs, u8)>,
    /// The DO bit, copied from the query (RFC 3225).
    pub dnssec_ok: bool,
}

impl OptOut {
    /// Bytes the OPT record takes on the wire.
    pub(crate) fn wire_len(&self) -> usize {
        11 + self
            .ecs
            .map_or(0, |(e, _)| 8 + (e.source as usize).div_ceil(8))
    }
}

/// The parts of the reply decided while answering.
pub(crate) struct Answer {
    pub rcode: u8,
    pub aa: bool,
    pub tc: bool,
    /// ECS scope for location-dependent answers.
    pub scope: u8,
    pub steered: Option<Steered>,
    pub zone: Option<u32>,
    /// A name that does not exist in a signed zone, asked with DO=1, whose proof is not
    /// kept: the reply waits for the signer thread (see `dns::denial`).
    pub proof: Option<super::denial::Pending>,
    /// The reply denies a name by RFC 9824 compact denial (NOERROR): counted as NXDOMAIN
    /// by the rate limiter.
    pub nxname: bool,
}

impl Answer {
    /// NOERROR, authoritative, nothing decided yet.
    pub(crate) fn new() -> Answer {
        Answer {
            rcode: 0,
            aa: true,
            tc: false,
            scope: 0,
            steered: None,
            zone: None,
            proof: None,
            nxname: false,
        }
    }
}

/// The answer does not fit: send an empty reply with TC so the client retries over TCP.
pub(crate) fn truncate(w: &mut Writer, a: &mut Answer) {
    w.clear_records();
    a.tc = true;
}

/// What [`Writer::finish`] leaves for the steps after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finished {
    /// Where the reply's OPT record starts (its end when there is none).
    pub opt_at: usize,
    /// Records in the answer section.
    pub answers: u16,
}

pub(crate) struct Writer<'b> {
    buf: &'b mut Vec<u8>,
    limit: usize,
    reserve: usize,
    /// The question name in lower case.
    lower: &'b [u8],
    /// Offset of the zone apex within the question name.
    apex_off: usize,
    counts: [u16; 3],
    /// The query has DO=1: record sets are written with their RRSIGs.
    dnssec_ok: bool,
    /// DO=1 in a signed zone: where steered sets find their RRSIGs.
    signer: Option<Signer<'b>>,
}

/// Where the RRSIGs of steered sets come from: the signature cache, for a signed zone.
#[derive(Clone, Copy)]
pub(crate) struct Signer<'b> {
    pub cache: &'b super::sigs::SigCache,
    pub zone: &'b std::sync::Arc<crate::routing::ZoneData>,
}

impl<'b> Writer<'b> {
    /// Starts a reply: header placeholder and the question copied as asked.
    #[inline]
    pub(crate) fn new(
        buf: &'b mut Vec<u8>,
        id: u16,
        question: Option<&[u8]>,
        lower: &'b [u8],
        limit: usize,
        reserve: usize,
    ) -> Self {
        buf.clear();
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&[0; 10]);
        if let Some(q) = question {
            buf[5] = 1;
            buf.extend_from_slice(q);
        }
        let lower = &lower[..lower.len().min(MAX_NAME)];
        Writer {
            buf,
            limit,
            reserve,
            lower,
            apex_off: lower.len().saturating_sub(1),
            counts: [0; 3],
            dnssec_ok: false,
            signer: None,
        }
    }

    /// Where the zone apex starts in the question name (for compressing in-zone owners).
    pub(crate) fn set_apex_offset(&mut self, off: usize) {
        self.apex_off = off;
    }

    /// Record sets are written with their RRSIGs from now on (the query has DO=1).
    pub(crate) fn set_dnssec_ok(&mut self, on: bool) {
        self.dnssec_ok = on;
    }

    /// Whether the query has DO=1.
    pub(crate) fn dnssec_ok(&self) -> bool {
        self.dnssec_ok
    }

    /// Steered sets are signed from `signer` (DO=1, the question in a signed zone).
    pub(crate) fn set_signer(&mut self, signer: Signer<'b>) {
        self.signer = Some(signer);
    }

    pub(crate) fn signer(&self) -> Option<Signer<'b>> {
        self.signer
    }

    /// The records written since `m`, as the reply holds them.
    pub(crate) fn since(&self, m: (usize, [u16; 3])) -> &[u8] {
        self.buf.get(m.0..).unwrap_or_default()
    }

    pub(crate) fn mark(&self) -> (usize, [u16; 3]) {
        (self.buf.len(), self.counts)
    }

    pub(crate) fn rollback(&mut self, m: (usize, [u16; 3])) {
        self.buf.truncate(m.0);
        self.counts = m.1;
    }

    /// Drops every record (for a truncated reply).
    pub(crate) fn clear_records(&mut self) {
        let q = if self.buf[5] == 1 {
            12 + self.lower.len() + 4
        } else {
            12
        };
        self.buf.truncate(q);
        self.counts = [0; 3];
    }

    /// Lowers to `ttl` the TTL of every record written since `m` that is longer.
    pub(crate) fn cap_ttls(&mut self, m: (usize, [u16; 3]), ttl: u32) {
        let mut pos = m.0;
        while pos < self.buf.len() {
            // The owner: labels ending in the root or in a compression pointer.
            loop {
                let Some(&b) = self.buf.get(pos) else { return };
                match b {
                    0 => pos += 1,
                    b if b & 0xC0 == 0xC0 => pos += 2,
                    b => {
                        pos += 1 + b as usize;
                        continue;
                    }
                }
                break;
            }
            let Some(fixed) = self.buf.get_mut(pos..pos + 10) else {
                return;
            };
            let old = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
            if old > ttl {
                fixed[4..8].copy_from_slice(&ttl.to_be_bytes());
            }
            pos += 10 + u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        }
    }

    fn fits(&self, n: usize) -> bool {
        self.buf.len() + n + self.reserve <= self.limit
    }

    /// Whether `n` more bytes of records fit (for records added after the reply is finished).
    pub(crate) fn room(&self, n: usize) -> bool {
        self.fits(n)
    }

    /// Bytes an owner name takes when written by [`Self::owner`].
    fn owner_len(&self, owner: &[u8]) -> usize {
        if owner == self.qname() {
            return 2;
        }
        match self.apex_prefix(owner) {
            Some(p) => p + 2,
            None => owner.len(),
        }
    }

    fn qname(&self) -> &[u8] {
        self.lower
    }

    /// If `owner` ends with the zone apex, the length of the labels before it.
    fn apex_prefix(&self, owner: &[u8]) -> Option<usize> {
        let apex = &self.lower[self.apex_off..];
        let mut pos = 0;
        while pos < owner.len() {
            if owner.len() - pos == apex.len() {
                return (&owner[pos..] == apex).then_some(pos);
            }
            let l = owner[pos] as usize;
            if l == 0 {
                return None;
            }
            pos += l + 1;
        }
        None
    }

    fn owner(&mut self, owner: &[u8]) {
        if owner == self.qname() {
            self.buf.extend_from_slice(&[0xC0, 0x0C]);
            return;
        }
        match self.apex_prefix(owner) {
            Some(p) => {
                self.buf.extend_from_slice(&owner[..p]);
                let ptr = 0xC000 | (12 + self.apex_off) as u16;
                self.buf.extend_from_slice(&ptr.to_be_bytes());
            }
            None => self.buf.extend_from_slice(owner),
        }
    }

    /// Writes a whole record set owned by the question name, with its RRSIG when the query
    /// has DO=1; false (and nothing written) if it does not fit.
    pub(crate) fn rrset_at_qname(&mut self, section: usize, set: &RRset) -> bool {
        let before = self.mark();
        if !self.put_at_qname(section, set) {
            return false;
        }
        self.then_rrsig(section, None, set, before)
    }

    /// After `set` was written: its RRSIG when the query has DO=1, or neither (the set taken
    /// back) when the RRSIG does not fit.
    fn then_rrsig(
        &mut self,
        section: usize,
        owner: Option<&[u8]>,
        set: &RRset,
        before: (usize, [u16; 3]),
    ) -> bool {
        let Some(sig) = set.rrsig.as_deref().filter(|_| self.dnssec_ok) else {
            return true;
        };
        let wrote = match owner {
            None => self.put_at_qname(section, sig),
            Some(o) => self.put_at(section, o, sig),
        };
        if !wrote {
            self.rollback(before);
        }
        wrote
    }

    fn put_at_qname(&mut self, section: usize, set: &RRset) -> bool {
        if !self.fits(set.wire.len()) {
            return false;
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(&set.wire);
        for &p in &set.apex_ptrs {
            self.apex_pointer(start + p as usize);
        }
        self.counts[section] += set.count;
        true
    }

    /// Fills in a pointer to the zone apex inside the question name (names in record data
    /// are compressed against it; see `routing::rdata`).
    fn apex_pointer(&mut self, at: usize) {
        let ptr = (0xC000 | (12 + self.apex_off) as u16).to_be_bytes();
        if let Some(b) = self.buf.get_mut(at..at + 2) {
            b.copy_from_slice(&ptr);
        }
    }

    /// Writes a whole record set with another owner, with its RRSIG when the query has DO=1;
    /// false (nothing written) if it does not fit.
    pub(crate) fn rrset_at(&mut self, section: usize, owner: &[u8], set: &RRset) -> bool {
        if owner == self.qname() {
            return self.rrset_at_qname(section, set);
        }
        let before = self.mark();
        if !self.put_at(section, owner, set) {
            return false;
        }
        self.then_rrsig(section, Some(owner), set, before)
    }

    fn put_at(&mut self, section: usize, owner: &[u8], set: &RRset) -> bool {
        if owner == self.qname() {
            return self.put_at_qname(section, set);
        }
        let olen = self.owner_len(owner);
        let need = set.wire.len() + (olen.saturating_sub(2)) * set.count as usize;
        if !self.fits(need) {
            return false;
        }
        // `from` is where the current record's data (after its owner) starts in `set.wire`.
        let mut from = 2;
        for rec in set.records() {
            self.owner(owner);
            let start = self.buf.len();
            self.buf.extend_from_slice(rec);
            for &p in &set.apex_ptrs {
                let p = p as usize;
                if (from..from + rec.len()).contains(&p) {
                    self.apex_pointer(start + p - from);
                }
            }
            from += rec.len() + 2;
        }
        self.counts[section] += set.count;
        true
    }

    /// Writes one record; false (nothing written) if it does not fit.
    pub(crate) fn record(
        &mut self,
        section: usize,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> bool {
        if !self.fits(self.owner_len(owner) + 10 + rdata.len()) {
            return false;
        }
        self.owner(owner);
        self.buf.extend_from_slice(&rtype.to_be_bytes());
        self.buf.extend_from_slice(&1u16.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        self.buf
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(rdata);
        self.counts[section] += 1;
        true
    }

    /// Writes one record whose data is built in place by `f`; false if `max_rdata` won't fit.
    pub(crate) fn record_with(
        &mut self,
        section: usize,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        max_rdata: usize,
        f: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        if !self.fits(self.owner_len(owner) + 10 + max_rdata) {
            return false;
        }
        self.owner(owner);
        self.buf.extend_from_slice(&rtype.to_be_bytes());
        self.buf.extend_from_slice(&1u16.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        f(self.buf);
        let n = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&n.to_be_bytes());
        self.counts[section] += 1;
        true
    }

    /// Finishes the header and appends the OPT record.
    pub(crate) fn finish(
        self,
        req_flags: u16,
        aa: bool,
        tc: bool,
        rcode: u8,
        opt: Option<OptOut>,
    ) -> Finished {
        let opt_at = self.buf.len();
        // Opcode copied; RD and CD are defined for QUERY only (RFC 1035, RFC 6840), so a reply to
        // another opcode does not echo them.
        let opcode = req_flags & 0x7800;
        let mut flags: u16 = 0x8000 | opcode;
        if opcode == 0 {
            flags |= req_flags & (0x0100 | 0x0010);
        }
        if aa {
            flags |= 0x0400;
        }
        if tc {
            flags |= 0x0200;
        }
        flags |= u16::from(rcode & 0xF);
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
        let mut ar = self.counts[ADDITIONAL];
        if let Some(o) = opt {
            ar += 1;
            self.buf.push(0);
            self.buf.extend_from_slice(&TYPE_OPT.to_be_bytes());
            self.buf.extend_from_slice(&o.payload.to_be_bytes());
            let do_bit = if o.dnssec_ok { 0x80 } else { 0 };
            self.buf.extend_from_slice(&[o.ext_rcode, 0, do_bit, 0]);
            match o.ecs {
                None => self.buf.extend_from_slice(&[0, 0]),
                Some((e, scope)) => {
                    let alen = (e.source as usize).div_ceil(8);
                    self.buf
                        .extend_from_slice(&((8 + alen) as u16).to_be_bytes());
                    self.buf.extend_from_slice(&OPT_ECS.to_be_bytes());
                    self.buf
                        .extend_from_slice(&((4 + alen) as u16).to_be_bytes());
                    self.buf.extend_from_slice(&e.family.to_be_bytes());
                    self.buf.extend_from_slice(&[e.source, scope]);
                    match e.addr {
                        std::net::IpAddr::V4(a) => self.buf.extend_from_slice(&a.octets()[..alen]),
                        std::net::IpAddr::V6(a) => self.buf.extend_from_slice(&a.octets()[..alen]),
                    }
                }
            }
        }
        self.buf[6..8].copy_from_slice(&self.counts[ANSWER].to_be_bytes());
        self.buf[8..10].copy_from_slice(&self.counts[AUTHORITY].to_be_bytes());
        self.buf[10..12].copy_from_slice(&ar.to_be_bytes());
        Finished {
            opt_at,
            answers: self.counts[ANSWER],
        }
    }
}
