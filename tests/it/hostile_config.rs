//! Operator mistakes and hostile files on a running server: zone maps and GeoIP files that
//! are broken symlinks, loops, FIFOs or directories are refused by name while the old config
//! keeps answering; reloads never block and never race; edits at a symlink's target are seen.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::dns::*;
use hickory_proto::rr::RecordType;
use sipsteer::reload::{Outcome, ReloadResult, Trigger};

fn zone(origin: &str, addr: &str, serial: u32) -> String {
    format!(
        "zone: {origin}\nsoa: {{ primary: ns1, contact: hostmaster, serial: {serial} }}\nns: [ns1]\nrecords:\n  ns1: {{ A: 192.0.2.53 }}\n  www: {{ A: {addr} }}\n"
    )
}

async fn www(s: &TestServer, origin: &str) -> Vec<String> {
    let name = format!("www.{origin}.");
    rrs(&udp(s.addr, &name, RecordType::A, &Q::default())
        .await
        .answers)
}

/// The periodic rescan of a config that leaves every edit to the file watcher: a test that
/// waits for an edit to be served is then answered by the watcher alone.
const NO_RESCAN: &str = "reload: { rescan: 1h }\n";

/// Waits until `www.<origin>` answers `addr`. With [`NO_RESCAN`], only the file watcher can
/// have seen the edit; the deadline is generous so a loaded machine does not fail the test
/// (the watcher's delay is a benchmark question, not this test's).
async fn served_by_the_watcher(s: &TestServer, origin: &str, addr: &str) {
    let want = vec![format!("www.{origin}. 300 A {addr}")];
    let start = Instant::now();
    loop {
        if www(s, origin).await == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{addr} not served after 60 s: {:?}",
            www(s, origin).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One reload, on a thread of its own: a reload that blocks fails the test instead of hanging it.
/// The message of a rejected reload; `None` when it was not rejected.
fn rejected(out: Outcome) -> Option<String> {
    match out {
        Outcome::Rejected(r) => Some(r.to_string()),
        _ => None,
    }
}

async fn reload(s: &TestServer) -> Outcome {
    let r = s.running.as_ref().expect("running").reloader.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(r.reload(Trigger::Api));
    });
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("the reload returns (never blocks on a file)")
        .expect("reload thread")
}

fn atomic_write(p: &Path, text: &str) {
    let tmp = p.with_file_name(".tmp-write");
    std::fs::write(&tmp, text).expect("write tmp");
    std::fs::rename(&tmp, p).expect("rename");
}

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo").arg(p).status();
    assert!(ok.expect("mkfifo runs").success(), "mkfifo {}", p.display());
}

fn remove(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(p).expect("rmdir"),
        Ok(_) => std::fs::remove_file(p).expect("rm"),
        Err(_) => {}
    }
}

/// Stops the server; shutdown must not hang whatever the files are.
async fn stop(s: TestServer) {
    tokio::time::timeout(Duration::from_secs(10), s.stop())
        .await
        .expect("shutdown completes");
}

