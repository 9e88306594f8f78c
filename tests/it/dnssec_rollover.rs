//! Key rollover with a keys directory (`dnssec.keys`): a ZSK roll walks published → active →
//! retired → removed with the DNSKEY set and the RRSIG key tags exact at each step and every
//! RRSIG verifying; a KSK roll publishes the new key, then its CDS/CDNSKEY, and retires the old
//! one on `dnssec ds-seen`; two instances sharing one keys directory answer byte for byte the
//! same; the config errors of keys directories. Time is driven by writing the keys' timings
//! (absolute times), as an operator or another instance would.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData};
use hickory_proto::dnssec::{Algorithm as HAlg, PublicKey, PublicKeyBuf, TBS};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use sipsteer::dnssec::{Algorithm, FLAGS_KSK, FLAGS_ZSK, ZoneKey};

use crate::support::dns::*;

const DO: Q = Q {
    edns: None,
    ecs: None,
    version: 0,
    dnssec_ok: true,
};

const ZONE: &str = "zone: example.com\nttl: 60\nsoa: { primary: ns1, contact: hostmaster, serial: 1, minimum: 30 }\nns: [ns1]\nrecords:\n  ns1: { A: 192.0.2.53 }\n  www: { A: 192.0.2.80, ttl: 120 }\n";

