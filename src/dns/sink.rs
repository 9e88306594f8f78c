//! Where steered records go: a reply ([`Writer`]) or, for pre-signing, a list of the record
//! sets the answer would hold (`presign`). The steered answer code writes through [`Sink`]
//! and marks each whole RRset with [`Sink::signed`], so one piece of code decides both what a
//! client gets and what is signed ahead of it.

use super::sigs;
use super::writer::{Answer, Writer};
use crate::proto::{RCODE_SERVFAIL, TYPE_RRSIG};

/// What became of a set marked with [`Sink::signed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signed {
    /// Its RRSIG follows it (or the reply is not signed).
    Yes,
    /// It did not fit with its RRSIG: neither was kept.
    DidNotFit,
    /// Its RRSIG is not made yet: the set was taken back and queued for the signer.
    Missing,
}

pub(crate) trait Sink {
    type Mark: Copy;
    fn mark(&self) -> Self::Mark;
    fn rollback(&mut self, m: Self::Mark);
    fn clear_records(&mut self);
    /// Writes one record; false (nothing written) if it does not fit.
    fn record(&mut self, section: usize, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> bool;
    /// Writes one record whose data `f` builds in place; false if `max_rdata` won't fit.
    fn record_with(
        &mut self,
        section: usize,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        max_rdata: usize,
        f: impl FnOnce(&mut Vec<u8>),
    ) -> bool;
    /// Whether sets are signed: then a set is written whole or not at all.
    fn signing(&self) -> bool;
    /// The records written since `m` are the whole RRset of `rtype` at `owner`: its RRSIG
    /// follows them, or neither stays.
    fn signed(
        &mut self,
        section: usize,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        m: Self::Mark,
    ) -> Signed;
}

/// The answer does not fit: an empty reply with TC, so the client retries over TCP.
pub(crate) fn truncate<S: Sink>(w: &mut S, a: &mut Answer) {
    w.clear_records();
    a.tc = true;
}

/// A set of the answer has no signature yet: SERVFAIL (with the extended error "not ready"),
/// so a resolver asks again soon rather than taking an unsigned answer as bogus.
pub(crate) fn unsigned<S: Sink>(w: &mut S, a: &mut Answer) {
    w.clear_records();
    a.rcode = RCODE_SERVFAIL;
    a.aa = false;
    a.scope = 0;
}

impl Sink for Writer<'_> {
    type Mark = (usize, [u16; 3]);

    fn mark(&self) -> Self::Mark {
        Writer::mark(self)
    }

    fn rollback(&mut self, m: Self::Mark) {
        Writer::rollback(self, m);
    }

    fn clear_records(&mut self) {
        Writer::clear_records(self);
    }

    fn record(&mut self, section: usize, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> bool {
        Writer::record(self, section, owner, rtype, ttl, rdata)
    }

    fn record_with(
        &mut self,
        section: usize,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        max_rdata: usize,
        f: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        Writer::record_with(self, section, owner, rtype, ttl, max_rdata, f)
    }

    fn signing(&self) -> bool {
        self.signer().is_some()
    }

    fn signed(
        &mut self,
        section: usize,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        m: Self::Mark,
    ) -> Signed {
        let Some(sg) = self.signer() else {
            return Signed::Yes;
        };
        let key = sigs::set_key(sg.zone, owner, rtype, ttl, sigs::rdatas(self.since(m)));
        let wrote = sg.cache.with(key, |rrsig| {
            Writer::record(self, section, owner, TYPE_RRSIG, ttl, rrsig)
        });
        match wrote {
            Some(true) => Signed::Yes,
            Some(false) => {
                Writer::rollback(self, m);
                Signed::DidNotFit
            }
            None => {
                let rdatas = sigs::rdatas(self.since(m));
                sg.cache.missed(sg.zone, owner, (rtype, ttl, key), rdatas);
                Writer::rollback(self, m);
                Signed::Missing
            }
        }
    }
}
