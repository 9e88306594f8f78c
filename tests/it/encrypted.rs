//! DNS over TLS and DNS over HTTPS over real sockets, with a test CA made at test time: the
//! same answers as TCP (static and steered names, ECS), block padding, certificate renewal on
//! disk without a restart, a broken certificate refused while the old one serves, and config
//! errors for missing or bad PEM files.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::support::dns::*;
use crate::support::steer::{GEO_CSV, STEER_ZONE};
use base64::Engine;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::EdnsCode;
use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use sipsteer::reload::Outcome;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub(crate) const MAIN_TLS: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off", tls: ["127.0.0.1:0"], https: ["127.0.0.1:0"] }
zones: zones
geoip: { database: geo.csv }
health: { check: none }
tls: { certificate: cert.pem, key: key.pem }
"#;

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A CA made for one test, and leaf certificates for `localhost` / 127.0.0.1 signed by it.
pub(crate) struct TestCa {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub(crate) fn new() -> TestCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "sipsteer test ca");
        let key = KeyPair::generate().expect("ca key");
        TestCa {
            ca: CertifiedIssuer::self_signed(p, key).expect("ca cert"),
        }
    }

    /// (certificate PEM, key PEM, certificate DER) of a new leaf.
    pub(crate) fn leaf(&self, serial: u64) -> (String, String, CertificateDer<'static>) {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        p.subject_alt_names
            .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
        p.serial_number = Some(serial.into());
        p.distinguished_name
            .push(DnType::CommonName, format!("sipsteer leaf {serial}"));
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.ca).expect("leaf cert");
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    /// The CA's own certificate.
    pub(crate) fn root(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    pub(crate) fn connector(&self, alpn: &[u8]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(c))
    }
}

/// Writes a file by rename, as certbot and cert-manager do.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

