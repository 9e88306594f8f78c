//! Reaching Prometheus over HTTPS and with credentials: a fake Prometheus with a certificate
//! from a CA made here, trusted through `load.ca_file`, refused without it or when the
//! certificate names another host; a bearer token read from a file and basic auth sent with
//! every query; wrong credentials get 401, shown in `/v1/status`.

use base64::Engine as _;

use crate::load_pull_fake::*;

fn with_lon1(calls: &str) -> String {
    vector(&[series("lon1", calls)])
}

#[tokio::test]
async fn https_with_a_ca_file_and_a_bearer_token_from_a_file() {
    let ca = TestCa::new();
    let prom = FakeProm::start(
        with_lon1("42"),
        Some("Bearer tok-5ecret".to_owned()),
        Some(ca.server(&["localhost"], false)),
    )
    .await;
    let url = format!("https://localhost:{}", prom.addr.port());
    let s = start(
        &main_cfg(
            &url,
            "  interval: 200ms\n  ca_file: prom-ca.pem\n  bearer_token_file: prom-token\n",
        ),
        &[("prom-ca.pem", &ca.pem()), ("prom-token", "tok-5ecret\n")],
    )
    .await;
    wait_calls(&s, "lon1", 42).await;
    let st = pull_status(&s).await;
    assert_eq!(st["url"], url);
    let seen = prom.seen();
    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!(r.auth.as_deref(), Some("Bearer tok-5ecret"));
        assert_eq!(r.query, QUERY);
    }
    s.stop().await;
}

#[tokio::test]
async fn https_without_the_ca_file_refuses_an_unknown_issuer() {
    let ca = TestCa::new();
    let prom = FakeProm::start(with_lon1("42"), None, Some(ca.server(&["localhost"], true))).await;
    let url = format!("https://127.0.0.1:{}", prom.addr.port());
    let s = start(&main_cfg(&url, "  interval: 1h\n"), &[]).await;
    let st = pull_status(&s).await;
    let err = st["last_error"].as_str().unwrap_or("");
    assert!(
        err.starts_with(&format!(
            "query `{QUERY}` to {url}: cannot reach prometheus: "
        )),
        "{st}"
    );
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{st}"
    );
    assert_eq!(load_of(&s, "lon1").await, serde_json::Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn https_checks_the_certificate_names_the_host() {
    let ca = TestCa::new();
    let prom = FakeProm::start(
        with_lon1("42"),
        None,
        Some(ca.server(&["prom.test"], false)),
    )
    .await;
    let url = format!("https://localhost:{}", prom.addr.port());
    let s = start(
        &main_cfg(&url, "  interval: 1h\n  ca_file: prom-ca.pem\n"),
        &[("prom-ca.pem", &ca.pem())],
    )
    .await;
    let st = pull_status(&s).await;
    let err = st["last_error"].as_str().unwrap_or("");
    assert!(err.contains("certificate not valid for name"), "{st}");
    assert!(
        prom.seen().is_empty(),
        "no request crossed a refused handshake"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_wrong_bearer_token_gets_401_shown_in_status() {
    let prom = FakeProm::start(with_lon1("42"), Some("Bearer right-token".to_owned()), None).await;
    let url = format!("http://{}", prom.addr);
    let s = start(
        &main_cfg(&url, "  interval: 1h\n  bearer_token: wrong-token\n"),
        &[],
    )
    .await;
    let st = pull_status(&s).await;
    assert_eq!(
        st["last_error"],
        format!("query `{QUERY}` to {url}: http 401: \"unauthorized\""),
        "{st}"
    );
    assert_eq!(prom.seen()[0].auth.as_deref(), Some("Bearer wrong-token"));
    assert_eq!(load_of(&s, "lon1").await, serde_json::Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn basic_auth_with_a_password_file() {
    let pair = base64::engine::general_purpose::STANDARD.encode("sipsteer:pa55 word");
    let prom = FakeProm::start(with_lon1("42"), Some(format!("Basic {pair}")), None).await;
    let url = format!("http://{}", prom.addr);
    let s = start(
        &main_cfg(
            &url,
            "  interval: 200ms\n  basic_auth: { username: sipsteer, password_file: prom-password }\n",
        ),
        &[("prom-password", "pa55 word\n")],
    )
    .await;
    wait_calls(&s, "lon1", 42).await;
    s.stop().await;
}
