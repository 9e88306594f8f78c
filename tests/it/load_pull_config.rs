//! Config errors of `load:`'s access and caps, each with its message and file:line:col: the
//! URL, the CA file, credentials (one source each, readable, usable in a header) and the caps.

use crate::support::dns::{ConfigDir, MAIN};

const ZONE: &str = "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nregions:\n  uk:\n    location: [51.5, 0]\n    servers:\n      lon1: { address: 192.0.2.1, capacity: { calls: 10 } }\nservices:\n  sip: { regions: [uk] }\n";

/// The errors of `MAIN` followed by `load`, with `files` beside the config; each as
/// `sipsteer.yaml:LINE:COL: …` with LINE counted from the `load:` line (line 1).
fn errors(load: &str, files: &[(&str, &[u8])]) -> Vec<String> {
    let dir = ConfigDir::new(&format!("{MAIN}{load}"), &[("z.yaml", ZONE)]);
    for (name, bytes) in files {
        std::fs::write(dir.path(name), bytes).expect("write");
    }
    let root = format!("{}/", dir.dir.path().display());
    let base = MAIN.lines().count();
    match sipsteer::config::load(&dir.main()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| {
                    let text = e.to_string().replace(&root, "");
                    // Renumber lines so that `load:` is line 1.
                    match text.strip_prefix("sipsteer.yaml:") {
                        Some(rest) => {
                            let (line, tail) = rest.split_once(':').unwrap_or(("0", rest));
                            let line: usize = line.parse().unwrap_or(0);
                            format!("sipsteer.yaml:{}:{tail}", line - base)
                        }
                        None => text,
                    }
                })
                .collect()
        }
    }
}

const CALLS: &str = "  calls: 'sum by (server) (x)'\n";

#[test]
fn urls_and_the_ca_file() {
    let load = format!("load:\n  prometheus: ftp://prom:9090\n{CALLS}  ca_file: ca.pem\n");
    assert_eq!(
        errors(&load, &[]),
        [
            "sipsteer.yaml:2:15: load.prometheus: must be an http:// or https:// URL of the Prometheus server, e.g. http://127.0.0.1:9090",
            "sipsteer.yaml:4:12: load.ca_file: applies only to an https:// prometheus URL",
        ]
    );
    let load = format!("load:\n  prometheus: https://u:p@prom:9090\n{CALLS}");
    assert_eq!(
        errors(&load, &[]),
        [
            "sipsteer.yaml:2:15: load.prometheus: credentials go in load.bearer_token or load.basic_auth, not in the URL"
        ]
    );
    let https = format!("load:\n  prometheus: https://prom:9090/prometheus/\n{CALLS}");
    assert_eq!(errors(&https, &[]), Vec::<String>::new());
    let missing = format!("{https}  ca_file: nope.pem\n");
    let got = errors(&missing, &[]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("sipsteer.yaml:4:12: load.ca_file: cannot read ")
            && got[0].ends_with("nope.pem: no such file or directory"),
        "{got:?}"
    );
    let not_pem = format!("{https}  ca_file: ca.pem\n");
    let got = errors(&not_pem, &[("ca.pem", b"hello\n")]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("sipsteer.yaml:4:12: load.ca_file: ")
            && got[0].ends_with("ca.pem: no PEM certificate (BEGIN CERTIFICATE) found"),
        "{got:?}"
    );
}