pub(crate) async fn server(ca: &TestCa) -> (TestServer, CertificateDer<'static>) {
    let cfg = ConfigDir::new(MAIN_TLS, &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    let (cert, key, der) = ca.leaf(1);
    std::fs::write(cfg.path("cert.pem"), cert).expect("cert");
    std::fs::write(cfg.path("key.pem"), key).expect("key");
    (TestServer::start_in(cfg).await, der)
}

pub(crate) fn tls_addr(s: &TestServer) -> SocketAddr {
    s.running.as_ref().expect("running").encrypted.tls[0]
}

pub(crate) fn https_addr(s: &TestServer) -> SocketAddr {
    s.running.as_ref().expect("running").encrypted.https[0]
}

async fn connect(ca: &TestCa, alpn: &[u8], addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(WAIT, ca.connector(alpn).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

fn peer_cert(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().expect("peer certs")[0].clone()
}

/// One query over DoT; returns the reply bytes and the certificate the server showed.
pub(crate) async fn dot(
    ca: &TestCa,
    addr: SocketAddr,
    packet: &[u8],
) -> (Vec<u8>, CertificateDer<'static>) {
    let mut s = connect(ca, b"dot", addr).await;
    let cert = peer_cert(&s);
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    s.write_all(&framed).await.expect("write");
    let mut len = [0u8; 2];
    tokio::time::timeout(WAIT, s.read_exact(&mut len))
        .await
        .expect("reply in time")
        .expect("read length");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.expect("read body");
    (buf, cert)
}

/// One query over DoH (HTTP/2), by GET (`?dns=`) or POST.
pub(crate) async fn doh(ca: &TestCa, addr: SocketAddr, packet: &[u8], post: bool) -> Vec<u8> {
    let s = connect(ca, b"h2", addr).await;
    let (mut client, conn) = h2::client::handshake(s).await.expect("h2 handshake");
    tokio::spawn(conn);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(packet);
    let req = if post {
        http::Request::post("https://localhost/dns-query")
            .header("content-type", "application/dns-message")
    } else {
        http::Request::get(format!("https://localhost/dns-query?dns={b64}"))
    }
    .header("accept", "application/dns-message")
    .body(())
    .expect("request");
    let (resp, mut body_tx) = client.send_request(req, !post).expect("send");
    if post {
        body_tx
            .send_data(bytes::Bytes::copy_from_slice(packet), true)
            .expect("body");
    }
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("response in time")
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .map(http::HeaderValue::as_bytes),
        Some(&b"application/dns-message"[..])
    );
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    out
}

/// The encrypted reply says what the TCP one says; only padding differs.
fn assert_same(encrypted: &[u8], tcp: &[u8]) {
    let (e, t) = (parse(encrypted), parse(tcp));
    assert_eq!(e.metadata, t.metadata);
    assert_eq!(e.queries, t.queries);
    assert_eq!(rrs(&e.answers), rrs(&t.answers));
    assert_eq!(rrs(&e.authorities), rrs(&t.authorities));
    assert_eq!(rrs(&e.additionals), rrs(&t.additionals));
    assert_eq!(ecs_of(&e), ecs_of(&t));
    let (ee, te) = (e.edns.as_ref(), t.edns.as_ref());
    assert_eq!(ee.is_some(), te.is_some());
    if let (Some(ee), Some(te)) = (ee, te) {
        assert_eq!(ee.max_payload(), te.max_payload());
        assert_eq!(ee.flags(), te.flags());
        assert!(te.option(EdnsCode::Padding).is_none());
        assert!(ee.option(EdnsCode::Padding).is_some(), "padded");
        assert_eq!(encrypted.len() % 468, 0, "padded to 468-octet blocks");
    }
}

fn ecs(s: &str, prefix: u8) -> Q {
    Q {
        ecs: Some((s.parse::<IpAddr>().expect("ip"), prefix)),
        ..Q::default()
    }
}

#[tokio::test]
async fn dot_and_doh_answer_as_tcp_does() {
    let ca = TestCa::new();
    let (s, _) = server(&ca).await;
    let cases = [
        ("ns1.example.com.", RecordType::A, Q::default()),
        (
            "ns1.example.com.",
            RecordType::A,
            Q {
                edns: Some(1232),
                ..Q::default()
            },
        ),
        (
            "_sip._udp.sip.example.com.",
            RecordType::SRV,
            ecs("81.2.69.0", 24),
        ),
        ("sip.example.com.", RecordType::NAPTR, ecs("24.0.0.0", 24)),
        ("nothere.example.com.", RecordType::A, ecs("24.0.0.0", 24)),
    ];
    for (name, rtype, q) in cases {
        let packet = query(name, rtype, &q);
        let p = packet.clone();
        let addr = s.addr;
        let tcp = tokio::task::spawn_blocking(move || tcp_raw(addr, &p))
            .await
            .expect("join");
        let (over_tls, _) = dot(&ca, tls_addr(&s), &packet).await;
        assert_same(&over_tls, &tcp);
        for post in [false, true] {
            let over_https = doh(&ca, https_addr(&s), &packet, post).await;
            assert_same(&over_https, &tcp);
        }
    }
    // The steered answer really is the London one, with the /23 scope.
    let (r, _) = dot(
        &ca,
        tls_addr(&s),
        &query(
            "_sip._udp.sip.example.com.",
            RecordType::SRV,
            &ecs("81.2.69.0", 24),
        ),
    )
    .await;
    let m: Message = parse(&r);
    assert_eq!(
        rrs(&m.answers)[0],
        "_sip._udp.sip.example.com. 30 SRV 10 100 5060 lon1.uk.sip.example.com."
    );
    assert_eq!(ecs_of(&m), Some(("81.2.69.0".parse().expect("ip"), 24, 23)));
    s.stop().await;
}

#[tokio::test]
async fn renewed_certificate_is_served_without_a_restart() {
    let ca = TestCa::new();
    let (s, first) = server(&ca).await;
    let packet = query("ns1.example.com.", RecordType::A, &Q::default());
    let (_, seen) = dot(&ca, tls_addr(&s), &packet).await;
    assert_eq!(seen, first);
    let (cert, key, renewed) = ca.leaf(2);
    replace(&s.cfg.path("key.pem"), &key);
    replace(&s.cfg.path("cert.pem"), &cert);
    // The file watcher (or the periodic rescan) reloads; poll until the new one shows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (reply, seen) = dot(&ca, tls_addr(&s), &packet).await;
        assert_eq!(
            rrs(&parse(&reply).answers),
            ["ns1.example.com. 300 A 192.0.2.53"]
        );
        let s2 = doh_cert(&ca, https_addr(&s)).await;
        if seen == renewed && s2 == renewed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "renewed certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
}

async fn doh_cert(ca: &TestCa, addr: SocketAddr) -> CertificateDer<'static> {
    peer_cert(&connect(ca, b"h2", addr).await)
}

#[tokio::test]
async fn broken_certificate_is_refused_and_the_old_one_serves() {
    let ca = TestCa::new();
    let (s, first) = server(&ca).await;
    let cert_path = s.cfg.path("cert.pem");
    replace(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    );
    let running = s.running.as_ref().expect("running");
    let outcome = s.reload().await;
    let Outcome::Rejected(msg) = outcome else {
        panic!("broken certificate accepted: {outcome:?}");
    };
    let msg = msg.to_string();
    let main = s.cfg.main();
    assert!(
        msg.starts_with(&format!(
            "{}:6:21: tls.certificate: {}: bad PEM",
            main.display(),
            cert_path.display()
        )),
        "{msg}"
    );
    assert_eq!(
        running.reloader.status().last_error.as_deref(),
        Some(msg.as_str())
    );
    let packet = query("ns1.example.com.", RecordType::A, &Q::default());
    let (reply, seen) = dot(&ca, tls_addr(&s), &packet).await;
    assert_eq!(seen, first);
    assert_eq!(
        rrs(&parse(&reply).answers),
        ["ns1.example.com. 300 A 192.0.2.53"]
    );
    assert_eq!(doh_cert(&ca, https_addr(&s)).await, first);
    s.stop().await;
}

#[test]
fn missing_and_mismatched_files_are_config_errors() {
    let ca = TestCa::new();
    let cfg = ConfigDir::new(MAIN_TLS, &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    let main = cfg.main();
    let err = sipsteer::config::load(&main).expect_err("no cert files");
    assert_eq!(
        err.to_string(),
        format!(
            "{m}:6:21: tls.certificate: cannot read {c}: no such file or directory\n\
             {m}:6:36: tls.key: cannot read {k}: no such file or directory",
            m = main.display(),
            c = cfg.path("cert.pem").display(),
            k = cfg.path("key.pem").display()
        )
    );
    let (cert, _, _) = ca.leaf(1);
    let (_, other_key, _) = ca.leaf(2);
    std::fs::write(cfg.path("cert.pem"), &cert).expect("cert");
    std::fs::write(cfg.path("key.pem"), &other_key).expect("key");
    let err = sipsteer::config::load(&main).expect_err("mismatched key");
    assert_eq!(
        err.to_string(),
        format!(
            "{m}:6:21: tls.certificate: key {k} does not match certificate {c}",
            m = main.display(),
            c = cfg.path("cert.pem").display(),
            k = cfg.path("key.pem").display()
        )
    );
    std::fs::write(cfg.path("key.pem"), &cert).expect("key");
    let err = sipsteer::config::load(&main).expect_err("no key");
    assert_eq!(
        err.to_string(),
        format!(
            "{m}:6:36: tls.key: {k}: no PEM private key (BEGIN PRIVATE KEY) found",
            m = main.display(),
            k = cfg.path("key.pem").display()
        )
    );
}

#[test]
fn listeners_without_certificate_are_a_config_error() {
    let main_text = "listen: { dns: [\"127.0.0.1:0\"], admin: \"off\", tls: [\"127.0.0.1:0\"] }\nzones: zones\nhealth: { check: none }\n";
    let cfg = ConfigDir::new(main_text, &[("example.com.yaml", STATIC_ZONE)]);
    let main = cfg.main();
    let err = sipsteer::config::load(&main).expect_err("no tls section");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:52: listen.tls: encrypted DNS needs `tls: {{ certificate: PATH, key: PATH }}`",
            main.display()
        )
    );
}

