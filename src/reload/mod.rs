//! Reloading: re-run the one loader off the query path, swap the snapshot only when the new
//! config is valid and different, keep the old one serving otherwise. Triggered by file
//! changes (debounced), a periodic rescan, SIGHUP and `POST /v1/reload`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::dns::snapshot::{Shared, Snapshot};
use crate::events::{EventLog, Kind};
use crate::geo::{GeoData, GeoError};
use crate::lock::guard;
use crate::steering::{HealthView, Steering};
use crate::telemetry::Telemetry;

mod cache;
mod key_meters;
mod memory;
mod meters;
mod status;
mod summary;
pub(crate) mod trigger;

pub(crate) use cache::geo_for;
pub use cache::{GeoSlot, load_geo};
pub use status::{FileOut, GeoState, ReloadResult, ReloadStatus};
pub use summary::{MAX_PROBLEM_BYTES, MAX_REPORTED};
pub use trigger::{Trigger, run};

/// Gives a new snapshot its health view: carries states over for servers that did not change.
pub type HealthBinder = dyn Fn(&Config, &Arc<Steering>) -> Arc<HealthView> + Send + Sync;

/// The result of one reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied(u64),
    Unchanged,
    Rejected(Rejection),
}

impl Outcome {
    /// How it ended, as `/v1/status` and `POST /v1/reload` name it.
    pub fn result(&self) -> ReloadResult {
        match self {
            Outcome::Applied(_) => ReloadResult::Ok,
            Outcome::Unchanged => ReloadResult::Unchanged,
            Outcome::Rejected(_) => ReloadResult::Error,
        }
    }
}

/// Why a reload was refused; the serving config stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The config or its GeoIP database did not load: every problem, with its file.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The reload panicked (a bug); nothing of it was applied.
    #[error("reload failed: internal error")]
    Panicked,
}

/// Why a load failed: config errors (each with file:line:col) or a GeoIP error (with its
/// file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Config(config::ConfigErrors),
    #[error("{0}")]
    Geo(GeoError),
}

impl LoadError {
    /// How many problems were found.
    pub fn count(&self) -> usize {
        match self {
            LoadError::Config(e) => e.0.len(),
            LoadError::Geo(_) => 1,
        }
    }
}

/// What one load produces: the config and the GeoIP data it names.
pub struct Loaded {
    pub config: Config,
    pub geo: Option<Arc<GeoData>>,
}

/// The one loader of `serve`, reloads, `check` and `explain`: the config files, then the
/// GeoIP database (from `cache` while its file is unchanged). Blocking.
pub fn load(path: &Path, cache: &GeoSlot) -> Result<Loaded, LoadError> {
    let config = config::load_cached(path, &mut guard(&cache.zones)).map_err(LoadError::Config)?;
    let geo = geo_for(&config, cache).map_err(LoadError::Geo)?;
    Ok(Loaded { config, geo })
}

pub struct Reloader {
    pub path: PathBuf,
    shared: Shared,
    status: Mutex<ReloadStatus>,
    geo: GeoSlot,
    health: Arc<HealthBinder>,
    /// Held for a whole reload: one runs at a time.
    flight: Mutex<()>,
    /// Reload requests so far (a ticket each).
    requests: AtomicU64,
    /// The last run: the highest ticket it covered, and its outcome.
    last_run: Mutex<Option<(u64, Outcome)>>,
    /// The reload thread's queue (see [`trigger`]).
    pub(crate) queue: OnceLock<trigger::Queue>,
    /// The file watcher, re-aimed after each reload (symlink targets move).
    pub(crate) watcher: Mutex<Option<crate::config::watch::ConfigWatcher>>,
    /// Cancelled at shutdown: nobody waits for a reload any more.
    pub stopping: CancellationToken,
    /// The reloader's series.
    meters: meters::Meters,
    /// The DNSSEC key series.
    key_meters: key_meters::KeyMeters,
    /// Where applied and refused reloads are recorded (see [`Reloader::with_events`]).
    events: Arc<EventLog>,
}

