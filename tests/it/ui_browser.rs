//! The `/ui` page in a real browser (chromium through chromedriver, driven by fantoccini)
//! against a real sipsteer with real SIP responders: the page loads without console errors,
//! a silenced server shows down in the matrix, a drain clicked with the token changes the
//! DNS answer over UDP and the matrix, and the explain box shows the same trace as `sipsteer
//! explain --live`. A screenshot is saved to target/ui-screenshot.png. Skipped, with a
//! message, when chromedriver is not installed (`.ci/run` installs Debian's chromium and
//! chromium-driver).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::console::{self, wait_srv};
use crate::support::dns::TestServer;
use crate::support::sip::{self, Mode, Responder};

const TOKEN: &str = "browser-token-98765";

fn main_cfg() -> String {
    console::main_cfg(TOKEN, 1, "")
}

fn zone(uk: &Responder, de: &Responder) -> String {
    console::zone(uk, de, "")
}

/// The chromedriver on `PATH`, if any.
fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

/// A chromedriver this test started; stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(bin: &PathBuf) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let d = Driver { child, port };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

/// `GET /session/{id}/se/log` of chromedriver: the browser console since the last read.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

async fn connect(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let mut chrome = json!({
        "args": ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-sandbox",
                 "--window-size=1280,1100"]
    });
    if std::path::Path::new("/usr/bin/chromium").is_file() {
        chrome["binary"] = json!("/usr/bin/chromium");
    }
    caps.insert("goog:chromeOptions".into(), chrome);
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("webdriver session")
}