/// The status of one DoH request.
async fn doh_status(ca: &TestCa, addr: SocketAddr, req: http::Request<()>, body: &[u8]) -> u16 {
    let s = connect(ca, b"h2", addr).await;
    let (mut client, conn) = h2::client::handshake(s).await.expect("h2 handshake");
    tokio::spawn(conn);
    let (resp, mut tx) = client.send_request(req, body.is_empty()).expect("send");
    if !body.is_empty() {
        tx.send_data(bytes::Bytes::copy_from_slice(body), true)
            .expect("body");
    }
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("response in time")
        .expect("response");
    resp.status().as_u16()
}

#[tokio::test]
async fn doh_refuses_what_is_not_a_dns_query() {
    let ca = TestCa::new();
    let (s, _) = server(&ca).await;
    let addr = https_addr(&s);
    let packet = query("ns1.example.com.", RecordType::A, &Q::default());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&packet);
    let get = |uri: String| http::Request::get(uri).body(()).expect("request");
    let cases = [
        (
            get(format!("https://localhost/other?dns={b64}")),
            &[][..],
            404,
        ),
        (get("https://localhost/dns-query".into()), &[][..], 400),
        (
            get("https://localhost/dns-query?dns=not*base64".into()),
            &[][..],
            400,
        ),
        (
            http::Request::post("https://localhost/dns-query")
                .header("content-type", "text/plain")
                .body(())
                .expect("request"),
            &packet[..],
            415,
        ),
        (
            http::Request::put("https://localhost/dns-query")
                .header("content-type", "application/dns-message")
                .body(())
                .expect("request"),
            &packet[..],
            405,
        ),
        (
            get(format!("https://localhost/dns-query?dns={b64}")),
            &[][..],
            200,
        ),
    ];
    for (req, body, want) in cases {
        let uri = req.uri().clone();
        assert_eq!(doh_status(&ca, addr, req, body).await, want, "{uri}");
    }
    s.stop().await;
}

