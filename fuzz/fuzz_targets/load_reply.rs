//! Fuzz target: any bytes as a Prometheus instant-query reply, read as the load puller reads
//! it. Reading never panics, keeps one slot per user, never counts past the series cap, and
//! a value it takes as load is a finite number of at least zero.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sipsteer::health::load_pull::reply::{Matcher, Sample, read_reply};

/// Users as a shared query has them: by server name, one by another label, one twice.
fn matchers() -> &'static [Matcher; 2] {
    static M: OnceLock<[Matcher; 2]> = OnceLock::new();
    M.get_or_init(|| {
        [
            Matcher::new([
                ("server", "lon1"),
                ("server", "fra1"),
                ("instance", "192.0.2.10:9100"),
                ("server", "lon1"),
            ]),
            Matcher::new([("server", "lon1")]),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    for m in matchers() {
        for max in [1usize, 64] {
            let Ok(r) = read_reply(data, m, max) else {
                continue;
            };
            assert_eq!(r.samples.len(), m.users());
            assert!(r.series <= max, "{} series past a cap of {max}", r.series);
            for s in r.samples.iter().flatten() {
                if let Sample::Value(v) = s {
                    assert!(v.is_finite() && *v >= 0.0, "took {v} as load");
                }
            }
        }
    }
});
