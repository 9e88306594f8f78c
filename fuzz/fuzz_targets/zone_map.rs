//! Fuzz target: any bytes as a zone map beside a fixed small `sipsteer.yaml`, loaded with
//! `config::load` as serve, check and reload do. Loading never panics, and every error about
//! the zone map carries file:line:col (only an unreadable file is an error about the whole
//! file).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const MAIN: &str =
    "listen: { dns: [\"127.0.0.1:0\"], admin: \"off\" }\nzones: zones\nhealth: { check: none }\n";

/// A config directory made once per process: `sipsteer.yaml` and `zones/`.
fn dir() -> &'static (tempfile::TempDir, PathBuf) {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        std::fs::write(d.path().join("sipsteer.yaml"), MAIN).expect("write main");
        std::fs::create_dir(d.path().join("zones")).expect("mkdir zones");
        let zone = d.path().join("zones/fuzz.example.yaml");
        (d, zone)
    })
}

fuzz_target!(|data: &[u8]| {
    let (d, zone) = dir();
    std::fs::write(zone, data).expect("write zone map");
    let Err(errs) = sipsteer::config::load(&d.path().join("sipsteer.yaml")) else {
        return;
    };
    assert!(!errs.0.is_empty(), "an error value without errors");
    for e in &errs.0 {
        assert!(!e.message.is_empty(), "empty message: {e}");
        if &e.file == zone {
            assert!(
                e.line > 0 || e.message.starts_with("cannot read"),
                "zone map error without a line: {e}"
            );
        }
    }
});
