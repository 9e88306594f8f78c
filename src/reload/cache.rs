//! What one load keeps for the next: the compiled GeoIP table while its file is unchanged,
//! the parsed and validated zone maps, and the error of a GeoIP file that failed to load.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::memory;
use crate::config::{self, Config};
use crate::geo::{GeoData, GeoError};
use crate::lock::guard;

pub(super) struct GeoCache {
    key: GeoKey,
    pub(super) data: Arc<GeoData>,
    /// Time it took to load and compile.
    pub(super) seconds: f64,
}

/// What the last load read and compiled, reused by the next while its files are unchanged:
/// the GeoIP table, and the parsed and validated zone maps (see [`config::ZoneCache`]); and
/// the error of the last failed GeoIP load, given again without reading while that file is
/// unchanged (a bad database is not walked again on every rescan).
#[derive(Default)]
pub struct GeoSlot {
    pub(super) geo: Mutex<Option<GeoCache>>,
    pub(super) zones: Mutex<config::ZoneCache>,
    failed: Mutex<Option<(GeoKey, GeoError)>>,
}

type GeoKey = (PathBuf, u64, SystemTime, u64);

fn geo_key(path: &Path) -> Result<GeoKey, GeoError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| GeoError::File {
        path: path.display().to_string(),
        message: format!(
            "cannot read GeoIP database: {}",
            crate::files::os_reason(&e)
        ),
    })?;
    let modified = m.modified().unwrap_or(UNIX_EPOCH);
    Ok((path.to_path_buf(), m.len(), modified, m.ino()))
}

/// Loads and compiles the GeoIP database a config names.
fn geo_entry(path: &Path) -> Result<GeoCache, GeoError> {
    let key = geo_key(path)?;
    let started = std::time::Instant::now();
    memory::large_allocations_apart();
    let data = Arc::new(GeoData::load(path)?);
    let seconds = started.elapsed().as_secs_f64();
    memory::release_freed_memory();
    tracing::info!(
        path = %path.display(),
        networks = data.info.networks,
        v4_ranges = data.table.counts().0,
        v6_ranges = data.table.counts().1,
        locations = data.table.locations.len(),
        table_bytes = data.table.bytes(),
        ms = started.elapsed().as_millis() as u64,
        "geoip database loaded"
    );
    Ok(GeoCache { key, data, seconds })
}

/// The GeoIP data for a config, reusing the compiled table while the file is unchanged.
pub(crate) fn geo_for(cfg: &Config, cache: &GeoSlot) -> Result<Option<Arc<GeoData>>, GeoError> {
    let Some(path) = &cfg.geoip else {
        return Ok(None);
    };
    let key = geo_key(path)?;
    if let Some(c) = guard(&cache.geo).as_ref()
        && c.key == key
    {
        return Ok(Some(c.data.clone()));
    }
    if let Some((k, e)) = guard(&cache.failed).as_ref()
        && *k == key
    {
        return Err(e.clone());
    }
    let entry = geo_entry(path).inspect_err(|e| {
        *guard(&cache.failed) = Some((key.clone(), e.clone()));
    })?;
    let data = entry.data.clone();
    *guard(&cache.geo) = Some(entry);
    Ok(Some(data))
}

/// Loads and compiles the GeoIP database the config names, uncached.
pub fn load_geo(cfg: &Config) -> Result<Option<Arc<GeoData>>, GeoError> {
    geo_for(cfg, &GeoSlot::default())
}
