//! The health hub: one table of server health for the running config. Probe results and
//! operator actions update it; it publishes a new health view into the snapshot only when an
//! effective state changes (and re-checks once a second, so load reports expire). Forced
//! states persist in the state file and survive reloads and restarts; observed health
//! survives reloads for servers whose identity did not change.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod apply;
mod cert_watch;
mod force;
pub use force::Force;
mod gauges;
mod lanes;
mod load_round;
mod meters;
mod publish;
mod report;
mod servers;
#[cfg(test)]
mod tests;

use super::monitor::Monitor;
use super::state::ServerHealth;
use super::vocab::{Cadence, CodePolicy, ProbeSpec, Target, Thresholds};
use crate::config::operator::{ForcedState, OperatorStates};
use crate::config::{Check, Config, ServerConfig};
use crate::events::{EventLog, Kind};
use crate::lock::guard;
use crate::steering::{HealthView, Steering};
use crate::telemetry::Telemetry;
use lanes::view;
use report::report;
pub use report::{
    ApiStateOut, CapacityOut, CertOut, FileStateOut, LoadOut, ServerReport, TransportOut,
};

/// Why an operator action or a load report was not applied.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("no server {region}/{server}")]
    NotFound { region: String, server: String },
    /// A load report for a server without `capacity`.
    #[error("server {region}/{server} declares no capacity")]
    NoCapacity { region: String, server: String },
    /// The state file could not be written (the message names it and the OS reason).
    #[error(transparent)]
    Persist(#[from] super::state_file::WriteError),
}

impl HubError {
    fn not_found(region: &str, server: &str) -> HubError {
        HubError::NotFound {
            region: region.to_owned(),
            server: server.to_owned(),
        }
    }
}

/// What makes a server "the same" across reloads: health carries over only if this matches.
#[derive(Debug, Clone, PartialEq)]
struct Identity {
    target: Option<Target>,
    /// The transports (a mask) and target of every lane after the first.
    more: Vec<(u8, Option<Target>)>,
    capacity: Option<crate::config::Capacity>,
    rise: u32,
    fall: u32,
}

struct Entry {
    region: String,
    server: String,
    identity: Identity,
    /// The first lane's check and transports (a mask).
    check: Option<Check>,
    mask: u8,
    /// The first lane's state machine, and the server's forced state and load.
    health: ServerHealth,
    /// The lanes after the first (health per transport).
    more: Vec<lanes::Lane>,
    per_transport: bool,
    meters: Arc<meters::Meters>,
    cert: cert_watch::CertState,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    by_name: HashMap<(String, String), usize>,
    /// Hashed with foldhash (seeded per process): looked up once per probe result, and the
    /// keys come from the config.
    by_target: HashMap<Target, servers::Servers, foldhash::fast::RandomState>,
    /// Targets with no result yet (readiness).
    pending: HashSet<Target>,
    /// Operator states by (region, server) set through the API, persisted.
    forced: super::state_file::ApiStates,
    /// Operator states from the operator state file of the bound config.
    file_forced: OperatorStates,
    overflow_at: f64,
    /// The shedding watermarks (`capacity.shed`), if any.
    shed: Option<(f64, f64)>,
    report_ttl: Duration,
    /// The steering data the current entries were bound to.
    bound: Option<std::sync::Weak<Steering>>,
}

/// Where the hub publishes health views: the layer that owns what is being served.
pub trait Publisher: Send + Sync {
    /// Serves `view` from now on, if the steering data being served is still `steering` (a
    /// reload in progress brings its own view) and the view differs from the one served.
    fn publish(&self, steering: &Arc<Steering>, view: HealthView);
}

pub struct HealthHub {
    inner: Mutex<Inner>,
    publisher: OnceLock<Arc<dyn Publisher>>,
    monitor: Monitor,
    results: Mutex<Option<mpsc::Receiver<super::vocab::Batch>>>,
    state_file: Option<PathBuf>,
    /// Held while an operator action is written to the state file; holds the last write error
    /// (cleared by a successful write).
    persisting: Mutex<Option<String>>,
    /// This instance's metrics.
    pub(crate) telemetry: Arc<Telemetry>,
    /// The hub's own series (servers per state, probe targets, state file errors), made once.
    gauges: gauges::Gauges,
    /// Every probed server has had a result (`pending` is empty), readable without the lock.
    ready: AtomicBool,
    /// Where flips, forced states and load pull failures are recorded.
    events: Arc<EventLog>,
    /// The number of the last view made (under `inner`'s lock) and of the last published.
    view_seq: AtomicU64,
    published: Mutex<u64>,
}

/// The hub's clock: tokio's, which is the system's monotonic clock unless a test pauses it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The wall clock in Unix seconds (certificate lifetimes).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The forced state in effect for a server and where it comes from: the API's wins over the
/// operator state file's, and a file entry past its `until` no longer applies.
fn effective_forced(
    inner: &Inner,
    key: &(String, String),
    at: SystemTime,
) -> (Option<ForcedState>, Option<&'static str>) {
    if let Some(f) = inner.forced.get(key)
        && f.active(at)
    {
        return (Some(f.state), Some("api"));
    }
    match inner.file_forced.get(key) {
        Some(o) if o.active(at) => (Some(o.state), Some("file")),
        _ => (None, None),
    }
}