#[test]
fn credentials() {
    let base = format!("load:\n  prometheus: http://prom:9090\n{CALLS}");
    let two = format!("{base}  bearer_token: abcdefgh\n  bearer_token_file: tok\n");
    assert_eq!(
        errors(&two, &[("tok", b"x")]),
        [
            "sipsteer.yaml:5:22: load.bearer_token_file: give one of bearer_token, bearer_token_env or bearer_token_file"
        ]
    );
    let both =
        format!("{base}  bearer_token: abcdefgh\n  basic_auth: {{ username: u, password: p }}\n");
    assert_eq!(
        errors(&both, &[]),
        ["sipsteer.yaml:5:15: load.basic_auth: give either a bearer token or basic_auth, not both"]
    );
    let unset = format!("{base}  bearer_token_env: SIPSTEER_TEST_UNSET_TOKEN_VARIABLE\n");
    assert_eq!(
        errors(&unset, &[]),
        [
            "sipsteer.yaml:4:21: load.bearer_token_env: environment variable SIPSTEER_TEST_UNSET_TOKEN_VARIABLE is not set"
        ]
    );
    let spaced = format!("{base}  bearer_token_file: tok\n");
    assert_eq!(
        errors(&spaced, &[("tok", b"two words\n")]),
        [
            "sipsteer.yaml:4:22: load.bearer_token_file: a bearer token is printable ASCII without spaces"
        ]
    );
    assert_eq!(
        errors(&spaced, &[("tok", b"  one-token\n\n")]),
        Vec::<String>::new()
    );
    let colon = format!("{base}  basic_auth: {{ username: \"a:b\", password: p }}\n");
    assert_eq!(
        errors(&colon, &[]),
        [
            "sipsteer.yaml:4:27: load.basic_auth.username: a username is not empty and holds no `:` or control characters"
        ]
    );
    let no_password = format!("{base}  basic_auth: {{ username: u }}\n");
    assert_eq!(
        errors(&no_password, &[]),
        ["sipsteer.yaml:4:15: load.basic_auth: needs password, password_env or password_file"]
    );
    let two_passwords =
        format!("{base}  basic_auth: {{ username: u, password: p, password_file: pw }}\n");
    assert_eq!(
        errors(&two_passwords, &[("pw", b"p")]),
        [
            "sipsteer.yaml:4:58: load.basic_auth.password_file: give one of basic_auth.password, basic_auth.password_env or basic_auth.password_file"
        ]
    );
}

#[test]
fn caps() {
    let load = format!(
        "load:\n  prometheus: http://prom:9090\n{CALLS}  max_series: 0\n  max_bytes: 12XB\n"
    );
    assert_eq!(
        errors(&load, &[]),
        [
            "sipsteer.yaml:4:15: load.max_series: must be between 1 and 10000000",
            "sipsteer.yaml:5:14: load.max_bytes: invalid size `12XB` (use e.g. 65536, 512KiB, 64MiB)",
        ]
    );
    let load = format!(
        "load:\n  prometheus: http://prom:9090\n{CALLS}  max_series: 500000\n  max_bytes: 2GiB\n"
    );
    assert_eq!(
        errors(&load, &[]),
        ["sipsteer.yaml:5:14: load.max_bytes: must be between 1KiB and 1GiB"]
    );
    let ok = format!(
        "load:\n  prometheus: http://prom:9090\n{CALLS}  max_series: 500000\n  max_bytes: 1048576\n"
    );
    assert_eq!(errors(&ok, &[]), Vec::<String>::new());
}

#[test]
fn caps_and_files_compile_into_the_load_source() {
    let main = format!(
        "{MAIN}load:\n  prometheus: https://prom:9090\n{CALLS}  max_series: 5000\n  max_bytes: 4MiB\n  bearer_token_file: tok\n"
    );
    let dir = ConfigDir::new(&main, &[("z.yaml", ZONE)]);
    std::fs::write(dir.path("tok"), "t0ken\n").expect("write");
    let cfg = sipsteer::config::load(&dir.main()).expect("valid");
    let src = cfg.load_source.expect("load source");
    assert_eq!((src.max_series, src.max_bytes), (5000, 4 << 20));
    assert_eq!(src.files, [dir.path("tok")]);
    assert!(format!("{src:?}").contains("Credential(redacted)"));
    assert!(!format!("{src:?}").contains("t0ken"));
    let defaults = format!("{MAIN}load:\n  prometheus: http://prom:9090\n{CALLS}");
    let dir = ConfigDir::new(&defaults, &[("z.yaml", ZONE)]);
    let src = sipsteer::config::load(&dir.main())
        .expect("valid")
        .load_source
        .expect("load source");
    assert_eq!((src.max_series, src.max_bytes), (100_000, 64 << 20));
    assert!(src.auth.is_none() && src.ca.is_none());
}
