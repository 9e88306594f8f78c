//! One round of the puller against a fake Prometheus on loopback, with the hub publishing
//! into a counter of changed views: every server's load is recorded and the round changes
//! the served view once, not once per server.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::health::hub::Publisher;
use crate::steering::{HealthView, Steering};

/// Counts the views that differ from the one before (what the snapshot swaps in).
struct Changes {
    steering: Arc<Steering>,
    last: Mutex<Arc<HealthView>>,
    changes: AtomicUsize,
}

impl Publisher for Changes {
    fn publish(&self, steering: &Arc<Steering>, view: HealthView) {
        let mut last = crate::lock::guard(&self.last);
        if Arc::ptr_eq(steering, &self.steering) && **last != view {
            *last = Arc::new(view);
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Answers every request on a loopback port with `body` as JSON.
async fn fake_prometheus(body: String) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_round_records_every_load_and_changes_the_view_once() {
    const N: usize = 40;
    let series: Vec<String> = (0..N)
        .map(|i| {
            format!(
                r#"{{"metric":{{"server":"s{i}"}},"value":[1,"{}"]}}"#,
                i * 10
            )
        })
        .collect();
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        series.join(",")
    );
    let addr = fake_prometheus(body).await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("zones")).expect("zones");
    let main = format!(
        "zones: zones\nhealth: {{ check: none }}\nload: {{ prometheus: \"http://{addr}\", calls: 'sum by (server) (calls)' }}\n"
    );
    let mut zone = String::from(
        "zone: example.com\nsoa: { primary: ns1, contact: h, serial: 1 }\nns: [ns1]\nrecords: { ns1: { A: 192.0.2.53 } }\nregions:\n  uk:\n    location: [51.5, 0]\n    servers:\n",
    );
    for i in 0..N {
        zone.push_str(&format!(
            "      s{i}: {{ address: 192.0.2.{}, capacity: {{ calls: 1000 }} }}\n",
            i + 1
        ));
    }
    zone.push_str("services:\n  sip: { regions: [uk] }\n");
    std::fs::write(dir.path().join("sipsteer.yaml"), main).expect("main");
    std::fs::write(dir.path().join("zones/z.yaml"), zone).expect("zone");
    let cfg = crate::config::load(&dir.path().join("sipsteer.yaml")).expect("valid");
    let steering = Arc::new(crate::steering::compile_reusing(&cfg, None, None));
    let hub = HealthHub::new(1, None, Default::default());
    let handle = LoadPuller::new();
    handle.follow(&cfg);
    let view = hub.bind(&cfg, &steering);
    let served = Arc::new(Changes {
        steering,
        last: Mutex::new(view),
        changes: AtomicUsize::new(0),
    });
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    hub.run(served.clone(), cancel.clone(), &mut tasks);

    let mut puller = Puller::new(handle.clone(), hub.clone());
    let src = handle.source().expect("load source");
    assert!(puller.round(&src, &cancel).await);

    let st = handle.status().expect("status");
    assert_eq!(st.last_error, None);
    assert_eq!((st.last_round_series, st.last_round_loads), (N, N));
    let calls: Vec<Option<u32>> = hub
        .servers()
        .iter()
        .map(|s| s.load.as_ref().and_then(|l| l.calls))
        .collect();
    let want: Vec<Option<u32>> = (0..N).map(|i| Some(i as u32 * 10)).collect();
    assert_eq!(calls, want);
    assert_eq!(
        served.changes.load(Ordering::SeqCst),
        1,
        "one view per round"
    );

    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    puller.stop().await;
}