/// Most batches of probe results (a batch: the results of one pass of the probe engine)
/// applied under one lock.
const RESULT_BATCHES: usize = 64;

impl HealthHub {
    /// A hub with its probe scheduler; `state_file` keeps forced states across restarts.
    pub fn new(
        max_concurrent: usize,
        state_file: Option<PathBuf>,
        telemetry: Arc<Telemetry>,
    ) -> Arc<HealthHub> {
        let (tx, rx) = mpsc::channel(1024);
        let mut inner = Inner {
            overflow_at: 0.8,
            report_ttl: Duration::from_secs(30),
            ..Inner::default()
        };
        if let Some(f) = &state_file {
            inner.forced = super::state_file::read(f);
        }
        Arc::new(HealthHub {
            inner: Mutex::new(inner),
            publisher: OnceLock::new(),
            monitor: Monitor::start(max_concurrent, tx),
            results: Mutex::new(Some(rx)),
            state_file,
            persisting: Mutex::new(None),
            gauges: gauges::Gauges::new(&telemetry),
            telemetry,
            ready: AtomicBool::new(true),
            view_seq: AtomicU64::new(0),
            published: Mutex::new(0),
            events: Arc::new(EventLog::default()),
        })
    }

    /// Binds the hub to a (new) config: keeps health for unchanged servers, starts probing
    /// new ones, stops probing removed ones. Returns the health view for the new snapshot.
    pub fn bind(&self, cfg: &Config, st: &Arc<Steering>) -> Arc<HealthView> {
        let now = now();
        let mut inner = guard(&self.inner);
        let mut old: HashMap<(String, String), Entry> = std::mem::take(&mut inner.entries)
            .into_iter()
            .map(|e| ((e.region.clone(), e.server.clone()), e))
            .collect();
        inner.overflow_at = cfg.capacity.overflow_at;
        inner.shed = cfg.capacity.shed;
        inner.file_forced = cfg.operator.clone();
        let wall = SystemTime::now();
        inner.report_ttl = cfg.capacity.report_ttl;
        inner.by_name.clear();
        inner.by_target.clear();
        let mut specs: HashMap<Target, ProbeSpec> = HashMap::new();
        // One policy shared by the servers that keep the default codes: a probe result reads
        // one hot line instead of one per server.
        let default_policy = Arc::new(CodePolicy::default());
        for r in &cfg.regions {
            for s in &r.servers {
                let key = (r.name.clone(), s.name.clone());
                let (identity, mask, check) = lanes::identity_of(s);
                let old_entry = old.remove(&key);
                let meters = match &old_entry {
                    Some(e) => e.meters.clone(),
                    None => Arc::new(meters::Meters::new(&key.0, &key.1, &self.telemetry)),
                };
                let (mut health, more, cert) = match old_entry {
                    Some(e) if e.identity == identity => (e.health, e.more, e.cert),
                    _ => (
                        ServerHealth::new(
                            Thresholds {
                                rise: s.probe.rise,
                                fall: s.probe.fall,
                            },
                            s.capacity,
                            now,
                        ),
                        lanes::more_lanes(s, now),
                        Default::default(),
                    ),
                };
                if identity.target.is_none() {
                    // `check: none`: never probed, so up unless an operator says otherwise.
                    health.assume_up(now);
                }
                health.set_forced(effective_forced(&inner, &key, wall).0, now);
                let slot = inner.entries.len();
                let targets =
                    std::iter::once(&identity.target).chain(identity.more.iter().map(|m| &m.1));
                for (k, t) in targets.enumerate() {
                    let Some(t) = t else { continue };
                    inner
                        .by_target
                        .entry(t.clone())
                        .or_default()
                        .push((slot, k as u8));
                    specs
                        .entry(t.clone())
                        .or_insert_with(|| spec(t, s, &default_policy));
                }
                inner.by_name.insert(key.clone(), slot);
                inner.entries.push(Entry {
                    region: key.0,
                    server: key.1,
                    identity,
                    check,
                    mask,
                    health,
                    more,
                    per_transport: !s.checks.is_empty(),
                    meters,
                    cert,
                });
            }
        }
        let targets: HashSet<Target> = specs.keys().cloned().collect();
        inner.pending.retain(|t| targets.contains(t));
        for t in &targets {
            let seen = inner.by_target.get(t).is_some_and(|slots| {
                slots
                    .as_slice()
                    .iter()
                    .any(|&(i, k)| inner.entries[i].lane(k).is_some_and(|h| h.last().is_some()))
            });
            if !seen {
                inner.pending.insert(t.clone());
            }
        }
        self.ready
            .store(inner.pending.is_empty(), Ordering::Release);
        inner.bound = Some(Arc::downgrade(st));
        self.monitor.set_targets(specs.into_values().collect());
        Arc::new(view(&inner, now))
    }

