//! The `/ui` page over HTTP: embedded, small, served with a strict Content-Security-Policy
//! and no inline script or style; changes from a browser need the token and this API's own
//! origin. (`ui_browser` drives the page in a real browser.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::dns::TestServer;

const TOKEN: &str = "ui-token-123456";

fn main_cfg() -> String {
    format!(
        "listen: {{ dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }}\nzones: zones\nadmin: {{ token: {TOKEN} }}\nhealth: {{ check: none }}\n"
    )
}

const ZONE: &str = r#"
zone: example.com
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
regions:
  uk:
    location: [51.5, 0]
    servers:
      lon1: { address: 192.0.2.10 }
services:
  sip: { regions: [uk], fallback: [uk] }
"#;

/// One raw request with `headers`; the status, the response head (lowercased) and the body.
fn raw(addr: SocketAddr, head: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let req = format!(
        "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (h, b) = text.split_once("\r\n\r\n").expect("http reply");
    let code = h
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (code, h.to_ascii_lowercase(), b.to_owned())
}

async fn raw_async(addr: SocketAddr, head: String, body: String) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || raw(addr, &head, &body))
        .await
        .expect("join")
}

fn admin(s: &TestServer) -> SocketAddr {
    s.running.as_ref().and_then(|r| r.admin).expect("admin")
}

const CSP: &str = "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[tokio::test]
async fn the_page_and_its_assets_are_embedded_with_a_strict_policy() {
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", ZONE)]).await;
    let a = admin(&s);
    let (code, head, page) = raw_async(a, "GET /ui HTTP/1.1".into(), String::new()).await;
    assert_eq!(code, 200);
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains(CSP), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("x-frame-options: deny"), "{head}");
    // Every script is a file of this origin; no inline script, style or event handler.
    assert_eq!(page.matches("<script").count(), 1);
    assert!(page.contains(r#"<script src="/ui/app.js" defer></script>"#));
    for inline in [
        "style=",
        "onclick",
        "onload",
        "onsubmit",
        "<style",
        "javascript:",
        "http://",
        "https://",
    ] {
        assert!(!page.contains(inline), "page has `{inline}`");
    }
    let mut total = page.len();
    for (path, ctype) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let (code, head, body) = raw_async(a, format!("GET {path} HTTP/1.1"), String::new()).await;
        assert_eq!(code, 200, "{path}");
        assert!(
            head.contains(&format!("content-type: {ctype}")),
            "{path}: {head}"
        );
        assert!(head.contains(CSP), "{path}: {head}");
        assert!(!body.is_empty());
        total += body.len();
        assert!(!body.contains("https://") || path == "/ui/icon.svg");
    }
    // The whole page stays small.
    assert!(total < 150 * 1024, "{total} bytes");
    s.stop().await;
}

#[tokio::test]
async fn changes_need_the_token_and_this_origin() {
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", ZONE)]).await;
    let a = admin(&s);
    let put = "PUT /v1/servers/uk/lon1/state HTTP/1.1";
    let body = r#"{"state":"drain"}"#.to_owned();
    // Another origin, even with the token: refused before anything else.
    let (code, _, reply) = raw_async(
        a,
        format!("{put}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer {TOKEN}"),
        body.clone(),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        reply,
        r#"{"error":"cross-origin request refused: origin `http://evil.example` is not this admin api"}"#
    );
    // This origin without the token: 401.
    let (code, _, _) = raw_async(a, format!("{put}\r\nOrigin: http://{a}"), body.clone()).await;
    assert_eq!(code, 401);
    // This origin with the token: done.
    let (code, _, reply) = raw_async(
        a,
        format!("{put}\r\nOrigin: http://{a}\r\nAuthorization: Bearer {TOKEN}"),
        body,
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    let v: serde_json::Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(v["state"], "drained");
    s.stop().await;
}
