//! What a Prometheus reply may cost: a fake Prometheus on loopback feeds a real sipsteer
//! replies of 200,000 series (the servers' series picked out by label, the answers moved),
//! replies over the series and byte caps (the query fails whole, with the error in
//! `/v1/status` and a counted metric), and NaN, infinite, negative and non-numeric values
//! (refused, counted by reason and listed, the other servers' loads still taken).

use hickory_proto::rr::RecordType;

use crate::load_pull_fake::*;
use crate::support::dns::*;

/// The SRV answer as sorted "priority server" pairs.
async fn srv(s: &TestServer) -> Vec<String> {
    let m = udp(
        s.addr,
        "_sip._udp.sip.example.com.",
        RecordType::SRV,
        &Q::default(),
    )
    .await;
    let mut out: Vec<String> = m
        .answers
        .iter()
        .map(|r| {
            let d = r.data.to_string();
            let f: Vec<&str> = d.split_whitespace().collect();
            let server = f.get(3).and_then(|t| t.split('.').next()).unwrap_or("");
            format!("{} {server}", f.first().unwrap_or(&""))
        })
        .collect();
    out.sort();
    out
}

/// `first`, then series of servers no config names up to `n` series in all.
fn many(first: &[(&str, &str)], n: usize) -> Vec<String> {
    let mut items: Vec<String> = first.iter().map(|(s, v)| series(s, v)).collect();
    items.extend((items.len()..n).map(|i| series(&format!("other{i}"), "7")));
    items
}

#[tokio::test]
async fn a_reply_of_200k_series_is_matched_through_the_label_map() {
    let mut items = many(
        &[("lon1", "90"), ("lon2", "10"), ("lon3", "1"), ("lon4", "1")],
        199_998,
    );
    // The last two series are configured servers too: matching does not depend on order.
    items.push(series("lon5", "2"));
    items.push(series("fra1", "5"));
    let body = vector(&items);
    let prom = FakeProm::start(body, None, None).await;
    let url = format!("http://{}", prom.addr);
    let s = start(
        &main_cfg(
            &url,
            "  interval: 1h\n  timeout: 60s\n  max_series: 250000\n",
        ),
        &[],
    )
    .await;
    let st = pull_status(&s).await;
    assert_eq!(st["last_error"], serde_json::Value::Null, "{st}");
    assert_eq!(st["last_round_series"], 200_000, "{st}");
    assert_eq!(st["last_round_loads"], 6, "{st}");
    assert_eq!(st["queries_per_interval"], 1, "{st}");
    assert_eq!(st["max_series"], 250_000, "{st}");
    assert_eq!(load_of(&s, "lon1").await["calls"], 90);
    assert_eq!(load_of(&s, "fra1").await["calls"], 5);
    // lon1 is at 90 of 100 calls, past overflow_at (0.8): full, out of the answers.
    assert_eq!(
        srv(&s).await,
        ["10 lon2", "10 lon3", "10 lon4", "10 lon5", "20 fra1"]
    );
    assert_eq!(prom.seen().len(), 1);
    assert_eq!(prom.seen()[0].query, QUERY);
    eprintln!("a round of 200,000 series took {} ms", st["last_round_ms"]);
    s.stop().await;
}