const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn time(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// Writes `text` to `path` as an editor or another instance would: a new file renamed over it.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-edit");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A sidecar with these times.
fn sidecar(publish: u64, active: u64, extra: &str) -> String {
    format!(
        "algorithm: 13\npublish: {}\nactive: {}\n{extra}",
        time(publish),
        time(active)
    )
}

/// Key `stem` (`ksk.1`) of example.com in `dir`: a new private key and its sidecar; the key.
fn write_key(dir: &Path, stem: &str, publish: u64, active: u64) -> ZoneKey {
    let pem = ZoneKey::generate_pem(Algorithm::EcdsaP256).expect("generate");
    std::fs::create_dir_all(dir).expect("keys dir");
    std::fs::write(dir.join(format!("example.com.{stem}.pem")), &pem).expect("pem");
    replace(
        &dir.join(format!("example.com.{stem}.yaml")),
        &sidecar(publish, active, ""),
    );
    read_key(dir, stem)
}

/// Key `stem` of example.com as it is in `dir` (written by the test or by sipsteer).
fn read_key(dir: &Path, stem: &str) -> ZoneKey {
    let pem = std::fs::read(dir.join(format!("example.com.{stem}.pem"))).expect("read pem");
    let flags = if stem.starts_with("ksk") {
        FLAGS_KSK
    } else {
        FLAGS_ZSK
    };
    ZoneKey::from_pkcs8_flags(Algorithm::EcdsaP256, flags, &pem).expect("key")
}

/// A config whose zone signs with the keys directory `keys` (relative or absolute).
fn config(keys: &str, settings: &str) -> ConfigDir {
    let zone = format!("{ZONE}dnssec: {{ keys: {keys}, propagation: 0s{settings} }}\n");
    ConfigDir::new(MAIN, &[("example.com.yaml", &zone)])
}

/// The DNSKEY records of `keys`, as the test client prints them, sorted.
fn dnskeys(keys: &[&ZoneKey]) -> Vec<String> {
    let mut out: Vec<String> = keys
        .iter()
        .map(|k| {
            let pk = PublicKeyBuf::new(k.dnskey_rdata()[4..].to_vec(), HAlg::ECDSAP256SHA256);
            format!(
                "example.com. 60 DNSKEY {}",
                DNSKEY::with_flags(k.flags(), pk)
            )
        })
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Verifies every RRSIG of the answer section over its set with the key of its key tag
/// among `keys`; returns (type covered, key tag) of each, sorted.
fn verify(m: &Message, keys: &[&ZoneKey]) -> Vec<(RecordType, u16)> {
    verify_section(&m.answers, keys)
}

/// [`verify`] over one section's records.
fn verify_section(
    records: &[hickory_proto::rr::Record],
    keys: &[&ZoneKey],
) -> Vec<(RecordType, u16)> {
    let mut out = Vec::new();
    for r in records {
        let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data else {
            continue;
        };
        let input = sig.input();
        let key = keys
            .iter()
            .find(|k| k.key_tag() == input.key_tag)
            .unwrap_or_else(|| panic!("RRSIG by unknown key tag {}", input.key_tag));
        let set: Vec<_> = records
            .iter()
            .filter(|x| x.name == r.name && x.record_type() == input.type_covered)
            .collect();
        assert!(!set.is_empty(), "RRSIG over no set: {r:?}");
        let tbs =
            TBS::from_input(&r.name, DNSClass::IN, input, set.into_iter()).expect("signed data");
        let pk = PublicKeyBuf::new(key.dnskey_rdata()[4..].to_vec(), HAlg::ECDSAP256SHA256);
        pk.verify(tbs.as_ref(), sig.sig())
            .unwrap_or_else(|e| panic!("RRSIG by {} does not verify: {e}", input.key_tag));
        out.push((input.type_covered, input.key_tag));
    }
    out.sort();
    out
}

/// The DNSKEY set and the key tags of its RRSIGs and of the RRSIG over www's A set.
async fn look(s: &TestServer, keys: &[&ZoneKey]) -> (Vec<String>, Vec<u16>, Vec<u16>) {
    let m = tcp(s.addr, "example.com.", RecordType::DNSKEY, &DO).await;
    assert_eq!(rcode(&m), ResponseCode::NoError);
    let set: Vec<String> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY)
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect();
    let tags = |v: Vec<(RecordType, u16)>, t| -> Vec<u16> {
        v.into_iter().filter(|x| x.0 == t).map(|x| x.1).collect()
    };
    let dnskey_sigs = tags(verify(&m, keys), RecordType::DNSKEY);
    let m = udp(s.addr, "www.example.com.", RecordType::A, &DO).await;
    let a_sigs = tags(verify(&m, keys), RecordType::A);
    // Every other signed set (NS with its glue, a NODATA's NSEC and SOA, an NXDOMAIN's SOA)
    // verifies, by the same ZSK.
    for (name, t) in [
        ("example.com.", RecordType::NS),
        ("www.example.com.", RecordType::MX),
        ("nothere.example.com.", RecordType::A),
    ] {
        let m = udp(s.addr, name, t, &DO).await;
        let mut by: Vec<u16> = [&m.answers, &m.authorities, &m.additionals]
            .into_iter()
            .flat_map(|sec| verify_section(sec, keys))
            .map(|(_, tag)| tag)
            .collect();
        assert!(!by.is_empty(), "{name} {t}: no RRSIG");
        by.dedup();
        assert_eq!(by, a_sigs, "{name} {t}");
    }
    (sorted(set), dnskey_sigs, a_sigs)
}

fn sipsteer(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sipsteer"))
        .args(args)
        .output()
        .expect("run sipsteer");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_zsk_roll_walks_published_active_retired_removed() {
    let t0 = now();
    let cfg = config("keys", ", zsk_lifetime: 1d");
    let keys = cfg.path("keys");
    let ksk = write_key(&keys, "ksk.1", t0 - 10 * DAY, t0 - 10 * DAY);
    // Its life ended 9 days ago: the server writes its successor at its first load.
    let zsk1 = write_key(&keys, "zsk.1", t0 - 10 * DAY, t0 - 10 * DAY);
    let s = TestServer::start_in(cfg).await;
    let zsk2 = read_key(&keys, "zsk.2");
    let written = std::fs::read_to_string(keys.join("example.com.zsk.2.yaml")).expect("sidecar");
    let published = written
        .lines()
        .find_map(|l| l.strip_prefix("publish: "))
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .expect("publish time");
    assert!((t0..=now()).contains(&published), "{written}");
    // Active once the DNSKEY TTL (60 s, no propagation delay) has passed.
    assert!(
        written.ends_with(&format!("active: {}\n", time(published + 60))),
        "{written}"
    );
    let all = [&ksk, &zsk1, &zsk2];
    let (ksk_t, z1, z2) = (ksk.key_tag(), zsk1.key_tag(), zsk2.key_tag());

    // Published: in the DNSKEY set, not signing yet.
    assert_eq!(
        look(&s, &all).await,
        (dnskeys(&[&ksk, &zsk1, &zsk2]), vec![ksk_t], vec![z1])
    );
    let series =
        |zone_role_state: &str| s.series(&format!("sipsteer_dnssec_keys{{{zone_role_state}}}"));
    assert_eq!(
        series("zone=\"example.com\",role=\"zsk\",state=\"published\""),
        Some(1.0)
    );
    assert_eq!(
        series("zone=\"example.com\",role=\"zsk\",state=\"active\""),
        Some(1.0)
    );
    assert_eq!(
        s.series("sipsteer_dnssec_next_key_event_timestamp_seconds{zone=\"example.com\"}"),
        Some((published + 60) as f64)
    );
    assert_eq!(
        s.series("sipsteer_dnssec_key_successor_missing{zone=\"example.com\"}"),
        Some(0.0)
    );

    // Active: its time has come (written as another instance's clock would see it).
    let t1 = now();
    replace(
        &keys.join("example.com.zsk.2.yaml"),
        &sidecar(t1 - 120, t1 - 60, ""),
    );
    s.reload().await;
    assert_eq!(
        look(&s, &all).await,
        (dnskeys(&[&ksk, &zsk1, &zsk2]), vec![ksk_t], vec![z2])
    );
    assert_eq!(
        series("zone=\"example.com\",role=\"zsk\",state=\"retired\""),
        Some(1.0)
    );
    // The retired key stays until the largest signed TTL (120 s) has passed.
    assert_eq!(
        s.series("sipsteer_dnssec_next_key_event_timestamp_seconds{zone=\"example.com\"}"),
        Some((t1 - 60 + 120) as f64)
    );

    // Removed: gone from the DNSKEY set.
    replace(
        &keys.join("example.com.zsk.1.yaml"),
        &sidecar(
            t0 - 10 * DAY,
            t0 - 10 * DAY,
            &format!("remove: {}\n", time(t1 - 1)),
        ),
    );
    s.reload().await;
    assert_eq!(
        look(&s, &all).await,
        (dnskeys(&[&ksk, &zsk2]), vec![ksk_t], vec![z2])
    );
    assert_eq!(
        series("zone=\"example.com\",role=\"zsk\",state=\"removed\""),
        Some(1.0)
    );
    assert_eq!(
        series("zone=\"example.com\",role=\"zsk\",state=\"retired\""),
        Some(0.0)
    );

    let main = s.cfg.main().display().to_string();
    let (ok, out, err) = sipsteer(&["dnssec", "status", "--config", &main]);
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["ksk", "1", &ksk_t.to_string(), "active"],
            ["zsk", "1", &z1.to_string(), "removed"],
            ["zsk", "2", &z2.to_string(), "active"],
        ]
    );
    s.stop().await;
}

