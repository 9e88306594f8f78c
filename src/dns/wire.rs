//! Parsing DNS queries from the wire, without allocating: header, the one question, and the
//! OPT record with its Client Subnet option. Everything here is checked, never trusted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) use crate::proto::*;

/// An EDNS Client Subnet option (RFC 7871), validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ecs {
    /// 1 = IPv4, 2 = IPv6.
    pub family: u16,
    pub source: u8,
    /// The address, host bits zero.
    pub addr: IpAddr,
}

/// The request's OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    pub ecs: Option<Ecs>,
    /// The COOKIE option (RFC 7873), well-formed.
    pub cookie: Option<super::cookie::Cookie>,
    /// An NSID request (RFC 5001).
    pub nsid: bool,
}

/// A query that passed every check.
#[derive(Debug)]
pub(crate) struct Query<'a> {
    pub id: u16,
    /// The second header word of the request (opcode, RD, CD...).
    pub flags: u16,
    /// The question as sent (name, type, class), copied into the reply as is (0x20 case kept).
    pub question: &'a [u8],
    /// The name in lower case, wire format (in the buffer the caller gave [`parse`]).
    pub name: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

/// What to do with a packet.
// The query is returned by value: boxing it would cost an allocation per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    Query(Query<'a>),
    /// Answer with this rcode; `question` is echoed when it could be read, and an OPT is
    /// added when the request had a valid one.
    Error {
        id: u16,
        flags: u16,
        rcode: u16,
        question: Option<&'a [u8]>,
        edns: Option<Edns>,
    },
    /// No reply at all (responses, runts).
    Drop,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.buf.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }
    /// Skips a possibly compressed name.
    fn skip_name(&mut self) -> Option<()> {
        let mut len = 0usize;
        loop {
            let l = self.u8()?;
            match l & 0xC0 {
                0x00 if l == 0 => return Some(()),
                0x00 => {
                    len += l as usize + 1;
                    if len > MAX_NAME {
                        return None;
                    }
                    self.bytes(l as usize)?;
                }
                0xC0 => {
                    self.u8()?;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Reads an uncompressed question name, lowercasing into `lower`; returns its wire length.
fn read_qname(r: &mut Reader, lower: &mut [u8; MAX_NAME]) -> Option<usize> {
    let start = r.pos;
    loop {
        let l = r.u8()? as usize;
        if l == 0 {
            break;
        }
        if l > 63 {
            return None;
        }
        r.bytes(l)?;
        if r.pos - start >= MAX_NAME {
            return None;
        }
    }
    let n = r.pos - start;
    if n > MAX_NAME {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(&r.buf[start..r.pos]) {
        *d = s.to_ascii_lowercase();
    }
    Some(n)
}

/// The address a query would be located by when it carries a valid ECS option with a
/// source prefix (its OPT is the first additional record): a cheap look ahead of [`parse`],
/// used only to warm caches, so it may miss what `parse` would find.
pub(crate) fn peek_ecs(buf: &[u8]) -> Option<IpAddr> {
    let count = |i: usize| buf.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (an, ns, ar) = (count(6)?, count(8)?, count(10)?);
    if count(4)? != 1 || ar == 0 {
        return None;
    }
    let mut r = Reader { buf, pos: 12 };
    r.skip_name()?;
    r.bytes(4)?;
    for _ in 0..usize::from(an) + usize::from(ns) {
        skip_record(&mut r)?;
    }
    r.skip_name()?;
    let (rtype, _, _, _, rdlen) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    let mut data = r.bytes(usize::from(rdlen))?;
    if rtype != TYPE_OPT {
        return None;
    }
    while data.len() >= 4 {
        let code = u16::from_be_bytes([data[0], data[1]]);
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let body = data.get(4..4 + len)?;
        if code == OPT_ECS {
            return parse_ecs(body)
                .ok()
                .filter(|e| e.source > 0)
                .map(|e| e.addr);
        }
        data = &data[4 + len..];
    }
    None
}

/// Parses a query packet; the question name is lowercased into `lower`, which the caller
/// owns so that the parsed query stays small to move.
pub(crate) fn parse<'a>(buf: &'a [u8], lower: &'a mut [u8; MAX_NAME]) -> Parsed<'a> {
    if buf.len() < 12 {
        return Parsed::Drop;
    }
    let id = u16::from_be_bytes([buf[0], buf[1]]);
    let flags = u16::from_be_bytes([buf[2], buf[3]]);
    if flags & 0x8000 != 0 {
        return Parsed::Drop;
    }
    let count = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let err = |rcode: u8, question, edns| Parsed::Error {
        id,
        flags,
        rcode: u16::from(rcode),
        question,
        edns,
    };
    let mut r = Reader { buf, pos: 12 };
    let question = if qd == 1 {
        let start = r.pos;
        match read_qname(&mut r, lower) {
            Some(n) => match (r.u16(), r.u16()) {
                (Some(t), Some(c)) => Some((start, n, t, c)),
                _ => None,
            },
            None => None,
        }
    } else {
        None
    };
    let qbytes = question.map(|(s, n, _, _)| &buf[s..s + n + 4]);
    // The OPT is read even for errors, so a query with valid EDNS gets an OPT back
    // (RFC 6891 section 7) and resolvers keep using EDNS.
    let sections = if qd == 0 || question.is_some() {
        read_sections(&mut r, an as usize + ns as usize, ar)
    } else {
        Err(None)
    };
    let opcode = (flags >> 11) & 0xF;
    if opcode != 0 {
        let edns = sections
            .unwrap_or_else(|e| e)
            .map(|e| Edns { ecs: None, ..e });
        return err(RCODE_NOTIMP, qbytes, edns);
    }
    let Some((qstart, name_len, qtype, qclass)) = question else {
        return err(RCODE_FORMERR, None, sections.ok().flatten());
    };
    let edns = match sections {
        Ok(e) => e,
        Err(e) => return err(RCODE_FORMERR, qbytes, e),
    };
    if let Some(e) = edns
        && e.version > 0
    {
        return Parsed::Error {
            id,
            flags,
            rcode: RCODE_BADVERS,
            question: qbytes,
            edns: Some(Edns {
                ecs: None,
                cookie: None,
                ..e
            }),
        };
    }
    Parsed::Query(Query {
        id,
        flags,
        question: &buf[qstart..qstart + name_len + 4],
        name: &lower[..name_len],
        qtype,
        qclass,
        edns,
    })
}

/// Skips the answer and authority records and reads the OPT among the additionals. An error
/// carries the OPT when the OPT itself was well formed (only one of its options was not).
fn read_sections(r: &mut Reader, skip: usize, ar: u16) -> Result<Option<Edns>, Option<Edns>> {
    for _ in 0..skip {
        skip_record(r).ok_or(None)?;
    }
    let mut edns: Option<Edns> = None;
    let mut bad_option = false;
    for _ in 0..ar {
        let owner_root = r.buf.get(r.pos).ok_or(None)? == &0;
        r.skip_name().ok_or(None)?;
        let (Some(rtype), Some(class), Some(ttl_hi), Some(ttl_lo), Some(rdlen)) =
            (r.u16(), r.u16(), r.u16(), r.u16(), r.u16())
        else {
            return Err(None);
        };
        let rdata = r.bytes(rdlen as usize).ok_or(None)?;
        if rtype != TYPE_OPT {
            continue;
        }
        if edns.is_some() || !owner_root {
            return Err(None);
        }
        let options = parse_options(rdata);
        bad_option |= options.is_err();
        let (ecs, cookie, nsid) = options.unwrap_or((None, None, false));
        edns = Some(Edns {
            payload: class,
            version: (ttl_hi & 0xFF) as u8,
            dnssec_ok: ttl_lo & 0x8000 != 0,
            ecs,
            cookie,
            nsid,
        });
    }
    if bad_option { Err(edns) } else { Ok(edns) }
}

fn skip_record(r: &mut Reader) -> Option<()> {
    r.skip_name()?;
    r.bytes(8)?;
    let len = r.u16()?;
    r.bytes(len as usize)?;
    Some(())
}

/// The options read from an OPT record: ECS, COOKIE, whether NSID was asked.
type Options = (Option<Ecs>, Option<super::cookie::Cookie>, bool);

/// Reads EDNS options; ECS, COOKIE and NSID are interpreted. Malformed options are an error.
fn parse_options(mut data: &[u8]) -> Result<Options, ()> {
    let (mut ecs, mut cookie, mut nsid) = (None, None, false);
    while !data.is_empty() {
        if data.len() < 4 {
            return Err(());
        }
        let code = u16::from_be_bytes([data[0], data[1]]);
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        let body = data.get(4..4 + len).ok_or(())?;
        if code == OPT_ECS {
            if ecs.is_some() {
                return Err(());
            }
            ecs = Some(parse_ecs(body)?);
        }
        if code == super::cookie::OPT_COOKIE {
            if cookie.is_some() {
                return Err(());
            }
            cookie = Some(super::cookie::Cookie::parse(body).ok_or(())?);
        }
        nsid |= code == OPT_NSID;
        data = &data[4 + len..];
    }
    Ok((ecs, cookie, nsid))
}

/// RFC 7871 section 6: family, source prefix, scope prefix (0 in queries), address bytes
/// exactly covering the source prefix with the bits beyond it zero.
fn parse_ecs(b: &[u8]) -> Result<Ecs, ()> {
    if b.len() < 4 {
        return Err(());
    }
    let family = u16::from_be_bytes([b[0], b[1]]);
    let source = b[2];
    let scope = b[3];
    let addr = &b[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(()),
    };
    if source > max || scope != 0 || addr.len() != (source as usize).div_ceil(8) {
        return Err(());
    }
    if !source.is_multiple_of(8)
        && let Some(last) = addr.last()
        && last & (0xFFu8 >> (source % 8)) != 0
    {
        return Err(());
    }
    let ip = if family == 1 {
        let mut o = [0u8; 4];
        o[..addr.len()].copy_from_slice(addr);
        IpAddr::V4(Ipv4Addr::from(o))
    } else {
        let mut o = [0u8; 16];
        o[..addr.len()].copy_from_slice(addr);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    Ok(Ecs {
        family,
        source,
        addr: ip,
    })
}

#[cfg(test)]
mod tests;
