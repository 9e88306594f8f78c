//! EDNS options added to replies after the answer is written: COOKIE (RFC 7873), NSID
//! (RFC 5001) and Extended DNS Errors (RFC 8914); and the two replies that replace an answer
//! under rate limiting (an empty truncated reply, or BADCOOKIE with a fresh cookie).
//! Everything writes into the caller's reply buffer; nothing allocates.

use super::wire::{OPT_NSID, Query, TYPE_OPT};

pub(crate) const OPT_EDE: u16 = 15;
/// Extended rcode 23: BADCOOKIE.
pub(crate) const RCODE_BADCOOKIE: u16 = 23;

/// RFC 8914 info codes used here.
pub(crate) const EDE_NOT_READY: u16 = 14;
pub(crate) const EDE_NOT_AUTHORITATIVE: u16 = 20;
pub(crate) const EDE_NOT_SUPPORTED: u16 = 21;

/// Options for one reply, each present or not.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extra<'a> {
    /// Client cookie and the server cookie to send.
    pub cookie: Option<([u8; 8], [u8; 16])>,
    pub nsid: Option<&'a [u8]>,
    pub ede: Option<u16>,
}

impl Extra<'_> {
    /// Bytes these options take, error code excluded (error replies carry no records, so
    /// they always have room for it).
    pub(crate) fn reserve(&self) -> usize {
        self.cookie.map_or(0, |_| 4 + 24) + self.nsid.map_or(0, |n| 4 + n.len())
    }

    fn is_empty(&self) -> bool {
        self.cookie.is_none() && self.nsid.is_none() && self.ede.is_none()
    }

    fn write(&self, out: &mut Vec<u8>) {
        if let Some((cc, sc)) = &self.cookie {
            option_head(out, super::cookie::OPT_COOKIE, 24);
            out.extend_from_slice(cc);
            out.extend_from_slice(sc);
        }
        if let Some(n) = self.nsid {
            option_head(out, OPT_NSID, n.len());
            out.extend_from_slice(n);
        }
        if let Some(code) = self.ede {
            option_head(out, OPT_EDE, 2);
            out.extend_from_slice(&code.to_be_bytes());
        }
    }
}

fn option_head(out: &mut Vec<u8>, code: u16, len: usize) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
}

/// Appends `extra` to the OPT record that starts at `opt_at` and ends the reply. Does nothing
/// when there is no such record (a reply without EDNS).
pub(crate) fn append(out: &mut Vec<u8>, opt_at: usize, extra: &Extra) {
    if extra.is_empty() || !is_last_opt(out, opt_at) {
        return;
    }
    let before = out.len();
    extra.write(out);
    let rdlen_at = opt_at + 9;
    let rdlen = u16::from_be_bytes([out[rdlen_at], out[rdlen_at + 1]]) as usize;
    let new = (rdlen + out.len() - before) as u16;
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&new.to_be_bytes());
}

fn is_last_opt(out: &[u8], at: usize) -> bool {
    let Some(rec) = out.get(at..at.saturating_add(11)) else {
        return false;
    };
    let rdlen = u16::from_be_bytes([rec[9], rec[10]]) as usize;
    rec[0] == 0 && u16::from_be_bytes([rec[1], rec[2]]) == TYPE_OPT && at + 11 + rdlen == out.len()
}

/// Replaces the reply with an empty one for `q`: TC set (a slip), or BADCOOKIE when a
/// cookie is given. The OPT record is kept when the query had one.
pub(crate) fn short_reply(out: &mut Vec<u8>, q: &Query, payload: u16, badcookie: Option<&Extra>) {
    out.clear();
    out.extend_from_slice(&q.id.to_be_bytes());
    let mut flags: u16 = 0x8000 | (q.flags & 0x7800) | (q.flags & 0x0100) | (q.flags & 0x0010);
    let rcode = if badcookie.is_some() {
        RCODE_BADCOOKIE
    } else {
        flags |= 0x0200;
        0
    };
    flags |= rcode & 0xF;
    out.extend_from_slice(&flags.to_be_bytes());
    let ar = u16::from(q.edns.is_some());
    for n in [1u16, 0, 0, ar] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(q.question);
    let Some(e) = q.edns else { return };
    let opt_at = out.len();
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    let do_bit: u8 = if e.dnssec_ok { 0x80 } else { 0 };
    out.extend_from_slice(&[(rcode >> 4) as u8, 0, do_bit, 0, 0, 0]);
    if let Some(extra) = badcookie {
        append(out, opt_at, extra);
    }
}

/// The extended error for a refused query, if one says more than the rcode.
pub(crate) fn refused_reason(q: &Query, zone: Option<u32>) -> Option<u16> {
    use super::wire::{CLASS_IN, TYPE_AXFR, TYPE_IXFR};
    if q.qclass != CLASS_IN {
        return Some(EDE_NOT_SUPPORTED);
    }
    if matches!(q.qtype, TYPE_AXFR | TYPE_IXFR) {
        return Some(EDE_NOT_SUPPORTED);
    }
    zone.is_none().then_some(EDE_NOT_AUTHORITATIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_grows_the_last_opt() {
        let mut out = vec![0xAA; 12];
        let at = out.len();
        out.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
        let extra = Extra {
            nsid: Some(b"ns1"),
            ede: Some(20),
            ..Extra::default()
        };
        append(&mut out, at, &extra);
        assert_eq!(
            &out[at + 9..],
            &[0, 13, 0, 3, 0, 3, b'n', b's', b'1', 0, 15, 0, 2, 0, 20]
        );
        // Not an OPT at that offset: untouched.
        let mut plain = vec![0u8; 20];
        append(&mut plain, 12, &extra);
        assert_eq!(plain, vec![0u8; 20]);
    }
}
