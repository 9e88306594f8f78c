//! What an operator sees from the real binary: the startup lines of `serve` (text without
//! colour codes when stderr is not a terminal, and JSON), `check` warnings, and `--help`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sipsteer");

/// The repository's sample config, copied with port 0 for DNS and the admin API.
fn sample_copy() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("zones")).expect("zones");
    std::fs::copy(
        root.join("zones/example.com.yaml"),
        dir.path().join("zones/example.com.yaml"),
    )
    .expect("copy zone");
    std::fs::copy(root.join("geoip/sample.csv"), dir.path().join("sample.csv")).expect("csv");
    let main = std::fs::read_to_string(root.join("sipsteer.yaml"))
        .expect("read sample")
        .replace("127.0.0.1:5353", "127.0.0.1:0")
        .replace("127.0.0.1:8053", "127.0.0.1:0")
        .replace("geoip/sample.csv", "sample.csv");
    std::fs::write(dir.path().join("sipsteer.yaml"), main).expect("write main");
    dir
}

/// Starts `serve`, collects stderr lines until one contains `ready`, then stops it.
fn startup_lines(extra: &[&str]) -> Vec<String> {
    let dir = sample_copy();
    let mut child = Command::new(BIN)
        .args(extra)
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("sipsteer.yaml"))
        .env_remove("RUST_LOG")
        .env_remove("SIPSTEER_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let done = line.contains("ready");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

fn position(lines: &[String], want: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(want))
        .unwrap_or_else(|| panic!("no line with `{want}` in:\n{}", lines.join("\n")))
}

#[test]
fn text_startup_lines_in_order_without_colour() {
    let lines = startup_lines(&[]);
    let text = lines.join("\n");
    assert!(!text.contains('\u{1b}'), "ANSI codes on a pipe:\n{text}");
    let order = [
        "INFO sipsteer::app::startup: sipsteer 0.1.0 (",
        "INFO sipsteer::app::startup: config loaded zones=1 regions=6 servers=10 probed=0 files=2",
        "geoip database opened; compiling it in the background",
        "dns listening on udp and tcp bound=127.0.0.1:",
        "admin api listening bound=127.0.0.1:",
        "geoip: opening database path=",
        "geoip: reading networks path=",
        "database_type=sipsteer-csv built=unknown",
        "geoip database loaded",
        "INFO sipsteer::app::startup: ready dns=127.0.0.1:",
    ];
    let at: Vec<usize> = order.iter().map(|w| position(&lines, w)).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "out of order:\n{text}");
    assert!(lines[0].contains(" starting config="), "{}", lines[0]);
    let ready = &lines[position(&lines, "ready")];
    assert!(
        ready.contains(" geoip=sipsteer-csv built unknown, ")
            && ready.ends_with(" networks probe_targets=0 generation=2"),
        "{ready}"
    );
    assert_eq!(lines.iter().filter(|l| l.contains("ready")).count(), 1);
}

#[test]
fn json_startup_lines() {
    let lines = startup_lines(&["--log-format", "json"]);
    let objs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for o in &objs {
        assert!(o["timestamp"].is_string() && o["level"].is_string(), "{o}");
    }
    let first = &objs[0]["fields"];
    assert!(
        first["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("sipsteer 0.1.0 (") && m.ends_with(") starting")),
        "{first}"
    );
    assert!(
        first["config"]
            .as_str()
            .is_some_and(|c| c.ends_with("sipsteer.yaml")),
        "{first}"
    );
    let loaded = objs
        .iter()
        .find(|o| o["fields"]["message"] == "config loaded")
        .expect("config loaded line");
    assert_eq!(loaded["fields"]["zones"], 1);
    assert_eq!(loaded["fields"]["regions"], 6);
    assert_eq!(loaded["fields"]["servers"], 10);
    assert_eq!(loaded["fields"]["probed"], 0);
    let ready = objs.last().expect("lines");
    let f = &ready["fields"];
    assert_eq!(f["message"], "ready", "{ready}");
    assert!(
        f["geoip"].as_str().is_some_and(
            |g| g.starts_with("sipsteer-csv built unknown, ") && g.ends_with(" networks")
        ),
        "{ready}"
    );
    assert!(
        f["dns"]
            .as_str()
            .is_some_and(|d| d.starts_with("127.0.0.1:")),
        "{ready}"
    );
    assert!(
        f["admin"]
            .as_str()
            .is_some_and(|d| d.starts_with("127.0.0.1:")),
        "{ready}"
    );
    assert_eq!(f["probe_targets"], 0);
    // Generation 1 answers at once; the compiled GeoIP map is generation 2.
    assert_eq!(f["generation"], 2);
}

fn check(config: &Path) -> (bool, String, String) {
    let o = Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_warns_about_a_transport_some_regions_cannot_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("zones")).expect("zones");
    std::fs::write(
        dir.path().join("sipsteer.yaml"),
        "listen: { dns: [\"127.0.0.1:0\"], admin: off }\nzones: zones\nhealth: { check: none }\n",
    )
    .expect("main");
    std::fs::write(
        dir.path().join("zones/z.yaml"),
        r#"zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
regions:
  us:
    location: [39, -77]
    servers:
      iad1: { address: 192.0.2.40, transports: [udp, tcp, tls] }
  uk:
    location: [51.5, 0]
    servers:
      lon1: { address: 192.0.2.10 }
  de:
    location: [50.1, 8.7]
    servers:
      fra1: { address: 192.0.2.20 }
services:
  voice: { regions: [us, uk, de], transports: [tls, udp] }
"#,
    )
    .expect("zone");
    let (ok, out, err) = check(&dir.path().join("sipsteer.yaml"));
    assert!(ok, "warnings must not fail check: {err}");
    assert_eq!(
        err.trim_end(),
        "warning: zones/z.yaml: services.voice.transports: tls is offered but no server in uk, de \
         speaks tls; clients steered there get no _sips._tcp.voice.example.com. records"
    );
    assert!(
        out.ends_with("ok (1 zones, 3 regions, 2 files, 1 warning(s))\n"),
        "{out}"
    );
}

#[test]
fn shipped_examples_check_without_warnings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for cfg in [
        "sipsteer.yaml",
        "examples/shared-regions/sipsteer.yaml",
        "packaging/sipsteer.yaml",
    ] {
        let (ok, out, err) = check(&root.join(cfg));
        assert!(ok, "{cfg}: {err}");
        assert_eq!(err, "", "{cfg}");
        assert!(
            out.contains(": ok (") && out.contains(", 0 warning(s))"),
            "{cfg}: {out}"
        );
    }
}

#[test]
fn help_describes_arguments_environment_and_docs() {
    let help = |args: &[&str]| {
        let o = Command::new(BIN).args(args).output().expect("run");
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let top = help(&["--help"]);
    for want in [
        "RUST_LOG",
        "SIPSTEER_ADMIN_TOKEN",
        "SIPSTEER_CONFIG",
        "docs/",
        "--log-format",
    ] {
        assert!(top.contains(want), "`{want}` missing from --help:\n{top}");
    }
    let serve = help(&["serve", "--help"]);
    assert!(
        serve.contains("The server config (sipsteer.yaml)"),
        "{serve}"
    );
    let build = help(&["geoip", "build", "--help"]);
    assert!(build.contains("The input CSV"), "{build}");
    assert!(build.contains("The .mmdb file to write"), "{build}");
    let version = help(&["--version"]);
    assert!(version.starts_with("sipsteer 0.1.0 ("), "{version}");
}
