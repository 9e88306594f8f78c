//! Every kind of config error, asserted by message and file:line:col, plus the sample files.

use crate::support::dns::{ConfigDir, MAIN, repo_root};

const HEAD: &str =
    "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\n";

/// Loads a config with one zone file `z.yaml` and returns the errors as printed.
fn errors(main: &str, zone: &str) -> Vec<String> {
    let dir = ConfigDir::new(main, &[("z.yaml", zone)]);
    let root = format!("{}/", dir.dir.path().display());
    match sipsteer::config::load(&dir.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    }
}

fn zone_errors(body: &str) -> Vec<String> {
    errors(MAIN, &format!("{HEAD}{body}"))
}

#[test]
fn unknown_key() {
    assert_eq!(
        zone_errors("recrds: {}\n"),
        [
            "zones/z.yaml:4:1: unknown field `recrds`, expected one of zone, ttl, soa, ns, records, regions, services, dnssec"
        ]
    );
}

#[test]
fn duplicate_key() {
    assert_eq!(
        zone_errors("records:\n  www: { A: 192.0.2.1 }\n  www: { A: 192.0.2.2 }\n"),
        ["zones/z.yaml:6:3: duplicate key `www`"]
    );
}

#[test]
fn duplicate_region_is_an_error_not_a_silent_win() {
    let body = "regions:\n  uk:\n    location: [51.5, 0]\n    servers: { a: { address: 192.0.2.1 } }\n  uk:\n    location: [1, 1]\n    servers: { b: { address: 192.0.2.2 } }\n";
    assert_eq!(zone_errors(body), ["zones/z.yaml:8:3: duplicate key `uk`"]);
}

#[test]
fn region_defined_twice_across_files() {
    let main = format!(
        "{MAIN}regions:\n  uk:\n    location: [51.5, 0]\n    servers: {{ a: {{ address: 192.0.2.1 }} }}\n"
    );
    let body = format!(
        "{HEAD}regions:\n  uk:\n    location: [1, 1]\n    servers: {{ b: {{ address: 192.0.2.2 }} }}\n"
    );
    let got = errors(&main, &body);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("zones/z.yaml:5:3: regions.uk: region `uk` is already defined at "),
        "{got:?}"
    );
    assert!(got[0].ends_with("sipsteer.yaml:6"), "{got:?}");
}

#[test]
fn name_outside_the_zone() {
    assert_eq!(
        zone_errors("records:\n  www.example.org.: { A: 192.0.2.1 }\n"),
        [
            "zones/z.yaml:5:3: records.www.example.org.: name `www.example.org.` is outside the zone example.com."
        ]
    );
}

#[test]
fn cname_beside_other_data() {
    assert_eq!(
        zone_errors("records:\n  www: { A: 192.0.2.1, CNAME: web }\n"),
        [
            "zones/z.yaml:5:24: records.www.CNAME: CNAME cannot stand beside other data at the same name"
        ]
    );
    assert_eq!(
        zone_errors("records:\n  \"@\": { CNAME: web }\n"),
        ["zones/z.yaml:5:10: records.@.CNAME: CNAME is not allowed at the zone apex"]
    );
}

#[test]
fn bad_addresses() {
    assert_eq!(
        zone_errors("records:\n  a: { A: [192.0.2.1, 192.0.2.300], AAAA: \"2001:db8::g\" }\n"),
        [
            "zones/z.yaml:5:23: records.a.A: invalid IPv4 address `192.0.2.300`",
            "zones/z.yaml:5:43: records.a.AAAA: invalid IPv6 address `2001:db8::g`",
        ]
    );
}

#[test]
fn ttl_out_of_range() {
    assert_eq!(
        zone_errors("ttl: 700000\n"),
        ["zones/z.yaml:4:6: ttl: ttl must be 0 to 604800 seconds"]
    );
    assert_eq!(zone_errors("ttl: -1\n"), ["zones/z.yaml:4:6: invalid u32"]);
    assert_eq!(
        zone_errors("records:\n  a: { A: 192.0.2.1, ttl: 9999999 }\n"),
        ["zones/z.yaml:5:27: records.a.ttl: ttl must be 0 to 604800 seconds"]
    );
}

