//! Starting a sipsteer on port 0 from config text, and talking DNS to it over UDP and TCP.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, Record, RecordType};
use sipsteer::reload::Trigger;

/// The server part of a test config: listens on port 0, admin off, probes off.
pub(crate) const MAIN: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
health: { check: none }
"#;

/// A zone with one of everything static.
pub(crate) const STATIC_ZONE: &str = r#"
zone: example.com
ttl: 300
soa: { primary: ns1, contact: hostmaster@example.com, serial: 7, minimum: 60 }
ns: [ns1, ns2.example.net.]
records:
  ns1: { A: 192.0.2.53, AAAA: "2001:db8::53" }
  "@": { MX: "10 mail", TXT: "v=spf1 -all" }
  mail: { A: 192.0.2.25 }
  www: { CNAME: web }
  web: { A: [192.0.2.80, 192.0.2.81], ttl: 60 }
  alias: { CNAME: www }
  dangling: { CNAME: nothere }
  away: { CNAME: host.example.net. }
  _sip._udp: { SRV: "10 60 5060 sip1" }
  sip1: { A: 192.0.2.10 }
  deep.a.b: { TXT: "deep" }
  sub: { NS: [ns.sub, ns2.example.net.] }
  ns.sub: { A: 192.0.2.99 }
  caa: { CAA: '0 issue "ca.example.net"' }
  ptr: { PTR: host.example.net. }
  naptr: { NAPTR: '10 20 "S" "SIP+D2U" "" _sip._udp' }
  big: { TXT: [AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1,
                  AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2,
                  AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3] }
"#;

/// The names of STATIC_ZONE (empty non-terminals too), `sub`'s cut and what is below it aside.
pub(crate) const STATIC_ZONE_NAMES: [&str; 18] = [
    "example.com.",
    "ns1.example.com.",
    "mail.example.com.",
    "www.example.com.",
    "web.example.com.",
    "alias.example.com.",
    "dangling.example.com.",
    "away.example.com.",
    "_udp.example.com.",
    "_sip._udp.example.com.",
    "sip1.example.com.",
    "b.example.com.",
    "a.b.example.com.",
    "deep.a.b.example.com.",
    "caa.example.com.",
    "ptr.example.com.",
    "naptr.example.com.",
    "big.example.com.",
];

/// A temporary config directory.
pub(crate) struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    /// Writes `sipsteer.yaml` and `zones/NAME` files.
    pub(crate) fn new(main: &str, zones: &[(&str, &str)]) -> ConfigDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("zones")).expect("zones dir");
        std::fs::write(dir.path().join("sipsteer.yaml"), main).expect("write main");
        for (name, text) in zones {
            std::fs::write(dir.path().join("zones").join(name), text).expect("write zone");
        }
        ConfigDir { dir }
    }

    pub(crate) fn main(&self) -> PathBuf {
        self.dir.path().join("sipsteer.yaml")
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// Loads the main file at `path` as a test server runs it: with one UDP worker (one socket
/// and thread per address) unless the file sets `dns.udp_workers`, so the machine's CPU count
/// (the default) does not decide how a test runs. The files stay as the test wrote them.
pub(crate) fn load_config(path: &std::path::Path) -> sipsteer::config::Config {
    let mut config = sipsteer::config::load(path).expect("config loads");
    if config.dns.udp_workers == 0 {
        config.dns.udp_workers = 1;
    }
    config
}

/// A running server and its config directory.
pub(crate) struct TestServer {
    pub cfg: ConfigDir,
    pub running: Option<sipsteer::app::Running>,
    pub addr: SocketAddr,
}

impl TestServer {
    /// This instance's `/metrics` text (its own counters only).
    pub(crate) fn metrics(&self) -> String {
        let r = self.running.as_ref().expect("running");
        sipsteer::admin::metrics::render(&r.telemetry, &r.counters, &r.shared.load())
    }

    /// The value of one exact series line of this instance (`None` when it is not rendered,
    /// so a renamed metric or label fails the assertion instead of reading as 0).
    pub(crate) fn series(&self, name: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    pub(crate) async fn start(main: &str, zones: &[(&str, &str)]) -> TestServer {
        let cfg = ConfigDir::new(main, zones);
        Self::start_in(cfg).await
    }

    pub(crate) async fn start_in(cfg: ConfigDir) -> TestServer {
        let running = sipsteer::app::start_with(&cfg.main(), load_config(&cfg.main()))
            .await
            .expect("server starts");
        let addr = running.dns[0];
        TestServer {
            cfg,
            running: Some(running),
            addr,
        }
    }

    /// Runs one reload now, on a blocking thread as the reload thread would, and returns its
    /// outcome.
    pub(crate) async fn reload(&self) -> sipsteer::reload::Outcome {
        let r = self.running.as_ref().expect("running").reloader.clone();
        tokio::task::spawn_blocking(move || r.reload(Trigger::Api))
            .await
            .expect("join")
    }

    pub(crate) async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// Options of a test query.
#[derive(Clone, Default)]
pub(crate) struct Q {
    pub edns: Option<u16>,
    pub ecs: Option<(IpAddr, u8)>,
    pub version: u8,
    /// The DO bit (DNSSEC OK); implies EDNS.
    pub dnssec_ok: bool,
}

/// Builds a query message.
pub(crate) fn query(name: &str, rtype: RecordType, opts: &Q) -> Vec<u8> {
    let mut m = Message::new(0xBEEF, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    let payload = opts
        .edns
        .or(opts.ecs.map(|_| 1232))
        .or(opts.dnssec_ok.then_some(1232));
    if let Some(payload) = payload {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.set_version(opts.version);
        e.set_dnssec_ok(opts.dnssec_ok);
        if let Some((ip, prefix)) = opts.ecs {
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(ip, prefix, 0)));
        }
        m.set_edns(e);
    }
    m.to_vec().expect("encode query")
}

pub(crate) fn udp_raw(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .ok();
    // Connected: only datagrams from `addr` are read, never a late reply of another test's
    // server to an earlier socket that had the same port.
    sock.connect(addr).expect("connect");
    sock.send(packet).expect("send");
    let mut buf = vec![0u8; 65535];
    match sock.recv(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

pub(crate) fn tcp_raw(addr: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    s.write_all(&framed).expect("write");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("read length");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("read body");
    buf
}

pub(crate) fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("reply parses")
}

pub(crate) async fn udp(addr: SocketAddr, name: &str, rtype: RecordType, opts: &Q) -> Message {
    let p = query(name, rtype, opts);
    let r = tokio::task::spawn_blocking(move || udp_raw(addr, &p))
        .await
        .expect("join")
        .expect("udp reply");
    parse(&r)
}

pub(crate) async fn tcp(addr: SocketAddr, name: &str, rtype: RecordType, opts: &Q) -> Message {
    let p = query(name, rtype, opts);
    let r = tokio::task::spawn_blocking(move || tcp_raw(addr, &p))
        .await
        .expect("join");
    parse(&r)
}

/// `name ttl TYPE data` for each record, for exact comparisons.
pub(crate) fn rrs(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

pub(crate) fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

/// The ECS option of a reply: (address, source, scope).
pub(crate) fn ecs_of(m: &Message) -> Option<(IpAddr, u8, u8)> {
    let e = m.edns.as_ref()?;
    match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.addr(), s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
