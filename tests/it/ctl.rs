//! `sipsteer ctl` through the real binary against a real server with real SIP responders:
//! the servers table, drain/undrain/down changing the UDP DNS answer, load, reload, explain
//! (the same trace as `sipsteer explain --live`), events, the address and token from the
//! config file, and the exit codes for scripts.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::console::{self, admin, wait_srv};
use crate::support::dns::TestServer;
use crate::support::http::get;
use crate::support::sip::{self, Mode, Responder};

const TOKEN: &str = "ctl-token-1234";

fn main_cfg() -> String {
    console::main_cfg(TOKEN, 1, "capacity: { overflow_at: 0.8, report_ttl: 1h }\n")
}

fn zone(uk: &Responder, de: &Responder) -> String {
    console::zone(uk, de, ", capacity: { calls: 100, cps: 10 }")
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs `sipsteer ctl ARGS` (off the async workers) with a clean environment for the token.
async fn ctl(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let o = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
            .arg("ctl")
            .args(&args)
            .env_remove("SIPSTEER_TOKEN")
            .env_remove("SIPSTEER_ADMIN_TOKEN")
            .env_remove("SIPSTEER_CONFIG")
            .output()
            .expect("run sipsteer ctl");
        Run {
            code: o.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    })
    .await
    .expect("join")
}

async fn started() -> (TestServer, Responder, Responder, String) {
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de))]).await;
    let a = admin(&s);
    let start = Instant::now();
    while get(a, "/readyz").await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_srv(&s, &["10 lon1", "20 fra1"]).await;
    (s, uk, de, a.to_string())
}

/// The first `n` columns of the table line of `server`.
fn columns(table: &str, server: &str, n: usize) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{server} ")))
        .unwrap_or_else(|| panic!("no line for {server} in:\n{table}"));
    line.split_whitespace().take(n).map(str::to_owned).collect()
}

