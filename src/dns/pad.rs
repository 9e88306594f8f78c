//! What the encrypted transports add to and read from a finished reply, in its bytes: block
//! padding (RFC 7830, RFC 8467 section 4.1: an EDNS padding option in the reply's OPT record
//! so the reply is a multiple of [`PAD_BLOCK`] octets), and the smallest TTL of the answer and
//! authority records (DNS over HTTPS `Cache-Control`). One bounded walk of the reply finds
//! both: every step moves forward, so it ends within the reply's length; nothing is decoded.

use super::wire::TYPE_OPT;

/// RFC 8467 4.1: servers pad responses to a multiple of 468 octets.
pub(crate) const PAD_BLOCK: usize = 468;
/// The EDNS padding option (RFC 7830).
const OPT_PADDING: u16 = 12;

/// What a walk of a reply found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    /// Where the OPT record starts, when it is the last record and ends the reply.
    opt_at: Option<usize>,
    /// The smallest TTL among the answer and authority records.
    min_ttl: Option<u32>,
}

/// Pads `reply` to a multiple of [`PAD_BLOCK`] octets when it ends with an OPT record (the
/// query had EDNS); a reply without OPT, or one that would pass 65,535 octets, is left as is.
pub(crate) fn pad(reply: &mut Vec<u8>) {
    if let Some(at) = walk(reply).and_then(|s| s.opt_at) {
        pad_at(reply, at);
    }
}

/// Pads `reply` as [`pad`] does and returns the smallest TTL of its answer and authority
/// records (0 when it has none, or cannot be walked).
pub(crate) fn pad_and_min_ttl(reply: &mut Vec<u8>) -> u32 {
    let Some(shape) = walk(reply) else {
        return 0;
    };
    if let Some(at) = shape.opt_at {
        pad_at(reply, at);
    }
    shape.min_ttl.unwrap_or(0)
}

