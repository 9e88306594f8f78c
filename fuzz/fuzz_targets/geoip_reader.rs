//! Fuzz target: any bytes as a `.mmdb` file opened with `geo::GeoDb` and compiled to its
//! network table, as serve, check, reload and explain do. Loading either fails or returns a
//! table bounded by the file: a checked search tree has at most one network per 6 bytes.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sipsteer::geo::GeoDb;

fn path() -> &'static (tempfile::TempDir, PathBuf) {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        let p = d.path().join("fuzz.mmdb");
        (d, p)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, p) = path();
    std::fs::write(p, data).expect("write database");
    let Ok(db) = GeoDb::open(p) else {
        return;
    };
    let Ok(table) = db.table() else {
        return;
    };
    let _ = table.lookup_range([81, 2, 69, 1].into());
    let _ = table.lookup_range("2a00:1000::1".parse::<std::net::IpAddr>().expect("address"));
    // Networks <= nodes + 1 <= len / 6 + 1; flattening splits each at most in two, and a
    // network over ::/96 adds an IPv4 range.
    let bound = 3 * (data.len() / 6 + 2);
    assert!(
        table.len() <= bound,
        "{} ranges from {} bytes",
        table.len(),
        data.len()
    );
    assert!(table.locations.len() <= data.len());
});
