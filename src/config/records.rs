//! Static record values as written in zone maps, turned into record data.
//!
//! Values use the usual presentation format (`MX: "10 mail"`, `SRV: "10 60 5060 sip1"`);
//! names without a final dot are relative to the zone. TXT values are plain text (no quotes
//! needed); long ones are split into strings of at most 255 bytes, never inside a character.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::ProtoError;
use hickory_proto::rr::rdata::{CNAME, MX, NAPTR, NS, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::names;

/// The record types a zone map may hold.
pub(crate) const TYPES: &str = "A, AAAA, CNAME, MX, TXT, SRV, NAPTR, NS, CAA, PTR";

/// Parses one record type name of a zone map.
pub(crate) fn record_type(s: &str) -> Option<RecordType> {
    Some(match s {
        "A" => RecordType::A,
        "AAAA" => RecordType::AAAA,
        "CNAME" => RecordType::CNAME,
        "MX" => RecordType::MX,
        "TXT" => RecordType::TXT,
        "SRV" => RecordType::SRV,
        "NAPTR" => RecordType::NAPTR,
        "NS" => RecordType::NS,
        "CAA" => RecordType::CAA,
        "PTR" => RecordType::PTR,
        _ => return None,
    })
}

/// Parses one value of type `t`, with its record data in canonical wire form (what tells two
/// values apart, and bounds its size in a reply). A value without a wire form (a NAPTR string
/// over 255 bytes, say) is refused here, where its file and line are known: compiled zones
/// never hold a record they cannot write.
pub(crate) fn parse(t: RecordType, s: &str, origin: &Name) -> Result<(RData, Vec<u8>), String> {
    let rdata = value(t, s, origin)?;
    let bytes =
        wire(&rdata).map_err(|e| format!("{t} value cannot be written as record data: {e}"))?;
    Ok((rdata, bytes))
}

/// Record data in wire form: names written in full and lowercased (canonical form).
pub(crate) fn wire(rdata: &RData) -> Result<Vec<u8>, ProtoError> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_canonical_form(true);
    rdata.emit(&mut enc)?;
    Ok(buf)
}

/// The record data a value of type `t` stands for.
fn value(t: RecordType, s: &str, origin: &Name) -> Result<RData, String> {
    let s = s.trim();
    let name = |v: &str| names::resolve(v, origin);
    match t {
        RecordType::A => s
            .parse::<Ipv4Addr>()
            .map(|a| RData::A(a.into()))
            .map_err(|_| format!("invalid IPv4 address `{s}`")),
        RecordType::AAAA => s
            .parse::<Ipv6Addr>()
            .map(|a| RData::AAAA(a.into()))
            .map_err(|_| format!("invalid IPv6 address `{s}`")),
        RecordType::CNAME => Ok(RData::CNAME(CNAME(name(s)?))),
        RecordType::NS => Ok(RData::NS(NS(name(s)?))),
        RecordType::PTR => Ok(RData::PTR(PTR(name(s)?))),
        RecordType::TXT => {
            if s.len() > 4000 {
                return Err("TXT value longer than 4000 bytes".into());
            }
            Ok(RData::TXT(TXT::new(txt_strings(s))))
        }
        RecordType::MX => {
            let f = fields(s, 2, "MX", "PREFERENCE EXCHANGE")?;
            let pref = number(f[0], "MX preference")?;
            Ok(RData::MX(MX::new(pref, name(f[1])?)))
        }
        RecordType::SRV => {
            let f = fields(s, 4, "SRV", "PRIORITY WEIGHT PORT TARGET")?;
            Ok(RData::SRV(SRV::new(
                number(f[0], "SRV priority")?,
                number(f[1], "SRV weight")?,
                number(f[2], "SRV port")?,
                name(f[3])?,
            )))
        }
        RecordType::NAPTR => naptr(s, origin),
        RecordType::CAA => {
            RData::try_from_str(RecordType::CAA, s).map_err(|e| format!("invalid CAA `{s}`: {e}"))
        }
        other => Err(format!("record type {other} is not supported")),
    }
}

