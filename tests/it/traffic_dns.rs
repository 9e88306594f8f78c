//! Traffic engineering over real sockets: split answers and their ECS scope, a reload that
//! changes only bias or split, proportional shedding from load reports, and the reasons in
//! the query log, `/v1/explain` and the metrics.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::support::dns::*;
use crate::support::http::{get, send};
use crate::support::steer::{GEO_CSV, MAIN_GEO};
use crate::traffic::{TRAFFIC_ZONE, zone_with};
use hickory_proto::rr::RecordType;
use sipsteer::steering::{self, Asked, HealthView};

const TOKEN: &str = "traffic-token-7";

async fn server_with(main: &str, zone: &str) -> TestServer {
    let cfg = ConfigDir::new(main, &[("example.com.yaml", zone)]);
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    TestServer::start_in(cfg).await
}

fn ecs(s: &str, prefix: u8) -> Q {
    Q {
        ecs: Some((s.parse::<IpAddr>().expect("ip"), prefix)),
        ..Q::default()
    }
}

/// The address each region answers for A.
fn region_of(addr: &str) -> &'static str {
    match addr {
        "192.0.2.10" | "2001:db8::10" => "uk",
        "192.0.2.20" | "2001:db8::20" => "de",
        "192.0.2.30" | "2001:db8::30" => "ams",
        _ => "?",
    }
}

async fn answered(s: &TestServer, rtype: RecordType, q: &Q) -> (String, u8) {
    let m = udp(s.addr, "sip.example.com.", rtype, q).await;
    let rr = rrs(&m.answers);
    assert_eq!(rr.len(), 1, "{rr:?}");
    let addr = rr[0].rsplit(' ').next().unwrap_or_default().to_string();
    let scope = ecs_of(&m).map_or(255, |e| e.2);
    (region_of(&addr).to_string(), scope)
}