#[test]
fn two_files_claim_one_zone() {
    let z = HEAD.to_string();
    let dir = ConfigDir::new(MAIN, &[("a.yaml", &z), ("b.yaml", &z)]);
    let err = sipsteer::config::load(&dir.main()).expect_err("must fail");
    assert_eq!(err.0.len(), 1);
    let e = &err.0[0];
    assert!(e.file.ends_with("zones/b.yaml"));
    assert_eq!((e.line, e.column), (1, 7));
    assert!(
        e.message
            .starts_with("zone example.com. is already defined in "),
        "{}",
        e.message
    );
    assert!(e.message.ends_with("zones/a.yaml"));
}

#[test]
fn record_syntax_and_unknown_types() {
    assert_eq!(
        zone_errors("records:\n  y: { FOO: bar, MX: mail, SRV: \"1 2 x t\" }\n"),
        [
            "zones/z.yaml:5:8: records.y.FOO: unknown record type `FOO` (use A, AAAA, CNAME, MX, TXT, SRV, NAPTR, NS, CAA, PTR)",
            "zones/z.yaml:5:22: records.y.MX: MX needs 2 fields (PREFERENCE EXCHANGE), got `mail`",
            "zones/z.yaml:5:33: records.y.SRV: SRV port must be a number from 0 to 65535, got `x`",
        ]
    );
}

#[test]
fn record_data_without_a_wire_form() {
    let long = "x".repeat(300);
    assert_eq!(
        zone_errors(&format!(
            "records:\n  y: {{ NAPTR: '10 20 \"S\" \"SIP+D2U\" \"{long}\" .' }}\n"
        )),
        [
            "zones/z.yaml:5:15: records.y.NAPTR: NAPTR value cannot be written as record data: char data length exceeds 255: 300"
        ]
    );
}

#[test]
fn yaml_syntax_error_has_a_location() {
    assert_eq!(
        zone_errors("records: [\n"),
        ["zones/z.yaml:4:10: expected mapping start"]
    );
    assert_eq!(
        zone_errors("records:\n  a: { A: 192.0.2.1\n"),
        ["zones/z.yaml:5:6: unclosed bracket '{'"]
    );
}

#[test]
fn main_file_errors() {
    let got = errors(
        "listen: { dns: [\"127.0.0.1\"], admin: \"0.0.0.0:8053\" }\nzones: zones\ndns: { udp_payload: 100 }\nhealth: { interval: 5x }\n",
        HEAD,
    );
    assert_eq!(
        got,
        [
            "sipsteer.yaml:1:17: listen.dns: invalid listen address `127.0.0.1` (use ip:port, [v6]:port)",
            "sipsteer.yaml:1:38: listen.admin: admin API on non-loopback address 0.0.0.0:8053 needs a token (admin.token or SIPSTEER_ADMIN_TOKEN)",
            "sipsteer.yaml:3:21: dns.udp_payload: must be between 512 and 4096",
            "sipsteer.yaml:4:21: health.interval: invalid duration unit in `5x` (use ms, s, m or h)",
        ]
    );
}

#[test]
fn a_signature_cache_out_of_range_is_an_error() {
    for bad in ["8", "20000000"] {
        let got = errors(
            &format!(
                "listen: {{ dns: [\"127.0.0.1:53\"] }}\nzones: zones\ndns: {{ signature_cache: {bad} }}\n"
            ),
            HEAD,
        );
        assert_eq!(
            got,
            ["sipsteer.yaml:3:25: dns.signature_cache: must be between 16 and 10000000"],
            "{bad}"
        );
    }
}

