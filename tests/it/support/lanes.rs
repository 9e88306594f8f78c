//! Health per transport seen from outside: `/v1/servers` polled until the transports' states
//! are as wanted, each server's transports as one line, and a steered name's records polled
//! until they are as wanted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::Value;

use super::dns::{self, Q, TestServer};
use super::http::get;

/// `/v1/servers` once `done` holds for its list.
pub(crate) async fn servers_when(admin: SocketAddr, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let (code, body) = get(admin, "/v1/servers").await;
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let list = v["servers"].as_array().cloned().unwrap_or_default();
        if done(&list) {
            return list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "servers never got there: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each server's transports: `name transport:state ...`.
pub(crate) fn lanes(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|x| {
            let each: Vec<String> = x["transports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["transport"].as_str().unwrap_or("?"),
                        t["state"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!("{} {}", x["server"].as_str().unwrap_or("?"), each.join(" "))
        })
        .collect()
}

/// The records' data of an answer (NOERROR), sorted.
pub(crate) async fn answer(s: &TestServer, name: &str, t: RecordType) -> Vec<String> {
    let m = dns::udp(s.addr, name, t, &Q::default()).await;
    assert_eq!(dns::rcode(&m), hickory_proto::op::ResponseCode::NoError);
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

/// Polls `name` until it answers `want`.
pub(crate) async fn answer_once(s: &TestServer, name: &str, t: RecordType, want: &[String]) {
    let start = Instant::now();
    loop {
        let got = answer(s, name, t).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name} {t} never answered {want:?}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A NAPTR record's data as hickory prints it, pointing at `srv`.sip.example.com.
pub(crate) fn naptr(pref: u16, service: &str, srv: &str) -> String {
    format!("10 {pref} \"S\" \"{service}\" \"\" {srv}.sip.example.com.")
}
