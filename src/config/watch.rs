//! Watching the config files for changes: the directories of `sipsteer.yaml`, the zone maps,
//! the GeoIP database and every other file a config reads (never the files themselves: an
//! atomic replace would leave a file watch on a dead inode). Events are filtered (reads,
//! dotfiles, swap and backup files are ignored; Kubernetes ConfigMap `..data` swaps count) and
//! passed on as a nudge; the caller debounces and reloads. Every path is made absolute once, as
//! notify reports them, so a relative `--config` is watched like an absolute one. A file that is
//! a symlink (a zone map pointing into a git checkout, a stow tree, a ConfigMap data dir) has
//! its resolved directory watched too, so an edit at the target is seen at once; the set is
//! re-aimed after every reload. Events lost to a full kernel queue ask for a reload too. Also
//! here: `reload.rescan`, the period of the rescan that catches what a watcher missed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::error::Sink;
use super::raw;

/// How often every file is checked when `reload.rescan` is not set.
pub(crate) const DEFAULT_RESCAN: Duration = Duration::from_secs(10);

/// `reload.rescan`: 1s to 24h.
pub(super) fn rescan(r: Option<&raw::Reload>, sink: &mut Sink) -> Duration {
    let Some(v) = r.and_then(|r| r.rescan.as_ref()) else {
        return DEFAULT_RESCAN;
    };
    match super::parse_duration(&v.value) {
        Ok(d) if d >= Duration::from_secs(1) => d,
        Ok(_) => {
            sink.on(v, "reload.rescan", "must be at least 1s");
            DEFAULT_RESCAN
        }
        Err(e) => {
            sink.on(v, "reload.rescan", e);
            DEFAULT_RESCAN
        }
    }
}

/// `p` made absolute against the working directory, as notify reports watched paths (no
/// symlink is resolved); unchanged if the working directory is gone.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What to watch for one config.
#[derive(Debug, Clone)]
pub(crate) struct WatchSet {
    pub dirs: BTreeSet<PathBuf>,
    /// File names that matter in any watched directory (the config file, the GeoIP file).
    pub names: BTreeSet<String>,
    /// Directories whose zone maps (`*.yaml`) matter.
    pub zone_dirs: BTreeSet<PathBuf>,
    /// Resolved targets of symlinked files (any name: a target need not look like a zone map).
    pub targets: BTreeSet<PathBuf>,
}

impl WatchSet {
    pub(crate) fn for_config(
        config_file: &Path,
        zones_dir: &Path,
        geoip: Option<&Path>,
    ) -> WatchSet {
        let mut w = WatchSet {
            dirs: BTreeSet::new(),
            names: BTreeSet::new(),
            zone_dirs: BTreeSet::new(),
            targets: BTreeSet::new(),
        };
        for f in std::iter::once(config_file).chain(geoip) {
            w.add_file(f);
        }
        let zones_dir = absolute(zones_dir);
        w.dirs.insert(zones_dir.clone());
        w.zone_dirs.insert(zones_dir.clone());
        if let Ok(entries) = std::fs::read_dir(&zones_dir) {
            for e in entries.flatten() {
                let p = e.path();
                // The directory entry says whether it is a symlink, without a `stat`.
                if super::source::is_zone_file(&p) && e.file_type().is_ok_and(|t| t.is_symlink()) {
                    w.add_target(&p);
                }
            }
        }
        w
    }

    /// Everything a loaded config reads: its files, zone maps, GeoIP database, operator state
    /// file (also while it is missing), TLS certificate and key, cookie secret file, the load source's CA and secret files.
    pub(crate) fn of(cfg: &super::Config) -> WatchSet {
        let mut w = WatchSet::for_config(&cfg.file, &cfg.zones_dir, cfg.geoip.as_deref());
        let read = cfg.files.iter().map(|f| &f.path);
        let load = cfg.load_source.iter().flat_map(|l| &l.files);
        for f in cfg.operator_state_file.iter().chain(read).chain(load) {
            let f = absolute(f);
            if !w.zone_dirs.contains(&parent(&f)) {
                w.add_file(&f);
            }
        }
        w
    }

    /// One file outside the zones directory: its directory is watched and its name matters.
    fn add_file(&mut self, f: &Path) {
        let f = absolute(f);
        self.dirs.insert(parent(&f));
        if let Some(n) = f.file_name().and_then(|n| n.to_str()) {
            self.names.insert(n.to_owned());
        }
        self.add_target(&f);
    }

