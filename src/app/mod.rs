//! The supervisor: loads the config, binds the listeners, publishes snapshots, and owns
//! shutdown. Tests start the real server through [`start`] on port 0.
//!
//! A start is all or nothing: every socket is bound first ([`bind`]), and if anything spawned
//! after that fails to start, everything already running is stopped and waited for before
//! the error is returned.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dns::listener;
use crate::dns::querylog::QueryLog;
use crate::dns::serving::Answering;
use crate::dns::snapshot::{Shared, Snapshot};
use crate::dns::stats::Counters;
use crate::dns::summary::Proto;
use crate::health::hub::HealthHub;
use crate::telemetry::Telemetry;

mod bind;
pub(crate) mod signals;
pub mod startup;
mod tasks;

use crate::lock::guard;
use crate::reload::{self, GeoSlot, GeoState, Loaded, Reloader, load, trigger};
use bind::{Listen, Sockets};
pub use signals::Signals;
use tasks::Tasks;

/// A running sipsteer.
pub struct Running {
    /// The DNS addresses actually bound (UDP and TCP share each).
    pub dns: Vec<SocketAddr>,
    /// The DNS over TLS and DNS over HTTPS addresses actually bound.
    pub encrypted: crate::dns::encrypted::Bound,
    /// The admin API address actually bound, if enabled.
    pub admin: Option<SocketAddr>,
    pub hub: Arc<HealthHub>,
    pub shared: Shared,
    pub reloader: Arc<Reloader>,
    pub config_path: PathBuf,
    /// This instance's metrics (what `/metrics` renders, with `counters`).
    pub telemetry: Arc<Telemetry>,
    /// This instance's query counters.
    pub counters: Arc<Counters>,
    /// Keeps the reload channel open even when the file watcher could not start.
    _nudge: mpsc::Sender<()>,
    cancel: CancellationToken,
    stop: Arc<AtomicBool>,
    threads: Vec<listener::UdpThread>,
    /// The thread that signs the proofs of names that do not exist (`dns::denial`).
    signer: Option<crate::dns::denial::SignerThread>,
    /// The tasks while they are being started; then their supervisor.
    tasks: Option<Tasks>,
    supervisor: Option<JoinHandle<()>>,
    query_log: Option<Arc<QueryLog>>,
}

/// Loads `path` (config and GeoIP database, as `check` does) and starts serving it.
pub async fn start(path: &Path) -> Result<Running> {
    let cache = GeoSlot::default();
    let loaded = load(path, &cache).map_err(|e| anyhow::anyhow!("{e}"))?;
    start_loaded(path, loaded, cache).await
}

/// Loads the config and starts serving at once, without waiting for its GeoIP database: the
/// database is only opened here (so a missing or unreadable file still stops the start), and
/// compiled on the reload thread by [`Running::load_geoip`]. Until its map is in, static names
/// answer as usual, steered names that need the map answer as `geoip.warmup` says (their
/// fallback order with a short TTL, or SERVFAIL), and `/readyz` says not ready.
pub async fn start_early(path: &Path, config: Config) -> Result<Running> {
    if let Some(db) = &config.geoip {
        let started = std::time::Instant::now();
        crate::geo::GeoDb::open(db)?;
        let until = match config.warmup.answer {
            crate::config::WarmupAnswer::Fallback => format!(
                "in their fallback order (TTL at most {} s)",
                config.warmup.ttl
            ),
            crate::config::WarmupAnswer::Servfail => "SERVFAIL".to_string(),
        };
        tracing::info!(
            path = %db.display(),
            ms = started.elapsed().as_millis() as u64,
            "geoip database opened; compiling it in the background, steered names answer {until} until it is in"
        );
    }
    start_loaded(path, Loaded { config, geo: None }, GeoSlot::default()).await
}

/// Starts serving an already loaded config (its GeoIP database is loaded here).
pub async fn start_with(path: &Path, cfg: Config) -> Result<Running> {
    let cache = GeoSlot::default();
    let geo = reload::geo_for(&cfg, &cache)?;
    start_loaded(path, Loaded { config: cfg, geo }, cache).await
}

