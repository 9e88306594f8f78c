//! The servers in an explanation: the days left on their TLS certificates, from the running
//! health hub (`/v1/explain`), and the ranking line that shows them (with the transports a
//! server is left out on).

use std::fmt::Write as _;

use super::{Explanation, RankOut};

/// Gives each server of `e` the days left on its TLS certificate, as `days(region, server)`
/// says.
pub(crate) fn add_certificates(e: &mut Explanation, days: impl Fn(&str, &str) -> Option<i64>) {
    for r in e.service.iter_mut().flat_map(|s| s.ranking.iter_mut()) {
        for s in &mut r.servers {
            s.tls_days_left = days(&r.region, &s.name);
        }
    }
}

/// A server's TLS certificate in the ranking line.
fn tls_days(d: i64) -> String {
    if d < 0 {
        format!(" (tls certificate expired {} days ago)", -d)
    } else {
        format!(" (tls certificate: {d} days left)")
    }
}

/// One line of the ranking: the region's place (`i` from 0), distance, health and servers.
pub(super) fn render_rank(s: &mut String, i: usize, r: &RankOut) {
    let mut dist = r
        .distance_km
        .map_or("-".to_string(), |d| format!("{d:.0} km"));
    if let Some(b) = r.bias_km {
        let _ = write!(dist, " (bias {b:+} km)");
    }
    let servers: Vec<String> = r
        .servers
        .iter()
        .map(|x| {
            format!(
                "{} {}{}{}{}{}{}{}",
                x.name,
                x.state.as_str(),
                if x.suspect { " (suspect)" } else { "" },
                if x.backup { " (backup)" } else { "" },
                x.file_state
                    .map(|f| format!(" (operator state file: {f})"))
                    .unwrap_or_default(),
                x.shed_percent
                    .map(|p| format!(
                        " (shedding {p}%{})",
                        if x.shed_client {
                            ", this client left out"
                        } else {
                            ""
                        }
                    ))
                    .unwrap_or_default(),
                x.tls_days_left.map(tls_days).unwrap_or_default(),
                if x.not_on.is_empty() || !x.state.serves() {
                    String::new()
                } else {
                    format!(" (not on {})", x.not_on.join(", "))
                }
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "  {}. {:<10} {:>9}  {:<9} {}",
        i + 1,
        r.region,
        dist,
        if r.healthy { "healthy" } else { "unhealthy" },
        servers.join(", ")
    );
}