    /// Starts applying probe results and the once-a-second re-check on `tasks`; publishes
    /// through `publisher`. When `cancel` fires, the task stops the probes and ends once they
    /// have.
    pub fn run(
        self: &Arc<Self>,
        publisher: Arc<dyn Publisher>,
        cancel: CancellationToken,
        tasks: &mut JoinSet<()>,
    ) {
        let _ = self.publisher.set(publisher);
        let rx = guard(&self.results).take();
        let Some(mut rx) = rx else { return };
        let hub = self.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            // The results of the probes that ended in one tick, applied under one lock.
            let mut batches = Vec::with_capacity(RESULT_BATCHES);
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut batches, RESULT_BATCHES) => {
                        if n == 0 {
                            return;
                        }
                        hub.apply_all(batches.iter().flatten());
                        batches.clear();
                    }
                    _ = tick.tick() => hub.publish_if_changed(),
                    () = cancel.cancelled() => {
                        hub.monitor.shutdown().await;
                        return;
                    }
                }
            }
        });
    }

    /// Applies operator state file entries that started or expired, then publishes the
    /// current view if it differs from the one being served.
    fn publish_if_changed(&self) {
        let pending = {
            let mut inner = guard(&self.inner);
            let now = now();
            refresh_forced(&mut inner, now, &self.events);
            self.pending(&inner, now)
        };
        self.publish(pending);
    }

    /// Distinct targets being probed (servers sharing an address, port and check share one).
    pub fn probe_targets(&self) -> usize {
        self.monitor.targets()
    }

    /// This instance's event log (flips, forced states, load pull failures; the reloader
    /// records its reloads here too).
    pub fn events(&self) -> &Arc<EventLog> {
        &self.events
    }

    /// True once every probed server has had a result. Never waits for the hub's lock.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Records a load report.
    pub fn load(
        &self,
        region: &str,
        server: &str,
        calls: Option<u32>,
        cps: Option<u32>,
    ) -> Result<ServerReport, HubError> {
        let now = now();
        let mut inner = guard(&self.inner);
        let Some(&slot) = inner.by_name.get(&(region.to_owned(), server.to_owned())) else {
            return Err(HubError::not_found(region, server));
        };
        if inner.entries[slot].identity.capacity.is_none() {
            return Err(HubError::NoCapacity {
                region: region.to_owned(),
                server: server.to_owned(),
            });
        }
        inner.entries[slot].health.report_load(calls, cps, now);
        let pending = self.pending(&inner, now);
        let r = report(&inner, slot, now);
        drop(inner);
        self.publish(pending);
        Ok(r)
    }

    /// Distinct addresses being probed.
    pub fn probed_targets(&self) -> usize {
        self.monitor.targets()
    }

    /// Every server, in config order.
    pub fn servers(&self) -> Vec<ServerReport> {
        let inner = guard(&self.inner);
        let now = now();
        (0..inner.entries.len())
            .map(|i| report(&inner, i, now))
            .collect()
    }
}

/// Re-applies the forced state in effect to every server (entries expire by time).
fn refresh_forced(inner: &mut Inner, now: Instant, events: &EventLog) {
    if inner.file_forced.is_empty() && inner.forced.values().all(|f| f.until.is_none()) {
        return;
    }
    let wall = SystemTime::now();
    for i in 0..inner.entries.len() {
        let key = (
            inner.entries[i].region.clone(),
            inner.entries[i].server.clone(),
        );
        let f = effective_forced(inner, &key, wall).0;
        if inner.entries[i].health.forced() != f {
            tracing::info!(server = %format!("{}/{}", key.0, key.1), forced = f.map(ForcedState::state_str), "forced state applied or expired");
            let (kind, message) = match f {
                Some(f) => (Kind::ForcedStarted, format!("{} applies", f.state_str())),
                None => (Kind::ForcedEnded, "forced state ended".to_owned()),
            };
            events.record(kind, format!("{}/{}", key.0, key.1), message);
            inner.entries[i].health.set_forced(f, now);
        }
    }
}

/// How a target of server `s` is probed.
fn spec(t: &Target, s: &ServerConfig, default_policy: &Arc<CodePolicy>) -> ProbeSpec {
    ProbeSpec {
        target: t.clone(),
        cadence: cadence(&s.probe),
        thresholds: Thresholds {
            rise: s.probe.rise,
            fall: s.probe.fall,
        },
        policy: if s.probe.healthy_codes.is_empty() {
            default_policy.clone()
        } else {
            Arc::new(CodePolicy::from_ranges(&s.probe.healthy_codes))
        },
    }
}

/// The probe cadence of a server; the suspect settings never exceed the steady ones.
fn cadence(p: &crate::config::ProbeConfig) -> Cadence {
    Cadence {
        interval: p.interval,
        timeout: p.timeout,
        suspect_interval: p.suspect_interval.min(p.interval),
        suspect_timeout: p.suspect_timeout.min(p.timeout),
    }
}
