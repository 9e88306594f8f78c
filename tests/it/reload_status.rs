//! What the reload status says, and in which words: the file hashes of `/v1/status` (the
//! same on every build), the result names of `/v1/status`, `POST /v1/reload` and
//! `/metrics`, the trigger names of the reload log lines, and GeoIP load errors as values.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::support::dns::{ConfigDir, TestServer};
use crate::support::http::{get, send};
use sipsteer::geo::{CsvError, CsvFileError, GeoError};
use sipsteer::reload::{GeoSlot, LoadError, Outcome, ReloadResult, Reloader, Trigger};
use sipsteer::steering::HealthView;

const TOKEN: &str = "status-token-42";

const MAIN: &str = "listen: { dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }\n\
zones: zones\n\
admin: { token: status-token-42 }\n\
health: { check: none }\n";

const ZONE: &str = "zone: example.com\n\
ttl: 300\n\
soa: { primary: ns1, contact: hostmaster@example.com, serial: 1, minimum: 60 }\n\
ns: [ns1]\n\
records:\n  ns1: { A: 192.0.2.53 }\n";

fn admin(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

async fn status(s: &TestServer) -> serde_json::Value {
    let (code, body) = get(admin(s), "/v1/status").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status json")
}

#[tokio::test]
async fn status_shows_each_file_with_the_siphash_2_4_of_its_bytes() {
    let s = TestServer::start(MAIN, &[("example.com.yaml", ZONE)]).await;
    let st = status(&s).await;
    let files = st["reload"]["files"].as_array().expect("files");
    let shown: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let path = f["path"].as_str().expect("path");
            let name = path.rsplit('/').next().expect("name");
            (
                name.to_string(),
                f["hash"].as_str().expect("hash").to_string(),
            )
        })
        .collect();
    // SipHash-2-4, key 00..0f, of the exact bytes written (from a separate implementation
    // checked against the SipHash paper's vectors).
    let want = [
        ("sipsteer.yaml".to_string(), "6f0fa453ff7b473b".to_string()),
        (
            "example.com.yaml".to_string(),
            "876a78eb583f2f0b".to_string(),
        ),
    ];
    assert_eq!(shown, want, "{st}");
    s.stop().await;
}

#[tokio::test]
async fn reload_results_keep_their_names_in_status_reload_and_metrics() {
    let s = TestServer::start(MAIN, &[("example.com.yaml", ZONE)]).await;
    let a = admin(&s);
    assert_eq!(status(&s).await["reload"]["last_result"], "ok");

    let (code, body) = send(a, "POST", "/v1/reload", Some(TOKEN), None).await;
    assert_eq!((code, body.as_str()), (200, r#"{"result":"unchanged"}"#));
    assert_eq!(status(&s).await["reload"]["last_result"], "unchanged");

    let zone = s.cfg.path("zones/example.com.yaml");
    // Replaced by rename, so the file watcher never reads a half-written file (a reload of
    // one would be one more rejection counted).
    replace(&zone, &ZONE.replace("serial: 1", "serial: 2"));
    let (code, body) = send(a, "POST", "/v1/reload", Some(TOKEN), None).await;
    // Applied by this request, or just before it by the file watcher.
    assert!(
        [
            r#"{"generation":2,"result":"ok"}"#,
            r#"{"result":"unchanged"}"#
        ]
        .contains(&&*body),
        "{code} {body}"
    );
    assert_eq!(status(&s).await["reload"]["generation"], 2);

    replace(&zone, "zone: [");
    let (code, body) = send(a, "POST", "/v1/reload", Some(TOKEN), None).await;
    assert_eq!(code, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((&v["result"], &v["errors"]), (&"error".into(), &1.into()));
    assert_eq!(status(&s).await["reload"]["last_result"], "error");

    let (_, metrics) = get(a, "/metrics").await;
    let mut lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("sipsteer_config_reloads_total{"))
        .collect();
    lines.sort_unstable();
    let want = [
        r#"sipsteer_config_reloads_total{result="error"} 1"#,
        r#"sipsteer_config_reloads_total{result="ok"} 2"#,
    ];
    assert_eq!(lines, want, "{metrics}");
    s.stop().await;
}

/// Replaces `path` with `text` by rename.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A log writer into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buf").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_trigger_is_named_in_the_reload_log_line() {
    let cfg = ConfigDir::new(MAIN, &[("example.com.yaml", ZONE)]);
    let cache = GeoSlot::default();
    let loaded = sipsteer::reload::load(&cfg.main(), &cache).expect("first load");
    let binder: Arc<sipsteer::reload::HealthBinder> = Arc::new(
        |_: &sipsteer::config::Config, st: &Arc<sipsteer::steering::Steering>| {
            Arc::new(HealthView::all_up(st.slots))
        },
    );
    let r = Reloader::first(&cfg.main(), loaded, cache, binder, Default::default());
    let triggers = [
        (Trigger::FileChange, "file change"),
        (Trigger::Rescan, "rescan"),
        (Trigger::Sighup, "SIGHUP"),
        (Trigger::Api, "api"),
        (Trigger::Geoip, "geoip"),
        (Trigger::CertificateChange, "certificate change"),
    ];
    for (digits, (trigger, name)) in (1..).zip(triggers) {
        assert_eq!(trigger.as_str(), name);
        // A longer serial each time: the rescan sees the file's size change.
        let serial = format!("serial: {}", 10u32.pow(digits));
        let text = ZONE.replace("serial: 1", &serial);
        std::fs::write(cfg.path("zones/example.com.yaml"), text).expect("write");
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let out = tracing::subscriber::with_default(subscriber, || r.reload(trigger));
        assert!(matches!(out, Outcome::Applied(_)), "{name}: {out:?}");
        let log = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf-8");
        let line = log.lines().find(|l| l.contains("config reloaded"));
        let line = line.unwrap_or_else(|| panic!("{name}: no reload line in {log}"));
        assert!(line.contains(&format!("trigger=\"{name}\"")), "{line}");
    }
    assert_eq!(r.status().last_result, ReloadResult::Ok);
}

#[test]
fn a_geoip_database_that_does_not_load_is_a_geo_error_value() {
    let main = format!("{MAIN}geoip: {{ database: missing.mmdb }}\n");
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", ZONE)]);
    let err = sipsteer::reload::load(&cfg.main(), &GeoSlot::default()).err();
    let want = GeoError::File {
        path: cfg.path("missing.mmdb").display().to_string(),
        message: "cannot read GeoIP database: no such file or directory (os error 2)".into(),
    };
    assert_eq!(err, Some(LoadError::Geo(want)));

    let main = format!("{MAIN}geoip: {{ database: geo.csv }}\n");
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", ZONE)]);
    let header = "network,country,continent,latitude,longitude,city";
    std::fs::write(cfg.path("geo.csv"), format!("{header}\n10.0.0.0/8,GB\n")).expect("csv");
    let err = sipsteer::reload::load(&cfg.main(), &GeoSlot::default()).err();
    let want = GeoError::Csv(vec![CsvFileError {
        path: cfg.path("geo.csv").display().to_string(),
        error: CsvError {
            line: 2,
            column: 1,
            message: "expected 6 fields, found 2".into(),
        },
    }]);
    assert_eq!(err, Some(LoadError::Geo(want)));
}
