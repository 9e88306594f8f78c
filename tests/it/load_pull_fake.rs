//! A fake Prometheus for the load-pull tests: answers `GET /api/v1/query` on a loopback port,
//! over plain HTTP or HTTPS (a certificate from a CA made at test time), with a reply body the
//! test sets; a request without the expected `Authorization` header gets 401. Also the config,
//! zone and admin helpers the load-pull tests share.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::support::dns::{ConfigDir, TestServer};
use crate::support::http::get;

/// What one request carried.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub query: String,
    pub auth: Option<String>,
}

/// A fake Prometheus on 127.0.0.1.
pub(crate) struct FakeProm {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    reply: Arc<Mutex<(u16, Arc<String>)>>,
}

impl FakeProm {
    /// Serves `body` (status 200) to requests that carry `auth` as their `Authorization`
    /// header (any request when `None`), over TLS when `tls` is given.
    pub(crate) async fn start(
        body: String,
        auth: Option<String>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> FakeProm {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake prometheus");
        let addr = l.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(Mutex::new((200, Arc::new(body))));
        let (s, r) = (seen.clone(), reply.clone());
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let (seen, reply, auth, tls) = (s.clone(), r.clone(), auth.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(cfg) => {
                            let acc = TlsAcceptor::from(cfg);
                            let hs = tokio::time::timeout(Duration::from_secs(5), acc.accept(c));
                            if let Ok(Ok(c)) = hs.await {
                                serve(c, &seen, &reply, auth.as_deref()).await;
                            }
                        }
                        None => serve(c, &seen, &reply, auth.as_deref()).await,
                    }
                });
            }
        });
        FakeProm { addr, seen, reply }
    }

    /// Answers `status` with `body` from now on.
    pub(crate) fn set_reply(&self, status: u16, body: String) {
        *self.reply.lock().expect("reply") = (status, Arc::new(body));
    }

    /// Every request so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut c: S,
    seen: &Mutex<Vec<Seen>>,
    reply: &Mutex<(u16, Arc<String>)>,
    auth: Option<&str>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 65536 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let query = target
        .split_once('?')
        .map(|(_, qs)| {
            form_urlencoded::parse(qs.as_bytes())
                .find(|(k, _)| k == "query")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let got_auth = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_owned())
    });
    let authorized = auth.is_none_or(|a| got_auth.as_deref() == Some(a));
    seen.lock().expect("seen").push(Seen {
        query,
        auth: got_auth,
    });
    let (status, body) = if authorized {
        reply.lock().expect("reply").clone()
    } else {
        (401, Arc::new("unauthorized\n".to_owned()))
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if c.write_all(head.as_bytes()).await.is_ok() {
        let _ = c.write_all(body.as_bytes()).await;
        let _ = c.shutdown().await;
    }
}

/// A CA made for one test and a server configuration for a leaf it signed.
pub(crate) struct TestCa {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub(crate) fn new() -> TestCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "sipsteer load test ca");
        let key = KeyPair::generate().expect("ca key");
        TestCa {
            ca: CertifiedIssuer::self_signed(p, key).expect("ca cert"),
        }
    }

    pub(crate) fn pem(&self) -> String {
        self.ca.pem()
    }

    /// A TLS server configuration whose certificate names `names` (and 127.0.0.1 when
    /// `with_ip`).
    pub(crate) fn server(&self, names: &[&str], with_ip: bool) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut p = CertificateParams::new(names).expect("params");
        if with_ip {
            p.subject_alt_names
                .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
        }
        p.distinguished_name
            .push(DnType::CommonName, "fake prometheus");
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.ca).expect("leaf cert");
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        Arc::new(cfg)
    }
}

/// Servers with a capacity of 100 calls: `uk` (lon1..lon5) and `de` (fra1).
pub(crate) const ZONE: &str = r#"
zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
regions:
  uk:
    location: [51.5, 0]
    servers:
      lon1: { address: 192.0.2.10, capacity: { calls: 100 } }
      lon2: { address: 192.0.2.11, capacity: { calls: 100 } }
      lon3: { address: 192.0.2.12, capacity: { calls: 100 } }
      lon4: { address: 192.0.2.13, capacity: { calls: 100 } }
      lon5: { address: 192.0.2.14, capacity: { calls: 100 } }
  de:
    location: [50.1, 8.7]
    servers:
      fra1: { address: 192.0.2.20, capacity: { calls: 100 } }
services:
  sip: { regions: [uk, de], fallback: [uk, de], failover: 2 }
"#;

/// The PromQL every load-pull test config asks.
pub(crate) const QUERY: &str = "sum by (server) (sip_active_calls)";

/// A server config with admin on, no probes, and `load:` with `extra` keys after the query.
pub(crate) fn main_cfg(url: &str, extra: &str) -> String {
    format!(
        r#"
listen: {{ dns: ["127.0.0.1:0"], admin: "127.0.0.1:0" }}
zones: zones
health: {{ check: none }}
capacity: {{ overflow_at: 0.8, report_ttl: 1h }}
load:
  prometheus: "{url}"
  calls: '{QUERY}'
{extra}"#
    )
}

/// Starts a sipsteer with `main` and [`ZONE`], after `files` are written beside its config.
pub(crate) async fn start(main: &str, files: &[(&str, &str)]) -> TestServer {
    let cfg = ConfigDir::new(main, &[("example.com.yaml", ZONE)]);
    for (name, text) in files {
        std::fs::write(cfg.path(name), text).expect("write file");
    }
    TestServer::start_in(cfg).await
}

/// One series of a vector reply.
pub(crate) fn series(server: &str, value: &str) -> String {
    format!(
        r#"{{"metric":{{"__name__":"sip_active_calls","server":"{server}"}},"value":[1732550000.123,"{value}"]}}"#
    )
}

/// A successful vector reply of `items` (each from [`series`]).
pub(crate) fn vector<S: AsRef<str>>(items: &[S]) -> String {
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(s.as_ref());
    }
    body.push_str("]}}");
    body
}

fn admin(s: &TestServer) -> SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

async fn json(s: &TestServer, path: &str) -> serde_json::Value {
    let (code, body) = get(admin(s), path).await;
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

/// `load_pull` of `/v1/status` once a round has been recorded.
pub(crate) async fn pull_status(s: &TestServer) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let st = json(s, "/v1/status").await;
        if st["load_pull"]["last_attempt_unix"].as_u64().unwrap_or(0) > 0 {
            return st["load_pull"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no round of load pulled: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `load` of one server in `/v1/servers` (null when none).
pub(crate) async fn load_of(s: &TestServer, server: &str) -> serde_json::Value {
    let v = json(s, "/v1/servers").await;
    v["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|x| x["server"] == server)
        .map(|x| x["load"].clone())
        .expect("server listed")
}

/// Waits until `server`'s pulled calls are `calls`.
pub(crate) async fn wait_calls(s: &TestServer, server: &str, calls: u64) {
    let start = Instant::now();
    loop {
        let load = load_of(s, server).await;
        if load["calls"].as_u64() == Some(calls) {
            return;
        }
        let st = json(s, "/v1/status").await;
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{server}: load {load}, want {calls} calls; status {}",
            st["load_pull"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
