//! Fuzz target: any bytes as a DNS query through `dns::answer::respond` over UDP and TCP,
//! against the repository's sample config. Every reply must decode with hickory-proto, echo
//! the query ID (and the question when the query has one parseable, uncompressed question)
//! and, over UDP, fit the payload limit the query allows.
#![no_main]

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use sipsteer::dns::answer::{Proto, respond};
use sipsteer::dns::snapshot::Snapshot;

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cfg = sipsteer::config::load(&root.join("sipsteer.yaml")).expect("sample config");
        let geo = cfg
            .geoip
            .as_deref()
            .map(|p| Arc::new(sipsteer::geo::GeoData::load(p).expect("sample geoip")));
        Snapshot::build(Arc::new(cfg), geo, 1)
    })
}

/// The largest UDP reply the query allows, from hickory's reading of it.
fn udp_limit(query: Option<&Message>, server: u16) -> usize {
    match query.and_then(|q| q.edns.as_ref()) {
        Some(e) => e.max_payload().clamp(512, server) as usize,
        None if query.is_some() => 512,
        None => server as usize,
    }
}

/// Whether the question name (at offset 12) is written out without a compression pointer.
/// sipsteer answers a compressed question name with FORMERR and no question section (a
/// choice of the answer path, not a malformed reply), so only plain names must be echoed.
fn plain_question_name(data: &[u8]) -> bool {
    let mut i = 12;
    while let Some(&len) = data.get(i) {
        match len {
            0 => return true,
            1..=63 => i += 1 + len as usize,
            _ => return false,
        }
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let snap = snapshot();
    let query = Message::from_vec(data).ok();
    let client: IpAddr = [81, 2, 69, 1].into();
    let mut out = Vec::with_capacity(4096);
    for proto in [Proto::Udp, Proto::Tcp] {
        out.clear();
        if respond(snap, client, proto, data, &mut out).is_none() {
            continue;
        }
        let reply = Message::from_vec(&out)
            .unwrap_or_else(|e| panic!("{proto:?} reply does not decode: {e}: {out:02x?}"));
        assert_eq!(
            &out[..2],
            &data[..2],
            "{proto:?} reply does not echo the id"
        );
        if let Some(q) = &query
            && q.queries.len() == 1
            && plain_question_name(data)
        {
            assert_eq!(reply.queries, q.queries, "{proto:?} question not echoed");
        }
        if matches!(proto, Proto::Udp) {
            let limit = udp_limit(query.as_ref(), snap.udp_payload);
            assert!(
                out.len() <= limit,
                "udp reply of {} bytes over {limit}",
                out.len()
            );
        }
    }
});