/// Waits until the matrix cell of `server` shows `state`.
async fn wait_cell(c: &Client, server: &str, state: &str) -> Duration {
    let start = Instant::now();
    let css = format!(r#"[data-server="{server}"][data-state="{state}"]"#);
    loop {
        if c.find(Locator::Css(&css)).await.is_ok() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{server} never showed {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The console entries at SEVERE level since the last read.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn fill(c: &Client, id: &str, text: &str) {
    let e = c.find(Locator::Id(id)).await.expect(id);
    e.clear().await.expect("clear");
    e.send_keys(text).await.expect("type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_health_drains_and_explains() {
    let Some(bin) = chromedriver() else {
        println!("skipped: chromedriver not found on PATH (apt install chromium chromium-driver)");
        return;
    };
    let uk = sip::udp(Mode::Code(200)).await;
    let de = sip::udp(Mode::Code(200)).await;
    let s = TestServer::start(&main_cfg(), &[("example.com.yaml", &zone(&uk, &de))]).await;
    let admin: SocketAddr = s.running.as_ref().and_then(|r| r.admin).expect("admin");
    wait_srv(&s, &["10 lon1", "20 fra1"]).await;

    let driver = tokio::task::spawn_blocking(move || start_driver(&bin))
        .await
        .expect("join");
    let c = connect(&driver).await;
    c.goto(&format!("http://{admin}/ui")).await.expect("goto");
    wait_cell(&c, "uk/lon1", "up").await;
    wait_cell(&c, "de/fra1", "up").await;

    // A silenced responder shows down within the probe bounds: fall (2) x interval (200ms)
    // + timeout (150ms), plus the page's 1 s poll, with room for a loaded machine.
    de.set(Mode::Silent);
    wait_cell(&c, "de/fra1", "down").await;
    wait_srv(&s, &["10 lon1"]).await;
    de.set(Mode::Code(200));
    wait_cell(&c, "de/fra1", "up").await;
    wait_srv(&s, &["10 lon1", "20 fra1"]).await;

    drain_with_the_token(&c, &s, admin).await;
    explain_box(&c, &s, admin).await;

    // Answers per region, from /metrics, once two polls have been made.
    let start = Instant::now();
    loop {
        let qps = c
            .find(Locator::Css(r#"tr[data-region="de"] .qps"#))
            .await
            .expect("qps cell")
            .text()
            .await
            .expect("text");
        if qps.parse::<f64>().is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no rate: {qps}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The event log shows the drain.
    let events = c.find(Locator::Id("events")).await.expect("events");
    let start = Instant::now();
    while !events
        .text()
        .await
        .expect("text")
        .contains("forced uk/lon1: drain: kernel upgrade")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no drain event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let png = c.screenshot().await.expect("screenshot");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshot.png");
    std::fs::write(&out, png).expect("write screenshot");

    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // The check above can fail: a missing file is a console error.
    c.goto(&format!("http://{admin}/ui/missing.js"))
        .await
        .expect("goto");
    let errors = console_errors(&c).await;
    assert!(
        errors.iter().any(|e| e.contains("404")),
        "no console error for a 404: {errors:?}"
    );
    c.close().await.expect("close");
    drop(driver);
    s.stop().await;
}

/// Drains uk/lon1 from the page with the token typed into it: the UDP answer and the matrix
/// follow, and the token never shows in the page's address.
async fn drain_with_the_token(c: &Client, s: &TestServer, admin: SocketAddr) {
    // Drain with the token typed into the page: the UDP answer and the matrix follow.
    fill(c, "token", TOKEN).await;
    c.find(Locator::Id("token-set"))
        .await
        .expect("token button")
        .click()
        .await
        .expect("click");
    c.find(Locator::Css(r#"[data-server="uk/lon1"]"#))
        .await
        .expect("cell")
        .click()
        .await
        .expect("select");
    fill(c, "act-note", "kernel upgrade").await;
    c.find(Locator::Id("act-drain"))
        .await
        .expect("drain button")
        .click()
        .await
        .expect("click drain");
    wait_srv(s, &["10 fra1"]).await;
    wait_cell(c, "uk/lon1", "drained").await;
    let cell = c
        .find(Locator::Css(r#"[data-server="uk/lon1"]"#))
        .await
        .expect("cell")
        .text()
        .await
        .expect("text");
    assert!(
        cell.contains("forced drained by api: kernel upgrade"),
        "{cell}"
    );
    // The token never shows in the page's address.
    let url = c.current_url().await.expect("url");
    assert_eq!(url.as_str(), format!("http://{admin}/ui"));
}

/// The explain box shows the same trace as `sipsteer explain --live`, and the ranking tiles.
async fn explain_box(c: &Client, s: &TestServer, admin: SocketAddr) {
    // The explain box: the same trace as `sipsteer explain --live`.
    fill(c, "ex-client", "192.0.2.1").await;
    fill(c, "ex-name", "_sip._udp.sip.example.com").await;
    fill(c, "ex-type", "SRV").await;
    c.find(Locator::Id("ex-go"))
        .await
        .expect("explain button")
        .click()
        .await
        .expect("click explain");
    let start = Instant::now();
    let trace = loop {
        let v: Value = c
            .execute(
                "return document.getElementById('ex-trace').textContent",
                vec![],
            )
            .await
            .expect("trace");
        let t = v.as_str().unwrap_or("").to_owned();
        if t.contains("tiers") {
            break t;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no trace: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let main = s.cfg.main().display().to_string();
    let live = format!("http://{admin}");
    let cli = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sipsteer"))
            .args(["explain", "--config", &main, "--live", &live])
            .args(["--client", "192.0.2.1", "_sip._udp.sip.example.com", "SRV"])
            .output()
            .expect("run explain")
    })
    .await
    .expect("join");
    assert!(cli.status.success());
    assert_eq!(trace, String::from_utf8_lossy(&cli.stdout));
    let tiles = c
        .find_all(Locator::Css("#ex-tiles .tile"))
        .await
        .expect("tiles");
    assert_eq!(tiles.len(), 2);
    assert_eq!(
        tiles[0].attr("data-region").await.expect("attr").as_deref(),
        Some("uk")
    );
}
