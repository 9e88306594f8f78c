//! Validating a service's traffic engineering: `bias` (kilometres off the distance to a
//! region) and `split` (a percentage of one region's clients sent to another region).

use super::error::Sink;
use super::raw;
use super::{SplitConfig, not_in};

/// Largest bias in kilometres either way: half the Earth's circumference, past which a
/// bias cannot change any distance ranking further.
pub const MAX_BIAS_KM: f64 = 20_000.0;

/// `bias:` per region of the service (index into the config's regions) in kilometres, in the
/// order written; zero biases are dropped.
pub(super) fn bias(
    s: &raw::Service,
    in_service: &dyn Fn(&str) -> Option<usize>,
    path: &str,
    sink: &mut Sink,
) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    for (region, km) in raw::in_written_order(&s.bias) {
        let bpath = format!("{path}.bias.{}", region.value);
        let Some(i) = in_service(&region.value) else {
            sink.on(region, &bpath, not_in(&region.value));
            continue;
        };
        if !(km.value.is_finite() && km.value.abs() <= MAX_BIAS_KM) {
            sink.on(
                km,
                &bpath,
                format!("bias must be between -{MAX_BIAS_KM} and {MAX_BIAS_KM} km"),
            );
            continue;
        }
        if km.value != 0.0 {
            out.push((i, km.value));
        }
    }
    out
}

/// `split:` per source region, its targets with their percentages, in the order written.
pub(super) fn splits(
    s: &raw::Service,
    in_service: &dyn Fn(&str) -> Option<usize>,
    path: &str,
    sink: &mut Sink,
) -> Vec<SplitConfig> {
    let mut out = Vec::new();
    for (from, targets) in raw::in_written_order(&s.split) {
        let fpath = format!("{path}.split.{}", from.value);
        let Some(fi) = in_service(&from.value) else {
            sink.on(from, &fpath, not_in(&from.value));
            continue;
        };
        let mut total = 0.0;
        let mut rules = Vec::new();
        for (to, pct) in raw::in_written_order(targets) {
            let tpath = format!("{fpath}.{}", to.value);
            let Some(ti) = in_service(&to.value) else {
                sink.on(to, &tpath, not_in(&to.value));
                continue;
            };
            if ti == fi {
                sink.on(
                    to,
                    &tpath,
                    format!("region `{}` cannot split to itself", to.value),
                );
                continue;
            }
            if !(pct.value > 0.0 && pct.value <= 100.0) {
                sink.on(
                    pct,
                    &tpath,
                    "split must be more than 0 and at most 100 percent",
                );
                continue;
            }
            total += pct.value;
            rules.push(SplitConfig {
                from: fi,
                to: ti,
                percent: pct.value,
            });
        }
        if total > 100.0 {
            sink.on(
                from,
                &fpath,
                format!(
                    "the splits of region `{}` add up to {total} percent (at most 100)",
                    from.value
                ),
            );
            continue;
        }
        out.extend(rules);
    }
    out
}