/// Starts serving a first load; `cache` is the GeoIP slot it filled.
async fn start_loaded(path: &Path, loaded: Loaded, cache: GeoSlot) -> Result<Running> {
    let cfg = &loaded.config;
    let listen = Listen::of(cfg);
    // Every socket before anything is spawned.
    let sockets = Sockets::bind(cfg, &listen).await?;
    let watch_set = crate::config::watch::WatchSet::of(cfg);
    let token = cfg.admin.token.clone();
    let telemetry = Arc::new(Telemetry::new());
    let counters = Counters::new(telemetry.clone());
    let hub = HealthHub::new(
        cfg.health_concurrency,
        cfg.admin.state_file.clone(),
        telemetry.clone(),
    );
    let puller = crate::health::load_pull::LoadPuller::new();
    let binder: Arc<reload::HealthBinder> = {
        let (hub, puller) = (hub.clone(), puller.clone());
        Arc::new(move |cfg: &Config, st: &Arc<crate::steering::Steering>| {
            puller.follow(cfg);
            hub.bind(cfg, st)
        })
    };
    let reloader = Arc::new(
        Reloader::first(path, loaded, cache, binder, telemetry.clone())
            .with_events(hub.events().clone()),
    );
    let (nudge, nudges) = mpsc::channel(1);
    let mut running = Running {
        dns: sockets.dns.iter().map(|d| d.bound).collect(),
        encrypted: sockets.encrypted.bound.clone(),
        admin: sockets.admin.as_ref().and_then(|l| l.local_addr().ok()),
        hub,
        shared: reloader.shared().clone(),
        reloader,
        config_path: path.to_path_buf(),
        tasks: Some(Tasks::new(telemetry.clone())),
        telemetry,
        counters,
        _nudge: nudge.clone(),
        cancel: CancellationToken::new(),
        stop: Arc::new(AtomicBool::new(false)),
        threads: Vec::new(),
        signer: None,
        supervisor: None,
        query_log: None,
    };
    let started = running.serve(
        sockets,
        &listen,
        Started {
            watch_set,
            nudge,
            nudges,
            token,
            puller,
        },
    );
    if let Err(e) = started {
        running.shutdown().await;
        return Err(e);
    }
    Ok(running)
}

/// What the tasks of a start need besides its sockets.
struct Started {
    watch_set: crate::config::watch::WatchSet,
    nudge: mpsc::Sender<()>,
    nudges: mpsc::Receiver<()>,
    token: Option<String>,
    /// The load puller the reloader's binder aims at each config.
    puller: Arc<crate::health::load_pull::LoadPuller>,
}

/// The query log the config asks for, opened.
fn open_query_log(cfg: &Config) -> Result<Option<Arc<QueryLog>>> {
    let Some(q) = &cfg.query_log else {
        return Ok(None);
    };
    let log = QueryLog::open(&q.path, q.sample)
        .with_context(|| format!("cannot open query log {}", q.path.display()))?;
    Ok(Some(log))
}

/// Watches the config's files, nudging the reload task on changes; without a watcher the
/// periodic rescan and SIGHUP still reload.
fn watch_files(reloader: &Reloader, set: crate::config::watch::WatchSet, nudge: mpsc::Sender<()>) {
    match crate::config::watch::watch(set, nudge) {
        Ok(w) => *guard(&reloader.watcher) = Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch config files; relying on the periodic rescan and SIGHUP");
        }
    }
}

impl Running {
    /// Starts everything on the bound `sockets`: the health hub, the query log, the UDP
    /// threads, the reload thread, the stream listeners, the load puller, the file watcher,
    /// the reload task and the admin API; then hands the tasks to their supervisor. On an
    /// error, what was started is left for [`Running::shutdown`].
    fn serve(&mut self, sockets: Sockets, listen: &Listen, s: Started) -> Result<()> {
        let cancel = self.cancel.clone();
        let Some(tasks) = self.tasks.as_mut() else {
            return Ok(());
        };
        let mut hub_tasks = JoinSet::new();
        self.hub
            .run(self.shared.clone(), cancel.clone(), &mut hub_tasks);
        tasks.adopt("health", hub_tasks);
        let sigs = self.shared.load().sigs.clone();
        tasks.spawn("signer", sigs.run_signer(cancel.clone()));
        self.query_log = open_query_log(&self.shared.load().config)?;
        let queue = self.shared.load().denial.queue().clone();
        let signer = crate::dns::denial::spawn_signer(queue)
            .context("cannot start the dnssec signer thread")?;
        self.signer = Some(signer);
        let answering = |tally| Answering::new(self.shared.clone(), tally, self.query_log.clone());
        let udp_died = tasks.failures("udp");
        let tcp = {
            use crate::dns::tcp::{Plain, Serving, Stream};
            let serving = Serving {
                answering: answering(self.counters.listener()),
                idle: listen.settings.tcp_idle_timeout,
                stop: cancel.clone(),
            };
            let table = crate::conns::Conns::new(listen.limits(listen.caps.tcp));
            Stream::new(Plain, table, Proto::Tcp, serving, &self.telemetry)
        };
        for d in sockets.dns {
            for sock in d.udp {
                let a = answering(self.counters.sole_listener());
                let t = listener::spawn_udp(sock, a, self.stop.clone(), udp_died.clone())
                    .context("cannot start a udp listener thread")?;
                self.threads.push(t);
            }
            let t = self.telemetry.clone();
            tasks.spawn(
                "tcp",
                crate::dns::tcp::serve(d.tcp, tcp.clone(), t, cancel.clone()),
            );
            tracing::info!(bound = %d.bound, "dns listening on udp and tcp");
        }
        trigger::spawn(&self.reloader).context("cannot start the reload thread")?;
        let setup = crate::dns::encrypted::Setup {
            answering: answering(self.counters.listener()),
            telemetry: self.telemetry.clone(),
            timeout: listen.settings.tcp_idle_timeout,
            tls: listen.limits(listen.caps.tls),
            https: listen.limits(listen.caps.https),
        };
        for l in sockets.encrypted.serve(setup, &cancel)? {
            tasks.spawn(l.name, l.run);
        }
        let pull = s.puller.clone().run(self.hub.clone(), cancel.clone());
        tasks.spawn("load_pull", pull);
        watch_files(&self.reloader, s.watch_set, s.nudge);
        let reload = reload::run(self.reloader.clone(), s.nudges, cancel.clone());
        tasks.spawn("reload", reload);
        if let Some(l) = sockets.admin {
            let state = crate::admin::AdminState {
                reloader: self.reloader.clone(),
                hub: self.hub.clone(),
                puller: s.puller,
                token: s.token.map(Arc::from),
                telemetry: self.telemetry.clone(),
                counters: self.counters.clone(),
            };
            if let Some(bound) = self.admin {
                tracing::info!(%bound, "admin api listening");
            }
            tasks.spawn("admin", crate::admin::serve(l, state, cancel.clone()));
        }
        if let Some(tasks) = self.tasks.take() {
            self.supervisor = Some(tokio::spawn(tasks.supervise(cancel)));
        }
        Ok(())
    }

