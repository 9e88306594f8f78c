//! DNSSEC keys: `dnssec:` in a zone map, key files and generated keys, the DNSKEY, CDNSKEY
//! and CDS sets at the apex, `sipsteer dnssec keygen` and `sipsteer dnssec ds`, and the
//! config errors of `dnssec:`, over real sockets and through the real binary.

use std::process::Command;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData};
use hickory_proto::dnssec::{Algorithm as HAlg, DigestType, PublicKeyBuf};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use sipsteer::dnssec::{Algorithm, ZoneKey};

use crate::support::dns::*;

const ZONE: &str = "zone: example.com\nttl: 300\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n";

/// A config directory with `keys/zone.pem` (a new key of `alg`) and a zone map signed with it.
fn signed_dir(alg: Algorithm, extra: &str) -> (ConfigDir, ZoneKey) {
    let pem = ZoneKey::generate_pem(alg).expect("generate");
    let key = ZoneKey::from_pkcs8(alg, pem.as_bytes()).expect("load");
    let zone = format!(
        "{ZONE}dnssec: {{ algorithm: {}, key: keys/zone.pem }}\n{extra}",
        alg.number()
    );
    let dir = ConfigDir::new(MAIN, &[("example.com.yaml", &zone)]);
    std::fs::create_dir(dir.path("keys")).expect("keys dir");
    std::fs::write(dir.path("keys/zone.pem"), pem).expect("write key");
    (dir, key)
}

/// The DNSKEY record sipsteer must publish for `key`, as the test client prints it.
fn dnskey_line(key: &ZoneKey, rtype: &str) -> String {
    let alg = HAlg::from_u8(key.algorithm().number());
    let dnskey = DNSKEY::with_flags(
        257,
        PublicKeyBuf::new(key.dnskey_rdata()[4..].to_vec(), alg),
    );
    format!("example.com. 300 {rtype} {dnskey}")
}

fn independent_tag_and_digest(key: &ZoneKey) -> (u16, Vec<u8>) {
    let alg = HAlg::from_u8(key.algorithm().number());
    let dnskey = DNSKEY::with_flags(
        257,
        PublicKeyBuf::new(key.dnskey_rdata()[4..].to_vec(), alg),
    );
    let origin = Name::from_ascii("example.com.").expect("name");
    let digest = dnskey
        .to_digest(&origin, DigestType::SHA256)
        .expect("digest");
    (
        dnskey.calculate_key_tag().expect("tag"),
        digest.as_ref().to_vec(),
    )
}

#[tokio::test]
async fn the_apex_answers_dnskey_cdnskey_and_cds() {
    for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let (dir, key) = signed_dir(alg, "");
        let s = TestServer::start_in(dir).await;
        let m = udp(s.addr, "example.com.", RecordType::DNSKEY, &Q::default()).await;
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(rrs(&m.answers), [dnskey_line(&key, "DNSKEY")]);
        let m = tcp(s.addr, "EXAMPLE.com.", RecordType::CDNSKEY, &Q::default()).await;
        assert_eq!(
            rrs(&m.answers),
            [dnskey_line(&key, "CDNSKEY").replace("example.com.", "EXAMPLE.com.")]
        );

        let m = udp(s.addr, "example.com.", RecordType::CDS, &Q::default()).await;
        assert_eq!(m.answers.len(), 1);
        let RData::DNSSEC(DNSSECRData::CDS(cds)) = &m.answers[0].data else {
            panic!("not a CDS: {:?}", m.answers[0]);
        };
        let (tag, digest) = independent_tag_and_digest(&key);
        assert_eq!(cds.key_tag(), tag);
        assert_eq!(key.key_tag(), tag);
        assert_eq!(cds.algorithm().map(u8::from), Some(alg.number()));
        assert_eq!(cds.digest_type(), DigestType::SHA256);
        assert_eq!(cds.digest(), &digest[..]);

        // Only the apex holds keys: below it, NODATA with the SOA.
        let m = udp(
            s.addr,
            "ns1.example.com.",
            RecordType::DNSKEY,
            &Q::default(),
        )
        .await;
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        s.stop().await;
    }
}

