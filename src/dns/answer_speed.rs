//! A measurement, not a test: nanoseconds per `respond()` over the benchmark's ECS queries with
//! the bench config and GeoLite2-City, warm and with the caches swept between small batches as
//! the kernel's work between batches does (run in release with the database linked as
//! bench/README.md says: `cargo test --release --lib dns::answer_speed -- --ignored --nocapture`).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::answer::{Proto, respond};
use super::snapshot::Snapshot;

fn queries(path: &Path) -> Vec<Vec<u8>> {
    let raw = std::fs::read(path).expect("queries");
    let mut out = Vec::new();
    let mut at = 0;
    while at + 2 <= raw.len() {
        let len = usize::from(u16::from_be_bytes([raw[at], raw[at + 1]]));
        out.push(raw[at + 2..at + 2 + len].to_vec());
        at += 2 + len;
    }
    out
}

#[test]
#[ignore]
fn respond_speed_on_bench_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = crate::config::load(&root.join("bench/sipsteer.yaml")).expect("config");
    let geo = (cfg.geoip.as_ref()).map(|p| Arc::new(crate::geo::GeoData::load(p).expect("geo")));
    let snap = Snapshot::build(Arc::new(cfg), geo, 1);
    let home = std::env::var("HOME").unwrap_or_default();
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    let mut out = Vec::with_capacity(4096);
    let mut sweep = vec![0u8; 4 << 20];
    let only = std::env::var("SPEED_FILE").ok();
    for file in ["a-sip-noecs", "b-sip-ecs", "c-static"] {
        if only.as_deref().is_some_and(|o| o != file) {
            continue;
        }
        let one = queries(&Path::new(&home).join(format!("bench/queries/{file}.bin")));
        let qs: Vec<&Vec<u8>> = one.iter().cycle().take(1000).collect();
        let sweeps = match std::env::var("SPEED_SWEEP")
            .ok()
            .and_then(|k| k.parse::<usize>().ok())
        {
            Some(kib) => vec![kib << 10],
            None => vec![0usize, 256 << 10, 1 << 20, 4 << 20],
        };
        for swept in sweeps {
            let warm_rounds = std::env::var("SPEED_ROUNDS")
                .ok()
                .and_then(|r| r.parse().ok());
            let rounds = match (swept, warm_rounds) {
                (0, r) => r.unwrap_or(2000),
                (_, Some(r)) => r / 10,
                (_, None) => 200,
            };
            let mut total = std::time::Duration::ZERO;
            let mut n = 0u64;
            for r in 0..rounds {
                let chunks = if swept == 0 { 1000 } else { 4 };
                for chunk in qs.chunks(chunks) {
                    if swept > 0 {
                        for b in sweep[..swept].iter_mut().step_by(64) {
                            *b = b.wrapping_add(r as u8);
                        }
                    }
                    let t = Instant::now();
                    for q in chunk {
                        let s = respond(&snap, client, Proto::Udp, q, &mut out);
                        std::hint::black_box((&s, &out));
                        out.clear();
                    }
                    total += t.elapsed();
                    n += chunk.len() as u64;
                }
            }
            println!(
                "{file}: {:.1} ns per query (caches swept by {} KiB every 4 queries)",
                total.as_nanos() as f64 / n as f64,
                swept >> 10
            );
        }
    }
    std::hint::black_box(&sweep);
}