/// A key event applies when its time comes, with no file changed: the reload that runs then
/// (the rescan's, here one asked for) signs with the new ZSK.
#[tokio::test]
async fn a_key_event_applies_when_its_time_comes_with_no_file_changed() {
    let t0 = now();
    let cfg = config("keys", "");
    let keys = cfg.path("keys");
    let ksk = write_key(&keys, "ksk.1", t0 - DAY, t0 - DAY);
    let zsk1 = write_key(&keys, "zsk.1", t0 - DAY, t0 - DAY);
    let zsk2 = write_key(&keys, "zsk.2", t0 - 120, t0 + 2);
    let s = TestServer::start_in(cfg).await;
    let all = [&ksk, &zsk1, &zsk2];
    let (_, _, a_sigs) = look(&s, &all).await;
    assert_eq!(a_sigs, [zsk1.key_tag()]);
    while now() < t0 + 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        matches!(s.reload().await, sipsteer::reload::Outcome::Applied(_)),
        "a due key event applies"
    );
    assert_eq!(
        look(&s, &all).await,
        (
            dnskeys(&[&ksk, &zsk1, &zsk2]),
            vec![ksk.key_tag()],
            vec![zsk2.key_tag()]
        )
    );
    s.stop().await;
}

/// A ZSK successor that is due and cannot be written: the old ZSK keeps signing, the metric
/// and `dnssec status` say so, and the next load writes it once it can.
#[tokio::test]
async fn a_successor_that_cannot_be_written_is_reported_and_written_later() {
    let t0 = now();
    let cfg = config("keys", ", zsk_lifetime: 1d");
    let keys = cfg.path("keys");
    let ksk = write_key(&keys, "ksk.1", t0 - 10 * DAY, t0 - 10 * DAY);
    let zsk1 = write_key(&keys, "zsk.1", t0 - 10 * DAY, t0 - 10 * DAY);
    // The temporary name this process would write the new private key under is taken.
    let blocker = keys.join(format!(".example.com.zsk.2.pem.{}.tmp", std::process::id()));
    std::fs::create_dir(&blocker).expect("blocker");
    let s = TestServer::start_in(cfg).await;
    assert!(!keys.join("example.com.zsk.2.yaml").exists());
    let (_, _, a_sigs) = look(&s, &[&ksk, &zsk1]).await;
    assert_eq!(a_sigs, [zsk1.key_tag()]);
    let missing = "sipsteer_dnssec_key_successor_missing{zone=\"example.com\"}";
    assert_eq!(s.series(missing), Some(1.0));
    let cfg = load_config(&s.cfg.main());
    let status = sipsteer::config::keyroll::status(&cfg, &[]).expect("status");
    let due = time(t0 - 9 * DAY - 120);
    assert!(
        status.contains(&format!(
            "example.com: the next ZSK was due at {due} and could not be written\n"
        )),
        "{status}"
    );
    std::fs::remove_dir(&blocker).expect("unblock");
    s.reload().await;
    let zsk2 = read_key(&keys, "zsk.2");
    assert_eq!(s.series(missing), Some(0.0));
    let m = tcp(s.addr, "example.com.", RecordType::DNSKEY, &Q::default()).await;
    assert_eq!(sorted(rrs(&m.answers)), dnskeys(&[&ksk, &zsk1, &zsk2]));
    s.stop().await;
}

