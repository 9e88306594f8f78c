//! A start is all or nothing: when one of its addresses cannot be bound (the admin API's,
//! or DNS over TLS's), or something it starts once they are bound fails (the query log),
//! `app::start` fails and leaves nothing behind: no sipsteer thread runs and every port it
//! bound can be bound again.
//!
//! Threads and sockets are counted per process, and the other tests of this binary run in
//! parallel, so each case runs in a child process of its own: this binary again, running only
//! the ignored test [`failed_start_in_this_process`] with [`CHILD`] set.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::encrypted::TestCa;
use crate::support::dns::*;

/// Set in the child process: what fails (`admin` or `tls`: that address is taken; `log`:
/// the query log cannot be opened).
const CHILD: &str = "SIPSTEER_TEST_FAILED_START";

/// Only guards against hangs.
const WAIT: Duration = Duration::from_secs(20);

/// Runs one case in a child process and checks it passed.
fn in_child(case: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "app_start::failed_start_in_this_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, case)
        .output()
        .expect("run the child");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child ({case}) failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child ({case}) ran no test:\n{text}"
    );
}

#[test]
fn a_start_whose_admin_address_is_taken_leaves_nothing_running() {
    in_child("admin");
}

#[test]
fn a_start_whose_dns_over_tls_address_is_taken_leaves_nothing_running() {
    in_child("tls");
}

#[test]
fn a_start_whose_query_log_cannot_be_opened_leaves_nothing_running() {
    in_child("log");
}

/// The names of this process's threads that belong to sipsteer.
fn sipsteer_threads() -> Vec<String> {
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
    {
        if let Ok(name) = std::fs::read_to_string(t.path().join("comm"))
            && name.starts_with("sipsteer")
        {
            out.push(name.trim().to_string());
        }
    }
    out.sort();
    out
}

/// Sockets this process holds open.
fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("fds")
        .flatten()
        .filter(|f| {
            std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// A port free for UDP and TCP on 127.0.0.1 just now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The child's case: start with `taken` already bound by this test, expect the error, then
/// wait for every thread and socket of the failed start to be gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by the tests above"]
async fn failed_start_in_this_process() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_at: SocketAddr = taken.local_addr().expect("addr");
    let ca = TestCa::new();
    let (cert, key, _) = ca.leaf(1);
    let (before_threads, before_sockets) = (sipsteer_threads(), open_sockets());
    assert!(before_threads.is_empty(), "{before_threads:?}");
    let dns = free_port();
    let free = "127.0.0.1:0".to_string();
    let (admin, tls, log) = match case.as_str() {
        "admin" => (taken_at.to_string(), free, "queries.log"),
        "tls" => (free.clone(), taken_at.to_string(), "queries.log"),
        _ => (free.clone(), free, "no/such/dir/queries.log"),
    };
    let main = format!(
        r#"
listen: {{ dns: ["127.0.0.1:{dns}"], admin: "{admin}", tls: ["{tls}"], https: ["127.0.0.1:0"] }}
zones: zones
health: {{ check: none }}
dns: {{ udp_workers: 2 }}
tls: {{ certificate: cert.pem, key: key.pem }}
query_log: {{ path: {log} }}
"#
    );
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", STATIC_ZONE)]);
    std::fs::write(cfg.path("cert.pem"), cert).expect("cert");
    std::fs::write(cfg.path("key.pem"), key).expect("key");
    let err = match sipsteer::app::start(&cfg.main()).await {
        Ok(_) => panic!("started although it should fail ({case})"),
        Err(e) => format!("{e:#}"),
    };
    let want = match case.as_str() {
        "admin" => format!("cannot bind admin api {taken_at}: "),
        "tls" => format!("cannot bind tls {taken_at}: "),
        _ => format!("cannot open query log {}: ", cfg.path(log).display()),
    };
    assert!(err.starts_with(&want), "{err}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (threads, sockets) = (sipsteer_threads(), open_sockets());
        if threads.is_empty() && sockets == before_sockets {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left running: threads {threads:?}, sockets {sockets} (before: {before_sockets})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The DNS port the failed start bound is free again, for UDP and TCP.
    UdpSocket::bind(("127.0.0.1", dns)).expect("udp port free again");
    TcpListener::bind(("127.0.0.1", dns)).expect("tcp port free again");
    drop(taken);
}