    /// Where a symlink finally points: its directory is watched and its path matters.
    fn add_target(&mut self, f: &Path) {
        let is_link = std::fs::symlink_metadata(f).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            return;
        }
        if let Ok(target) = std::fs::canonicalize(f) {
            self.dirs.insert(parent(&target));
            self.targets.insert(target);
        }
    }

    /// Whether a change to `path` can change the config.
    pub(crate) fn matters(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        // Kubernetes ConfigMap volumes swap the `..data` symlink (and `..2026_…` dirs).
        if name.starts_with("..") {
            return true;
        }
        if name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name == "4913"
        {
            return false;
        }
        if self.names.contains(name) || self.targets.contains(path) {
            return true;
        }
        let dir = parent(path);
        self.zone_dirs.contains(&dir) && super::source::is_zone_file(path)
    }
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Events that can change a file's contents or name (not reads or opens).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Other => false,
    }
}

/// A running watcher; dropping it stops watching.
pub(crate) struct ConfigWatcher {
    watcher: RecommendedWatcher,
    filter: Arc<RwLock<WatchSet>>,
    watched: BTreeSet<PathBuf>,
    /// Directories that could not be watched (warned about once, retried on each refresh).
    failed: BTreeSet<PathBuf>,
}

/// Starts watching; each relevant change sends a nudge on `tx` (coalesced: a full channel
/// already means "reload pending").
pub(crate) fn watch(set: WatchSet, tx: mpsc::Sender<()>) -> notify::Result<ConfigWatcher> {
    let filter = Arc::new(RwLock::new(set.clone()));
    let seen = filter.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
        Ok(ev) => {
            let set = crate::lock::read(&seen);
            // A full kernel queue drops events: reload, something may have changed.
            if ev.need_rescan() || (is_change(&ev.kind) && ev.paths.iter().any(|p| set.matters(p)))
            {
                let _ = tx.try_send(());
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watch error"),
    })?;
    let mut w = ConfigWatcher {
        watcher,
        filter,
        watched: BTreeSet::new(),
        failed: BTreeSet::new(),
    };
    w.aim(set);
    Ok(w)
}

impl ConfigWatcher {
    /// Re-aims the watches at what `cfg` reads now (symlinks may point elsewhere).
    pub(crate) fn refresh(&mut self, cfg: &super::Config) {
        self.aim(WatchSet::of(cfg));
    }

    fn aim(&mut self, set: WatchSet) {
        self.failed.retain(|d| set.dirs.contains(d));
        for d in self.watched.difference(&set.dirs) {
            let _ = self.watcher.unwatch(d);
        }
        let mut watched = BTreeSet::new();
        for d in &set.dirs {
            if self.watched.contains(d) {
                watched.insert(d.clone());
                continue;
            }
            match self.watcher.watch(d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.failed.remove(d);
                    watched.insert(d.clone());
                }
                Err(e) => {
                    if self.failed.insert(d.clone()) {
                        tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory; the periodic rescan still applies");
                    }
                }
            }
        }
        self.watched = watched;
        *crate::lock::write(&self.filter) = set;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_names() {
        let w = WatchSet::for_config(
            Path::new("/etc/s/sipsteer.yaml"),
            Path::new("/etc/s/zones"),
            Some(Path::new("/var/geo/City.mmdb")),
        );
        assert!(w.matters(Path::new("/etc/s/sipsteer.yaml")));
        assert!(w.matters(Path::new("/etc/s/zones/example.com.yaml")));
        assert!(w.matters(Path::new("/etc/s/zones/..data")));
        assert!(w.matters(Path::new("/var/geo/City.mmdb")));
        assert!(!w.matters(Path::new("/etc/s/zones/.example.com.yaml.swp")));
        assert!(!w.matters(Path::new("/etc/s/zones/example.com.yaml~")));
        assert!(!w.matters(Path::new("/etc/s/zones/4913")));
        assert!(!w.matters(Path::new("/etc/s/zones/notes.txt")));
        assert!(!w.matters(Path::new("/var/geo/other.mmdb")));
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
    }

    /// notify reports absolute paths; a relative config is compared in the same form.
    #[test]
    fn relative_paths_match_absolute_events() {
        let w = WatchSet::for_config(Path::new("sipsteer.yaml"), Path::new("zones"), None);
        let cwd = std::env::current_dir().unwrap();
        assert!(w.matters(&cwd.join("zones/example.com.yaml")));
        assert!(w.matters(&cwd.join("sipsteer.yaml")));
        assert!(w.dirs.contains(&cwd) && w.dirs.contains(&cwd.join("zones")));
        assert!(!w.matters(&cwd.join("other/example.com.yaml")));
    }
}