/// `/v1/status` shows each key of a zone with its state and times, and the next key event.
#[tokio::test]
async fn status_shows_every_key_with_its_state() {
    let t0 = now();
    let zone = format!("{ZONE}dnssec: {{ keys: keys, propagation: 0s }}\n");
    let cfg = ConfigDir::new(
        "listen: { dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }\nzones: zones\nhealth: { check: none }\n",
        &[("example.com.yaml", &zone)],
    );
    let keys = cfg.path("keys");
    let ksk = write_key(&keys, "ksk.1", t0 - DAY, t0 - DAY);
    let zsk1 = write_key(&keys, "zsk.1", t0 - DAY, t0 - DAY);
    let zsk2 = write_key(&keys, "zsk.2", t0 - 60, t0 + DAY);
    let s = TestServer::start_in(cfg).await;
    let a = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    let (code, body) = crate::support::http::get(a, "/v1/status").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let key = |role: &str, seq: u32, k: &ZoneKey, state: &str, times: [serde_json::Value; 4]| {
        serde_json::json!({
            "role": role, "seq": seq, "key_tag": k.key_tag(), "state": state,
            "publish_unix": times[0], "active_unix": times[1],
            "retire_unix": times[2], "remove_unix": times[3],
        })
    };
    let n = |t: u64| serde_json::json!(t);
    let none = serde_json::Value::Null;
    assert_eq!(
        v["zones"][0]["dnssec"],
        serde_json::json!({
            "keys": [
                key("ksk", 1, &ksk, "active", [n(t0 - DAY), n(t0 - DAY), none.clone(), none.clone()]),
                key("zsk", 1, &zsk1, "active", [n(t0 - DAY), n(t0 - DAY), n(t0 + DAY), n(t0 + DAY + 120)]),
                key("zsk", 2, &zsk2, "published", [n(t0 - 60), n(t0 + DAY), none.clone(), none]),
            ],
            "next_key_event_unix": t0 + DAY,
            "successor_missing": false,
        })
    );
    s.stop().await;
}

/// A keys directory emptied by mistake while sipsteer runs: the reload is refused (the keys
/// in memory keep signing) and no new keys are written into it.
#[tokio::test]
async fn an_emptied_keys_directory_is_refused_and_the_old_keys_keep_serving() {
    let cfg = config("keys", "");
    let keys = cfg.path("keys");
    let s = TestServer::start_in(cfg).await;
    s.reload().await;
    let before = tcp(s.addr, "example.com.", RecordType::DNSKEY, &Q::default()).await;
    assert_eq!(before.answers.len(), 2);
    // Sidecars first: a reload the watcher runs meanwhile finds no complete key to use.
    for ext in ["yaml", "pem"] {
        for e in std::fs::read_dir(&keys).expect("keys") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == ext) {
                std::fs::remove_file(p).expect("remove");
            }
        }
    }
    let root = format!("{}/", s.cfg.dir.path().display());
    match s.reload().await {
        sipsteer::reload::Outcome::Rejected(e) => assert_eq!(
            e.to_string().replace(&root, ""),
            "zones/example.com.yaml:8:17: dnssec.keys: keys has no keys of zone example.com any \
             more (it had at an earlier load): restore them; first keys are written only into a \
             directory that had none since sipsteer started"
        ),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(std::fs::read_dir(&keys).expect("keys").count(), 0);
    let after = tcp(s.addr, "example.com.", RecordType::DNSKEY, &Q::default()).await;
    assert_eq!(rrs(&after.answers), rrs(&before.answers));
    s.stop().await;
}

