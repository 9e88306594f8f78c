//! Static record values as written in zone maps, turned into record data.
//!
//! Values use the usual presentation format (`MX: "10 mail"`, `SRV: "10 60 5060 sip1"`);
//! names without a final dot are relative to the zone. TXT values are plain text (no quotes
//! needed); long ones are split into 255-byte strings.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{CNAME, MX, NAPTR, NS, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};

use super::names;

/// The record types a zone map may hold.
pub const TYPES: &str = "A, AAAA, CNAME, MX, TXT, SRV, NAPTR, NS, CAA, PTR";

/// Parses one record type name of a zone map.
pub fn record_type(s: &str) -> Option<RecordType> {
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

/// Parses one value of type `t`.
pub fn parse(t: RecordType, s: &str, origin: &Name) -> Result<RData, String> {
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
            let chunks: Vec<String> = s
                .as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            Ok(RData::TXT(TXT::new(if chunks.is_empty() {
                vec![String::new()]
            } else {
                chunks
            })))
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
            parse(RecordType::MX, "10 mail", &o()).unwrap().to_string(),
            "10 mail.example.com."
        );
        assert_eq!(
            parse(RecordType::SRV, "10 60 5060 sip1.example.net.", &o())
                .unwrap()
                .to_string(),
            "10 60 5060 sip1.example.net."
        );
        let n = parse(
            RecordType::NAPTR,
            r#"10 20 "S" "SIP+D2U" "" _sip._udp"#,
            &o(),
        )
        .unwrap();
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
        match parse(RecordType::TXT, &long, &o()).unwrap() {
            RData::TXT(t) => assert_eq!(t.txt_data.len(), 3),
            other => panic!("{other:?}"),
        }
    }
}
