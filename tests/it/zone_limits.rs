//! The bounds on a zone map's names: at most 1,024 records at one owner name (the apex's SOA
//! and NS set counted), every record set fitting one 65,535-byte reply, every value and NS
//! name once, every owner written once. Errors are asserted by message and file:line:col; the
//! largest set that fits is served whole over TCP.

use crate::support::dns::*;
use hickory_proto::rr::RecordType;

const HEAD: &str =
    "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\n";

/// Loads a config whose one zone map is `zone`; the errors as printed, paths relative.
fn errors(zone: &str) -> Vec<String> {
    let cfg = ConfigDir::new(MAIN, &[("z.yaml", zone)]);
    let root = format!("{}/", cfg.dir.path().display());
    match sipsteer::config::load(&cfg.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    }
}

/// `count` distinct A values, one a line under `records.NAME.A` (the first at line 7).
fn a_list(name: &str, count: usize) -> String {
    let mut z = format!("{HEAD}records:\n  {name}:\n    A:\n");
    for i in 0..count {
        z.push_str(&format!(
            "      - 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    z
}

#[test]
fn a_name_holds_at_most_1024_records() {
    assert_eq!(errors(&a_list("many", 1024)), Vec::<String>::new());
    // The 1,025th value, on line 7 + 1024, is the one refused.
    assert_eq!(
        errors(&a_list("many", 1025)),
        ["zones/z.yaml:1031:9: records.many.A: more than 1024 records at one name"]
    );
}

#[test]
fn the_bound_counts_every_type_and_the_apex_soa_and_ns() {
    // The apex holds the SOA and two NS records: 1,021 more fit.
    let apex = |n: usize| a_list("\"@\"", n).replace("ns: [ns1]", "ns: [ns1, ns2.example.net.]");
    assert_eq!(errors(&apex(1021)), Vec::<String>::new());
    assert_eq!(
        errors(&apex(1022)),
        ["zones/z.yaml:1028:9: records.@.A: more than 1024 records at one name"]
    );
    // A type written after the name is full is refused as a whole.
    let full = format!("{}    TXT: [one, two]\n", a_list("many", 1024));
    assert_eq!(
        errors(&full),
        ["zones/z.yaml:1031:10: records.many.TXT: more than 1024 records at one name"]
    );
}

#[test]
fn a_repeated_value_is_found_among_many() {
    let mut z = a_list("many", 1000);
    z.push_str("      - 10.0.0.0\n");
    assert_eq!(
        errors(&z),
        ["zones/z.yaml:1007:9: records.many.A: duplicate value `10.0.0.0`"]
    );
    // Names compare without case, as in DNS.
    let mx =
        format!("{HEAD}records:\n  \"@\": {{ MX: [\"10 Mail\", \"10 mail.example.com.\"] }}\n");
    assert_eq!(
        errors(&mx),
        ["zones/z.yaml:5:26: records.@.MX: duplicate value `10 mail.example.com.`"]
    );
}

#[test]
fn ns_names_and_owner_names_are_written_once() {
    let z = "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1, NS1.example.com.]\n";
    assert_eq!(
        errors(z),
        ["zones/z.yaml:3:11: ns: duplicate NS name `NS1.example.com.`"]
    );
    let twice = format!(
        "{HEAD}records:\n  www: {{ A: 192.0.2.1 }}\n  WWW.example.com.: {{ A: 192.0.2.2 }}\n"
    );
    assert_eq!(
        errors(&twice),
        [
            "zones/z.yaml:6:3: records.WWW.example.com.: `WWW.example.com.` is the same name as `www`"
        ]
    );
}

/// `count` TXT values of 4,000 bytes at `big`: 4,028 bytes each in a reply (16 strings).
fn big_txt(count: usize) -> String {
    let mut z = format!("{HEAD}records:\n  big:\n    TXT:\n");
    for i in 0..count {
        z.push_str(&format!("      - \"{i:04}{}\"\n", "x".repeat(3996)));
    }
    z
}

#[test]
fn a_record_set_that_cannot_fit_one_reply_is_refused() {
    // 65,535 - 12 (header) - 21 (question) - 1,024 (EDNS room) = 64,478 bytes for the set.
    assert_eq!(
        errors(&big_txt(17)),
        [
            "zones/z.yaml:6:5: records.big.TXT: the TXT records take 68476 bytes, more than the 64478 that fit in one reply at this name"
        ]
    );
}

#[tokio::test]
async fn the_largest_set_that_fits_is_served_whole_over_tcp() {
    let s = TestServer::start(MAIN, &[("z.yaml", &big_txt(16))]).await;
    let m = tcp(s.addr, "big.example.com.", RecordType::TXT, &Q::default()).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 16);
    let mut got: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    got.sort();
    let first: String = got[0].chars().filter(|c| *c != '"').collect();
    assert_eq!(first, format!("0000{}", "x".repeat(3996)));
    // Over UDP it is truncated, and the client retries over TCP.
    let m = udp(s.addr, "big.example.com.", RecordType::TXT, &Q::default()).await;
    assert!(m.metadata.truncation && m.answers.is_empty());
    s.stop().await;
}

#[test]
fn a_server_holds_at_most_1024_addresses_each_once() {
    let server = |count: usize, again: bool| {
        let mut z = format!(
            "{HEAD}regions:\n  uk:\n    location: [51.5, 0]\n    servers:\n      a:\n        address:\n"
        );
        for i in 0..count {
            z.push_str(&format!("          - 10.0.{}.{}\n", i >> 8, i & 255));
        }
        if again {
            z.push_str("          - 10.0.0.0\n");
        }
        z
    };
    assert_eq!(errors(&server(1024, false)), Vec::<String>::new());
    // The values start at line 10; the 1,025th is on line 1034.
    assert_eq!(
        errors(&server(1025, false)),
        [
            "zones/z.yaml:1034:13: regions.uk.servers.a.address: more than 1024 addresses at one server"
        ]
    );
    assert_eq!(
        errors(&server(1000, true)),
        ["zones/z.yaml:1010:13: regions.uk.servers.a.address: duplicate address `10.0.0.0`"]
    );
}