#[tokio::test]
async fn unreadable_zone_maps_reject_the_reload_and_the_old_zone_answers() {
    let s = TestServer::start(
        MAIN,
        &[
            ("a.yaml", &zone("example.com", "192.0.2.1", 1)),
            ("b.yaml", &zone("example.net", "192.0.2.2", 1)),
        ],
    )
    .await;
    let b = s.cfg.path("zones/b.yaml");
    let good = zone("example.net", "192.0.2.2", 1);
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 4] = [
        (
            "broken symlink",
            |p| std::os::unix::fs::symlink("gone.yaml", p).expect("symlink"),
            "no such file or directory (os error 2) (broken symlink)",
        ),
        (
            "symlink loop",
            |p| std::os::unix::fs::symlink("b.yaml", p).expect("symlink"),
            "too many levels of symbolic links (os error 40) (symlink loop)",
        ),
        ("fifo", mkfifo, "is a fifo, not a regular file"),
        (
            "directory",
            |p| std::fs::create_dir(p).expect("mkdir"),
            "is a directory, not a regular file",
        ),
    ];
    for (what, make, reason) in cases {
        // Made beside it and renamed over it, so no reload ever sees b.yaml missing.
        let fresh = s.cfg.path("zones/.fresh");
        make(&fresh);
        if std::fs::rename(&fresh, &b).is_err() {
            remove(&b);
            std::fs::rename(&fresh, &b).expect("rename");
        }
        let want = format!("{}: cannot read zone map: {reason}", b.display());
        assert_eq!(rejected(reload(&s).await), Some(want.clone()), "{what}");
        let st = s.running.as_ref().expect("running").reloader.status();
        assert_eq!(st.last_error.as_deref(), Some(want.as_str()), "{what}");
        assert_eq!(
            www(&s, "example.net").await,
            ["www.example.net. 300 A 192.0.2.2"],
            "{what}: the old zone still answers"
        );
        let tmp = s.cfg.path("zones/.restore");
        std::fs::write(&tmp, &good).expect("restore");
        if std::fs::rename(&tmp, &b).is_err() {
            remove(&b);
            std::fs::rename(&tmp, &b).expect("rename");
        }
        assert!(
            matches!(reload(&s).await, Outcome::Unchanged | Outcome::Applied(_)),
            "{what}: restored"
        );
    }
    assert_eq!(
        www(&s, "example.com").await,
        ["www.example.com. 300 A 192.0.2.1"]
    );
    stop(s).await;
}

#[tokio::test]
async fn fifos_never_block_reloads_or_shutdown() {
    use crate::support::steer::{GEO_CSV, MAIN_GEO};
    let cfg = ConfigDir::new(
        &format!("{MAIN_GEO}{NO_RESCAN}"),
        &[("example.com.yaml", &zone("example.com", "192.0.2.1", 1))],
    );
    std::fs::write(cfg.path("geo.csv"), GEO_CSV).expect("csv");
    let s = TestServer::start_in(cfg).await;
    let geo = s.cfg.path("geo.csv");
    let extra = s.cfg.path("zones/extra.yaml");
    remove(&geo);
    mkfifo(&geo);
    let want = format!(
        "{}: cannot read GeoIP database: is a fifo, not a regular file",
        geo.display()
    );
    assert_eq!(rejected(reload(&s).await), Some(want));
    remove(&geo);
    std::fs::write(&geo, GEO_CSV).expect("csv back");
    mkfifo(&extra);
    let want = format!(
        "{}: cannot read zone map: is a fifo, not a regular file",
        extra.display()
    );
    assert_eq!(rejected(reload(&s).await), Some(want));
    // The watcher and the reload thread carry on: a later valid edit is applied.
    remove(&extra);
    std::fs::write(
        s.cfg.path("zones/example.com.yaml"),
        zone("example.com", "192.0.2.9", 2),
    )
    .expect("edit");
    served_by_the_watcher(&s, "example.com", "192.0.2.9").await;
    // A FIFO left in place while shutting down does not hold shutdown.
    mkfifo(&extra);
    s.running
        .as_ref()
        .expect("running")
        .reloader
        .nudge(Trigger::Api);
    stop(s).await;
}

#[tokio::test]
async fn one_bad_edit_is_one_rejection_whatever_the_triggers() {
    let s = TestServer::start(
        MAIN,
        &[("example.com.yaml", &zone("example.com", "192.0.2.1", 1))],
    )
    .await;
    let p = s.cfg.path("zones/example.com.yaml");
    // Atomic writes: the watcher must never see a half-written file (another error).
    atomic_write(&p, &zone("example.com", "192.0.2.300", 2));
    // The watcher, a rescan, SIGHUP and the API all see the same bad edit.
    for _ in 0..3 {
        assert!(matches!(reload(&s).await, Outcome::Rejected(_)));
    }
    let r = s.running.as_ref().expect("running").reloader.clone();
    r.nudge(Trigger::Sighup);
    assert!(matches!(reload(&s).await, Outcome::Rejected(_)));
    let st = r.status();
    assert_eq!(st.rejected, 1, "{st:?}");
    assert_eq!(st.last_result, ReloadResult::Error);
    // A different bad edit is a new rejection.
    atomic_write(&p, &zone("example.com", "192.0.2.301", 3));
    assert!(matches!(reload(&s).await, Outcome::Rejected(_)));
    assert_eq!(r.status().rejected, 2);
    stop(s).await;
}

