//! The hub on tokio's paused clock: a load report counts for `report_ttl` and the
//! once-a-second re-check publishes its expiry; probe results flip a server only at its
//! rise and fall thresholds, and a flip counts as recent for [`RECENT_FLIP`]; each transport
//! of a server with health per transport has its own state, and a forced state covers them all.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::Transport;
use crate::health::vocab::{Outcome, ProbeResult};
use crate::lock::guard;
use crate::steering::{RECENT_FLIP, Status};

const ZONE: &str = "zone: example.com\nsoa: { primary: ns1, contact: h, serial: 1 }\nns: [ns1]\nrecords: { ns1: { A: 192.0.2.53 } }\nregions:\n  uk: { location: [51.5, 0], servers: { lon1: { address: 127.0.0.1, port: 9, capacity: { calls: 100 } } } }\nservices:\n  sip: { regions: [uk] }\n";

/// What is being served: the steering data the hub is bound to, and the last view published.
struct Served {
    steering: Arc<Steering>,
    view: std::sync::Mutex<Arc<HealthView>>,
}

impl Publisher for Served {
    fn publish(&self, steering: &Arc<Steering>, view: HealthView) {
        if Arc::ptr_eq(steering, &self.steering) {
            *guard(&self.view) = Arc::new(view);
        }
    }
}

impl Served {
    fn health(&self) -> Arc<HealthView> {
        guard(&self.view).clone()
    }
}

/// A hub bound to one server `uk/lon1` probed by `check`, publishing into the returned
/// served slot.
fn hub(check: &str) -> (Arc<HealthHub>, Arc<Served>, Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("zones")).expect("zones");
    let main = format!(
        "zones: zones\nhealth: {{ check: {check}, interval: 5s, rise: 2, fall: 3 }}\ncapacity: {{ overflow_at: 0.8, report_ttl: 30s }}\n"
    );
    std::fs::write(dir.path().join("sipsteer.yaml"), main).expect("main");
    std::fs::write(dir.path().join("zones/z.yaml"), ZONE).expect("zone");
    let cfg = crate::config::load(&dir.path().join("sipsteer.yaml")).expect("valid");
    let steering = Arc::new(crate::steering::compile_reusing(&cfg, None, None));
    let hub = HealthHub::new(1, None, Default::default());
    let view = hub.bind(&cfg, &steering);
    let served = Arc::new(Served {
        steering,
        view: std::sync::Mutex::new(view),
    });
    (hub, served, cfg, dir)
}

/// Lets the hub's spawned loop run what the advanced clock made due.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

