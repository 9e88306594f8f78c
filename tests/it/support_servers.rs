//! The test servers themselves: one UDP worker unless a test asks for more (the machine's
//! CPU count does not decide how a test runs), and a metric series read as `None` when it is
//! not rendered, so a renamed metric fails the assertion instead of reading as 0.

use crate::support::dns::*;

/// UDP sockets bound to `addr` (an IPv4 loopback address) in this network namespace.
fn udp_sockets_on(addr: std::net::SocketAddr) -> usize {
    let std::net::IpAddr::V4(ip) = addr.ip() else {
        panic!("an IPv4 address: {addr}");
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(ip.octets()),
        addr.port()
    );
    std::fs::read_to_string("/proc/net/udp")
        .expect("read /proc/net/udp")
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .count()
}

#[tokio::test]
async fn a_test_server_answers_udp_with_one_worker() {
    let s = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    assert_eq!(udp_sockets_on(s.addr), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_test_that_sets_udp_workers_keeps_them() {
    let main = format!("{MAIN}dns: {{ udp_workers: 3 }}\n");
    let s = TestServer::start(&main, &[("example.com.yaml", STATIC_ZONE)]).await;
    assert_eq!(udp_sockets_on(s.addr), 3);
    s.stop().await;
}

#[tokio::test]
async fn a_series_not_rendered_is_none() {
    let s = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    assert_eq!(s.series("sipsteer_config_generation"), Some(1.0));
    assert_eq!(s.series("sipsteer_config_generations"), None);
    assert_eq!(
        s.series("sipsteer_config_reloads_total{result=\"okay\"}"),
        None
    );
    s.stop().await;
}