/// The CDS records of `keys`, as [`answer`] prints them, sorted.
fn cds(keys: &[&ZoneKey]) -> Vec<String> {
    let name = hickory_proto::rr::Name::from_ascii("example.com.").expect("name");
    sorted(
        keys.iter()
            .map(|k| k.ds_text(&name, 60).replacen(" IN DS ", " CDS ", 1))
            .collect(),
    )
}

/// The records of type `t` in the answer section, sorted (a CDS as `dnssec ds` prints a DS).
fn answer(m: &Message, t: RecordType) -> Vec<String> {
    sorted(
        m.answers
            .iter()
            .filter(|r| r.record_type() == t)
            .map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::CDS(c)) => format!(
                    "{} {} CDS {} {} 2 {}",
                    r.name,
                    r.ttl,
                    c.key_tag(),
                    c.algorithm().map_or(0, u8::from),
                    c.digest()
                        .iter()
                        .map(|b| format!("{b:02X}"))
                        .collect::<String>()
                ),
                d => format!("{} {} {} {d}", r.name, r.ttl, r.record_type()),
            })
            .collect(),
    )
}

#[tokio::test]
async fn a_ksk_roll_publishes_the_new_key_then_its_cds_and_retires_the_old_on_ds_seen() {
    let t0 = now();
    let cfg = config("keys", "");
    let keys = cfg.path("keys");
    let main = cfg.main().display().to_string();
    let ksk1 = write_key(&keys, "ksk.1", t0 - DAY, t0 - DAY);
    let zsk = write_key(&keys, "zsk.1", t0 - DAY, t0 - DAY);
    let s = TestServer::start_in(cfg).await;
    assert_eq!(
        answer(
            &udp(s.addr, "example.com.", RecordType::CDS, &Q::default()).await,
            RecordType::CDS
        ),
        cds(&[&ksk1])
    );

    let (ok, out, err) = sipsteer(&["dnssec", "roll", "ksk", "--config", &main]);
    assert!(ok, "{err}");
    assert!(out.starts_with("example.com: wrote KSK 2 ("), "{out}");
    let (ok, _, err) = sipsteer(&["dnssec", "roll", "ksk", "--config", &main]);
    assert!(!ok);
    assert!(
        err.starts_with("error: example.com: a KSK roll is under way: KSK 2 (key tag "),
        "{err}"
    );
    let ksk2 = read_key(&keys, "ksk.2");
    let all = [&ksk1, &ksk2, &zsk];
    let (k1, k2, z) = (ksk1.key_tag(), ksk2.key_tag(), zsk.key_tag());
    let mut both = vec![k1, k2];
    both.sort_unstable();
    s.reload().await;
    // Published: in the DNSKEY set and signing it (double-KSK); CDS still the old key's.
    assert_eq!(
        look(&s, &all).await,
        (dnskeys(&[&ksk1, &ksk2, &zsk]), both.clone(), vec![z])
    );
    let m = udp(s.addr, "example.com.", RecordType::CDS, &DO).await;
    assert_eq!(answer(&m, RecordType::CDS), cds(&[&ksk1]));
    assert_eq!(verify(&m, &all), sorted_pairs(RecordType::CDS, &both));

    // Active: CDS and CDNSKEY list both KSKs; `dnssec ds` prints both.
    let t1 = now();
    replace(
        &keys.join("example.com.ksk.2.yaml"),
        &sidecar(t1 - 120, t1 - 60, ""),
    );
    s.reload().await;
    let m = udp(s.addr, "example.com.", RecordType::CDS, &Q::default()).await;
    assert_eq!(answer(&m, RecordType::CDS), cds(&[&ksk1, &ksk2]));
    let m = udp(s.addr, "example.com.", RecordType::CDNSKEY, &Q::default()).await;
    assert_eq!(
        answer(&m, RecordType::CDNSKEY),
        dnskeys(&[&ksk1, &ksk2])
            .iter()
            .map(|l| l.replace(" DNSKEY ", " CDNSKEY "))
            .collect::<Vec<_>>()
    );
    let (ok, out, err) = sipsteer(&["dnssec", "ds", "--config", &main]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    // The parent's DS changed: the old KSK retires (leaves CDS), stays in the DNSKEY set.
    let (ok, out, err) = sipsteer(&["dnssec", "ds-seen", "--config", &main]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!(
            "example.com: KSK 1 (key tag {k1}) retires now; it is removed at "
        )),
        "{out}"
    );
    s.reload().await;
    let m = udp(s.addr, "example.com.", RecordType::CDS, &Q::default()).await;
    assert_eq!(answer(&m, RecordType::CDS), cds(&[&ksk2]));
    assert_eq!(
        look(&s, &all).await,
        (dnskeys(&[&ksk1, &ksk2, &zsk]), both.clone(), vec![z])
    );
    let (ok, out, err) = sipsteer(&["dnssec", "ds", "--config", &main]);
    assert!(ok, "{err}");
    let name = hickory_proto::rr::Name::from_ascii("example.com.").expect("name");
    assert_eq!(out, format!("{}\n", ksk2.ds_text(&name, 60)));
    let (ok, _, err) = sipsteer(&["dnssec", "ds-seen", "--config", &main]);
    assert!(!ok);
    assert!(
        err.contains("no KSK roll waits for the parent's DS"),
        "{err}"
    );

    // Removed once the parent's DS TTL has passed (written here): the new KSK alone signs.
    let sc = std::fs::read_to_string(keys.join("example.com.ksk.1.yaml")).expect("sidecar");
    replace(
        &keys.join("example.com.ksk.1.yaml"),
        &format!("{sc}remove: {}\n", time(now() - 1)),
    );
    s.reload().await;
    assert_eq!(
        look(&s, &all).await,
        (dnskeys(&[&ksk2, &zsk]), vec![k2], vec![z])
    );
    s.stop().await;
}