fn result(outcome: Outcome) -> ProbeResult {
    ProbeResult {
        outcome,
        code: None,
        rtt: Duration::from_millis(1),
        detail: String::new(),
        tls: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_load_report_counts_for_report_ttl_then_the_recheck_publishes_its_expiry() {
    let (hub, shared, _cfg, _dir) = hub("none");
    let cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    hub.run(shared.clone(), cancel.clone(), &mut tasks);
    let status = || shared.health().status(0);
    assert_eq!(status(), Status::Up, "not probed: up");
    hub.load("uk", "lon1", Some(90), None).expect("load");
    assert_eq!(status(), Status::Full, "90 of 100 calls is over 0.8");
    assert_eq!(shared.health().headroom(0), Some(0.1));
    tokio::time::advance(Duration::from_secs(29)).await;
    settle().await;
    assert_eq!(status(), Status::Full, "still fresh at 29 s of 30");
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(
        status(),
        Status::Up,
        "expired, published without a new report"
    );
    assert_eq!(shared.health().headroom(0), None);
    cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn probe_results_flip_at_rise_and_fall_and_a_flip_is_recent_for_a_minute() {
    let (hub, shared, cfg, _dir) = hub("sip-options-udp");
    // Results are fed here, not probed: the probers stop before they ever run.
    hub.monitor.shutdown().await;
    let _ = hub.publisher.set(shared.clone());
    let s0 = &cfg.regions[0].servers[0];
    let target = lanes::target_of(s0, s0.lanes()[0].0, s0.probe.check).expect("probed");
    let interval = Duration::from_secs(5);
    let step = |o: Outcome| {
        hub.apply_all(&[(target.clone(), result(o))]);
        let h = shared.health().clone();
        (
            h.status(0),
            h.suspect(0),
            h.flipped.first().copied().unwrap_or(false),
        )
    };
    assert_eq!(shared.health().status(0), Status::Unknown);
    assert!(!hub.ready(), "no result yet");
    assert_eq!(
        step(Outcome::Up),
        (Status::Up, false, false),
        "the first result decides"
    );
    assert!(hub.ready());
    for n in 1..3 {
        tokio::time::advance(interval).await;
        assert_eq!(
            step(Outcome::Down),
            (Status::Up, true, false),
            "{n} of fall 3"
        );
    }
    tokio::time::advance(interval).await;
    assert_eq!(
        step(Outcome::Down),
        (Status::Down, false, true),
        "fall reached"
    );
    tokio::time::advance(RECENT_FLIP - Duration::from_secs(1)).await;
    hub.publish_if_changed();
    assert!(shared.health().flipped[0], "still a recent flip");
    tokio::time::advance(Duration::from_secs(2)).await;
    hub.publish_if_changed();
    assert!(
        !shared.health().flipped[0],
        "a minute later: no longer recent"
    );
    assert_eq!(
        step(Outcome::Up),
        (Status::Down, false, false),
        "1 of rise 2"
    );
    tokio::time::advance(interval).await;
    assert_eq!(step(Outcome::Up), (Status::Up, false, true), "rise reached");
}

#[tokio::test(start_paused = true)]
async fn each_transport_has_its_own_state_and_a_forced_state_covers_them_all() {
    let (hub, shared, cfg, _dir) = hub("per-transport");
    hub.monitor.shutdown().await;
    let _ = hub.publisher.set(shared.clone());
    let s0 = &cfg.regions[0].servers[0];
    let lanes = s0.lanes();
    let (udp, tcp) = (lanes[0], lanes[1]);
    assert_eq!(udp, (Transport::Udp.bit(), Some(Check::SipUdp)));
    assert_eq!(tcp, (Transport::Tcp.bit(), Some(Check::SipTcp)));
    let target = |(m, c)| lanes::target_of(s0, m, c).expect("probed");
    let (tu, tt) = (target(udp), target(tcp));
    let seen = || {
        let h = shared.health();
        (
            h.status(0),
            h.out_on(0, Transport::Udp),
            h.out_on(0, Transport::Tcp),
        )
    };
    hub.apply_all(&[(tu.clone(), result(Outcome::Down))]);
    assert!(!hub.ready(), "the TCP check has no result yet");
    assert_eq!(
        seen(),
        (Status::Unknown, true, false),
        "TCP unknown: answered"
    );
    hub.apply_all(&[(tt.clone(), result(Outcome::Up))]);
    assert!(hub.ready());
    assert_eq!(seen(), (Status::Up, true, false), "up on TCP only");
    let r = hub.servers();
    assert_eq!((r[0].observed, r[0].check), ("up", "per-transport"));
    let states: Vec<_> = r[0]
        .transports
        .iter()
        .map(|t| (t.transport, t.state))
        .collect();
    assert_eq!(states, [("udp", Status::Down), ("tcp", Status::Up)]);
    // A reload of the same config keeps each transport's state.
    let again = hub.bind(&cfg, &shared.steering);
    assert_eq!(
        (again.status(0), again.out_on(0, Transport::Udp)),
        (Status::Up, true)
    );
    hub.force("uk", "lon1", Force::Set(ForcedState::Up), None, None)
        .expect("force");
    assert_eq!(
        seen(),
        (Status::Up, false, false),
        "forced up on every transport"
    );
    hub.force("uk", "lon1", Force::Set(ForcedState::Drain), None, None)
        .expect("force");
    assert_eq!(seen().0, Status::Drained);
    hub.force("uk", "lon1", Force::Clear, None, None)
        .expect("clear");
    assert_eq!(
        seen(),
        (Status::Up, true, false),
        "the probes' states again"
    );
    for _ in 0..3 {
        hub.apply_all(&[(tt.clone(), result(Outcome::Down))]);
    }
    assert_eq!(seen().0, Status::Down, "down on every transport");
}
