//! Every series of `/metrics` comes out of one exposition path: the query counters, the
//! defences' counters and the rest of the registry each have one HELP and one TYPE line, and
//! every line is well formed (label values escaped as the text format wants: `\\`, `\"`,
//! `\n` and nothing else). Label values with those characters cannot come from a config
//! (zone, region and server names are DNS names); `telemetry` and `dns::stats` test them.

use hickory_proto::rr::RecordType;

use crate::support::dns::*;

/// A label value as Prometheus reads it: `None` for an escape the text format does not have.
fn unescape(v: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                _ => return None,
            },
            '"' | '\n' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Label names and values, as read back.
type Labels = Vec<(String, String)>;

/// One series line: its name, its labels and its value.
fn series(line: &str) -> Option<(&str, Labels, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, mut rest)) = head.split_once('{') else {
        return Some((head, Vec::new(), value));
    };
    let mut labels = Vec::new();
    while rest != "}" {
        let (key, after) = rest.split_once("=\"")?;
        let raw = label_value(after)?;
        labels.push((key.to_string(), unescape(raw)?));
        rest = after[raw.len() + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[raw.len() + 1..]);
    }
    Some((name, labels, value))
}

/// The escaped value at the start of `s`, up to the quote that closes it.
fn label_value(s: &str) -> Option<&str> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(&s[..i]),
            _ => {}
        }
    }
    None
}

#[tokio::test]
async fn metrics_is_one_well_formed_exposition() {
    let s = TestServer::start(MAIN, &[("example.com.yaml", STATIC_ZONE)]).await;
    let reply = udp(s.addr, "mail.example.com.", RecordType::A, &Q::default()).await;
    assert_eq!(rrs(&reply.answers), ["mail.example.com. 300 A 192.0.2.25"]);
    let metrics = s.metrics();
    let mut seen = Vec::new();
    for line in metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let parsed = series(line).unwrap_or_else(|| panic!("malformed: {line:?}"));
        seen.push(parsed);
    }
    let find = |name: &str, labels: &[(&str, &str)]| {
        seen.iter()
            .find(|(n, l, _)| {
                *n == name
                    && l.len() == labels.len()
                    && l.iter().zip(labels).all(|(a, b)| a.0 == b.0 && a.1 == b.1)
            })
            .map(|(_, _, v)| *v)
    };
    let static_a = [("type", "A"), ("rcode", "NOERROR"), ("reason", "static")];
    assert_eq!(find("sipsteer_queries_total", &static_a), Some(1.0));
    assert_eq!(
        find("sipsteer_zone_queries_total", &[("zone", "example.com.")]),
        Some(1.0)
    );
    assert_eq!(
        find("sipsteer_queries_ecs_total", &[("ecs", "absent")]),
        Some(1.0)
    );
    assert_eq!(find("sipsteer_truncated_total", &[]), Some(0.0));
    assert_eq!(
        find("sipsteer_dns_cookies_total", &[("result", "valid")]),
        Some(0.0)
    );
    assert_eq!(find("sipsteer_rrl_prefix_limited_total", &[]), Some(0.0));
    for family in [
        "sipsteer_queries_total",
        "sipsteer_queries_ecs_total",
        "sipsteer_truncated_total",
        "sipsteer_zone_queries_total",
        "sipsteer_dns_cookies_total",
        "sipsteer_rrl_responses_total",
        "sipsteer_rrl_prefix_limited_total",
        "sipsteer_config_reloads_total",
    ] {
        let help = format!("# HELP {family} ");
        let kind = format!("# TYPE {family} counter");
        let count = |p: &dyn Fn(&str) -> bool| metrics.lines().filter(|l| p(l)).count();
        assert_eq!(count(&|l| l.starts_with(&help)), 1, "{family}\n{metrics}");
        assert_eq!(count(&|l| l == kind), 1, "{family}\n{metrics}");
    }
    s.stop().await;
}