fn sorted_pairs(t: RecordType, tags: &[u16]) -> Vec<(RecordType, u16)> {
    let mut v: Vec<_> = tags.iter().map(|k| (t, *k)).collect();
    v.sort();
    v
}

/// Two instances (their own config directories) on one keys directory: the first writes the
/// keys, the second reads them, and every answer is the same bytes, before and after a roll.
#[tokio::test]
async fn two_instances_on_one_keys_directory_answer_identically() {
    let shared = tempfile::tempdir().expect("tempdir");
    let keys = shared.path().join("keys");
    let abs = keys.display().to_string();
    let a = TestServer::start_in(config(&abs, ", zsk_lifetime: 90d")).await;
    let b = TestServer::start_in(config(&abs, ", zsk_lifetime: 90d")).await;
    let names: Vec<String> = std::fs::read_dir(&keys)
        .expect("keys")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        sorted(names),
        [
            "example.com.ksk.1.pem",
            "example.com.ksk.1.yaml",
            "example.com.zsk.1.pem",
            "example.com.zsk.1.yaml"
        ]
    );
    let same = |step: &'static str| {
        let (a, b) = (a.addr, b.addr);
        async move {
            for (name, t) in [
                ("example.com.", RecordType::DNSKEY),
                ("example.com.", RecordType::CDS),
                ("www.example.com.", RecordType::A),
                ("www.example.com.", RecordType::MX),
            ] {
                let p = query(name, t, &DO);
                let (ra, rb) =
                    tokio::task::spawn_blocking(move || (tcp_raw(a, &p), tcp_raw(b, &p)))
                        .await
                        .expect("join");
                assert_eq!(ra, rb, "{step}: {name} {t}");
                assert!(parse(&ra).answers.len() + parse(&ra).authorities.len() > 1);
            }
        }
    };
    same("first keys").await;
    let main = a.cfg.main().display().to_string();
    let (ok, _, err) = sipsteer(&["dnssec", "roll", "zsk", "--config", &main]);
    assert!(ok, "{err}");
    a.reload().await;
    b.reload().await;
    let m = tcp(a.addr, "example.com.", RecordType::DNSKEY, &Q::default()).await;
    assert_eq!(m.answers.len(), 3);
    same("a ZSK published").await;
    a.stop().await;
    b.stop().await;
}

