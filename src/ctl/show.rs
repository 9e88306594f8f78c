//! How `sipsteer ctl` prints the admin API's replies as text: the status summary, the servers
//! table, one server after a change, a reload's result, the event log.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// `-` for a missing value.
fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".to_owned())
}

/// `12s`, `5m`, `3h`, `2d`.
pub(super) fn age(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// An RFC 3339 time (seconds) of Unix seconds.
fn time(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// `/v1/status` in a few lines.
pub(super) fn status(v: &Value) -> String {
    let mut s = String::new();
    let r = &v["reload"];
    let _ = writeln!(
        s,
        "generation {} (sipsteer {})",
        v["generation"],
        v["version"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "reload: {} ({} applied, {} unchanged, {} refused)",
        r["last_result"].as_str().unwrap_or("?"),
        r["applied"],
        r["unchanged"],
        r["rejected"]
    );
    if let Some(e) = r["last_error"].as_str() {
        for line in e.lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    if let Some(m) = r["restart_needed"].as_str() {
        let _ = writeln!(s, "  {m}");
    }
    if let Some(g) = v["geoip"].as_object() {
        let _ = writeln!(
            s,
            "geoip: {} {}",
            g.get("state").and_then(Value::as_str).unwrap_or("?"),
            g.get("path").and_then(Value::as_str).unwrap_or("?")
        );
    }
    for z in v["zones"].as_array().into_iter().flatten() {
        let services: Vec<&str> = z["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            s,
            "zone {}: serial {}, services {}",
            z["zone"].as_str().unwrap_or("?"),
            z["serial"],
            if services.is_empty() {
                "-".to_owned()
            } else {
                services.join(", ")
            }
        );
    }
    let mut by_state: Vec<(String, usize)> = Vec::new();
    for srv in v["servers"].as_array().into_iter().flatten() {
        let st = srv["state"].as_str().unwrap_or("?").to_owned();
        match by_state.iter_mut().find(|(k, _)| *k == st) {
            Some((_, n)) => *n += 1,
            None => by_state.push((st, 1)),
        }
    }
    let counts: Vec<String> = by_state.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(
        s,
        "servers: {}",
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        }
    );
    if let Some(p) = v["load_pull"].as_object() {
        let err = p.get("last_error").and_then(Value::as_str);
        let _ = writeln!(
            s,
            "load pull: {} ({})",
            p.get("url").and_then(Value::as_str).unwrap_or("?"),
            err.unwrap_or("ok")
        );
    }
    s
}

/// The columns of one server in the `servers` table.
fn row(v: &Value) -> [String; 9] {
    let name = format!(
        "{}/{}",
        v["region"].as_str().unwrap_or("?"),
        v["server"].as_str().unwrap_or("?")
    );
    let mut state = v["state"].as_str().unwrap_or("?").to_owned();
    if v["suspect"].as_bool() == Some(true) {
        state.push_str(" (suspect)");
    }
    // Health per transport: each transport's state, and each one's last probe.
    let lanes = v["transports"].as_array().map_or(&[][..], Vec::as_slice);
    let field = |t: &Value, k: &str| t[k].as_str().unwrap_or("-").to_owned();
    if !lanes.is_empty() {
        let each: Vec<String> = lanes
            .iter()
            .map(|t| format!("{}:{}", field(t, "transport"), field(t, "state")))
            .collect();
        let _ = write!(state, " [{}]", each.join(" "));
    }
    let forced = v["forced"]
        .as_str()
        .map(|f| format!("{f} ({})", v["forced_by"].as_str().unwrap_or("?")));
    let by_api = v["forced_by"].as_str() == Some("api");
    let active = if by_api {
        &v["api_state"]
    } else {
        &v["file_state"]
    };
    let until = active["until_unix"].as_u64().map(time);
    let note = active["note"].as_str().map(str::to_owned);
    let mut probe = match (v["check"].as_str(), v["last_result"].as_str()) {
        (Some("none"), _) => Some("not probed".to_owned()),
        (Some("per-transport"), _) => Some(
            lanes
                .iter()
                .map(|t| format!("{}: {}", field(t, "transport"), field(t, "last_result")))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (_, r) => r.map(str::to_owned),
    };
    // A TLS-checked server's certificate: days left (negative once expired).
    if let (Some(p), Some(d)) = (&mut probe, v["tls_certificate"]["days_left"].as_i64()) {
        let _ = write!(p, " (cert {d}d)");
    }
    let rtt = v["rtt_ms"].as_f64().map(|ms| format!("{ms:.1}ms"));
    let load = v["load"].as_object().map(|l| {
        let n = |k: &str| {
            l.get(k)
                .and_then(Value::as_u64)
                .map_or("-".to_owned(), |x| x.to_string())
        };
        format!("{}/{}", n("calls"), n("cps"))
    });
    [
        name,
        state,
        or_dash(forced),
        or_dash(until),
        or_dash(probe),
        or_dash(rtt),
        or_dash(load),
        age(v["since_secs"].as_f64().unwrap_or(0.0)),
        or_dash(note),
    ]
}

const HEADER: [&str; 9] = [
    "SERVER",
    "STATE",
    "FORCED",
    "UNTIL",
    "PROBE",
    "RTT",
    "CALLS/CPS",
    "SINCE",
    "NOTE",
];

/// `/v1/servers` as a table, one server a line.
pub(super) fn servers(v: &Value) -> String {
    let rows: Vec<[String; 9]> = v["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(row)
        .collect();
    let mut widths = HEADER.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.zip(widths).enumerate() {
            if i + 1 == HEADER.len() {
                l.push_str(c);
            } else {
                let pad = w.saturating_sub(c.chars().count());
                let _ = write!(l, "{c}{}  ", " ".repeat(pad));
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&mut HEADER.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
    s
}

/// One server after a change: `uk/lon1: drained (api) until …: note`.
pub(super) fn server(v: &Value) -> String {
    let [name, state, forced, until, _, _, load, _, note] = row(v);
    let mut s = format!("{name}: {state}");
    if forced != "-" {
        let _ = write!(s, ", forced {forced}");
    }
    if until != "-" {
        let _ = write!(s, " until {until}");
    }
    if load != "-" {
        let _ = write!(s, ", calls/cps {load}");
    }
    if note != "-" {
        let _ = write!(s, ": {note}");
    }
    s.push('\n');
    s
}

/// The result of `POST /v1/reload`.
pub(super) fn reload(v: &Value) -> String {
    match (v["result"].as_str(), v["generation"].as_u64()) {
        (Some(r), Some(g)) => format!("reload: {r}, generation {g}\n"),
        (Some(r), None) => format!("reload: {r}\n"),
        _ => format!("reload: {v}\n"),
    }
}

/// The event log, one event a line (a message of several lines indented below it).
pub(super) fn events(v: &Value) -> String {
    let mut s = String::new();
    if let Some(n) = v["missed"].as_u64().filter(|n| *n > 0) {
        let _ = writeln!(s, "({n} earlier events no longer kept)");
    }
    for e in v["events"].as_array().into_iter().flatten() {
        let at = e["unix_ms"]
            .as_u64()
            .map_or("?".to_owned(), |ms| time(ms / 1000));
        let mut lines = e["message"].as_str().unwrap_or("").lines();
        let _ = writeln!(
            s,
            "{} {at} {} {}: {}",
            e["seq"],
            e["kind"].as_str().unwrap_or("?"),
            e["subject"].as_str().unwrap_or("?"),
            lines.next().unwrap_or("")
        );
        for l in lines {
            let _ = writeln!(s, "    {l}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(age(0.4), "0s");
        assert_eq!(age(59.9), "59s");
        assert_eq!(age(61.0), "1m");
        assert_eq!(age(7200.0), "2h");
        assert_eq!(age(200_000.0), "2d");
        assert_eq!(age(f64::NAN), "0s");
    }

    #[test]
    fn servers_table_aligns_columns() {
        let v: Value = serde_json::json!({"servers": [
            {"region": "uk", "server": "lon1", "state": "drained", "suspect": false,
             "forced": "drained", "forced_by": "api",
             "api_state": {"state": "drained", "until_unix": 4070908800u64, "active": true, "note": "disk"},
             "check": "sip-options-udp", "last_result": "200 OK", "rtt_ms": 0.42,
             "load": {"calls": 900, "cps": null, "age_secs": 1.0}, "since_secs": 75.0},
            {"region": "de", "server": "fra1", "state": "up", "suspect": true, "forced": null,
             "forced_by": null, "check": "none", "last_result": null, "rtt_ms": null,
             "load": null, "since_secs": 3.0},
            {"region": "de", "server": "fra2", "state": "up", "suspect": false, "forced": null,
             "forced_by": null, "check": "sip-options-tls", "last_result": "200 OK", "rtt_ms": 2.0,
             "load": null, "since_secs": 3.0,
             "tls_certificate": {"not_after_unix": 1, "expires_in_secs": 1, "days_left": 12, "failure": null}}
        ]});
        assert_eq!(
            servers(&v),
            "SERVER   STATE         FORCED         UNTIL                 PROBE              RTT    CALLS/CPS  SINCE  NOTE\n\
             uk/lon1  drained       drained (api)  2099-01-01T00:00:00Z  200 OK             0.4ms  900/-      1m     disk\n\
             de/fra1  up (suspect)  -              -                     not probed         -      -          3s     -\n\
             de/fra2  up            -              -                     200 OK (cert 12d)  2.0ms  -          3s     -\n"
        );
    }

    #[test]
    fn servers_table_shows_each_transport() {
        let v: Value = serde_json::json!({"servers": [
            {"region": "uk", "server": "lon1", "state": "up", "suspect": false, "forced": null,
             "forced_by": null, "check": "per-transport", "last_result": "timeout after 2s",
             "rtt_ms": null, "load": null, "since_secs": 5.0,
             "transports": [
                {"transport": "udp", "state": "down", "last_result": "timeout after 2s"},
                {"transport": "tls", "state": "up", "last_result": "200 OK"}]}
        ]});
        assert_eq!(
            servers(&v),
            "SERVER   STATE                 FORCED  UNTIL  PROBE                               RTT  CALLS/CPS  SINCE  NOTE\n\
             uk/lon1  up [udp:down tls:up]  -       -      udp: timeout after 2s; tls: 200 OK  -    -          5s     -\n"
        );
    }
}
