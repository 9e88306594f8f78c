//! `sipsteer explain` through the real binary, on the repository's sample config.

use std::process::Command;

fn explain(args: &[&str]) -> (bool, String, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let o = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .arg("explain")
        .args(["--config", &format!("{root}/sipsteer.yaml")])
        .args(args)
        .output()
        .expect("run");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn explains_a_uk_client() {
    let (ok, out, err) = explain(&[
        "--client",
        "192.0.2.1",
        "--ecs",
        "81.2.69.0/24",
        "_sip._udp.sip.example.com",
        "SRV",
    ]);
    assert!(ok, "{err}");
    for want in [
        "client    192.0.2.1 (ecs 81.2.69.0/24)",
        "network   81.2.69.0 - 81.2.69.255",
        "location  GB EU London (51.51, -0.13)",
        "service   sip.example.com. (ranked for the client)",
        "reason    country",
        "  1. uk              0 km  healthy   lon1 unknown, lon2 unknown, lon3 unknown (backup)",
        "  2. ams           358 km  healthy   ams1 unknown",
        "  6. sg          10848 km  healthy   sin1 unknown",
        "tiers     uk (priority 10), ams (priority 20)",
        "ecs scope 24",
        "  _sip._udp.sip.example.com. 30 SRV 10 100 5060 lon1.uk.sip.example.com.",
        "  _sip._udp.sip.example.com. 30 SRV 20 100 5060 ams1.ams.sip.example.com.",
        "  lon1.uk.sip.example.com. 30 A 192.0.2.10",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
}

#[test]
fn explains_unknown_clients_and_static_names() {
    let (ok, out, _) = explain(&["--client", "10.0.0.1", "sip.example.com"]);
    assert!(ok);
    assert!(
        out.contains("location  unknown (10.0.0.1 not in the GeoIP data)"),
        "{out}"
    );
    assert!(out.contains("reason    fallback"), "{out}");
    assert!(
        out.contains("  sip.example.com. 30 A 192.0.2.4"),
        "us-east first: {out}"
    );
    let (ok, out, _) = explain(&["--client", "10.0.0.1", "static.example.com"]);
    assert!(ok);
    assert!(!out.contains("service "), "{out}");
    assert!(
        out.contains("  static.example.com. 300 A 192.0.2.200"),
        "{out}"
    );
    let (ok, _, err) = explain(&["--client", "10.0.0.1", "static.example.com", "BOGUS"]);
    assert!(!ok);
    assert!(err.contains("unknown record type `BOGUS`"), "{err}");
}