#[tokio::test]
async fn a_reply_over_the_default_series_cap_fails_its_query_with_a_clear_error() {
    let prom = FakeProm::start(vector(&many(&[("lon1", "90")], 100_001)), None, None).await;
    let url = format!("http://{}", prom.addr);
    let s = start(&main_cfg(&url, "  interval: 1h\n  timeout: 60s\n"), &[]).await;
    let st = pull_status(&s).await;
    assert_eq!(
        st["last_error"],
        format!("query `{QUERY}` to {url}: reply has more than 100000 series (load.max_series)"),
        "{st}"
    );
    assert_eq!(st["max_series"], 100_000);
    assert_eq!(
        (st["queries_ok"].clone(), st["queries_failed"].clone()),
        (0.into(), 1.into())
    );
    assert_eq!(st["last_round_loads"], 0);
    assert_eq!(
        s.series(r#"sipsteer_load_replies_refused_total{limit="series"}"#),
        Some(1.0)
    );
    assert_eq!(
        s.series(r#"sipsteer_load_queries_total{result="error"}"#),
        Some(1.0)
    );
    // Nothing of a refused reply is taken, not even the series before the cap.
    assert_eq!(load_of(&s, "lon1").await, serde_json::Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn a_reply_over_max_bytes_fails_its_query() {
    let body = vector(&many(&[("lon1", "90")], 40));
    assert!(body.len() > 2048);
    let prom = FakeProm::start(body, None, None).await;
    let url = format!("http://{}", prom.addr);
    let s = start(&main_cfg(&url, "  interval: 1h\n  max_bytes: 2KiB\n"), &[]).await;
    let st = pull_status(&s).await;
    assert_eq!(
        st["last_error"],
        format!("query `{QUERY}` to {url}: reply is larger than 2048 bytes (load.max_bytes)"),
        "{st}"
    );
    assert_eq!(st["max_bytes"], 2048);
    assert_eq!(
        s.series(r#"sipsteer_load_replies_refused_total{limit="bytes"}"#),
        Some(1.0)
    );
    assert_eq!(load_of(&s, "lon1").await, serde_json::Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn nan_inf_negative_and_garbage_values_are_refused_counted_and_shown() {
    let body = vector(&[
        series("lon1", "NaN"),
        series("lon2", "+Inf"),
        series("lon3", "-Inf"),
        series("lon4", "-2"),
        series("lon5", "busy"),
        series("fra1", "20"),
    ]);
    let prom = FakeProm::start(body, None, None).await;
    let url = format!("http://{}", prom.addr);
    let s = start(&main_cfg(&url, "  interval: 1h\n"), &[]).await;
    let st = pull_status(&s).await;
    // A refused value is not a failed query.
    assert_eq!(st["last_error"], serde_json::Value::Null, "{st}");
    assert_eq!(st["last_round_rejected"], 5, "{st}");
    assert_eq!(st["rejected_total"], 5, "{st}");
    assert_eq!(st["last_round_loads"], 1, "{st}");
    let listed: Vec<String> = st["rejections"]
        .as_array()
        .expect("rejections")
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["server"].as_str().unwrap_or(""),
                r["field"].as_str().unwrap_or(""),
                r["value"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            "uk/lon1 calls NaN nan",
            "uk/lon2 calls +Inf inf",
            "uk/lon3 calls -Inf inf",
            "uk/lon4 calls -2 negative",
            "uk/lon5 calls busy not_a_number",
        ]
    );
    for (reason, n) in [
        ("nan", 1.0),
        ("inf", 2.0),
        ("negative", 1.0),
        ("not_a_number", 1.0),
    ] {
        assert_eq!(
            s.series(&format!(
                "sipsteer_load_values_rejected_total{{reason=\"{reason}\"}}"
            )),
            Some(n),
            "{reason}"
        );
    }
    assert_eq!(load_of(&s, "lon1").await, serde_json::Value::Null);
    assert_eq!(load_of(&s, "fra1").await["calls"], 20);
    s.stop().await;
}

#[tokio::test]
async fn a_prometheus_error_is_shown_with_its_status() {
    let prom = FakeProm::start(String::new(), None, None).await;
    prom.set_reply(
        400,
        r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#
            .to_owned(),
    );
    let url = format!("http://{}", prom.addr);
    let s = start(&main_cfg(&url, "  interval: 1h\n"), &[]).await;
    let st = pull_status(&s).await;
    assert_eq!(
        st["last_error"],
        format!(
            "query `{QUERY}` to {url}: http 400: prometheus says: 1:5: parse error: unexpected"
        ),
        "{st}"
    );
    s.stop().await;
}
