//! What makes a reload happen, with the periodic rescan set far out (`reload.rescan: 1h`) so
//! only the trigger under test can apply an edit: a zone edit served while another zone map is
//! rewritten every 100 ms (the debounce has a maximum delay), a zone edit seen by the watcher
//! of the real binary started with a relative `--config`, an edit of a file the config reads
//! besides the usual ones (the cookie secret file) seen by the watcher, a renewed certificate
//! that the watcher cannot see (behind a directory symlink swapped above it) reaching new DNS
//! over TLS and DNS over HTTPS handshakes, and `reload.rescan` checked.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::dns::*;
use hickory_proto::rr::RecordType;
use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

/// A test server whose periodic rescan never comes during a test.
const MAIN_NO_RESCAN: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
health: { check: none }
reload: { rescan: 1h }
"#;

/// Generous: a trigger that works applies an edit in about a second.
const DEADLINE: Duration = Duration::from_secs(10);

fn zone(origin: &str, www: &str) -> String {
    format!(
        "zone: {origin}\nsoa: {{ primary: ns1, contact: hostmaster, serial: 1 }}\nns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n  www: {{ A: {www} }}\n"
    )
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_file_name(".replace.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The A records of `www.example.com` over UDP (empty without a reply).
fn www(addr: SocketAddr) -> Vec<String> {
    let q = query("www.example.com.", RecordType::A, &Q::default());
    udp_raw(addr, &q).map_or_else(Vec::new, |r| rrs(&parse(&r).answers))
}

/// Polls until `www` answers `ip`, or fails after [`DEADLINE`].
async fn until_www(addr: SocketAddr, ip: &str, why: &str) {
    let want = vec![format!("www.example.com. 300 A {ip}")];
    let start = Instant::now();
    loop {
        let got = tokio::task::spawn_blocking(move || www(addr))
            .await
            .expect("join");
        if got == want {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "{why}: still {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rewrites a zone map (by rename, so it is never read half-written) every 100 ms until
/// dropped.
struct BusyWriter {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BusyWriter {
    fn start(path: std::path::PathBuf, text: String) -> BusyWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU32::new(0));
        let (flag, count) = (stop.clone(), writes.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                replace(&path, &text);
                count.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        BusyWriter {
            stop,
            writes,
            thread: Some(thread),
        }
    }

    /// Waits until the file has been rewritten `n` times.
    async fn until_written(&self, n: u32) {
        let start = Instant::now();
        while self.writes.load(Ordering::Relaxed) < n {
            assert!(start.elapsed() < DEADLINE, "the writer is stuck");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the writer; returns how many times it wrote.
    fn stop(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("writer");
        }
        self.writes.load(Ordering::Relaxed)
    }
}

impl Drop for BusyWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_zone_edit_is_served_while_another_zone_map_is_rewritten_every_100ms() {
    let s = TestServer::start(
        MAIN_NO_RESCAN,
        &[
            ("example.com.yaml", &zone("example.com", "192.0.2.1")),
            ("busy.example.yaml", &zone("busy.example", "192.0.2.9")),
        ],
    )
    .await;
    until_www(s.addr, "192.0.2.1", "at start").await;
    let busy = BusyWriter::start(
        s.cfg.path("zones/busy.example.yaml"),
        zone("busy.example", "192.0.2.9"),
    );
    // The writer's events have started a debounce before the edit comes in.
    busy.until_written(3).await;
    let written = busy.writes.load(Ordering::Relaxed);
    replace(
        &s.cfg.path("zones/example.com.yaml"),
        &zone("example.com", "192.0.2.2"),
    );
    until_www(
        s.addr,
        "192.0.2.2",
        "edit not served while another file is busy",
    )
    .await;
    assert!(
        busy.stop() > written,
        "the busy file was rewritten until the edit was served"
    );
    s.stop().await;
}

/// A `serve` child process, killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_relative_config_path_has_its_zone_edits_seen_by_the_watcher() {
    let cfg = ConfigDir::new(
        MAIN_NO_RESCAN,
        &[("example.com.yaml", &zone("example.com", "192.0.2.1"))],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .current_dir(cfg.dir.path())
        .args(["serve", "--config", "sipsteer.yaml"])
        .env("RUST_LOG", "info")
        .env_remove("SIPSTEER_LOG_FORMAT")
        .env_remove("SIPSTEER_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let _serve = Serve(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // `ready` comes once everything runs, the file watcher included.
    let addr = tokio::task::spawn_blocking(move || {
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            if let Some((_, at)) = line.split_once(" ready dns=") {
                let at = at.split_whitespace().next().unwrap_or_default();
                return at.parse::<SocketAddr>().expect("bound address");
            }
        }
        panic!("serve did not start");
    })
    .await
    .expect("join");
    until_www(addr, "192.0.2.1", "at start").await;
    replace(
        &cfg.path("zones/example.com.yaml"),
        &zone("example.com", "192.0.2.2"),
    );
    until_www(
        addr,
        "192.0.2.2",
        "zone edit not seen with a relative --config",
    )
    .await;
}

/// A CA made for one test, with leaf certificates for `localhost` signed by it.
struct TestCa(CertifiedIssuer<'static, KeyPair>);

impl TestCa {
    fn new() -> TestCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "sipsteer trigger test ca");
        let key = KeyPair::generate().expect("ca key");
        TestCa(CertifiedIssuer::self_signed(p, key).expect("ca cert"))
    }

    /// Writes a new leaf's `cert.pem` and `key.pem` into `dir`; returns its DER.
    fn leaf_into(&self, dir: &Path, serial: u64) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        p.subject_alt_names
            .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
        p.serial_number = Some(serial.into());
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.0).expect("leaf cert");
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key");
        cert.der().clone()
    }

    /// The leaf certificate a new handshake with `addr` shows.
    async fn served(&self, addr: SocketAddr, alpn: &[u8]) -> CertificateDer<'static> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.0.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let tls =
            tokio::time::timeout(DEADLINE, TlsConnector::from(Arc::new(c)).connect(name, tcp))
                .await
                .expect("handshake in time")
                .expect("handshake");
        tls.get_ref().1.peer_certificates().expect("peer certs")[0].clone()
    }
}

#[tokio::test]
async fn a_certificate_renewed_behind_a_swapped_directory_symlink_reaches_new_handshakes() {
    let main = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off", tls: ["127.0.0.1:0"], https: ["127.0.0.1:0"] }
zones: zones
health: { check: none }
reload: { rescan: 1h }
tls: { certificate: live/cert.pem, key: live/key.pem }
"#;
    let cfg = ConfigDir::new(
        main,
        &[("example.com.yaml", &zone("example.com", "192.0.2.1"))],
    );
    let ca = TestCa::new();
    let first = ca.leaf_into(&cfg.path("v1"), 1);
    std::os::unix::fs::symlink("v1", cfg.path("live")).expect("symlink");
    let s = TestServer::start_in(cfg).await;
    let running = s.running.as_ref().expect("running");
    let (dot, doh) = (running.encrypted.tls[0], running.encrypted.https[0]);
    assert_eq!(ca.served(dot, b"dot").await, first);
    assert_eq!(ca.served(doh, b"h2").await, first);
    // A deploy swaps the directory: a new version beside the old, the link renamed over.
    let renewed = ca.leaf_into(&s.cfg.path("v2"), 2);
    std::os::unix::fs::symlink("v2", s.cfg.path("live.new")).expect("symlink");
    std::fs::rename(s.cfg.path("live.new"), s.cfg.path("live")).expect("swap");
    let start = Instant::now();
    loop {
        let seen = (ca.served(dot, b"dot").await, ca.served(doh, b"h2").await);
        if seen == (renewed.clone(), renewed.clone()) {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "renewed certificate not served (dns over tls renewed: {}, https: {})",
            seen.0 == renewed,
            seen.1 == renewed
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

#[test]
fn reload_rescan_is_checked() {
    for (value, msg) in [
        ("500ms", "must be at least 1s"),
        ("2d", "invalid duration unit in `2d` (use ms, s, m or h)"),
    ] {
        let main = format!("{MAIN}reload:\n  rescan: {value}\n");
        let cfg = ConfigDir::new(
            &main,
            &[("example.com.yaml", &zone("example.com", "192.0.2.1"))],
        );
        let err = sipsteer::config::load(&cfg.main()).expect_err("refused");
        let root = format!("{}/", cfg.dir.path().display());
        let got: Vec<String> = err
            .0
            .iter()
            .map(|e| e.to_string().replace(&root, ""))
            .collect();
        assert_eq!(got, [format!("sipsteer.yaml:6:11: reload.rescan: {msg}")]);
    }
}

#[tokio::test]
async fn an_edit_of_any_file_the_config_reads_is_seen_by_the_watcher() {
    let main = format!("{MAIN_NO_RESCAN}dns: {{ cookies: {{ secret_file: secret.txt }} }}\n");
    let cfg = ConfigDir::new(
        &main,
        &[("example.com.yaml", &zone("example.com", "192.0.2.1"))],
    );
    std::fs::write(cfg.path("secret.txt"), "00112233445566778899aabbccddeeff\n").expect("secret");
    let s = TestServer::start_in(cfg).await;
    let running = s.running.as_ref().expect("running");
    let first = running.generation();
    replace(
        &s.cfg.path("secret.txt"),
        "ffeeddccbbaa99887766554433221100\n",
    );
    let start = Instant::now();
    while running.generation() == first {
        assert!(start.elapsed() < DEADLINE, "secret file edit not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}
