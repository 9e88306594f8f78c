//! Reloading: re-run the one loader off the query path, swap the snapshot only when the new
//! config is valid and different, keep the old one serving otherwise. Triggered by file
//! changes (debounced), a periodic rescan, SIGHUP and `POST /v1/reload`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, SourceFile};
use crate::snapshot::{Shared, Snapshot};
use crate::steering::{GeoData, HealthView, Steering};

/// Gives a new snapshot its health view: carries states over for servers that did not change.
pub type HealthBinder = dyn Fn(&Config, &Arc<Steering>) -> Arc<HealthView> + Send + Sync;

/// What the last reloads did (shown in `/v1/status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    pub generation: u64,
    /// `ok`, `unchanged` or `error`.
    pub last_result: String,
    pub last_error: Option<String>,
    pub last_attempt_unix: u64,
    pub last_success_unix: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Set when the config asks for something only a restart can do (new listen addresses).
    pub restart_needed: Option<String>,
    pub files: Vec<FileOut>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileOut {
    pub path: String,
    pub hash: String,
}

/// The result of one reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied(u64),
    Unchanged,
    Rejected(String),
}

struct GeoCache {
    key: (PathBuf, u64, SystemTime, u64),
    data: Arc<GeoData>,
}

pub struct Reloader {
    pub path: PathBuf,
    shared: Shared,
    status: Mutex<ReloadStatus>,
    geo: Mutex<Option<GeoCache>>,
    health: Arc<HealthBinder>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn files_out(files: &[SourceFile]) -> Vec<FileOut> {
    files
        .iter()
        .map(|f| FileOut {
            path: f.path.display().to_string(),
            hash: format!("{:016x}", f.hash),
        })
        .collect()
}

fn geo_key(path: &Path) -> Option<(PathBuf, u64, SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((path.to_path_buf(), m.len(), m.modified().ok()?, m.ino()))
}

/// Loads and compiles the GeoIP database a config names.
fn geo_entry(cfg: &Config) -> anyhow::Result<Option<GeoCache>> {
    let Some(path) = &cfg.geoip else {
        return Ok(None);
    };
    let key = geo_key(path)
        .ok_or_else(|| anyhow::anyhow!("{}: cannot read GeoIP database", path.display()))?;
    let started = std::time::Instant::now();
    let data = Arc::new(GeoData::load(path)?);
    metrics::gauge!("sipsteer_geoip_build_seconds").set(started.elapsed().as_secs_f64());
    metrics::gauge!("sipsteer_geoip_build_epoch_seconds").set(data.info.build_epoch as f64);
    tracing::info!(path = %path.display(), networks = data.info.networks, ms = started.elapsed().as_millis() as u64, "geoip database loaded");
    Ok(Some(GeoCache { key, data }))
}

impl Reloader {
    /// Loads the config for the first time.
    pub fn first(path: &Path, cfg: Config, health: Arc<HealthBinder>) -> anyhow::Result<Reloader> {
        let cfg = Arc::new(cfg);
        let geo = geo_entry(&cfg)?;
        let mut snap = Snapshot::build(cfg.clone(), geo.as_ref().map(|g| g.data.clone()), 1);
        snap.health = health(&cfg, &snap.steering);
        crate::admin::metrics::generation(1);
        let r = Reloader {
            path: path.to_path_buf(),
            shared: Arc::new(arc_swap::ArcSwap::from_pointee(snap)),
            status: Mutex::new(ReloadStatus::default()),
            geo: Mutex::new(geo),
            health,
        };
        if let Ok(mut s) = r.status.lock() {
            s.generation = 1;
            s.last_result = "ok".into();
            s.last_attempt_unix = now_unix();
            s.last_success_unix = s.last_attempt_unix;
            s.applied = 1;
            s.files = files_out(&cfg.files);
        }
        Ok(r)
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The GeoIP data for a config, reusing the compiled table while the file is unchanged.
    fn geo_for(&self, cfg: &Config) -> anyhow::Result<Option<Arc<GeoData>>> {
        let Some(path) = &cfg.geoip else {
            return Ok(None);
        };
        let key = geo_key(path);
        if let Ok(cache) = self.geo.lock()
            && let Some(c) = cache.as_ref()
            && Some(&c.key) == key.as_ref()
        {
            return Ok(Some(c.data.clone()));
        }
        let entry = geo_entry(cfg)?;
        let data = entry.as_ref().map(|e| e.data.clone());
        if let (Some(e), Ok(mut cache)) = (entry, self.geo.lock()) {
            *cache = Some(e);
        }
        Ok(data)
    }

    /// Re-reads everything; swaps the snapshot if valid and changed. Blocking: call it off
    /// the async runtime's worker threads.
    pub fn reload(&self, why: &str) -> Outcome {
        let started = std::time::Instant::now();
        let current = self.shared.load_full();
        let loaded = config::load(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|cfg| {
                let geo = self.geo_for(&cfg).map_err(|e| format!("{e:#}"))?;
                Ok((cfg, geo))
            });
        let mut st = match self.status.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        st.last_attempt_unix = now_unix();
        let (cfg, geo) = match loaded {
            Ok(x) => x,
            Err(e) => {
                st.rejected += 1;
                st.last_result = "error".into();
                if st.last_error.as_deref() != Some(&e) {
                    tracing::error!(
                        trigger = why,
                        "config rejected, still serving generation {}:\n{e}",
                        current.generation
                    );
                }
                st.last_error = Some(e.clone());
                crate::admin::metrics::reload(false);
                return Outcome::Rejected(e);
            }
        };
        st.last_error = None;
        let same_files = cfg.files == current.config.files;
        let same_geo = match (&geo, &current.steering.geo) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same_files && same_geo {
            st.unchanged += 1;
            st.last_result = "unchanged".into();
            return Outcome::Unchanged;
        }
        st.restart_needed = (cfg.listen_dns != current.config.listen_dns
            || cfg.listen_admin != current.config.listen_admin
            || cfg.listen_tls != current.config.listen_tls
            || cfg.listen_https != current.config.listen_https)
            .then(|| "listen addresses changed: restart sipsteer to apply them".to_string());
        if let Some(msg) = &st.restart_needed {
            tracing::warn!("{msg}");
        }
        let generation = current.generation + 1;
        let cfg = Arc::new(cfg);
        let mut snap = Snapshot::build_after(cfg.clone(), geo, generation, Some(&current));
        snap.health = (self.health)(&cfg, &snap.steering);
        self.shared.store(Arc::new(snap));
        st.generation = generation;
        st.applied += 1;
        st.last_result = "ok".into();
        st.last_success_unix = st.last_attempt_unix;
        st.files = files_out(&cfg.files);
        crate::admin::metrics::reload(true);
        crate::admin::metrics::generation(generation);
        tracing::info!(
            trigger = why,
            generation,
            ms = started.elapsed().as_millis() as u64,
            "config reloaded"
        );
        Outcome::Applied(generation)
    }
}

/// Reloads on nudges (debounced) and on a periodic rescan until `cancel` fires.
pub async fn run(
    reloader: Arc<Reloader>,
    mut nudges: mpsc::Receiver<()>,
    rescan: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(rescan);
    tick.tick().await;
    loop {
        let why = tokio::select! {
            n = nudges.recv() => match n {
                Some(()) => {
                    // Debounce: editors write in bursts (rename, write, chmod).
                    loop {
                        tokio::select! {
                            more = nudges.recv() => if more.is_none() { break },
                            _ = tokio::time::sleep(Duration::from_millis(300)) => break,
                        }
                    }
                    "file change"
                }
                None => return,
            },
            _ = tick.tick() => "rescan",
            _ = cancel.cancelled() => return,
        };
        let r = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || r.reload(why)).await;
    }
}