/// `s` cut into strings of at most 255 bytes, never inside a character; one empty string
/// for an empty value.
fn txt_strings(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut end = rest.len().min(255);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        out.push(head.to_owned());
        rest = tail;
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

fn fields<'a>(s: &'a str, n: usize, t: &str, form: &str) -> Result<Vec<&'a str>, String> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != n {
        return Err(format!("{t} needs {n} fields ({form}), got `{s}`"));
    }
    Ok(f)
}

fn number(s: &str, what: &str) -> Result<u16, String> {
    s.parse()
        .map_err(|_| format!("{what} must be a number from 0 to 65535, got `{s}`"))
}

/// `ORDER PREFERENCE "FLAGS" "SERVICE" "REGEXP" REPLACEMENT`.
fn naptr(s: &str, origin: &Name) -> Result<RData, String> {
    let toks = tokens(s)?;
    if toks.len() != 6 {
        return Err(format!(
            "NAPTR needs 6 fields (ORDER PREFERENCE \"FLAGS\" \"SERVICE\" \"REGEXP\" REPLACEMENT), got `{s}`"
        ));
    }
    let replacement = if toks[5] == "." {
        Name::root()
    } else {
        names::resolve(&toks[5], origin)?
    };
    Ok(RData::NAPTR(NAPTR::new(
        number(&toks[0], "NAPTR order")?,
        number(&toks[1], "NAPTR preference")?,
        toks[2].as_bytes().into(),
        toks[3].as_bytes().into(),
        toks[4].as_bytes().into(),
        replacement,
    )))
}

/// Splits on white space, keeping "quoted strings" (which may be empty) as one token.
fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut t = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => t.push(c),
                    None => return Err(format!("unclosed quote in `{s}`")),
                }
            }
            out.push(t);
        } else {
            let mut t = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                t.push(c);
                chars.next();
            }
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o() -> Name {
        Name::from_ascii("example.com.").unwrap()
    }

    #[test]
    fn parses_each_type() {
        assert_eq!(
            parse(RecordType::MX, "10 mail", &o())
                .unwrap()
                .0
                .to_string(),
            "10 mail.example.com."
        );
        assert_eq!(
            parse(RecordType::SRV, "10 60 5060 sip1.example.net.", &o())
                .unwrap()
                .0
                .to_string(),
            "10 60 5060 sip1.example.net."
        );
        let n = parse(
            RecordType::NAPTR,
            r#"10 20 "S" "SIP+D2U" "" _sip._udp"#,
            &o(),
        )
        .unwrap()
        .0;
        assert_eq!(
            n.to_string(),
            "10 20 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.com."
        );
        assert!(parse(RecordType::CAA, r#"0 issue "ca.example.net""#, &o()).is_ok());
        assert!(
            parse(RecordType::A, "300.1.1.1", &o())
                .unwrap_err()
                .contains("invalid IPv4")
        );
        assert!(
            parse(RecordType::MX, "mail", &o())
                .unwrap_err()
                .contains("MX needs 2 fields")
        );
        let long = "x".repeat(600);
        match parse(RecordType::TXT, &long, &o()).unwrap().0 {
            RData::TXT(t) => assert_eq!(t.txt_data.len(), 3),
            other => panic!("{other:?}"),
        }
        // A character across the 255-byte mark goes whole into the next string.
        let text = format!("{}é and more", "x".repeat(254));
        match parse(RecordType::TXT, &text, &o()).unwrap().0 {
            RData::TXT(t) => {
                let lens: Vec<usize> = t.txt_data.iter().map(|s| s.len()).collect();
                assert_eq!(lens, [254, 11]);
                assert_eq!(t.txt_data.concat(), text.as_bytes());
            }
            other => panic!("{other:?}"),
        }
    }
}