/// CPU time of the calling thread (a reload runs on one thread: this is its cost).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if r != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reloader {
    /// Starts from a first load (see [`load`]; `cache` is the slot it used).
    pub fn first(
        path: &Path,
        loaded: Loaded,
        cache: GeoSlot,
        health: Arc<HealthBinder>,
        telemetry: Arc<Telemetry>,
    ) -> Reloader {
        let cfg = Arc::new(loaded.config);
        let mut snap = Snapshot::build(cfg.clone(), loaded.geo, 1);
        snap.health = health(&cfg, &snap.steering);
        crate::dns::presign::presign(&snap);
        let status = ReloadStatus::first(now_unix());
        let r = Reloader {
            path: path.to_path_buf(),
            shared: Arc::new(arc_swap::ArcSwap::from_pointee(snap)),
            status: Mutex::new(status),
            geo: cache,
            health,
            flight: Mutex::new(()),
            requests: AtomicU64::new(0),
            last_run: Mutex::new(None),
            queue: OnceLock::new(),
            watcher: Mutex::new(None),
            stopping: CancellationToken::new(),
            meters: meters::Meters::new(&telemetry),
            key_meters: key_meters::KeyMeters::new(&telemetry),
            events: Arc::new(EventLog::default()),
        };
        r.count(ReloadResult::Ok, 1);
        r
    }

    /// Records reloads into `events` (the instance's event log) instead of a log of its own.
    #[must_use]
    pub fn with_events(mut self, events: Arc<EventLog>) -> Reloader {
        self.events = events;
        self
    }

    /// Counts a load by result (applied or refused) and, when applied, exports what is
    /// served: generation, GeoIP build figures.
    fn count(&self, result: ReloadResult, generation: u64) {
        let m = &self.meters;
        if let Some(c) = m.reloads(result) {
            c.increment(1);
        }
        if result != ReloadResult::Ok {
            return;
        }
        m.last_success.set(now_unix() as f64);
        m.generation.set(generation as f64);
        let expiry = self
            .shared
            .load()
            .routing
            .zones
            .iter()
            .filter(|z| z.key.is_some())
            .map(|z| z.window.expiration)
            .min();
        m.dnssec_expiry.set(f64::from(expiry.unwrap_or(0)));
        self.key_meters.publish(&self.shared.load().routing);
        if let Some(g) = guard(&self.geo.geo).as_ref() {
            m.geoip_build_seconds.set(g.seconds);
            m.geoip_build_epoch.set(g.data.info.build_epoch as f64);
        }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// What the reloads did; never waits for a reload in progress.
    pub fn status(&self) -> ReloadStatus {
        let mut status = guard(&self.status).clone();
        status.files = status::files_out(&self.shared.load().config.files);
        status
    }

    /// Where the GeoIP database the serving config names stands (`None`: it names none).
    pub fn geoip_state(&self) -> Option<GeoState> {
        let snap = self.shared.load();
        snap.config.geoip.as_ref()?;
        if snap.steering.geo.is_some() {
            Some(GeoState::Loaded)
        } else if guard(&self.status).last_result == ReloadResult::Error {
            Some(GeoState::Failed)
        } else {
            Some(GeoState::Loading)
        }
    }

    /// Re-reads everything; swaps the snapshot if valid and changed. Single-flight: one
    /// reload runs at a time, and a caller whose request came in before a run started reading
    /// shares that run's outcome instead of running again. Blocking: call it off the async
    /// runtime's worker threads (the reload thread, see [`trigger`]).
    pub fn reload(&self, why: Trigger) -> Outcome {
        let ticket = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let _flight = guard(&self.flight);
        if let Some((covered, out)) = guard(&self.last_run).as_ref()
            && *covered >= ticket
        {
            return out.clone();
        }
        let covered = self.requests.load(Ordering::SeqCst);
        let out = self.run_once(why);
        *guard(&self.last_run) = Some((covered, out.clone()));
        out
    }

    fn run_once(&self, why: Trigger) -> Outcome {
        let started = std::time::Instant::now();
        let cpu_started = thread_cpu();
        let current = self.shared.load_full();
        // The periodic rescan trusts file identities; the other triggers read everything.
        let rescan = why == Trigger::Rescan;
        // A new signature window re-signs the signed zones even when no file changed.
        let resign = current.routing.signed_before(crate::dnssec::Window::now());
        if guard(&self.geo.zones).observe(source_paths(&current.config), rescan) && !resign {
            let mut st = guard(&self.status);
            st.last_attempt_unix = now_unix();
            st.unchanged += 1;
            st.last_result = ReloadResult::Unchanged;
            return Outcome::Unchanged;
        }
        let loaded = load(&self.path, &self.geo);
        guard(&self.status).last_attempt_unix = now_unix();
        let Loaded { config: cfg, geo } = match loaded {
            Ok(x) => x,
            Err(e) => {
                guard(&self.geo.zones).loaded(None);
                if crate::dns::snapshot::end_warmup_servfail(&self.shared) {
                    tracing::warn!(
                        "geoip database not loaded: steered names answer in their fallback order instead of SERVFAIL"
                    );
                }
                return self.reject(why, e.into(), current.generation);
            }
        };
        // A database still compiling (early start) is not identified by its file alone.
        let complete = cfg.geoip.is_none() || geo.is_some();
        let paths = complete.then(|| source_paths(&cfg));
        guard(&self.geo.zones).loaded(paths.as_deref());
        let same_files = cfg.files == current.config.files;
        let same_geo = match (&geo, &current.steering.geo) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same_files && same_geo && !resign {
            let mut st = guard(&self.status);
            st.last_error = None;
            st.last_error_count = None;
            st.unchanged += 1;
            st.last_result = ReloadResult::Unchanged;
            return Outcome::Unchanged;
        }
        let restart_needed = (cfg.listen_dns != current.config.listen_dns
            || cfg.listen_admin != current.config.listen_admin
            || cfg.listen_tls != current.config.listen_tls
            || cfg.listen_https != current.config.listen_https)
            .then(|| "listen addresses changed: restart sipsteer to apply them".to_string());
        if let Some(msg) = &restart_needed {
            tracing::warn!("{msg}");
        }
        let generation = current.generation + 1;
        let cfg = Arc::new(cfg);
        let mut snap = Snapshot::build_after(cfg.clone(), geo, generation, Some(&current));
        snap.health = (self.health)(&cfg, &snap.steering);
        crate::dns::presign::presign(&snap);
        self.shared.store(Arc::new(snap));
        if !same_geo {
            memory::release_freed_memory();
        }
        {
            let mut st = guard(&self.status);
            st.last_error = None;
            st.last_error_count = None;
            st.restart_needed = restart_needed;
            st.generation = generation;
            st.applied += 1;
            st.last_result = ReloadResult::Ok;
            st.last_success_unix = st.last_attempt_unix;
        }
        self.count(ReloadResult::Ok, generation);
        tracing::info!(
            trigger = why.as_str(),
            generation,
            ms = started.elapsed().as_millis() as u64,
            cpu_ms = format_args!("{:.1}", (thread_cpu() - cpu_started).as_secs_f64() * 1e3),
            "config reloaded"
        );
        let mut message = format!("generation {generation} applied ({})", why.as_str());
        if let Some(msg) = &guard(&self.status).restart_needed {
            message.push_str("; ");
            message.push_str(msg);
        }
        self.events
            .record(Kind::Reload, self.path.display().to_string(), message);
        Outcome::Applied(generation)
    }
}

/// Every path whose change can change what `config` loads to: the files it was read from,
/// the zones directory (files added or removed), the GeoIP database and the operator state
/// file (read only when present).
fn source_paths(config: &Config) -> Vec<PathBuf> {
    let files = config.files.iter().map(|f| f.path.clone());
    let dirs = [Some(config.file.clone()), Some(config.zones_dir.clone())];
    let optional = [config.geoip.clone(), config.operator_state_file.clone()];
    // A keys directory's listing: a key written by `dnssec roll` or another instance.
    let key_dirs = config.key_dirs.values().cloned();
    files
        .chain(dirs.into_iter().chain(optional).flatten())
        .chain(key_dirs)
        .collect()
}