/// Appends a padding option to the OPT record at `opt_at` (the last record) and fixes its
/// RDLENGTH.
fn pad_at(reply: &mut Vec<u8>, opt_at: usize) {
    // The option's own header (code, length) is 4 octets.
    let len = reply.len() + 4;
    let fill = (PAD_BLOCK - len % PAD_BLOCK) % PAD_BLOCK;
    let rdlen_at = opt_at + 9;
    let Some(&[hi, lo]) = reply.get(rdlen_at..rdlen_at + 2) else {
        return;
    };
    if len + fill > usize::from(u16::MAX) {
        return;
    }
    let Ok(rdlen) = u16::try_from(usize::from(u16::from_be_bytes([hi, lo])) + 4 + fill) else {
        return;
    };
    // fill < PAD_BLOCK.
    let fill16 = fill as u16;
    reply[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    reply.extend_from_slice(&OPT_PADDING.to_be_bytes());
    reply.extend_from_slice(&fill16.to_be_bytes());
    reply.resize(reply.len() + fill, 0);
}

/// Walks a reply's records; `None` when it is not well formed.
fn walk(msg: &[u8]) -> Option<Shape> {
    let count = |i: usize| -> Option<usize> {
        let b = msg.get(4 + 2 * i..6 + 2 * i)?;
        Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let (qd, an, ns, ar) = (count(0)?, count(1)?, count(2)?, count(3)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)?.checked_add(4)?;
    }
    let mut shape = Shape::default();
    let mut last = None;
    for i in 0..an + ns + ar {
        let start = at;
        at = skip_name(msg, at)?;
        let fixed = msg.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if i < an + ns {
            shape.min_ttl = Some(shape.min_ttl.map_or(ttl, |m| m.min(ttl)));
        }
        at += 10 + rdlen;
        if at > msg.len() {
            return None;
        }
        last = Some((start, rtype));
    }
    if at != msg.len() {
        return None;
    }
    shape.opt_at = match last {
        Some((start, TYPE_OPT)) if ar > 0 && msg[start] == 0 => Some(start),
        _ => None,
    };
    Some(shape)
}

/// The offset just past the name at `at` (labels, then a root octet or a pointer).
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + usize::from(len),
            0xC0 => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata};

    fn reply(answers: usize, edns: bool, ttl: u32) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        let name = Name::from_ascii("www.example.com.").expect("name");
        m.add_query(Query::query(name.clone(), RecordType::A));
        for i in 0..answers {
            let a = rdata::A::new(192, 0, 2, i as u8);
            m.add_answer(Record::from_rdata(
                name.clone(),
                ttl + i as u32,
                RData::A(a),
            ));
        }
        let soa = Name::from_ascii("example.com.").expect("soa");
        m.add_authority(Record::from_rdata(
            soa.clone(),
            ttl + 100,
            RData::NS(rdata::NS(soa)),
        ));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                "192.0.2.0".parse().expect("ip"),
                24,
                20,
            )));
            m.set_edns(e);
        }
        m.to_vec().expect("encode")
    }

    #[test]
    fn padded_replies_are_whole_blocks_and_decode_the_same() {
        for answers in [0, 1, 5, 20, 40] {
            let plain = reply(answers, true, 60);
            let mut padded = plain.clone();
            pad(&mut padded);
            assert_eq!(padded.len() % PAD_BLOCK, 0, "{answers} answers");
            assert!(padded.len() > plain.len());
            assert!(padded.len() - plain.len() <= PAD_BLOCK + 3);
            let (p, q) = (
                Message::from_vec(&padded).expect("padded decodes"),
                Message::from_vec(&plain).expect("plain decodes"),
            );
            assert_eq!(p.answers, q.answers);
            assert_eq!(p.authorities, q.authorities);
            let (pe, qe) = (p.edns.expect("opt"), q.edns.expect("opt"));
            assert_eq!(pe.option(EdnsCode::Subnet), qe.option(EdnsCode::Subnet));
            let fill = padded.len() - plain.len() - 4;
            match pe.option(EdnsCode::Padding) {
                Some(EdnsOption::Unknown(12, bytes)) => {
                    assert_eq!(bytes.len(), fill);
                    assert!(bytes.iter().all(|b| *b == 0));
                }
                other => panic!("no padding option: {other:?}"),
            }
        }
    }

    #[test]
    fn a_reply_one_octet_short_of_a_block_gets_a_whole_block_more() {
        // The option header alone takes 4 octets, so 465 octets become 936, 464 become 468.
        let base = reply(0, true, 60);
        for (extra, want) in [(464 - base.len(), 468), (465 - base.len(), 936)] {
            let mut r = base.clone();
            // Grow the reply by an ignored option inside the OPT record.
            let opt_at = walk(&r).and_then(|s| s.opt_at).expect("opt");
            let pad_opt = [&[0xFD, 0xE9][..], &(extra as u16 - 4).to_be_bytes()[..]].concat();
            r.extend_from_slice(&pad_opt);
            r.resize(r.len() + extra - 4, 0);
            let rdlen = u16::from_be_bytes([r[opt_at + 9], r[opt_at + 10]]) + extra as u16;
            r[opt_at + 9..opt_at + 11].copy_from_slice(&rdlen.to_be_bytes());
            pad(&mut r);
            assert_eq!(r.len(), want);
            Message::from_vec(&r).expect("decodes");
        }
    }

    #[test]
    fn replies_without_opt_or_too_long_are_left_alone() {
        let plain = reply(3, false, 60);
        let mut r = plain.clone();
        pad(&mut r);
        assert_eq!(r, plain);
        let mut long = reply(3, true, 60);
        long.resize(65_400, 0); // no longer a well-formed reply: not walked, not padded
        let before = long.len();
        pad(&mut long);
        assert_eq!(long.len(), before);
    }

    #[test]
    fn min_ttl_covers_answers_and_authority_only() {
        let mut r = reply(3, true, 60);
        assert_eq!(pad_and_min_ttl(&mut r), 60);
        assert_eq!(r.len() % PAD_BLOCK, 0);
        let mut r = reply(0, false, 300);
        assert_eq!(pad_and_min_ttl(&mut r), 400, "the authority record");
        assert_eq!(pad_and_min_ttl(&mut vec![0; 5]), 0);
    }

    #[test]
    fn malformed_replies_end_the_walk() {
        let good = reply(2, true, 60);
        for cut in 0..good.len() {
            assert!(walk(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut looped = good.clone();
        looped[12] = 0x80; // a label type that does not exist
        assert!(walk(&looped).is_none());
        assert!(walk(&good).is_some());
    }
}
