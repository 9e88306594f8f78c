//! The descriptor budget, on the real binary run as a child with a low open-file limit: at
//! start the connection caps are lowered to fit the limit, so a TCP flood from many sources
//! meets the table (shed, evicted) instead of `EMFILE`, and UDP and TCP keep answering; when
//! the limit drops under a running server, accept backs off at `EMFILE` (counted, logged once
//! per interval, an idle connection evicted to free a descriptor) and service recovers once
//! the flood stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::dns::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::net::TcpSocket;

const BIN: &str = env!("CARGO_BIN_EXE_sipsteer");

const ZONE: &str = r#"
zone: example.com
soa: { primary: ns1, contact: hostmaster@example.com, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
  web: { A: 192.0.2.80 }
"#;

/// One `dns:` address, admin on, no probes, one UDP thread.
fn main_cfg(dns: &str) -> String {
    format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\n\
         health: {{ check: none, max_concurrent: 8 }}\ndns: {{ udp_workers: 1, {dns} }}\n"
    )
}

/// A sipsteer child process and its log (JSON lines on stderr).
struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    dns: SocketAddr,
    admin: SocketAddr,
    _cfg: ConfigDir,
}

impl Server {
    /// Starts `serve`, with the open-file limit (soft and hard) set to `nofile` when given,
    /// and waits for its `ready` line.
    fn start(main: &str, nofile: Option<u64>) -> Server {
        let cfg = ConfigDir::new(main, &[("example.com.yaml", ZONE)]);
        let mut cmd = Command::new(BIN);
        cmd.args(["--log-format", "json", "serve", "--config"])
            .arg(cfg.main())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(n) = nofile {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads the struct passed.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn sipsteer");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().expect("log lines").push(v);
                }
            }
        });
        let mut s = Server {
            child,
            lines,
            dns: "0.0.0.0:0".parse().expect("addr"),
            admin: "0.0.0.0:0".parse().expect("addr"),
            _cfg: cfg,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.with_message("ready").is_empty() {
            assert!(Instant::now() < deadline, "no ready line: {:?}", s.log());
            assert!(
                s.child.try_wait().expect("wait").is_none(),
                "exited: {:?}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let bound = |s: &Server, msg: &str| -> SocketAddr {
            s.with_message(msg)[0]["fields"]["bound"]
                .as_str()
                .expect("bound")
                .parse()
                .expect("address")
        };
        s.dns = bound(&s, "dns listening on udp and tcp");
        s.admin = bound(&s, "admin api listening");
        s
    }

    fn log(&self) -> Vec<serde_json::Value> {
        self.lines.lock().expect("log lines").clone()
    }

    /// The log lines whose message starts with `msg`.
    fn with_message(&self, msg: &str) -> Vec<serde_json::Value> {
        self.log()
            .into_iter()
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(msg))
            })
            .collect()
    }

    /// The value of one series of `/metrics`, retried until the admin API accepts a
    /// connection again.
    async fn series(&self, name: &'static str) -> f64 {
        let admin = self.admin;
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(text) = scrape(admin) {
                    return text
                        .lines()
                        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0.0);
                }
                assert!(Instant::now() < deadline, "metrics not served");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
        .expect("join")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics`, or `None` when the connection or the reply fails.
fn scrape(admin: SocketAddr) -> Option<String> {
    let mut s = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

/// Connections from 127.0.0.2 on, `per_source` from each address, each held open and idle
/// and made again 500 ms after the server closes it, until `stop`.
async fn flood(to: SocketAddr, conns: usize, per_source: usize, stop: Arc<AtomicBool>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let from: SocketAddr = format!("127.0.0.{}:0", 2 + i / per_source)
            .parse()
            .expect("addr");
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut b = [0u8; 16];
            while !stop.load(Ordering::Relaxed) {
                let Ok(s) = TcpSocket::new_v4() else { return };
                if s.bind(from).is_err() {
                    return;
                }
                let c = tokio::time::timeout(Duration::from_secs(2), s.connect(to)).await;
                if let Ok(Ok(mut c)) = c {
                    use tokio::io::AsyncReadExt;
                    while !stop.load(Ordering::Relaxed) {
                        let read = tokio::time::timeout(Duration::from_millis(200), c.read(&mut b));
                        if let Ok(Ok(0) | Err(_)) = read.await {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One TCP query from 127.0.0.250, retried until answered or `within` passes.
async fn tcp_answers(to: SocketAddr, within: Duration) -> bool {
    let q = query("web.example.com.", RecordType::A, &Q::default());
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            let from: SocketAddr = "127.0.0.250:0".parse().expect("addr");
            s.bind(&from.into()).expect("bind");
            if s.connect_timeout(&to.into(), Duration::from_secs(2))
                .is_err()
            {
                continue;
            }
            let mut s: std::net::TcpStream = s.into();
            s.set_read_timeout(Some(Duration::from_secs(3))).ok();
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            let mut len = [0u8; 2];
            if s.write_all(&framed).is_err() || s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut buf).is_ok() && rcode(&parse(&buf)) == ResponseCode::NoError {
                return true;
            }
        }
        false
    })
    .await
    .expect("join")
}

async fn udp_answers(to: SocketAddr) -> bool {
    let q = query("web.example.com.", RecordType::A, &Q::default());
    tokio::task::spawn_blocking(move || (0..5).any(|_| udp_raw(to, &q).is_some()))
        .await
        .expect("join")
}

/// Descriptors the process `pid` holds now.
fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count() as u64
}

const EMFILE: &str = r#"sipsteer_accept_errors_total{listener="tcp",reason="emfile"}"#;
const EVICTED: &str = r#"sipsteer_tcp_shed_total{reason="evicted_idle"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_fit_the_open_file_limit_and_a_flood_past_it_leaves_udp_and_tcp_answering() {
    // 300 descriptors: 64 kept + 2 DNS sockets + 1 admin listener + 2 prober sockets + 128
    // admin connections + 8 probes leave 95 for TCP connections.
    let s = Server::start(&main_cfg("tcp_idle_timeout: 30s"), Some(300));
    let lowered = s.with_message("open file limit is below what the connection caps need");
    assert_eq!(lowered.len(), 1, "{:?}", s.log());
    assert_eq!(lowered[0]["fields"]["tcp"], 95);
    assert_eq!(lowered[0]["fields"]["limit"], 300);
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = tokio::spawn(flood(s.dns, 400, 4, stop.clone()));
    // The table fills and starts evicting before the answers are checked.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.series(EVICTED).await < 100.0 {
        assert!(
            Instant::now() < deadline,
            "the flood never filled the table"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..3 {
        assert!(
            tcp_answers(s.dns, Duration::from_secs(10)).await,
            "tcp during the flood"
        );
        assert!(udp_answers(s.dns).await, "udp during the flood");
    }
    stop.store(true, Ordering::Relaxed);
    flooding.await.expect("flood ends");
    assert!(
        tcp_answers(s.dns, Duration::from_secs(10)).await,
        "tcp after"
    );
    assert!(udp_answers(s.dns).await, "udp after");
    assert_eq!(
        s.series(EMFILE).await,
        0.0,
        "the caps kept the process within its limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_accept_backs_off_evicts_and_recovers() {
    let s = Server::start(&main_cfg("tcp_idle_timeout: 30s"), None);
    // Leave the running server 40 descriptors more than it holds now.
    let pid = s.child.id();
    let room = open_fds(pid) + 40;
    let lim = libc::rlimit {
        rlim_cur: room,
        rlim_max: room,
    };
    // SAFETY: prlimit only reads the struct passed; the old limit is not asked for.
    let r = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &raw const lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = tokio::spawn(flood(s.dns, 200, 4, stop.clone()));
    // Out of descriptors, the server still takes a new client: it closes an idle connection
    // for each accept that fails.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.with_message("accept failed").is_empty() {
        assert!(Instant::now() < deadline, "no accept error: {:?}", s.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tcp_answers(s.dns, Duration::from_secs(20)).await,
        "tcp during"
    );
    assert!(udp_answers(s.dns).await, "udp during");
    stop.store(true, Ordering::Relaxed);
    flooding.await.expect("flood ends");
    let flood_secs = started.elapsed().as_secs();
    assert!(
        tcp_answers(s.dns, Duration::from_secs(20)).await,
        "tcp after"
    );
    assert!(udp_answers(s.dns).await, "udp after");
    let errors = s.series(EMFILE).await;
    assert!(errors >= 1.0, "accept errors counted");
    // A spinning loop fails accept millions of times in a few seconds; the backoff waits at
    // least 5 ms after each failure.
    let most = 200.0 * (flood_secs as f64 + 30.0);
    assert!(
        errors < most,
        "{errors} accept errors in {flood_secs} s: no backoff"
    );
    assert!(
        s.series(EVICTED).await >= 1.0,
        "idle connections evicted for descriptors"
    );
    let warnings = s.with_message("accept failed");
    assert!(
        warnings.len() as u64 <= 1 + flood_secs / 10 + 1,
        "{} warnings in {flood_secs} s",
        warnings.len()
    );
    let w = &warnings[0]["fields"];
    assert_eq!(w["listener"], "tcp");
    assert!(
        w["error"]
            .as_str()
            .is_some_and(|e| e.contains("Too many open files")),
        "{w}"
    );
}
