//! Clear answers from the admin API: a forced state takes `until` and `note` like the operator
//! state file (kept in the state file, shown in `/v1/servers`, ending by itself at `until`);
//! unknown fields and bad values are refused with 400 naming them; a reload with many
//! problems reports the first ones and how many more, in `POST /v1/reload`, `/v1/status` and
//! the log.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::dns::*;
use crate::support::http::{get, send};
use crate::support::steer::STEER_ZONE;

const TOKEN: &str = "admin-token-42";
const LON1: &str = "/v1/servers/uk/lon1/state";
const STATE_SHAPE: &str =
    r#"{"state": "drain|up|down|clear", "until": "2026-12-01T06:00:00Z", "note": "text"}"#;

fn main_cfg() -> String {
    format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\nadmin: {{ token: {TOKEN}, state_file: state.json }}\nhealth: {{ check: none }}\n"
    )
}

fn admin(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

async fn put(s: &TestServer, path: &str, body: &str) -> (u16, Value) {
    let (code, body) = send(admin(s), "PUT", path, Some(TOKEN), Some(body)).await;
    (code, serde_json::from_str(&body).expect("json reply"))
}

/// `/v1/servers`' entry for `region/server`.
async fn server_report(s: &TestServer, region: &str, server: &str) -> Value {
    let (code, body) = get(admin(s), "/v1/servers").await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    v["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|e| e["region"] == region && e["server"] == server)
        .cloned()
        .expect("server listed")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn unknown_fields_and_bad_values_are_refused_naming_them() {
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", STEER_ZONE)]).await;
    let cases = [
        (
            r#"{"state":"drain","untill":"2099-01-01T00:00:00Z"}"#,
            format!("unknown field `untill`, expected one of `state`, `until`, `note` (use {STATE_SHAPE})"),
        ),
        (
            r#"{"state":5}"#,
            format!("invalid type: integer `5`, expected a string (use {STATE_SHAPE})"),
        ),
        (
            r#"{"state":"drain","until":"tomorrow"}"#,
            "until: invalid time `tomorrow`: timestamp format is invalid (use RFC 3339 UTC, e.g. 2026-12-01T06:00:00Z)".to_owned(),
        ),
        (
            r#"{"state":"drain","until":"2001-01-01T00:00:00Z"}"#,
            "until: `2001-01-01T00:00:00Z` is in the past".to_owned(),
        ),
        (
            r#"{"state":"clear","note":"done"}"#,
            "`until` and `note` go with drain, up or down, not with clear".to_owned(),
        ),
        (
            &format!(r#"{{"state":"down","note":"{}"}}"#, "n".repeat(1025)),
            "note: longer than 1024 bytes".to_owned(),
        ),
    ];
    for (body, want) in &cases {
        assert_eq!(
            put(&s, LON1, body).await,
            (400, json!({ "error": want })),
            "{body}"
        );
    }
    let load = put(&s, "/v1/servers/uk/lon1/load", r#"{"calls":5,"cpss":3}"#).await;
    assert_eq!(
        load,
        (
            400,
            json!({ "error": r#"unknown field `cpss`, expected `calls` or `cps` (use {"calls": N, "cps": N})"# })
        )
    );
    let lon1 = server_report(&s, "uk", "lon1").await;
    assert_eq!(
        (&lon1["state"], &lon1["forced"], &lon1["api_state"]),
        (&json!("up"), &Value::Null, &Value::Null),
        "nothing was changed"
    );
    assert!(!s.cfg.path("state.json").exists(), "nothing was written");
    s.stop().await;
}

#[tokio::test]
async fn a_forced_state_with_until_and_note_shows_persists_and_expires() {
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", STEER_ZONE)]).await;
    let until = unix_now() + 3;
    let text = humantime::format_rfc3339(UNIX_EPOCH + Duration::from_secs(until)).to_string();
    let body = format!(r#"{{"state":"drain","until":"{text}","note":"kernel upgrade"}}"#);
    let (code, report) = put(&s, LON1, &body).await;
    assert_eq!(code, 200, "{report}");
    let api_state = json!({ "state": "drained", "until_unix": until, "active": true, "note": "kernel upgrade" });
    assert_eq!(
        (&report["state"], &report["forced_by"], &report["api_state"]),
        (&json!("drained"), &json!("api"), &api_state)
    );
    assert_eq!(
        server_report(&s, "uk", "lon1").await["api_state"],
        api_state
    );
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(s.cfg.path("state.json")).expect("state file"),
    )
    .expect("json");
    assert_eq!(
        file,
        json!({ "uk/lon1": { "state": "drained", "until": text, "note": "kernel upgrade" } })
    );
    // It ends by itself at `until`, checked once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lon1 = loop {
        let r = server_report(&s, "uk", "lon1").await;
        if r["state"] == "up" || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(unix_now() >= until, "not before its time");
    assert_eq!(
        (&lon1["state"], &lon1["forced"], &lon1["forced_by"]),
        (&json!("up"), &Value::Null, &Value::Null)
    );
    assert_eq!(lon1["api_state"]["active"], false);
    s.stop().await;
}

#[tokio::test]
async fn until_and_note_survive_a_restart() {
    let cfg = ConfigDir::new(&main_cfg(), &[("example.com.yaml", STEER_ZONE)]);
    std::fs::write(
        cfg.path("state.json"),
        r#"{"uk/lon1": {"state": "drained", "until": "2099-01-01T00:00:00Z", "note": "rack move"},
            "uk/lon2": {"state": "down", "until": "2001-01-01T00:00:00Z"}}"#,
    )
    .expect("state");
    let s = TestServer::start_in(cfg).await;
    let lon1 = server_report(&s, "uk", "lon1").await;
    assert_eq!(
        (&lon1["state"], &lon1["forced_by"], &lon1["api_state"]),
        (
            &json!("drained"),
            &json!("api"),
            &json!({ "state": "drained", "until_unix": 4_070_908_800u64, "active": true, "note": "rack move" })
        )
    );
    let lon2 = server_report(&s, "uk", "lon2").await;
    assert_eq!(
        (
            &lon2["state"],
            &lon2["forced_by"],
            &lon2["api_state"]["active"]
        ),
        (&json!("up"), &Value::Null, &json!(false)),
        "an entry past its end does not apply"
    );
    s.stop().await;
}

const ZONE_HEAD: &str = "zone: example.com\nsoa: { primary: ns1, contact: hostmaster@example.com, serial: 1 }\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n";

/// A zone map with `n` bad addresses, `h00` on line 6 and so on.
fn zone_with_problems(n: usize) -> String {
    let mut z = ZONE_HEAD.to_owned();
    for i in 0..n {
        z.push_str(&format!("  h{i:02}: {{ A: 192.0.2.999 }}\n"));
    }
    z
}

/// The report of [`zone_with_problems`]`(57)`, with `zone` the zone map's path.
fn capped_report(zone: &str) -> String {
    let mut lines: Vec<String> = (0..20)
        .map(|i| {
            format!(
                "{zone}:{}:13: records.h{i:02}.A: invalid IPv4 address `192.0.2.999`",
                6 + i
            )
        })
        .collect();
    lines.push("and 37 more problems (run `sipsteer check` to see them all)".to_owned());
    lines.join("\n")
}

#[tokio::test]
async fn a_reload_with_many_problems_reports_the_first_twenty_and_a_count() {
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", ZONE_HEAD)]).await;
    let zone = s.cfg.path("zones/example.com.yaml");
    std::fs::write(&zone, zone_with_problems(57)).expect("write");
    let want = capped_report(&zone.display().to_string());
    let (code, body) = send(admin(&s), "POST", "/v1/reload", Some(TOKEN), None).await;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (code, v),
        (
            422,
            json!({ "result": "error", "error": want, "errors": 57 })
        )
    );
    let (_, status) = get(admin(&s), "/v1/status").await;
    let status: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(status["reload"]["last_error"], json!(want));
    assert_eq!(status["reload"]["last_error_count"], 57);
    // Twenty problems are written out whole.
    std::fs::write(&zone, zone_with_problems(20)).expect("write");
    let (code, body) = send(admin(&s), "POST", "/v1/reload", Some(TOKEN), None).await;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!((code, &v["errors"]), (422, &json!(20)));
    let lines = v["error"].as_str().expect("error").lines().count();
    assert_eq!(lines, 20);
    s.stop().await;
}

#[test]
fn the_log_of_a_refused_reload_is_capped_too() {
    let dir = ConfigDir::new(
        "listen: { dns: [\"127.0.0.1:0\"], admin: \"off\" }\nzones: zones\nhealth: { check: none }\n",
        &[("example.com.yaml", ZONE_HEAD)],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(dir.main())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |want: &str| -> Value {
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(want))
            {
                return v;
            }
        }
        panic!("no log line starting with `{want}`");
    };
    next("ready");
    let zone = dir.path("zones/example.com.yaml");
    std::fs::write(&zone, zone_with_problems(57)).expect("write");
    let rejected = next("config rejected");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        rejected["fields"]["message"],
        json!(format!(
            "config rejected, still serving generation 1:\n{}",
            capped_report(&zone.display().to_string())
        ))
    );
}