/// Eight processes load one keys directory at once when a ZSK successor is due: one
/// successor is written, every process uses it, and they all print the same keys and times.
#[test]
fn concurrent_loads_write_one_successor_and_agree_on_it() {
    let t0 = now();
    let cfg = config("keys", ", zsk_lifetime: 1d");
    let keys = cfg.path("keys");
    write_key(&keys, "ksk.1", t0 - 10 * DAY, t0 - 10 * DAY);
    write_key(&keys, "zsk.1", t0 - 10 * DAY, t0 - 10 * DAY);
    let main = cfg.main().display().to_string();
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_sipsteer"))
                .args(["dnssec", "status", "--config", &main])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().expect("wait");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        })
        .collect();
    // The same keys with the same times (a state may differ: each process has its own now).
    let keys_of = |o: &str| -> Vec<String> {
        o.lines()
            .skip(2)
            .map(|l| {
                let mut cols: Vec<&str> = l.split_whitespace().collect();
                cols.remove(3);
                cols.join(" ")
            })
            .collect()
    };
    let first = keys_of(&outs[0]);
    assert!(outs.iter().all(|o| keys_of(o) == first), "{outs:#?}");
    assert_eq!(first.len(), 3, "{}", outs[0]);
    assert!(first[2].starts_with("zsk 2 "), "{}", outs[0]);
    let names: Vec<String> = std::fs::read_dir(&keys)
        .expect("keys")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        sorted(names),
        [
            "example.com.ksk.1.pem",
            "example.com.ksk.1.yaml",
            "example.com.zsk.1.pem",
            "example.com.zsk.1.yaml",
            "example.com.zsk.2.pem",
            "example.com.zsk.2.yaml",
        ]
    );
}

