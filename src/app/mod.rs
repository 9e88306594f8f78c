//! The supervisor: loads the config, binds the listeners, publishes snapshots, and owns
//! shutdown. Tests start the real server through [`start`] on port 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dns::answer::Proto;
use crate::dns::listener;
use crate::dns::snapshot::{Shared, Snapshot};
use crate::dns::stats::Counters;
use crate::health::hub::HealthHub;
use crate::telemetry::Telemetry;

pub(crate) mod signals;
pub mod startup;

use crate::lock::guard;
use crate::reload::{self, GeoSlot, GeoState, Loaded, Reloader, load, trigger};
pub use signals::Signals;

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
    tasks: JoinSet<()>,
    query_log: Option<Arc<crate::dns::querylog::QueryLog>>,
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
    let listen = Listen {
        dns: cfg.listen_dns.clone(),
        tls: cfg.listen_tls.clone(),
        https: cfg.listen_https.clone(),
        settings: cfg.dns.clone(),
        caps: descriptor_budget(cfg, &cfg.dns),
    };
    let watch_set = crate::config::watch::WatchSet::of(cfg);
    let admin_addr = cfg.listen_admin;
    let token = cfg.admin.token.clone();
    let telemetry = Arc::new(Telemetry::new());
    let counters = Counters::new();
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
    let reloader = Arc::new(Reloader::first(
        path,
        loaded,
        cache,
        binder,
        telemetry.clone(),
    ));
    trigger::spawn(&reloader).context("cannot start the reload thread")?;
    let shared = reloader.shared().clone();
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    hub.run(shared.clone(), cancel.clone(), &mut tasks);
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let qlog = open_query_log(&reloader.shared().load().config)?;
    let serving = Serving {
        shared: &shared,
        counters: &counters,
        telemetry: &telemetry,
        log: &qlog,
        cancel: &cancel,
    };
    let dns = serving.dns(&listen, &stop, &mut threads, &mut tasks)?;
    let encrypted = serving.encrypted(&listen, &mut tasks)?;
    tasks.spawn(puller.clone().run(hub.clone(), cancel.clone()));
    let (nudge, nudges) = mpsc::channel(1);
    watch_files(&reloader, watch_set, nudge.clone());
    tasks.spawn(reload::run(reloader.clone(), nudges, cancel.clone()));
    let state = crate::admin::AdminState {
        reloader: reloader.clone(),
        hub: hub.clone(),
        puller,
        token: token.map(Arc::from),
        telemetry: telemetry.clone(),
        counters: counters.clone(),
    };
    let admin = match admin_addr {
        Some(addr) => Some(serving.admin(addr, state, &mut tasks).await?),
        None => None,
    };
    Ok(Running {
        dns,
        encrypted,
        admin,
        hub,
        shared,
        reloader,
        config_path: path.to_path_buf(),
        telemetry,
        counters,
        _nudge: nudge,
        cancel,
        stop,
        threads,
        tasks,
        query_log: qlog,
    })
}

/// The query log the config asks for, opened.
fn open_query_log(cfg: &Config) -> Result<Option<Arc<crate::dns::querylog::QueryLog>>> {
    let Some(q) = &cfg.query_log else {
        return Ok(None);
    };
    let log = crate::dns::querylog::QueryLog::open(&q.path, q.sample)
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

/// The DNS listen addresses of every transport, their settings, and the connection caps that
/// fit in the open-file limit.
struct Listen {
    dns: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
    settings: crate::config::DnsSettings,
    caps: crate::conns::budget::Caps,
}

impl Listen {
    /// The bounds of one transport's table, whose cap is `max`.
    fn limits(&self, max: usize) -> crate::conns::Limits {
        crate::conns::Limits {
            max,
            per_source: self.settings.tcp_max_connections_per_source,
        }
    }
}

/// What the listeners of one instance share.
struct Serving<'a> {
    shared: &'a Shared,
    counters: &'a Arc<Counters>,
    telemetry: &'a Arc<Telemetry>,
    log: &'a Option<Arc<crate::dns::querylog::QueryLog>>,
    cancel: &'a CancellationToken,
}

