//! Config errors of `bias`, `split` and `capacity.shed`, each by message and file:line:col.

use crate::support::dns::{ConfigDir, MAIN};

const ZONE: &str = "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nregions:\n  uk: { location: [51.5, 0], servers: { a: { address: 192.0.2.1 } } }\n  de: { location: [50, 8], servers: { b: { address: 192.0.2.2 } } }\n  sg: { location: [1, 103], servers: { c: { address: 192.0.2.3 } } }\nservices:\n  sip:\n    regions: [uk, de]\n";

/// The errors of the zone above with `extra` lines added to its service (line 11 on), and
/// of `main` as `sipsteer.yaml`.
fn errors(main: &str, extra: &str) -> Vec<String> {
    let dir = ConfigDir::new(main, &[("z.yaml", &format!("{ZONE}{extra}"))]);
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

fn zone_errors(extra: &str) -> Vec<String> {
    errors(MAIN, extra)
}

#[test]
fn valid_bias_and_split_load() {
    assert_eq!(
        zone_errors("    bias: { uk: 250, de: -75.5 }\n    split: { uk: { de: 2.5 } }\n"),
        Vec::<String>::new()
    );
}

#[test]
fn bias_of_a_region_outside_the_service() {
    assert_eq!(
        zone_errors("    bias: { sg: 100 }\n"),
        [
            "zones/z.yaml:11:13: services.sip.bias.sg: region `sg` is not one of this service's regions"
        ]
    );
    assert_eq!(
        zone_errors("    bias: { fr: 100 }\n"),
        [
            "zones/z.yaml:11:13: services.sip.bias.fr: region `fr` is not one of this service's regions"
        ]
    );
}

#[test]
fn bias_out_of_range() {
    assert_eq!(
        zone_errors("    bias: { uk: 20001 }\n"),
        ["zones/z.yaml:11:17: services.sip.bias.uk: bias must be between -20000 and 20000 km"]
    );
    assert_eq!(
        zone_errors("    bias: { de: -1e9 }\n"),
        ["zones/z.yaml:11:17: services.sip.bias.de: bias must be between -20000 and 20000 km"]
    );
}

#[test]
fn bias_not_a_number() {
    let got = zone_errors("    bias: { uk: far }\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("zones/z.yaml:11:17: "), "{got:?}");
}

#[test]
fn split_of_or_to_a_region_outside_the_service() {
    assert_eq!(
        zone_errors("    split: { sg: { uk: 5 } }\n"),
        [
            "zones/z.yaml:11:14: services.sip.split.sg: region `sg` is not one of this service's regions"
        ]
    );
    assert_eq!(
        zone_errors("    split:\n      uk: { sg: 5 }\n"),
        [
            "zones/z.yaml:12:13: services.sip.split.uk.sg: region `sg` is not one of this service's regions"
        ]
    );
}

#[test]
fn split_to_itself() {
    assert_eq!(
        zone_errors("    split:\n      uk: { uk: 5 }\n"),
        ["zones/z.yaml:12:13: services.sip.split.uk.uk: region `uk` cannot split to itself"]
    );
}

#[test]
fn split_percentages_out_of_range() {
    assert_eq!(
        zone_errors("    split:\n      uk: { de: 0 }\n      de: { uk: 100.5 }\n"),
        [
            "zones/z.yaml:12:17: services.sip.split.uk.de: split must be more than 0 and at most 100 percent",
            "zones/z.yaml:13:17: services.sip.split.de.uk: split must be more than 0 and at most 100 percent",
        ]
    );
}

#[test]
fn splits_of_one_region_over_100_percent() {
    let zone = ZONE.replace("regions: [uk, de]", "regions: [uk, de, sg]");
    let dir = ConfigDir::new(
        MAIN,
        &[(
            "z.yaml",
            &format!("{zone}    split:\n      uk: {{ de: 60, sg: 50 }}\n"),
        )],
    );
    let root = format!("{}/", dir.dir.path().display());
    let got: Vec<String> = match sipsteer::config::load(&dir.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    };
    assert_eq!(
        got,
        [
            "zones/z.yaml:12:7: services.sip.split.uk: the splits of region `uk` add up to 110 percent (at most 100)"
        ]
    );
}

#[test]
fn shed_watermarks() {
    let shed = |s: &str| errors(&format!("{MAIN}capacity:\n  shed: {s}\n"), "");
    assert_eq!(shed("{ from: 0.6, to: 0.9 }"), Vec::<String>::new());
    assert_eq!(
        shed("{ from: 1, to: 1 }"),
        ["sipsteer.yaml:6:17: capacity.shed.from: must be at least 0 and less than 1"]
    );
    assert_eq!(
        shed("{ from: 0.7, to: 0.7 }"),
        ["sipsteer.yaml:6:26: capacity.shed.to: must be more than shed.from (0.7) and at most 1"]
    );
    assert_eq!(
        shed("{ from: 0.5, to: 1.5 }"),
        ["sipsteer.yaml:6:26: capacity.shed.to: must be more than shed.from (0.5) and at most 1"]
    );
    assert_eq!(
        errors(
            &format!("{MAIN}capacity:\n  overflow_at: 0.9\n  shed: {{ from: 0.6, to: 0.9 }}\n"),
            ""
        ),
        [
            "sipsteer.yaml:7:9: capacity.shed: use either overflow_at or shed, not both (shed.to is where a server is full)"
        ]
    );
}

#[test]
fn shed_sets_where_a_server_is_full() {
    let dir = ConfigDir::new(
        &format!("{MAIN}capacity:\n  shed: {{ from: 0.6, to: 0.9 }}\n"),
        &[("z.yaml", ZONE)],
    );
    let cfg = sipsteer::config::load(&dir.main()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.capacity.shed, Some((0.6, 0.9)));
    assert_eq!(cfg.capacity.overflow_at, 0.9);
}