#[tokio::test]
async fn symlinked_zone_map_edited_at_its_target_is_served() {
    let cfg = ConfigDir::new(&format!("{MAIN}{NO_RESCAN}"), &[]);
    let checkout = cfg.path("checkout");
    std::fs::create_dir(&checkout).expect("mkdir");
    let target = checkout.join("example.com.yaml");
    std::fs::write(&target, zone("example.com", "192.0.2.1", 1)).expect("write");
    std::os::unix::fs::symlink(&target, cfg.path("zones/example.com.yaml")).expect("link");
    let s = TestServer::start_in(cfg).await;
    served_by_the_watcher(&s, "example.com", "192.0.2.1").await;

    // In place at the target, then an atomic replace there (what git and editors do).
    std::fs::write(&target, zone("example.com", "192.0.2.2", 2)).expect("edit");
    served_by_the_watcher(&s, "example.com", "192.0.2.2").await;
    let tmp = checkout.join(".tmp-write");
    std::fs::write(&tmp, zone("example.com", "192.0.2.3", 3)).expect("write tmp");
    std::fs::rename(&tmp, &target).expect("rename");
    served_by_the_watcher(&s, "example.com", "192.0.2.3").await;

    // A symlink added later, into another directory, is followed too.
    let stow = s.cfg.path("stow");
    std::fs::create_dir(&stow).expect("mkdir");
    let net = stow.join("example.net.yaml");
    std::fs::write(&net, zone("example.net", "192.0.2.4", 1)).expect("write");
    std::os::unix::fs::symlink(&net, s.cfg.path("zones/example.net.yaml")).expect("link");
    served_by_the_watcher(&s, "example.net", "192.0.2.4").await;
    std::fs::write(&net, zone("example.net", "192.0.2.5", 2)).expect("edit");
    served_by_the_watcher(&s, "example.net", "192.0.2.5").await;
    stop(s).await;
}

/// Writers that each edit the zone and reload through one trigger; `last` is what was
/// written last, under the same lock as the write.
struct Writers {
    path: std::path::PathBuf,
    last: std::sync::Mutex<u32>,
}

