//! Replies leave from the address a query was sent to, on wildcard listens, and an IPv4
//! wildcard listen starts beside an IPv6 one on the same port. Runs the real binary in a
//! network namespace with several addresses on its loopback; needs root (skipped otherwise).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dns::*;
use hickory_proto::rr::RecordType;

const ADDRS: [&str; 4] = ["198.18.7.2", "198.18.7.3", "fd00:7::2", "fd00:7::3"];

/// A network namespace with extra loopback addresses and the servers run inside it; removed
/// (servers killed first) when dropped.
struct Netns {
    name: String,
    servers: Vec<Child>,
}

impl Netns {
    fn create() -> Option<Netns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: the source-address test needs root for a network namespace");
            return None;
        }
        let name = format!("sipsteer-src-{}", std::process::id());
        let ns = Netns {
            name: name.clone(),
            servers: Vec::new(),
        };
        let added = Command::new("ip").args(["netns", "add", &name]).status();
        if !added.is_ok_and(|s| s.success()) {
            eprintln!("skipped: `ip netns add` failed (no iproute2 or no CAP_SYS_ADMIN here)");
            return None;
        }
        ns.ip(&["-n", &name, "link", "set", "lo", "up"]);
        for a in ADDRS {
            let prefix = if a.contains(':') { "/128" } else { "/32" };
            let mut args = vec!["-n", &name, "addr", "add"];
            let cidr = format!("{a}{prefix}");
            args.extend([cidr.as_str(), "dev", "lo"]);
            if a.contains(':') {
                args.push("nodad");
            }
            ns.ip(&args);
        }
        Some(ns)
    }

    fn ip(&self, args: &[&str]) {
        let st = Command::new("ip").args(args).status().expect("run ip");
        assert!(st.success(), "ip {args:?} failed");
    }

    /// Starts `sipsteer serve` inside the namespace.
    fn serve(&mut self, cfg: &ConfigDir) {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                env!("CARGO_BIN_EXE_sipsteer"),
                "serve",
            ])
            .arg("--config")
            .arg(cfg.main())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start sipsteer");
        self.servers.push(child);
    }

    /// Runs `f` on a thread that has entered the namespace (sockets made there stay there).
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            // SAFETY: a valid namespace fd; setns changes only this thread's namespace.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.servers {
            c.kill().ok();
            c.wait().ok();
        }
        Command::new("ip")
            .args(["netns", "del", &self.name])
            .status()
            .ok();
    }
}

/// Sends an A query from `from` to `to` and returns the reply's source address and answers,
/// retrying while the server starts.
fn ask(from: IpAddr, to: SocketAddr) -> (SocketAddr, Vec<String>) {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0)).expect("bind client");
    sock.set_read_timeout(Some(Duration::from_millis(300))).ok();
    let q = query("www.example.com.", RecordType::A, &Q::default());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        sock.send_to(&q, to).expect("send");
        if let Ok((n, src)) = sock.recv_from(&mut buf) {
            return (src, rrs(&parse(&buf[..n]).answers));
        }
    }
    panic!("no reply from {to} to {from}");
}

const ZONE: &str = "zone: example.com\nsoa: { primary: ns1, contact: h, serial: 1 }\nns: [ns1]\nrecords: { ns1: { A: 192.0.2.53 }, www: { A: 192.0.2.80 } }\n";

fn config(listen: &str) -> ConfigDir {
    let main = format!(
        "listen: {{ dns: {listen}, admin: \"off\" }}\nzones: zones\nhealth: {{ check: none }}\n"
    );
    ConfigDir::new(&main, &[("example.com.yaml", ZONE)])
}

#[test]
fn wildcard_listens_reply_from_the_queried_address() {
    let Some(mut ns) = Netns::create() else {
        return;
    };
    // An IPv4 and an IPv6 wildcard on one port: both must start and answer.
    let both = config(r#"["0.0.0.0:5300", "[::]:5300"]"#);
    ns.serve(&both);
    // A dual-stack wildcard alone: IPv4 queries arrive mapped and must still be answered
    // from their own address.
    let dual = config(r#"["[::]:5301"]"#);
    ns.serve(&dual);
    let pairs: Vec<(&str, &str)> = vec![
        ("127.0.0.1", "198.18.7.2"),
        ("127.0.0.1", "198.18.7.3"),
        ("198.18.7.2", "198.18.7.3"),
        ("198.18.7.3", "127.0.0.1"),
        ("::1", "fd00:7::2"),
        ("::1", "fd00:7::3"),
        ("fd00:7::2", "fd00:7::3"),
        ("fd00:7::3", "::1"),
    ];
    let results = ns.inside(move || {
        let mut out = Vec::new();
        for port in [5300, 5301] {
            for (from, to) in &pairs {
                let from: IpAddr = from.parse().expect("ip");
                let to = SocketAddr::new(to.parse().expect("ip"), port);
                let (src, answers) = ask(from, to);
                out.push((from, to, src, answers));
            }
        }
        out
    });
    for (from, to, src, answers) in results {
        assert_eq!(src, to, "reply to {from} for a query sent to {to}");
        assert_eq!(answers, ["www.example.com. 300 A 192.0.2.80"], "{to}");
    }
}