#[tokio::test]
async fn drain_undrain_and_down_change_the_dns_answer() {
    let (s, _uk, _de, a) = started().await;
    let r = ctl(&["--addr", &a, "servers"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out
            .starts_with("SERVER   STATE  FORCED  UNTIL  PROBE   RTT"),
        "{}",
        r.out
    );
    assert_eq!(
        columns(&r.out, "uk/lon1", 6)[..5],
        ["uk/lon1", "up", "-", "-", "200"]
    );

    let r = ctl(&[
        "--addr",
        &a,
        "--token",
        TOKEN,
        "drain",
        "uk/lon1",
        "--until",
        "2099-01-01T00:00:00Z",
        "--note",
        "kernel upgrade",
    ])
    .await;
    assert_eq!((r.code, r.err.as_str()), (0, ""));
    assert_eq!(
        r.out,
        "uk/lon1: drained, forced drained (api) until 2099-01-01T00:00:00Z: kernel upgrade\n"
    );
    wait_srv(&s, &["10 fra1"]).await;
    let r = ctl(&["--addr", &a, "servers"]).await;
    assert_eq!(
        columns(&r.out, "uk/lon1", 4),
        ["uk/lon1", "drained", "drained", "(api)"]
    );
    assert!(
        r.out
            .lines()
            .any(|l| l.starts_with("uk/lon1") && l.ends_with("kernel upgrade"))
    );

    let r = ctl(&["--addr", &a, "--token", TOKEN, "undrain", "uk/lon1"]).await;
    assert_eq!((r.code, r.out.as_str()), (0, "uk/lon1: up\n"), "{}", r.err);
    wait_srv(&s, &["10 lon1", "20 fra1"]).await;

    let r = ctl(&[
        "--addr", &a, "--token", TOKEN, "down", "de/fra1", "--until", "1h",
    ])
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.starts_with("de/fra1: down, forced down (api) until "),
        "{}",
        r.out
    );
    wait_srv(&s, &["10 lon1"]).await;

    let r = ctl(&["--addr", &a, "events"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let forced: Vec<&str> = r
        .out
        .lines()
        .filter(|l| l.contains(" forced "))
        .map(|l| l.split_once(" forced ").map_or("", |x| x.1))
        .collect();
    assert_eq!(forced.len(), 3, "{}", r.out);
    assert_eq!(
        forced[0],
        "uk/lon1: drain until 2099-01-01T00:00:00Z: kernel upgrade"
    );
    assert_eq!(forced[1], "uk/lon1: clear");
    assert!(
        forced[2].starts_with("de/fra1: down until "),
        "{}",
        forced[2]
    );
    s.stop().await;
}

#[tokio::test]
async fn load_reload_status_and_json() {
    let (s, _uk, _de, a) = started().await;
    let r = ctl(&["--addr", &a, "--token", TOKEN, "load", "uk/lon1", "90", "5"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "uk/lon1: full, calls/cps 90/5\n"),
        "{}",
        r.err
    );
    wait_srv(&s, &["10 fra1"]).await;

    let r = ctl(&["--addr", &a, "--token", TOKEN, "reload"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "reload: unchanged\n"),
        "{}",
        r.err
    );

    let r = ctl(&["--addr", &a, "status"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(
        lines[0],
        format!("generation 1 (sipsteer {})", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        lines[1],
        "reload: unchanged (1 applied, 1 unchanged, 0 refused)"
    );
    assert_eq!(
        lines[2],
        "zone example.com.: serial 1, services sip.example.com."
    );
    assert_eq!(lines[3], "servers: 1 full, 1 up");

    let r = ctl(&["--addr", &a, "--json", "servers"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    let servers = v["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["state"], "full");
    assert_eq!(servers[0]["load"]["calls"], 90);
    assert_eq!(
        servers[0]["capacity"],
        serde_json::json!({"calls": 100, "cps": 10})
    );
    assert_eq!(servers[1]["capacity"], serde_json::Value::Null);

    // A bad edit: the reload is refused (exit 1) with the problem at file:line:col.
    let zone_file = s.cfg.path("zones/example.com.yaml");
    let text = std::fs::read_to_string(&zone_file).expect("read");
    std::fs::write(
        &zone_file,
        text.replace("ns: [ns1]", "ns: [ns1]\nttl: nope"),
    )
    .expect("write");
    let r = ctl(&["--addr", &a, "--token", TOKEN, "reload"]).await;
    assert_eq!(r.code, 1, "{} {}", r.out, r.err);
    assert_eq!(
        r.err,
        format!(
            "error: admin api answered 422: {}:5:6: invalid u32\n",
            zone_file.display()
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn explain_shows_the_same_trace_as_sipsteer_explain() {
    let (s, _uk, _de, a) = started().await;
    let r = ctl(&["--addr", &a, "--token", TOKEN, "drain", "uk/lon1"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let args = ["--client", "192.0.2.1", "_sip._udp.sip.example.com", "SRV"];
    let mut with = vec!["--addr", a.as_str(), "explain"];
    with.extend(args);
    let live = ctl(&with).await;
    assert_eq!(live.code, 0, "{}", live.err);
    assert!(live.out.contains("uk "), "{}", live.out);
    assert!(live.out.contains("lon1 drained"), "{}", live.out);

    let main = s.cfg.main().display().to_string();
    let url = format!("http://{a}");
    let o = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sipsteer"))
            .args(["explain", "--config", &main, "--live", &url])
            .args(args)
            .output()
            .expect("run explain")
    })
    .await
    .expect("join");
    assert!(o.status.success());
    assert_eq!(live.out, String::from_utf8_lossy(&o.stdout));
    s.stop().await;
}

#[tokio::test]
async fn address_and_token_come_from_the_config_file() {
    let (s, _uk, _de, a) = started().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("sipsteer.yaml");
    std::fs::write(
        &cfg,
        format!("listen: {{ admin: \"{a}\" }}\nadmin: {{ token: {TOKEN} }}\n"),
    )
    .expect("write");
    let cfg = cfg.display().to_string();
    let r = ctl(&["--config", &cfg, "drain", "de/fra1"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "de/fra1: drained, forced drained (api)\n"),
        "{}",
        r.err
    );
    wait_srv(&s, &["10 lon1"]).await;

    // A wrong token from the command line wins over the config's, and is refused.
    let r = ctl(&[
        "--config",
        &cfg,
        "--token",
        "wrong-token",
        "undrain",
        "de/fra1",
    ])
    .await;
    assert_eq!(r.code, 4);
    assert_eq!(
        r.err,
        "error: admin api answered 401: missing or wrong bearer token\n"
    );

    // A config that is not valid is bad input, named at file:line:col.
    std::fs::write(dir.path().join("bad.yaml"), "listen: { admin: nowhere }\n").expect("write");
    let bad = dir.path().join("bad.yaml").display().to_string();
    let r = ctl(&["--config", &bad, "status"]).await;
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(
        r.err.starts_with(&format!("error: {bad}:1:18: ")),
        "{}",
        r.err
    );
    s.stop().await;
}

#[tokio::test]
async fn exit_codes_tell_scripts_what_went_wrong() {
    let (s, _uk, _de, a) = started().await;
    // No token: refused.
    let r = ctl(&["--addr", &a, "drain", "uk/lon1"]).await;
    assert_eq!(r.code, 4);
    assert_eq!(
        r.err,
        "error: admin api answered 401: missing or wrong bearer token\n"
    );
    // No such server, or not REGION/SERVER: bad input.
    let r = ctl(&["--addr", &a, "--token", TOKEN, "drain", "uk/nope"]).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (2, "error: admin api answered 404: no server uk/nope\n")
    );
    let r = ctl(&["--addr", &a, "--token", TOKEN, "drain", "lon1"]).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (2, "error: `lon1` is not REGION/SERVER (e.g. uk/lon1)\n")
    );
    let r = ctl(&[
        "--addr",
        &a,
        "--token",
        TOKEN,
        "drain",
        "uk/lon1",
        "--until",
        "yesterday",
    ])
    .await;
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(
        r.err.starts_with("error: admin api answered 400: until: "),
        "{}",
        r.err
    );
    // A command line clap cannot read: 2 as well.
    let r = ctl(&["--addr", &a, "load", "uk/lon1", "many"]).await;
    assert_eq!(r.code, 2);
    s.stop().await;

    // Nothing listening: unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let r = ctl(&["--addr", &addr, "status"]).await;
    assert_eq!(r.code, 3);
    assert!(
        r.err
            .starts_with(&format!("error: cannot connect to admin api {addr}: ")),
        "{}",
        r.err
    );
}

#[tokio::test]
async fn an_instance_without_a_token_and_a_config_without_admin() {
    let s = TestServer::start(
        "listen: { dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }\nzones: zones\nhealth: { check: none }\n",
        &[("example.com.yaml", crate::support::dns::STATIC_ZONE)],
    )
    .await;
    let a = admin(&s).to_string();
    // Reading works without a token; changing is refused (4) with the reason.
    let r = ctl(&["--addr", &a, "events"]).await;
    assert_eq!((r.code, r.out.as_str()), (0, ""), "{}", r.err);
    let r = ctl(&["--addr", &a, "--token", "any-token-at-all", "reload"]).await;
    assert_eq!(r.code, 4);
    assert_eq!(
        r.err,
        "error: admin api answered 403: changing endpoints are disabled: set admin.token or SIPSTEER_ADMIN_TOKEN\n"
    );
    s.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("sipsteer.yaml");
    std::fs::write(&cfg, "listen: { admin: \"off\" }\n").expect("write");
    let cfg = cfg.display().to_string();
    let r = ctl(&["--config", &cfg, "status"]).await;
    assert_eq!(r.code, 2);
    assert_eq!(
        r.err,
        format!("error: the admin API is off in {cfg} (listen.admin); use --addr\n")
    );
}

#[tokio::test]
async fn events_follow_prints_new_events_as_they_come() {
    let (s, _uk, _de, a) = started().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .args(["ctl", "--addr", &a, "events", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run ctl events --follow");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let r = ctl(&[
        "--addr", &a, "--token", TOKEN, "drain", "de/fra1", "--note", "followed",
    ])
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    let found = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.ends_with(" forced de/fra1: drain: followed") => return Ok(l),
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        Err(seen)
    })
    .await
    .expect("join");
    let _ = child.kill();
    let _ = child.wait();
    assert!(found.is_ok(), "no drain event followed: {found:?}");
    s.stop().await;
}