impl Writers {
    fn write(&self, n: u32) {
        let mut last = self.last.lock().expect("lock");
        let tmp = self.path.with_file_name(format!(".w{n}"));
        std::fs::write(&tmp, zone("example.com", &format!("192.0.2.{n}"), n)).expect("write");
        std::fs::rename(&tmp, &self.path).expect("rename");
        *last = n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reloads_are_single_flight_and_the_newest_config_wins() {
    let main = "listen: { dns: [\"127.0.0.1:0\"], admin: \"127.0.0.1:0\" }\nzones: zones\nadmin: { token: reload-token-1 }\nhealth: { check: none }\n";
    let s = TestServer::start(
        main,
        &[("example.com.yaml", &zone("example.com", "192.0.2.1", 1))],
    )
    .await;
    let running = s.running.as_ref().expect("running");
    let (reloader, shared, admin) = (
        running.reloader.clone(),
        running.shared.clone(),
        running.admin.expect("admin"),
    );
    let w = Arc::new(Writers {
        path: s.cfg.path("zones/example.com.yaml"),
        last: std::sync::Mutex::new(1),
    });
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Watches every published snapshot: generations never go back, and one generation is
    // always the same config.
    let watcher = {
        let (shared, done) = (shared.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::HashMap::new();
            let mut prev = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let snap = shared.load_full();
                assert!(snap.generation >= prev, "{} after {prev}", snap.generation);
                prev = snap.generation;
                let files = snap.config.files.clone();
                assert_eq!(
                    seen.entry(snap.generation).or_insert_with(|| files.clone()),
                    &files,
                    "generation {} used twice",
                    snap.generation
                );
                std::thread::yield_now();
            }
        })
    };
    let mut threads = Vec::new();
    for kind in 0..3u32 {
        let (w, r) = (w.clone(), reloader.clone());
        threads.push(std::thread::spawn(move || {
            let mut gens = Vec::new();
            for i in 0..15u32 {
                w.write(10 + kind * 20 + i);
                match kind {
                    0 => gens.push(r.reload(Trigger::Api)),
                    1 => r.nudge(Trigger::Sighup),
                    _ => {
                        let (code, body) = crate::support::http::request(
                            admin,
                            "POST",
                            "/v1/reload",
                            Some("reload-token-1"),
                            None,
                        );
                        assert_eq!(code, 200, "{body}");
                    }
                }
            }
            gens
        }));
    }
    let mut gens = Vec::new();
    for t in threads {
        gens.push(t.join().expect("writer"));
    }
    // The last word: one more write and a reload that waits for it.
    w.write(200);
    let out = tokio::task::spawn_blocking({
        let r = reloader.clone();
        move || r.reload(Trigger::Api)
    })
    .await
    .expect("join");
    // Applied here, or already by a queued trigger that read the same files.
    assert!(
        matches!(out, Outcome::Applied(_) | Outcome::Unchanged),
        "{out:?}"
    );
    let last = shared.load().generation;
    let applied: Vec<u64> = gens[0]
        .iter()
        .filter_map(|o| match o {
            Outcome::Applied(g) => Some(*g),
            _ => None,
        })
        .collect();
    assert!(applied.windows(2).all(|p| p[0] < p[1]), "{applied:?}");
    assert!(applied.iter().all(|g| *g < last), "{applied:?} then {last}");
    // Served at once: no older config overwrote the newest.
    assert_eq!(
        www(&s, "example.com").await,
        ["www.example.com. 300 A 192.0.2.200"]
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().expect("generations only go up");
    assert_eq!(*w.last.lock().expect("lock"), 200);
    assert!(reloader.status().generation >= last);
    stop(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_a_slow_reload_runs() {
    use sipsteer::reload::{GeoSlot, Reloader};
    use sipsteer::steering::HealthView;
    use std::sync::mpsc;
    let cfg = ConfigDir::new(
        MAIN,
        &[("example.com.yaml", &zone("example.com", "192.0.2.1", 1))],
    );
    let cache = GeoSlot::default();
    let loaded = sipsteer::reload::load(&cfg.main(), &cache).expect("loads");
    // The health binder runs inside every reload: holding it makes the reload slow.
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let gate = std::sync::Mutex::new((0u32, entered_tx, release_rx));
    let binder: Arc<sipsteer::reload::HealthBinder> = Arc::new(
        move |_: &sipsteer::config::Config, st: &Arc<sipsteer::steering::Steering>| {
            let mut g = gate.lock().expect("gate");
            g.0 += 1;
            if g.0 > 1 {
                let _ = g.1.send(());
                let _ = g.2.recv_timeout(Duration::from_secs(20));
            }
            Arc::new(HealthView::all_up(st.slots))
        },
    );
    let reloader = Arc::new(Reloader::first(
        &cfg.main(),
        loaded,
        cache,
        binder,
        Default::default(),
    ));
    let listener = sipsteer::admin::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = tokio_util::sync::CancellationToken::new();
    let state = sipsteer::admin::AdminState {
        reloader: reloader.clone(),
        hub: sipsteer::health::hub::HealthHub::new(1, None, Default::default()),
        puller: sipsteer::health::load_pull::LoadPuller::new(),
        token: None,
        telemetry: Default::default(),
        counters: Default::default(),
    };
    let server = tokio::spawn(sipsteer::admin::serve(listener, state, cancel.clone()));
    std::fs::write(
        cfg.path("zones/example.com.yaml"),
        zone("example.com", "192.0.2.2", 2),
    )
    .expect("edit");
    let slow = {
        let r = reloader.clone();
        std::thread::spawn(move || r.reload(Trigger::Api))
    };
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("reload reached the compile step");
    // The reload is held mid-way: status must answer now (the client times out otherwise).
    let (code, body) = crate::support::http::get(addr, "/v1/status").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["generation"], 1);
    assert_eq!(v["reload"]["generation"], 1);
    release.send(()).expect("release");
    assert_eq!(slow.join().expect("reload"), Outcome::Applied(2));
    let (_, body) = crate::support::http::get(addr, "/v1/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["reload"]["generation"], 2);
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