#[test]
fn missing_zones_directory() {
    let dir = ConfigDir::new(MAIN, &[]);
    std::fs::remove_dir(dir.path("zones")).expect("rmdir");
    let err = sipsteer::config::load(&dir.main()).expect_err("must fail");
    assert_eq!(err.0.len(), 1);
    assert!(
        err.0[0]
            .message
            .starts_with("cannot read zones directory: no such file"),
        "{}",
        err.0[0].message
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let got = zone_errors("ttl: 700000\nrecords:\n  a: { A: nope }\n  b: { CNAME: x, TXT: y }\n");
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn service_and_region_errors() {
    let body = r#"regions:
  uk:
    location: [91, 0]
    servers: { lon1: { address: 192.0.2.1 } }
  de:
    location: [50, 8]
    countries: [DEU]
    continents: [XX]
    servers:
      Fra1: { address: 192.0.2.2 }
      fra2: { address: 192.0.2.3, transports: [udp, sctp], check: ping }
services:
  sip:
    regions: [de, xx]
    failover: 5
    fallback: [us]
    networks: { 10.0.0.1/8: de, 192.0.2.0/24: uk }
    all_down: maybe
"#;
    assert_eq!(
        zone_errors(body),
        [
            "zones/z.yaml:6:15: regions.uk.location: latitude must be within ±90 and longitude within ±180",
            "zones/z.yaml:10:17: regions.de.countries: invalid country code `DEU` (two letters, ISO 3166)",
            "zones/z.yaml:11:18: regions.de.continents: unknown continent code `XX` (use AF, AN, AS, EU, NA, OC, SA)",
            "zones/z.yaml:13:7: regions.de.servers.Fra1: server names are DNS labels: lowercase letters, digits and `-`",
            "zones/z.yaml:14:53: regions.de.servers.fra2.transports: unknown transport `sctp` (use udp, tcp, tls, ws or wss)",
            "zones/z.yaml:14:67: regions.de.servers.fra2.check: unknown check `ping` (use sip-options, sip-options-udp, sip-options-tcp, sip-options-tls, sip-options-ws, sip-options-wss, tcp-connect, per-transport or none)",
            "zones/z.yaml:17:19: services.sip.regions: unknown region `xx` (define it under regions: in this file or in sipsteer.yaml)",
            "zones/z.yaml:18:15: services.sip.failover: failover must be between 1 and the number of regions (1), at most 8",
            "zones/z.yaml:19:16: services.sip.fallback: region `us` is not one of this service's regions",
            "zones/z.yaml:20:17: services.sip.networks.10.0.0.1/8: network `10.0.0.1/8` has host bits set (did you mean 10.0.0.0/8?)",
            "zones/z.yaml:20:47: services.sip.networks.192.0.2.0/24: region `uk` is not one of this service's regions",
            "zones/z.yaml:21:15: services.sip.all_down: unknown policy `maybe` (use nearest or nodata)",
        ]
    );
}

#[test]
fn suspect_cadence_and_trouble_ttl_errors() {
    let body = "regions:\n  uk:\n    location: [51.5, 0]\n    health: { suspect_interval: 50ms, suspect_timeout: 1x }\n    servers: { lon1: { address: 192.0.2.1 } }\nservices:\n  sip: { regions: [uk], ttl: 20, trouble_ttl: 60 }\n";
    assert_eq!(
        zone_errors(body),
        [
            "zones/z.yaml:7:33: regions.uk.health.suspect_interval: must be at least 100ms",
            "zones/z.yaml:7:56: regions.uk.health.suspect_timeout: invalid duration unit in `1x` (use ms, s, m or h)",
            "zones/z.yaml:10:47: services.sip.trouble_ttl: trouble_ttl must not exceed the service's ttl (20)",
        ]
    );
}

#[test]
fn records_may_not_shadow_a_service() {
    let body = "regions:\n  uk:\n    location: [51.5, 0]\n    servers: { lon1: { address: 192.0.2.1 } }\nservices:\n  sip: { regions: [uk] }\nrecords:\n  uk.sip: { A: 192.0.2.9 }\n";
    assert_eq!(
        zone_errors(body),
        [
            "zones/z.yaml:11:3: records.uk.sip: name is answered by service `sip`; remove the record or rename it"
        ]
    );
}

/// Every YAML file shipped in zones/ and examples/ loads.
#[test]
fn shipped_configs_load() {
    let root = repo_root();
    let cfg = sipsteer::config::load(&root.join("sipsteer.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.zones.is_empty());
    let mut found = 0;
    for entry in std::fs::read_dir(root.join("examples")).expect("examples dir") {
        let p = entry.expect("entry").path();
        if p.join("sipsteer.yaml").is_file() {
            sipsteer::config::load(&p.join("sipsteer.yaml")).unwrap_or_else(|e| panic!("{e}"));
            found += 1;
        }
    }
    let zones = std::fs::read_dir(root.join("zones"))
        .expect("zones dir")
        .count();
    assert!(zones >= 1, "zones/ has files");
    assert!(found >= 1, "examples/ has at least one config directory");
}

#[test]
fn check_command_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_sipsteer");
    let ok = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(repo_root().join("sipsteer.yaml"))
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(": ok ("));

    let dir = ConfigDir::new(MAIN, &[("z.yaml", &format!("{HEAD}ttl: 700000\n"))]);
    let bad = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(dir.main())
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("zones/z.yaml:4:6: ttl: ttl must be 0 to 604800 seconds"),
        "{err}"
    );
    assert!(err.contains("1 error(s)"));
}

#[test]
fn generated_names_that_cannot_exist_are_errors() {
    let long = format!(
        "{}.{}.{}.com",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63)
    );
    let server = "s".repeat(60);
    let zone = format!(
        "zone: {long}\nsoa: {{ primary: ns1, contact: hostmaster, serial: 1 }}\nns: [ns1]\nregions:\n  r:\n    location: [50, 8]\n    servers:\n      {server}: {{ address: 192.0.2.1 }}\nservices:\n  sip: {{ regions: [r] }}\n"
    );
    assert_eq!(
        errors(MAIN, &zone),
        [format!(
            "zones/z.yaml:10:3: services.sip: generated name `{server}.r.sip.{long}.` is too long (264 octets; a name has at most 255, a label at most 63)"
        )]
    );
    // Nine octets shorter: 255 octets exactly, which fits.
    let ok = zone.replace(&server, &"s".repeat(51));
    assert_eq!(errors(MAIN, &ok), Vec::<String>::new());
}