impl Serving<'_> {
    /// Binds every DNS address: UDP sockets served by their own threads, and a TCP listener
    /// on `tasks`, all of them admitting to one table. Returns the addresses bound.
    fn dns(
        &self,
        listen: &Listen,
        stop: &Arc<AtomicBool>,
        threads: &mut Vec<listener::UdpThread>,
        tasks: &mut JoinSet<()>,
    ) -> Result<Vec<SocketAddr>> {
        use crate::dns::tcp::{Plain, Serving, Stream};
        let (settings, table) = (
            &listen.settings,
            crate::conns::Conns::new(listen.limits(listen.caps.tcp)),
        );
        let workers = udp_workers(settings);
        let serving = Serving {
            shared: self.shared.clone(),
            tally: self.counters.listener(),
            log: self.log.clone(),
            idle: settings.tcp_idle_timeout,
            stop: self.cancel.clone(),
        };
        let tcp = Stream::new(Plain, table, Proto::Tcp, serving, self.telemetry);
        let mut dns = Vec::new();
        for &addr in &listen.dns {
            let only_v6 = listener::v6_only(addr, &listen.dns);
            let (udp, tcp_sock) = bind_pair(addr, only_v6, workers)?;
            let bound = udp[0].local_addr()?;
            for sock in udp {
                threads.push(listener::spawn_udp(
                    sock,
                    self.shared.clone(),
                    self.counters.sole_listener(),
                    self.log.clone(),
                    stop.clone(),
                )?);
            }
            let l = tokio::net::TcpListener::from_std(tcp_sock)?;
            tasks.spawn(crate::dns::tcp::serve(
                l,
                tcp.clone(),
                self.telemetry.clone(),
                self.cancel.clone(),
            ));
            tracing::info!(%bound, "dns listening on udp and tcp");
            dns.push(bound);
        }
        Ok(dns)
    }

    /// Binds the DNS over TLS and DNS over HTTPS addresses and serves them on `tasks`.
    fn encrypted(
        &self,
        listen: &Listen,
        tasks: &mut JoinSet<()>,
    ) -> Result<crate::dns::encrypted::Bound> {
        let setup = crate::dns::encrypted::Setup {
            shared: self.shared.clone(),
            tally: self.counters.listener(),
            telemetry: self.telemetry.clone(),
            log: self.log.clone(),
            timeout: listen.settings.tcp_idle_timeout,
            tls: listen.limits(listen.caps.tls),
            https: listen.limits(listen.caps.https),
        };
        let (tls, https) = (&listen.tls, &listen.https);
        Ok(crate::dns::encrypted::start(
            setup,
            tls,
            https,
            tasks,
            self.cancel,
        )?)
    }

    /// Binds the admin API on `addr` and serves it on `tasks`; returns the address bound.
    async fn admin(
        &self,
        addr: SocketAddr,
        state: crate::admin::AdminState,
        tasks: &mut JoinSet<()>,
    ) -> Result<SocketAddr> {
        let l = crate::admin::bind(addr)
            .await
            .with_context(|| format!("cannot bind admin api {addr}"))?;
        let bound = l.local_addr()?;
        tasks.spawn(crate::admin::serve(l, state, self.cancel.clone()));
        tracing::info!(%bound, "admin api listening");
        Ok(bound)
    }
}

/// UDP sockets (and threads) per DNS address.
fn udp_workers(settings: &crate::config::DnsSettings) -> usize {
    match settings.udp_workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    }
}

/// Raises the open-file limit and returns the connection caps of the stream transports that
/// fit in it beside everything else that holds descriptors (see `conns::budget`).
fn descriptor_budget(cfg: &Config, dns: &crate::config::DnsSettings) -> crate::conns::budget::Caps {
    use crate::conns::budget::{Caps, Fixed, fit};
    let on = |addrs: &[SocketAddr]| {
        if addrs.is_empty() {
            0
        } else {
            dns.tcp_max_connections
        }
    };
    let admin = cfg.listen_admin.is_some();
    let sockets = cfg.listen_dns.len() * (udp_workers(dns) + 1)
        + cfg.listen_tls.len()
        + cfg.listen_https.len()
        + usize::from(admin)
        // The prober's UDP sockets, one per address family.
        + 2;
    let fixed = Fixed {
        sockets,
        admin: if admin {
            crate::admin::MAX_CONNECTIONS
        } else {
            0
        },
        probes: cfg.health_concurrency,
    };
    let caps = Caps {
        tcp: on(&cfg.listen_dns),
        tls: on(&cfg.listen_tls),
        https: on(&cfg.listen_https),
    };
    fit(caps, fixed)
}

/// UDP and TCP on one address; with port 0, both on the same (free) port.
fn bind_pair(
    addr: SocketAddr,
    only_v6: bool,
    workers: usize,
) -> Result<(Vec<std::net::UdpSocket>, std::net::TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = listener::bind_udp(addr, workers, only_v6)
            .with_context(|| format!("cannot bind udp {addr}"))?;
        let bound = udp[0].local_addr()?;
        match listener::bind_tcp(bound, only_v6) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("cannot bind tcp {addr}")),
        }
    }
    Err(anyhow::anyhow!(
        "cannot bind tcp next to udp on {addr}: {}",
        last.map_or_else(String::new, |e| e.to_string())
    ))
}

impl Running {
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
        while self.tasks.join_next().await.is_some() {}
        let threads = std::mem::take(&mut self.threads);
        threads.iter().for_each(listener::UdpThread::wake);
        let log = self.query_log.take();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                t.join();
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
