//! Operator mistakes caught before they cost service: `check` loads what `serve` loads (the
//! GeoIP database included) and names the path and the OS reason; listen lists that cannot
//! bind; short tokens; a state file that cannot be written fails the API call and changes
//! nothing, and a symlink planted next to it is never followed.

use std::process::{Command, Output};

use crate::support::dns::*;
use crate::support::http::{get, send};
use crate::support::steer::STEER_ZONE;

const ZONE: &str = "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n";

fn sipsteer(args: &[&str], cfg: &ConfigDir, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sipsteer"));
    c.args(args).arg("--config").arg(cfg.main());
    c.env_remove("SIPSTEER_ADMIN_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn geo_config() -> ConfigDir {
    let main = format!("{MAIN}geoip: {{ database: geo.mmdb }}\n");
    ConfigDir::new(&main, &[("z.yaml", ZONE)])
}

#[test]
fn check_fails_on_a_missing_geoip_database_with_path_and_reason() {
    let cfg = geo_config();
    let o = sipsteer(&["check"], &cfg, &[]);
    assert_eq!(o.status.code(), Some(1));
    let want = format!(
        "{}: cannot read GeoIP database: no such file or directory (os error 2)\n1 error(s)\n",
        cfg.path("geo.mmdb").display()
    );
    assert_eq!(stderr(&o), want);
    // `serve` refuses it the same way, before binding anything.
    let o = sipsteer(&["serve"], &cfg, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "error: {}: cannot read GeoIP database: no such file or directory (os error 2)",
            cfg.path("geo.mmdb").display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_fails_on_a_corrupt_or_fifo_geoip_database() {
    let cfg = geo_config();
    let db = cfg.path("geo.mmdb");
    std::fs::write(&db, [0x5au8; 300]).expect("write");
    let o = sipsteer(&["check"], &cfg, &[]);
    assert_eq!(o.status.code(), Some(1));
    let prefix = format!("{}: cannot read MaxMind database: ", db.display());
    assert!(stderr(&o).starts_with(&prefix), "{}", stderr(&o));
    assert!(stderr(&o).ends_with("\n1 error(s)\n"), "{}", stderr(&o));

    std::fs::remove_file(&db).expect("rm");
    let made = Command::new("mkfifo").arg(&db).status().expect("mkfifo");
    assert!(made.success());
    let o = sipsteer(&["check"], &cfg, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "{}: cannot read GeoIP database: is a fifo, not a regular file\n1 error(s)\n",
            db.display()
        )
    );
}

#[test]
fn check_output_is_unchanged_when_all_is_well() {
    let main = format!("{MAIN}geoip: {{ database: geo.csv }}\n");
    let cfg = ConfigDir::new(&main, &[("z.yaml", ZONE)]);
    std::fs::write(cfg.path("geo.csv"), crate::support::steer::GEO_CSV).expect("csv");
    let o = sipsteer(&["check"], &cfg, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "{}: ok (1 zones, 0 regions, 2 files, 0 warning(s))\n",
            cfg.main().display()
        )
    );
}

/// The errors of loading `main` (paths relative to the config directory).
fn load_errors(main: &str) -> Vec<String> {
    let cfg = ConfigDir::new(main, &[("z.yaml", ZONE)]);
    let root = format!("{}/", cfg.dir.path().display());
    match sipsteer::config::load(&cfg.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    }
}

#[test]
fn listen_addresses_that_cannot_bind_together_are_config_errors() {
    assert_eq!(
        load_errors(
            "listen: { dns: [\"127.0.0.1:5300\", \"127.0.0.1:5300\"], admin: off }\nzones: zones\n"
        ),
        ["sipsteer.yaml:1:35: listen.dns: listen address 127.0.0.1:5300 is given twice"]
    );
    assert_eq!(
        load_errors(
            "listen:\n  dns:\n    - 0.0.0.0:5300\n    - 127.0.0.1:5300\n  admin: off\nzones: zones\n"
        ),
        [
            "sipsteer.yaml:4:7: listen.dns: listen address 127.0.0.1:5300 cannot be bound together with 0.0.0.0:5300 (same port)"
        ]
    );
    assert_eq!(
        load_errors(
            "listen: { dns: [\"127.0.0.1:5300\"], admin: \"127.0.0.1:5300\" }\nzones: zones\n"
        ),
        ["sipsteer.yaml:1:43: listen.admin: listen address 127.0.0.1:5300 is given twice"]
    );
    // Both families on one port (dual stack), and port 0 twice, are fine.
    assert!(
        load_errors(
            "listen: { dns: [\"0.0.0.0:5300\", \"[::]:5300\", \"127.0.0.1:0\", \"127.0.0.1:0\"], admin: off }\nzones: zones\n"
        )
        .is_empty()
    );
}

#[test]
fn a_short_token_from_the_environment_is_refused() {
    let cfg = ConfigDir::new(MAIN, &[("z.yaml", ZONE)]);
    let o = sipsteer(&["check"], &cfg, &[("SIPSTEER_ADMIN_TOKEN", "short")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "{}: token from environment variable SIPSTEER_ADMIN_TOKEN must be at least 8 characters\n1 error(s)\n",
            cfg.main().display()
        )
    );
    let o = sipsteer(&["check"], &cfg, &[("SIPSTEER_ADMIN_TOKEN", "long-enough")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

const TOKEN: &str = "state-token-1";

async fn state_server() -> TestServer {
    let main = format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\nadmin: {{ token: {TOKEN}, state_file: state.json }}\nhealth: {{ check: none }}\n"
    );
    let cfg = ConfigDir::new(&main, &[("example.com.yaml", STEER_ZONE)]);
    TestServer::start_in(cfg).await
}

fn admin(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

/// The `forced` field of one server in `/v1/servers`.
async fn forced(s: &TestServer, region: &str, server: &str) -> serde_json::Value {
    let (code, body) = get(admin(s), "/v1/servers").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let list = v["servers"].as_array().expect("servers").clone();
    list.into_iter()
        .find(|e| e["region"] == region && e["server"] == server)
        .map(|e| e["forced"].clone())
        .expect("server listed")
}

#[tokio::test]
async fn a_planted_symlink_never_gets_its_target_overwritten() {
    let s = state_server().await;
    let victim = s.cfg.path("victim");
    std::fs::write(&victim, "precious").expect("write");
    // The names a careless writer would use, and a guessable unique one.
    for name in ["state.tmp", "state.json.tmp", ".state.json.tmp"] {
        std::os::unix::fs::symlink(&victim, s.cfg.path(name)).expect("plant");
    }
    let (code, body) = send(
        admin(&s),
        "PUT",
        "/v1/servers/uk/lon1/state",
        Some(TOKEN),
        Some(r#"{"state":"drain"}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
    let state = s.cfg.path("state.json");
    assert!(std::fs::symlink_metadata(&state).expect("state").is_file());
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("read")).expect("json");
    assert_eq!(saved, serde_json::json!({"uk/lon1": "drained"}));
    let stray: Vec<String> = std::fs::read_dir(s.cfg.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") && n.starts_with(".state.json.") && n != ".state.json.tmp")
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_state_file_that_cannot_be_written_fails_the_call_and_changes_nothing() {
    let s = state_server().await;
    let a = admin(&s);
    let drain = Some(r#"{"state":"drain"}"#);
    let (code, _) = send(a, "PUT", "/v1/servers/uk/lon1/state", Some(TOKEN), drain).await;
    assert_eq!(code, 200);
    // The state file's place is taken by a directory: no rename can land there.
    let state = s.cfg.path("state.json");
    std::fs::remove_file(&state).expect("rm");
    std::fs::create_dir(&state).expect("mkdir");
    let (code, body) = send(a, "PUT", "/v1/servers/uk/lon2/state", Some(TOKEN), drain).await;
    assert_eq!(code, 500, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v["error"],
        format!(
            "cannot write state file {}: is a directory (os error 21)",
            state.display()
        )
    );
    assert_eq!(forced(&s, "uk", "lon2").await, serde_json::Value::Null);
    assert_eq!(forced(&s, "uk", "lon1").await, "drained");
    let (_, body) = get(a, "/v1/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v["state_file"]["last_error"],
        serde_json::json!(format!(
            "cannot write state file {}: is a directory (os error 21)",
            state.display()
        ))
    );
    let (_, metrics) = get(a, "/metrics").await;
    assert!(
        metrics.contains("sipsteer_state_file_errors_total"),
        "{metrics}"
    );
    // Clearing is refused the same way: memory keeps agreeing with what is on disk.
    let clear = Some(r#"{"state":"clear"}"#);
    let (code, _) = send(a, "PUT", "/v1/servers/uk/lon1/state", Some(TOKEN), clear).await;
    assert_eq!(code, 500);
    assert_eq!(forced(&s, "uk", "lon1").await, "drained");
    // Once the file can be written again, changes apply and the error clears.
    std::fs::remove_dir(&state).expect("rmdir");
    let (code, _) = send(a, "PUT", "/v1/servers/uk/lon2/state", Some(TOKEN), drain).await;
    assert_eq!(code, 200);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("read")).expect("json");
    assert_eq!(
        saved,
        serde_json::json!({"uk/lon1": "drained", "uk/lon2": "drained"})
    );
    let (_, body) = get(a, "/v1/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["state_file"]["last_error"], serde_json::Value::Null);
    s.stop().await;
}

#[test]
fn serve_stops_on_sigterm_with_fifos_in_place_of_its_files() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let main = format!("{MAIN}geoip: {{ database: geo.csv }}\n");
    let cfg = ConfigDir::new(&main, &[("z.yaml", ZONE)]);
    std::fs::write(cfg.path("geo.csv"), crate::support::steer::GEO_CSV).expect("csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .args(["serve", "--config"])
        .arg(cfg.main())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("dns listening"));
    assert!(ready, "serve started");
    // Keep reading the log so the child never blocks on a full pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let fifo = |p: std::path::PathBuf| {
        let _ = std::fs::remove_file(&p);
        assert!(
            Command::new("mkfifo")
                .arg(&p)
                .status()
                .expect("mkfifo")
                .success()
        );
    };
    fifo(cfg.path("zones/extra.yaml"));
    fifo(cfg.path("geo.csv"));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    // The reload SIGHUP asked for has run once it refuses the fifo (it never waits on one).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen
        .last()
        .is_some_and(|l: &String| l.contains("cannot read zone map: is a fifo, not a regular file"))
    {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no reload refused the fifo within 20 s:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("serve did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    log.join().expect("log");
}