    /// The current snapshot's generation.
    pub fn generation(&self) -> u64 {
        self.shared.load().generation
    }

    /// Compiles the GeoIP database of a [`start_early`] start on the reload thread; the
    /// snapshot that carries its map replaces the one serving without it.
    pub fn load_geoip(&self) {
        if self.reloader.geoip_state() == Some(GeoState::Loading) {
            self.reloader.nudge(reload::Trigger::Geoip);
        }
    }

    /// Stops everything and returns once it has stopped: every listener (their sockets
    /// closed, their connections ended), the health probes, the load puller, the admin API,
    /// and last the query log (written out and its thread joined). The reload thread is not
    /// waited for (a reload stuck on a hung filesystem must not hold up the exit).
    pub async fn shutdown(mut self) {
        self.reloader.stopping.cancel();
        self.cancel.cancel();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.supervisor.take() {
            let _ = s.await;
        } else if let Some(tasks) = self.tasks.take() {
            tasks.supervise(self.cancel.clone()).await;
        }
        let threads = std::mem::take(&mut self.threads);
        threads.iter().for_each(listener::UdpThread::wake);
        let log = self.query_log.take();
        let signer = self.signer.take();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                t.join();
            }
            if let Some(s) = signer {
                s.stop();
            }
            if let Some(log) = log {
                log.close();
            }
        })
        .await;
    }

    /// Serves until SIGINT or SIGTERM; SIGHUP reloads.
    pub async fn run_until_signal(self) -> Result<()> {
        let signals = Signals::install()?;
        self.run_until(signals).await
    }

    /// Serves until `signals` says stop (install them before loading, see [`Signals`]).
    pub async fn run_until(self, mut signals: Signals) -> Result<()> {
        signals.wait(&self.reloader).await;
        tracing::info!("shutting down");
        self.shutdown().await;
        Ok(())
    }
}

impl Drop for Running {
    /// Dropped without [`Running::shutdown`]: the tasks are aborted and the signer thread
    /// told to stop (the UDP threads and the query log are not stopped).
    fn drop(&mut self) {
        if let Some(s) = &self.supervisor {
            s.abort();
        }
        if let Some(s) = &self.signer {
            s.close();
        }
    }
}

/// `sipsteer explain`: loads the config as `serve` does and explains one answer, with every
/// server up (or with live states from a running instance's admin API).
pub async fn explain_offline(
    path: &Path,
    client: std::net::IpAddr,
    ecs: Option<ipnet::IpNet>,
    live: Option<&str>,
    name: &str,
    rtype: &str,
) -> Result<String> {
    let rtype: hickory_proto::rr::RecordType = rtype
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown record type `{rtype}`"))?;
    let loaded = load(path, &GeoSlot::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let snap = Snapshot::build(Arc::new(loaded.config), loaded.geo, 1);
    let snap = match live {
        Some(url) => crate::admin::client::with_live_health(snap, url).await?,
        None => with_operator_states(snap),
    };
    crate::dns::presign::presign(&snap);
    let e =
        crate::explain::explain(&snap, client, ecs, name, rtype).map_err(|e| anyhow::anyhow!(e))?;
    Ok(crate::explain::render(&e))
}

/// Every server up, except where the operator state file forces a state now.
fn with_operator_states(snap: Snapshot) -> Snapshot {
    use crate::config::operator::ForcedState;
    use crate::steering::{HealthView, Status};
    let now = std::time::SystemTime::now();
    let mut view = HealthView::all_up(snap.steering.slots);
    for r in &snap.steering.regions {
        for s in &r.servers {
            if let Some(o) = snap.config.operator.get(&(r.name.clone(), s.name.clone()))
                && o.active(now)
            {
                view.status[s.slot] = match o.state {
                    ForcedState::Drain => Status::Drained,
                    ForcedState::Down => Status::Down,
                    ForcedState::Up => Status::Up,
                };
            }
        }
    }
    snap.with_health(Arc::new(view))
}
