//! The reply reader on hand-written replies: vectors and scalars in any key order, the
//! label map, the lone-series rule, the caps, rejections and Prometheus's own errors.

use super::*;

fn one(label: &str, value: &str) -> Matcher {
    Matcher::new([(label, value)])
}

fn read(body: &str, m: &Matcher, max: usize) -> Result<Reply, ReplyError> {
    read_reply(body.as_bytes(), m, max)
}

fn series(label: &str, v: &str) -> String {
    format!(r#"{{"metric":{{"__name__":"x","server":"{label}"}},"value":[1.5,"{v}"]}}"#)
}

fn vector(items: &[String]) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        items.join(",")
    )
}

#[test]
fn series_are_picked_by_label_and_the_rest_skipped() {
    let m = Matcher::new([("server", "lon1"), ("server", "fra1"), ("dc", "uk")]);
    let body = vector(&[
        series("other", "1"),
        series("fra1", "10"),
        series("lon1", "849.6"),
        series("lon1", "7"),
        r#"{"value":[1,"3"],"metric":{"dc":"uk"}}"#.to_owned(),
    ]);
    let r = read(&body, &m, 100).expect("reads");
    assert_eq!(r.series, 5);
    assert_eq!(
        r.samples,
        [
            Some(Sample::Value(849.6)),
            Some(Sample::Value(10.0)),
            Some(Sample::Value(3.0))
        ]
    );
}

#[test]
fn key_order_does_not_matter() {
    let m = one("server", "lon1");
    let body = r#"{"data":{"result":[{"value":[1,"5"],"metric":{"server":"lon1"}},{"value":[1,"6"],"metric":{"server":"x"}}],"resultType":"vector"},"warnings":["w"],"status":"success"}"#;
    let r = read(body, &m, 10).expect("reads");
    assert_eq!(r.samples, [Some(Sample::Value(5.0))]);
}

#[test]
fn a_query_of_one_user_takes_a_lone_series_of_any_labels() {
    let m = one("server", "lon1");
    let r = read(&vector(&[series("other", "7")]), &m, 10).expect("reads");
    assert_eq!(r.samples, [Some(Sample::Value(7.0))]);
    let two = Matcher::new([("server", "lon1"), ("server", "lon2")]);
    let r = read(&vector(&[series("other", "7")]), &two, 10).expect("reads");
    assert_eq!(r.samples, [None, None]);
    let r = read(&vector(&[series("a", "7"), series("b", "8")]), &m, 10).expect("reads");
    assert_eq!(r.samples, [None]);
}

#[test]
fn a_scalar_belongs_to_the_only_user() {
    let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"3"]}}"#;
    let r = read(body, &one("server", "lon1"), 10).expect("reads");
    assert_eq!((r.series, r.samples), (1, vec![Some(Sample::Value(3.0))]));
    let two = Matcher::new([("server", "a"), ("server", "b")]);
    assert_eq!(read(body, &two, 10).expect("reads").samples, [None, None]);
}

#[test]
fn nan_inf_negative_and_garbage_are_rejected_with_their_reason() {
    let m = Matcher::new([
        ("server", "a"),
        ("server", "b"),
        ("server", "c"),
        ("server", "d"),
        ("server", "e"),
        ("server", "f"),
    ]);
    let body = vector(&[
        series("a", "NaN"),
        series("b", "+Inf"),
        series("c", "-Inf"),
        series("d", "-3.5"),
        series("e", "lots"),
        series("f", "-0"),
    ]);
    let r = read(&body, &m, 10).expect("reads");
    let rej = |reason, s: &str| Some(Sample::Rejected(reason, s.to_owned()));
    assert_eq!(
        r.samples,
        [
            rej(Reason::Nan, "NaN"),
            rej(Reason::Inf, "+Inf"),
            rej(Reason::Inf, "-Inf"),
            rej(Reason::Negative, "-3.5"),
            rej(Reason::NotANumber, "lots"),
            Some(Sample::Value(-0.0)),
        ]
    );
}

#[test]
fn the_series_cap_fails_the_reply() {
    let m = one("server", "lon1");
    let items: Vec<String> = (0..5).map(|i| series(&format!("s{i}"), "1")).collect();
    assert_eq!(read(&vector(&items), &m, 5).map(|r| r.series), Ok(5));
    let items: Vec<String> = (0..6).map(|i| series(&format!("s{i}"), "1")).collect();
    let e = read(&vector(&items), &m, 5).unwrap_err();
    assert_eq!(e, ReplyError::TooManySeries(5));
    assert_eq!(
        e.to_string(),
        "reply has more than 5 series (load.max_series)"
    );
}

#[test]
fn a_string_or_number_past_the_token_bound_fails_the_reply() {
    let m = one("server", "lon1");
    let fits = series(&"x".repeat(MAX_TOKEN), "1");
    assert!(read(&vector(&[fits]), &m, 5).is_ok());
    let long = series(&"x".repeat(MAX_TOKEN + 1), "1");
    assert_eq!(read(&vector(&[long]), &m, 5), Err(ReplyError::TokenTooLong));
    let number = format!(
        r#"{{"status":"success","data":{{"resultType":"scalar","result":[{},"1"]}}}}"#,
        "1".repeat(MAX_TOKEN + 1)
    );
    assert_eq!(read(&number, &m, 5), Err(ReplyError::TokenTooLong));
    // Escaped quotes stay inside the string.
    let escaped = series(&format!("{}\\\"", "y".repeat(MAX_TOKEN)), "1");
    assert_eq!(
        read(&vector(&[escaped]), &m, 5),
        Err(ReplyError::TokenTooLong)
    );
}

#[test]
fn errors_say_what_went_wrong() {
    let m = one("server", "lon1");
    let e = read(
        r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        &m,
        5,
    );
    assert_eq!(
        e.map_err(|e| e.to_string()),
        Err("prometheus says: parse error at char 3".into())
    );
    assert!(
        read("<html>", &m, 5)
            .unwrap_err()
            .to_string()
            .starts_with("reply is not JSON")
    );
    let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#;
    assert_eq!(
        read(matrix, &m, 5).map_err(|e| e.to_string()),
        Err("unsupported result type matrix (use an instant vector or scalar query)".into())
    );
    assert_eq!(
        read(r#"{"status":"success"}"#, &m, 5),
        Err(ReplyError::ResultType("none".into()))
    );
    assert!(matches!(
        read(&format!("{} x", vector(&[])), &m, 5),
        Err(ReplyError::NotJson(_))
    ));
    let deep = format!(
        r#"{{"warnings":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(read(&deep, &m, 5), Err(ReplyError::TooDeep));
    let fits = format!(
        r#"{{"warnings":{}{},"status":"error"}}"#,
        "[".repeat(MAX_DEPTH - 1),
        "]".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(
        read(&fits, &m, 5),
        Err(ReplyError::Failed("query failed".into()))
    );
}