#[tokio::test]
async fn an_unsigned_zone_has_no_dnskey() {
    let s = TestServer::start(MAIN, &[("example.com.yaml", ZONE)]).await;
    let m = udp(s.addr, "example.com.", RecordType::DNSKEY, &Q::default()).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert!(m.answers.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_key_generated_in_the_state_dir_is_kept_and_reused() {
    let main = format!("{MAIN}state_dir: state\n");
    let zone = format!("{ZONE}dnssec: {{ algorithm: ed25519 }}\n");
    let dir = ConfigDir::new(&main, &[("example.com.yaml", &zone)]);
    let path = dir.path("state/dnssec/example.com.alg15.pem");
    let first = load_config(&dir.main());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .expect("generated")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(dir.path("state/dnssec"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let bytes = std::fs::read(&path).expect("read key");
    let key = ZoneKey::from_pkcs8(Algorithm::Ed25519, &bytes).expect("a usable key");
    let origin = Name::from_ascii("example.com.").expect("name");
    assert_eq!(*first.keys[&origin], key);
    assert!(
        first.files.iter().any(|f| f.path == path),
        "the key file is watched"
    );

    // The next load reads the same key; the server publishes it.
    let s = TestServer::start_in(dir).await;
    assert_eq!(std::fs::read(&path).expect("read key"), bytes);
    let m = udp(s.addr, "example.com.", RecordType::DNSKEY, &Q::default()).await;
    assert_eq!(rrs(&m.answers), [dnskey_line(&key, "DNSKEY")]);
    s.stop().await;
}

#[tokio::test]
async fn a_new_key_file_is_published_on_reload() {
    let (dir, old) = signed_dir(Algorithm::EcdsaP256, "");
    let s = TestServer::start_in(dir).await;
    let pem = ZoneKey::generate_pem(Algorithm::EcdsaP256).expect("generate");
    let new = ZoneKey::from_pkcs8(Algorithm::EcdsaP256, pem.as_bytes()).expect("load");
    assert_ne!(old, new);
    std::fs::write(s.cfg.path("keys/zone.pem"), pem).expect("replace key");
    let out = s.reload().await;
    assert!(
        matches!(out, sipsteer::reload::Outcome::Applied(_)),
        "{out:?}"
    );
    let m = udp(s.addr, "example.com.", RecordType::DNSKEY, &Q::default()).await;
    assert_eq!(rrs(&m.answers), [dnskey_line(&new, "DNSKEY")]);
    s.stop().await;
}

fn sipsteer(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
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
fn keygen_writes_a_private_key_once_and_ds_prints_its_digest() {
    let dir = ConfigDir::new(
        MAIN,
        &[(
            "example.com.yaml",
            &format!("{ZONE}dnssec: {{ key: k.pem }}\n"),
        )],
    );
    let out = dir.path("k.pem");
    let out_s = out.display().to_string();
    let (ok, stdout, stderr) = sipsteer(&["dnssec", "keygen", &out_s]);
    assert!(ok, "{stderr}");
    let key = ZoneKey::from_pkcs8(Algorithm::EcdsaP256, &std::fs::read(&out).expect("key"))
        .expect("an ECDSA P-256 key");
    assert_eq!(
        stdout,
        format!(
            "{out_s}: algorithm 13 (ECDSAP256SHA256), key tag {}\n",
            key.key_tag()
        )
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Never replaced.
    let (ok, _, stderr) = sipsteer(&["dnssec", "keygen", "--algorithm", "15", &out_s]);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!("error: cannot write {out_s}: file exists\n")
    );
    let (ok, _, stderr) = sipsteer(&["dnssec", "keygen", "--algorithm", "8", &out_s]);
    assert!(!ok);
    assert_eq!(
        stderr,
        "error: algorithm `8` is not supported (use 13, ECDSA P-256, or 15, Ed25519)\n"
    );

    let main = dir.main().display().to_string();
    let (tag, digest) = independent_tag_and_digest(&key);
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    let (ok, stdout, stderr) = sipsteer(&["dnssec", "ds", "--config", &main]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("example.com. 300 IN DS {tag} 13 2 {hex}\n"));
    let (ok, same, _) = sipsteer(&["dnssec", "ds", "--config", &main, "Example.COM."]);
    assert!(ok);
    assert_eq!(same, stdout);
    let (ok, _, stderr) = sipsteer(&["dnssec", "ds", "--config", &main, "example.org"]);
    assert!(!ok);
    assert_eq!(
        stderr,
        "error: zone `example.org` is not signed here (no zone map with `dnssec:` serves it)\n"
    );
}

/// The errors of loading a config with `zone` as its only zone map, as printed.
fn errors(main: &str, zone: &str) -> Vec<String> {
    let dir = ConfigDir::new(main, &[("z.yaml", zone)]);
    std::fs::write(
        dir.path("ed.pem"),
        ZoneKey::generate_pem(Algorithm::Ed25519).expect("generate"),
    )
    .expect("write");
    std::fs::write(dir.path("junk.pem"), "hello\n").expect("write");
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

#[test]
fn config_errors_of_dnssec() {
    let z = |d: &str| errors(MAIN, &format!("{ZONE}dnssec: {d}\n"));
    assert_eq!(
        z("{ algorithm: 8, key: ed.pem }"),
        [
            "zones/z.yaml:7:22: dnssec.algorithm: algorithm `8` is not supported (use 13, ECDSA P-256, or 15, Ed25519)"
        ]
    );
    assert_eq!(
        z("{ key: missing.pem }"),
        ["zones/z.yaml:7:16: dnssec.key: cannot read missing.pem: no such file or directory"]
    );
    assert_eq!(
        z("{ key: ed.pem }"),
        ["zones/z.yaml:7:16: dnssec.key: ed.pem: not an ECDSA P-256 key (algorithm 13)"]
    );
    assert_eq!(
        z("{ algorithm: 15, key: junk.pem }"),
        [
            "zones/z.yaml:7:31: dnssec.key: junk.pem: no PKCS#8 private key (PEM `BEGIN PRIVATE KEY` or DER) found"
        ]
    );
    assert_eq!(
        z("{ key: \"\" }"),
        ["zones/z.yaml:7:16: dnssec.key: an empty key path"]
    );
    assert_eq!(
        z("{}"),
        [
            "zones/z.yaml:7:9: dnssec: a signed zone needs a key: set `dnssec.key: FILE` (`sipsteer dnssec keygen FILE` writes one) or `state_dir:` in sipsteer.yaml to have one generated"
        ]
    );
    assert_eq!(
        z("{ algo: 13 }"),
        [
            "zones/z.yaml:7:11: unknown field `algo`, expected one of algorithm, key, keys, zsk_lifetime, propagation, ds_ttl, ds_wait"
        ]
    );
}

#[test]
fn a_key_that_cannot_be_generated_is_a_config_error() {
    let main = format!("{MAIN}state_dir: state\n");
    let zone = format!("{ZONE}dnssec: {{}}\n");
    let dir = ConfigDir::new(&main, &[("z.yaml", &zone)]);
    // The state directory is a file: no key can be written under it.
    std::fs::write(dir.path("state"), "not a directory").expect("write");
    let root = format!("{}/", dir.dir.path().display());
    let err = sipsteer::config::load(&dir.main()).expect_err("must fail");
    let got: Vec<String> = err
        .0
        .iter()
        .map(|e| e.to_string().replace(&root, ""))
        .collect();
    assert_eq!(
        got,
        [
            "zones/z.yaml:7:9: dnssec: cannot write generated key state/dnssec/example.com.alg13.pem: not a directory"
        ]
    );
}

/// A signed zone with steered names (whose answers are signed from the signature cache)
/// publishes CDS and CDNSKEY beside its DNSKEY, and neither `check` nor `dnssec ds` warns
/// against giving its DS to the parent.
#[tokio::test]
async fn a_zone_with_steered_names_publishes_cds_and_cdnskey_without_warnings() {
    use crate::support::steer::{GEO_CSV, MAIN_GEO, STEER_ZONE};
    let pem = ZoneKey::generate_pem(Algorithm::EcdsaP256).expect("generate");
    let key = ZoneKey::from_pkcs8(Algorithm::EcdsaP256, pem.as_bytes()).expect("load");
    let zone = format!("{STEER_ZONE}dnssec: {{ key: zone.pem }}\n");
    let dir = ConfigDir::new(MAIN_GEO, &[("example.com.yaml", &zone)]);
    std::fs::write(dir.path("geo.csv"), GEO_CSV).expect("csv");
    std::fs::write(dir.path("zone.pem"), pem).expect("write key");
    let main = dir.main().display().to_string();

    let o = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .args(["check", "--config", &main])
        .output()
        .expect("run check");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains("dnssec"), "{all}");
    assert!(!all.contains("parent"), "{all}");

    let o = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .args(["dnssec", "ds", "--config", &main])
        .output()
        .expect("run dnssec ds");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    let apex = hickory_proto::rr::Name::from_ascii("example.com.").expect("name");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}\n", key.ds_text(&apex, 300))
    );

    let s = TestServer::start_in(dir).await;
    for (t, want) in [
        (RecordType::DNSKEY, dnskey_line(&key, "DNSKEY")),
        (RecordType::CDNSKEY, dnskey_line(&key, "CDNSKEY")),
    ] {
        let m = udp(s.addr, "example.com.", t, &Q::default()).await;
        assert_eq!(rrs(&m.answers), [want], "{t}");
    }
    let m = udp(s.addr, "example.com.", RecordType::CDS, &Q::default()).await;
    assert_eq!(m.answers.len(), 1, "{:?}", m.answers);
    let cds = rrs(&m.answers).join("");
    let ds = key.ds_text(&apex, 300);
    let digest = ds.rsplit(' ').next().expect("digest");
    assert!(cds.to_uppercase().ends_with(digest), "{cds} / {ds}");
}