#[tokio::test]
async fn split_answers_follow_the_prefix_hash_with_the_prefix_as_scope() {
    let zone = zone_with("    split: { uk: { de: 30, ams: 20 } }\n");
    let s = server_with(MAIN_GEO, &zone).await;
    // What the steering core says for each prefix, from the same files.
    let cfg = sipsteer::config::load(&s.cfg.main()).expect("config");
    let st = steering::compile(&cfg, sipsteer::reload::load_geo(&cfg).expect("geo"));
    let h = HealthView::all_up(st.slots);
    let mut seen = std::collections::HashMap::new();
    for i in 0..96u8 {
        let net = format!("10.{i}.{}.0", 255 - i);
        let p = steering::plan(&st, &h, 0, Asked::Service, net.parse().expect("ip"));
        let want = &st.regions[st.services[0].regions[p.tiers()[0] as usize]].name;
        let (got, scope) = answered(&s, RecordType::A, &ecs(&net, 24)).await;
        assert_eq!(&got, want, "{net}/24");
        assert_eq!(scope, 24, "{net}/24: the answer holds for the hashed /24");
        *seen.entry(got).or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        3,
        "every region answers some prefixes: {seen:?}"
    );
    // The hash is the same on every build and instance: these prefixes are pinned.
    for (net, want) in [
        ("10.0.255.0", "ams"),
        ("10.1.254.0", "uk"),
        ("10.2.253.0", "de"),
        ("10.3.252.0", "uk"),
    ] {
        assert_eq!(
            answered(&s, RecordType::A, &ecs(net, 24)).await.0,
            want,
            "{net}"
        );
    }
    // A resolver that sends less than the hashed prefix gets the /24's answer and scope.
    let (got, scope) = answered(&s, RecordType::A, &ecs("10.7.0.0", 16)).await;
    let p = steering::plan(&st, &h, 0, Asked::Service, "10.7.0.0".parse().expect("ip"));
    assert_eq!(
        got,
        st.regions[st.services[0].regions[p.tiers()[0] as usize]].name
    );
    assert_eq!(scope, 24);
    // IPv6: the /56 is hashed, whatever the resolver sends.
    for src in [56, 48, 64] {
        let (_, scope) = answered(&s, RecordType::AAAA, &ecs("2001:db8:1:2300::", src)).await;
        assert_eq!(scope, 56, "source /{src}");
    }
    // A split region's SRV answer: the target's servers first, the region's next.
    let m = udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &ecs("10.0.255.0", 24),
    )
    .await;
    assert_eq!(ecs_of(&m).map(|e| e.2), Some(24));
    assert_eq!(
        rrs(&m.answers),
        [
            "_sip._udp.sip.example.com. 30 SRV 10 100 5060 ams1.ams.sip.example.com.",
            "_sip._udp.sip.example.com. 30 SRV 20 100 5060 lon1.uk.sip.example.com.",
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_reload_that_changes_only_bias_or_split_changes_answers() {
    let s = server_with(MAIN_GEO, TRAFFIC_ZONE).await;
    let paris = ecs("90.0.0.0", 24);
    assert_eq!(answered(&s, RecordType::A, &paris).await.0, "uk");
    let write = |z: &str| std::fs::write(s.cfg.path("zones/example.com.yaml"), z).expect("write");

    write(&zone_with("    bias: { ams: 100 }\n"));
    assert!(matches!(
        s.reload().await,
        sipsteer::reload::Outcome::Applied(_)
    ));
    assert_eq!(answered(&s, RecordType::A, &paris).await.0, "ams");

    write(&zone_with(
        "    bias: { ams: 100 }\n    split: { ams: { de: 100 } }\n",
    ));
    assert!(matches!(
        s.reload().await,
        sipsteer::reload::Outcome::Applied(_)
    ));
    let (got, scope) = answered(&s, RecordType::A, &paris).await;
    assert_eq!((got.as_str(), scope), ("de", 24));

    write(TRAFFIC_ZONE);
    assert!(matches!(
        s.reload().await,
        sipsteer::reload::Outcome::Applied(_)
    ));
    assert_eq!(answered(&s, RecordType::A, &paris).await.0, "uk");
    s.stop().await;
}

fn admin_main(extra: &str) -> String {
    format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\ngeoip: {{ database: geo.csv }}\nadmin: {{ token: {TOKEN} }}\nhealth: {{ check: none }}\nquery_log: {{ path: queries.jsonl, sample: 1 }}\n{extra}"
    )
}

fn admin(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

/// The query log's lines once there are `n`.
async fn log_lines(s: &TestServer, n: usize) -> Vec<serde_json::Value> {
    let path = s.cfg.path("queries.jsonl");
    let start = Instant::now();
    loop {
        let t = std::fs::read_to_string(&path).unwrap_or_default();
        if t.lines().count() >= n {
            return t
                .lines()
                .map(|l| serde_json::from_str(l).expect("json line"))
                .collect();
        }
        assert!(start.elapsed() < Duration::from_secs(5), "query log: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn reasons_in_the_query_log_explain_and_metrics() {
    let zone = zone_with("    bias: { ams: 100 }\n    split: { uk: { de: 100 } }\n");
    let s = server_with(&admin_main(""), &zone).await;
    let a = admin(&s);
    // Paris: ams by bias. An unknown client: uk by the fallback order, split to de.
    assert_eq!(
        answered(&s, RecordType::A, &ecs("90.0.0.0", 24)).await.0,
        "ams"
    );
    assert_eq!(
        answered(&s, RecordType::A, &ecs("10.1.2.0", 24)).await.0,
        "de"
    );
    let lines = log_lines(&s, 2).await;
    assert_eq!(
        (&lines[0]["reason"], &lines[0]["region"]),
        (&"bias".into(), &"ams".into())
    );
    assert_eq!(
        (&lines[1]["reason"], &lines[1]["region"]),
        (&"split".into(), &"de".into())
    );

    let (code, body) = get(
        a,
        "/v1/explain?client=192.0.2.1&ecs=10.1.2.0/24&name=sip.example.com&type=A",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let svc = &v["service"];
    assert_eq!(svc["reason"], "split", "{body}");
    assert_eq!(svc["scope"], 24);
    assert_eq!(svc["split"]["region"], "uk");
    assert_eq!(svc["split"]["prefix"], "10.1.2.0/24");
    assert_eq!(svc["split"]["target"], "de");
    assert_eq!(svc["split"]["answered"], true);
    assert_eq!(svc["split"]["targets"][0]["percent"], 100.0);
    assert_eq!(svc["tiers"][0], "de");
    let (_, body) = get(
        a,
        "/v1/explain?client=192.0.2.1&ecs=90.0.0.0/24&name=sip.example.com&type=A",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["service"]["reason"], "bias", "{body}");
    assert_eq!(v["service"]["ranking"][0]["region"], "ams");
    assert_eq!(v["service"]["ranking"][0]["bias_km"], 100.0);
    assert_eq!(
        v["service"]["split"],
        serde_json::Value::Null,
        "ams is not split"
    );

    let (_, scrape) = get(a, "/metrics").await;
    for reason in ["bias", "split"] {
        let line =
            format!(r#"sipsteer_queries_total{{type="A",rcode="NOERROR",reason="{reason}"}} 1"#);
        assert!(scrape.lines().any(|l| l == line), "{line}\n{scrape}");
    }
    s.stop().await;
}

#[tokio::test]
async fn load_between_the_watermarks_sheds_a_stable_share_of_prefixes() {
    let zone = TRAFFIC_ZONE.replace(
        "lon1: { address: [192.0.2.10, \"2001:db8::10\"] }",
        "lon1: { address: [192.0.2.10, \"2001:db8::10\"], capacity: { calls: 100 } }",
    );
    let s = server_with(
        &admin_main("capacity: { shed: { from: 0.5, to: 0.9 } }\n"),
        &zone,
    )
    .await;
    let a = admin(&s);
    let load = |calls: u32| async move {
        let body = format!("{{\"calls\":{calls}}}");
        send(
            a,
            "PUT",
            "/v1/servers/uk/lon1/load",
            Some(TOKEN),
            Some(&body),
        )
        .await
    };
    let nets: Vec<String> = (0..64u8).map(|i| format!("10.3.{i}.0")).collect();
    // Below the first watermark: everybody gets uk, with the fallback scope.
    assert_eq!(load(40).await.0, 200);
    for n in &nets[..8] {
        let (got, scope) = answered(&s, RecordType::A, &ecs(n, 24)).await;
        assert_eq!(got, "uk");
        assert!(scope < 24, "{scope}");
    }
    // At 70 calls lon1 sheds (70 - 50) / (90 - 50) = half of its clients, by prefix hash.
    assert_eq!(load(70).await.0, 200);
    let half = steering::threshold(0.5);
    let mut shed = 0;
    for n in &nets {
        let (key, _) = steering::client_prefix(n.parse().expect("ip"));
        let want = if steering::shed_hash(&key) < half {
            "de"
        } else {
            "uk"
        };
        let (got, scope) = answered(&s, RecordType::A, &ecs(n, 24)).await;
        assert_eq!((got.as_str(), scope), (want, 24), "{n}");
        shed += usize::from(want == "de");
    }
    assert!((16..=48).contains(&shed), "{shed} of 64");
    let (_, body) = get(
        a,
        "/v1/explain?client=192.0.2.1&ecs=10.3.0.0/24&name=sip.example.com&type=A",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let lon1 = v["service"]["ranking"][0]["servers"][0].clone();
    assert_eq!(
        (lon1["name"].clone(), lon1["shed_percent"].clone()),
        ("lon1".into(), 50.0.into()),
        "{body}"
    );
    assert_eq!(v["service"]["shed_prefix"], "10.3.0.0/24");
    let (_, servers) = get(a, "/v1/servers").await;
    let servers: serde_json::Value = serde_json::from_str(&servers).expect("json");
    let lon1 = servers["servers"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["server"] == "lon1"))
        .expect("lon1");
    let share = lon1["shed"].as_f64().expect("a shedding share");
    assert!((share - 0.5).abs() < 1e-9, "{lon1}");
    // `explain --live` reads the shedding share and decides as the server does.
    let shed_net = nets
        .iter()
        .find(|n| {
            let (key, _) = steering::client_prefix(n.parse().expect("ip"));
            steering::shed_hash(&key) < half
        })
        .expect("a shed prefix")
        .clone();
    let cfg = s.cfg.main();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sipsteer"))
            .args(["explain", "--config"])
            .arg(cfg)
            .args(["--live", &format!("http://{a}"), "--client", "192.0.2.1"])
            .args(["--ecs", &format!("{shed_net}/24"), "sip.example.com", "A"])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "reason    shed",
        "lon1 up (shedding 50%, this client left out)",
        "tiers     de (priority 10), ams (priority 20)",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    // At the second watermark lon1 is full: uk is out for everybody.
    assert_eq!(load(90).await.0, 200);
    for n in &nets[..8] {
        assert_eq!(answered(&s, RecordType::A, &ecs(n, 24)).await.0, "de");
    }
    s.stop().await;
}

/// `sipsteer explain` through the binary on a config in `dir`.
fn explain_cli(dir: &ConfigDir, args: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .arg("explain")
        .args(["--config", &dir.main().display().to_string()])
        .args(args)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn explain_prints_the_split_and_the_bias() {
    let zone = zone_with("    bias: { ams: 100 }\n    split: { uk: { de: 100 } }\n");
    let dir = ConfigDir::new(MAIN_GEO, &[("example.com.yaml", &zone)]);
    std::fs::write(dir.path("geo.csv"), GEO_CSV).expect("csv");
    let out = explain_cli(
        &dir,
        &[
            "--client",
            "192.0.2.1",
            "--ecs",
            "10.1.2.0/24",
            "sip.example.com",
            "A",
        ],
    );
    for want in [
        "reason    split",
        "split     10.1.2.0/24 of uk: de 100% -> sent to de",
        "tiers     de (priority 10), uk (priority 20)",
        "ecs scope 24",
        "  sip.example.com. 30 A 192.0.2.20",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    let out = explain_cli(
        &dir,
        &[
            "--client",
            "192.0.2.1",
            "--ecs",
            "90.0.0.0/24",
            "sip.example.com",
            "A",
        ],
    );
    for want in [
        "reason    bias",
        "  1. ams        430 km (bias +100 km)  healthy   ams1 unknown",
        "  2. uk            344 km  healthy   lon1 unknown",
        "ecs scope 16",
        "  sip.example.com. 30 A 192.0.2.30",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    assert!(!out.contains("split "), "{out}");
}