#[tokio::test]
async fn encrypted_queries_are_logged_with_their_transport() {
    let ca = TestCa::new();
    let main = format!("{MAIN_TLS}query_log: {{ path: queries.jsonl, sample: 1 }}\n");
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    let (cert, key, _) = ca.leaf(1);
    std::fs::write(cfg.path("cert.pem"), cert).expect("cert");
    std::fs::write(cfg.path("key.pem"), key).expect("key");
    let s = TestServer::start_in(cfg).await;
    let packet = query("sip.example.com.", RecordType::A, &ecs("81.2.69.0", 24));
    dot(&ca, tls_addr(&s), &packet).await;
    let packet = query("nope.example.com.", RecordType::A, &Q::default());
    doh(&ca, https_addr(&s), &packet, true).await;
    let path = s.cfg.path("queries.jsonl");
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let t = std::fs::read_to_string(&path).unwrap_or_default();
        if t.lines().count() >= 2 {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "query log not written: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines[0]["proto"], "tls");
    assert_eq!(lines[0]["name"], "sip.example.com.");
    assert_eq!(lines[0]["region"], "uk");
    assert_eq!(lines[0]["client"], "127.0.0.1");
    assert_eq!(lines[1]["proto"], "https");
    assert_eq!(lines[1]["name"], "nope.example.com.");
    assert_eq!(lines[1]["rcode"], 3);
    s.stop().await;
}

#[tokio::test]
async fn shutdown_closes_encrypted_connections_and_frees_their_ports() {
    let ca = TestCa::new();
    let (mut s, _) = server(&ca).await;
    let (tls, https) = (tls_addr(&s), https_addr(&s));
    let packet = query("ns1.example.com.", RecordType::A, &Q::default());
    // DoT: one query answered, the connection left open.
    let mut t = connect(&ca, b"dot", tls).await;
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&packet);
    t.write_all(&framed).await.expect("write");
    let mut len = [0u8; 2];
    tokio::time::timeout(WAIT, t.read_exact(&mut len))
        .await
        .expect("reply in time")
        .expect("read length");
    // DoH: an HTTP/2 connection with one request answered, left open.
    let h = connect(&ca, b"h2", https).await;
    let (mut client, conn) = h2::client::handshake(h).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&packet);
    let req = http::Request::get(format!("https://localhost/dns-query?dns={b64}"))
        .body(())
        .expect("request");
    let (resp, _) = client.send_request(req, true).expect("send");
    let resp = tokio::time::timeout(WAIT, resp).await.expect("in time");
    assert_eq!(resp.expect("response").status(), 200);

    let r = s.running.take().expect("running");
    tokio::time::timeout(WAIT, r.shutdown())
        .await
        .expect("shutdown returns");
    // The server said GOAWAY and closed: the client's connection ends.
    let _ = tokio::time::timeout(WAIT, conn)
        .await
        .expect("doh connection closed");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(WAIT, t.read_to_end(&mut rest))
        .await
        .expect("dot connection closed");
    assert!(
        rest.len() == usize::from(u16::from_be_bytes(len)) || end.is_err(),
        "dot: {end:?}, {} bytes",
        rest.len()
    );
    for addr in [tls, https, s.addr] {
        std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr} still bound: {e}"));
    }
}
