//! The optional query log: JSON lines (client, ECS, name, type, region, reason, rcode),
//! sampled at a configured rate. The query path only copies the packet into a bounded queue
//! (dropping when it is full); a separate thread formats and writes. [`QueryLog::close`]
//! writes what is queued, flushes the file and joins that thread.

use std::cell::Cell;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::dns::snapshot::Snapshot;
use crate::dns::summary::Summary;

/// Entries waiting to be written; more are dropped and counted.
const QUEUE: usize = 8192;

struct Entry {
    at: SystemTime,
    client: IpAddr,
    packet: Vec<u8>,
    summary: Summary,
    region: Option<String>,
}

/// What the writer thread is sent: an entry, or `None` to flush and stop.
type Msg = Option<Entry>;

pub(crate) struct QueryLog {
    tx: SyncSender<Msg>,
    /// The writer thread, until [`QueryLog::close`] joins it.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Log one query in `every`.
    every: u32,
    pub dropped: AtomicU64,
}

thread_local! {
    static COUNTER: Cell<u32> = const { Cell::new(0) };
}

impl QueryLog {
    /// Opens (appends to) `path` and starts the writer thread. `sample` is in (0, 1].
    pub(crate) fn open(path: &Path, sample: f64) -> std::io::Result<Arc<QueryLog>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("sipsteer-querylog".into())
            .spawn(move || writer(rx, file))?;
        Ok(Arc::new(QueryLog {
            tx,
            writer: Mutex::new(Some(writer)),
            every: (1.0 / sample.clamp(1e-6, 1.0)).round() as u32,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Called for every answered query of `snap`; cheap unless this one is sampled.
    #[inline]
    pub(crate) fn note(&self, snap: &Snapshot, client: IpAddr, packet: &[u8], summary: &Summary) {
        let region = summary
            .steered
            .and_then(|st| st.region)
            .and_then(|r| snap.steering.regions.get(r))
            .map(|r| r.name.as_str());
        self.maybe_log(client, packet, summary, region);
    }

    /// Logs the query if it is sampled.
    #[inline]
    fn maybe_log(&self, client: IpAddr, packet: &[u8], summary: &Summary, region: Option<&str>) {
        let hit = COUNTER.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(if n >= self.every { 0 } else { n });
            n >= self.every
        });
        if !hit {
            return;
        }
        let e = Entry {
            at: SystemTime::now(),
            client,
            packet: packet.to_vec(),
            summary: *summary,
            region: region.map(str::to_owned),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Some(e)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes every entry queued so far, flushes the file and joins the writer thread.
    /// Blocking (call it off the async runtime's workers); entries logged after it are
    /// dropped. Later calls return at once.
    pub(crate) fn close(&self) {
        let writer = crate::lock::guard(&self.writer).take();
        let Some(writer) = writer else { return };
        // Fails only when the writer already stopped (a write error).
        let _ = self.tx.send(None);
        let _ = writer.join();
    }
}

fn writer(rx: Receiver<Msg>, file: std::fs::File) {
    let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Some(e)) => {
                let line = format_entry(&e);
                if out.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = out.flush();
            }
            Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
    }
}

fn format_entry(e: &Entry) -> String {
    let mut lower = [0; crate::dns::wire::MAX_NAME];
    let (name, ecs) = match crate::dns::wire::parse(&e.packet, &mut lower) {
        crate::dns::wire::Parsed::Query(q) => {
            let name = hickory_proto::rr::Name::from_labels(labels(&q.question[..q.name.len()]))
                .map(|n| n.to_string())
                .unwrap_or_default();
            let ecs = q
                .edns
                .and_then(|e| e.ecs)
                .map(|e| format!("{}/{}", e.addr, e.source));
            (name, ecs)
        }
        _ => (String::new(), None),
    };
    let v = serde_json::json!({
        "ts": e.at.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        "client": e.client.to_string(),
        "proto": e.summary.proto.as_str(),
        "ecs": ecs,
        "name": name,
        "type": hickory_proto::rr::RecordType::from(e.summary.qtype).to_string(),
        "rcode": e.summary.rcode,
        "region": e.region.as_deref(),
        "reason": e.summary.steered.map(|s| s.reason_label()),
        "tc": e.summary.truncated,
    });
    let mut s = v.to_string();
    s.push('\n');
    s
}

fn labels(wire: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(&l) = wire.get(pos) {
        if l == 0 {
            break;
        }
        let Some(label) = wire.get(pos + 1..pos + 1 + l as usize) else {
            break;
        };
        out.push(label);
        pos += l as usize + 1;
    }
    out
}