#[test]
fn failover_deeper_than_the_plan_is_an_error() {
    let mut body = String::from("regions:\n");
    let names: Vec<String> = (0..9).map(|i| format!("r{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        body.push_str(&format!(
            "  {n}: {{ location: [{i}, 0], servers: {{ s: {{ address: 192.0.2.{i} }} }} }}\n"
        ));
    }
    body.push_str(&format!(
        "services:\n  sip:\n    regions: [{}]\n    failover: 9\n",
        names.join(", ")
    ));
    assert_eq!(
        zone_errors(&body),
        [
            "zones/z.yaml:17:15: services.sip.failover: failover must be between 1 and the number of regions (9), at most 8"
        ]
    );
    assert_eq!(
        zone_errors(&body.replace("failover: 9", "failover: 8")),
        Vec::<String>::new()
    );
}

#[test]
fn load_source_errors() {
    let zone = format!(
        "{HEAD}regions:\n  uk:\n    location: [51.5, 0]\n    servers:\n      lon1: {{ address: 192.0.2.1, capacity: {{ calls: 10 }} }}\n      lon2: {{ address: 192.0.2.2 }}\nservices:\n  sip: {{ regions: [uk] }}\n"
    );
    let main = format!(
        "{MAIN}load:\n  prometheus: ftp://prom:9090\n  interval: 0s\n  calls: 'sum(x{{s=\"$srv\"}})'\n  regions: {{ xx: {{ cps: 'y' }} }}\n  servers: {{ uk/lon2: {{ cps: 'y' }}, uk/nope: {{ cps: 'y' }} }}\n"
    );
    let base = MAIN.lines().count();
    let got = errors(&main, &zone);
    let at = |line: usize, rest: &str| format!("sipsteer.yaml:{}:{rest}", base + line);
    assert_eq!(
        got,
        [
            at(
                2,
                "15: load.prometheus: must be an http:// or https:// URL of the Prometheus server, e.g. http://127.0.0.1:9090"
            ),
            at(3, "13: load.interval: must be between 100ms and 1h"),
            at(
                4,
                "10: load.calls: unknown template variable `$srv` (use $server, $region, $address, $port or $$)"
            ),
            at(5, "14: load.regions.xx: no region `xx`"),
            at(
                6,
                "14: load.servers.uk/lon2: server declares no capacity, so its load is never used"
            ),
            at(
                6,
                "37: load.servers.uk/nope: no server `uk/nope` (write region/server)"
            ),
        ]
    );
}