/// The errors of loading a config whose zone has `dnssec:` `d`, with `keys/` holding `files`.
fn errors(d: &str, files: &[(&str, &str)]) -> Vec<String> {
    let zone = format!("{ZONE}dnssec: {d}\n");
    let dir = ConfigDir::new(MAIN, &[("z.yaml", &zone)]);
    let keys = dir.path("keys");
    std::fs::create_dir_all(&keys).expect("keys");
    for (name, text) in files {
        std::fs::write(keys.join(name), text).expect("write");
    }
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
fn config_errors_of_keys_directories() {
    assert_eq!(
        errors("{ key: k.pem, keys: keys }", &[]),
        [
            "zones/z.yaml:8:29: dnssec.keys: set `key` (one combined signing key) or `keys` (a directory of KSKs and ZSKs), not both"
        ]
    );
    assert_eq!(
        errors("{ key: k.pem, zsk_lifetime: 90d }", &[]),
        [
            "zones/z.yaml:8:37: dnssec.zsk_lifetime: `zsk_lifetime` needs `keys` (a directory of KSKs and ZSKs)"
        ]
    );
    assert_eq!(
        errors("{ keys: keys, zsk_lifetime: 90 days }", &[]),
        [
            "zones/z.yaml:8:37: dnssec.zsk_lifetime: invalid duration unit in `90 days` (use d, h, m or s)"
        ]
    );
    assert_eq!(
        errors("{ keys: keys, propagation: 1.5d }", &[]),
        [
            "zones/z.yaml:8:36: dnssec.propagation: invalid duration `1.5d` (use a number of days, like 90d)"
        ]
    );
    assert_eq!(
        errors("{ keys: keys, zsk_lifetime: 10m }", &[]),
        ["zones/z.yaml:8:37: dnssec.zsk_lifetime: must be at least 3600s"]
    );
    assert_eq!(
        errors("{ keys: keys, zsk_lifetime: 3h }", &[]),
        [
            "zones/z.yaml:8:37: dnssec.zsk_lifetime: must be at least 11040s for this zone: twice the publish wait (3660s: ttl and propagation) and the removal wait (3720s: the largest TTL and propagation)"
        ]
    );
    assert_eq!(
        errors("{ keys: zones/ }", &[]),
        [
            "zones/z.yaml:8:17: dnssec.keys: the keys directory cannot be the zones directory (every .yaml file there is a zone map)"
        ]
    );
}

#[test]
fn config_errors_of_key_sidecars() {
    let ec = ZoneKey::generate_pem(Algorithm::EcdsaP256).expect("generate");
    let ed = ZoneKey::generate_pem(Algorithm::Ed25519).expect("generate");
    let t = now();
    let ok_sidecar = sidecar(t - DAY, t - DAY, "");
    // Bad timings, in the key's sidecar.
    let bad = format!("algorithm: 13\npublish: {}\nactive: yesterday\n", time(t));
    assert_eq!(
        errors(
            "{ keys: keys }",
            &[
                ("example.com.ksk.1.yaml", &bad),
                ("example.com.ksk.1.pem", &ec)
            ]
        ),
        [
            "keys/example.com.ksk.1.yaml:3:9: active: `yesterday` is not an RFC 3339 time in UTC (like 2026-12-07T00:00:00Z)"
        ]
    );
    let early = sidecar(t, t - 60, &format!("remove: {}\n", time(t - DAY)));
    assert_eq!(
        errors(
            "{ keys: keys }",
            &[
                ("example.com.ksk.1.yaml", &early),
                ("example.com.ksk.1.pem", &ec)
            ]
        ),
        [
            "keys/example.com.ksk.1.yaml:3:9: active: `active` is before `publish`",
            "keys/example.com.ksk.1.yaml:4:9: remove: `remove` is before `active`"
        ]
    );
    // Wrong algorithm: in the sidecar, and a private key of another algorithm.
    assert_eq!(
        errors(
            "{ keys: keys }",
            &[(
                "example.com.ksk.1.yaml",
                &ok_sidecar.replace("algorithm: 13", "algorithm: 15")
            )]
        ),
        [
            "keys/example.com.ksk.1.yaml:1:12: algorithm: algorithm 15 does not match the zone's algorithm 13 (`dnssec.algorithm`)"
        ]
    );
    assert_eq!(
        errors(
            "{ keys: keys }",
            &[
                ("example.com.ksk.1.yaml", &ok_sidecar),
                ("example.com.ksk.1.pem", &ed)
            ]
        ),
        [
            "keys/example.com.ksk.1.yaml:1:12: algorithm: keys/example.com.ksk.1.pem: not an ECDSA P-256 key (algorithm 13)"
        ]
    );
}

#[test]
fn config_errors_of_missing_keys() {
    let ec = ZoneKey::generate_pem(Algorithm::EcdsaP256).expect("generate");
    let t = now();
    let ok_sidecar = sidecar(t - DAY, t - DAY, "");
    // A missing key: a sidecar without its private key (nothing is generated in its place),
    // or with a dangling link.
    let zone = format!("{ZONE}dnssec: {{ keys: keys }}\n");
    let dir = ConfigDir::new(MAIN, &[("z.yaml", &zone)]);
    std::fs::create_dir_all(dir.path("keys")).expect("keys");
    std::fs::write(dir.path("keys/example.com.ksk.1.yaml"), &ok_sidecar).expect("write");
    std::os::unix::fs::symlink("gone.pem", dir.path("keys/example.com.ksk.1.pem")).expect("link");
    let root = format!("{}/", dir.dir.path().display());
    let got: Vec<String> = sipsteer::config::load(&dir.main())
        .expect_err("missing key")
        .0
        .iter()
        .map(|e| e.to_string().replace(&root, ""))
        .collect();
    assert_eq!(
        got,
        [
            "keys/example.com.ksk.1.yaml:1:12: algorithm: cannot read keys/example.com.ksk.1.pem: no such file or directory"
        ]
    );
    assert_eq!(
        errors(
            "{ keys: keys }",
            &[
                ("example.com.ksk.1.yaml", &ok_sidecar),
                ("example.com.ksk.1.pem", &ec),
                ("example.com.zsk.1.yaml", &ok_sidecar),
            ]
        ),
        [
            "keys/example.com.zsk.1.yaml:1:12: algorithm: cannot read keys/example.com.zsk.1.pem: no such file or directory"
        ]
    );
    // A directory with no KSK, and one whose only ZSK is not active yet.
    assert_eq!(
        errors(
            "{ keys: keys }",
            &[
                ("example.com.zsk.1.yaml", &ok_sidecar),
                ("example.com.zsk.1.pem", &ec)
            ]
        ),
        ["zones/z.yaml:8:17: dnssec.keys: keys: no KSK is published"]
    );
    let later = sidecar(t - DAY, t + DAY, "");
    assert_eq!(
        errors(
            "{ keys: keys }",
            &[
                ("example.com.ksk.1.yaml", &ok_sidecar),
                ("example.com.ksk.1.pem", &ec),
                ("example.com.zsk.1.yaml", &later),
                ("example.com.zsk.1.pem", &ec),
            ]
        ),
        [
            "zones/z.yaml:8:17: dnssec.keys: keys: no ZSK is active (the first one goes active at its `active` time)"
        ]
    );
}
