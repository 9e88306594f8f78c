//! What the last load of each zone map produced, reused by the next load: the parsed YAML while
//! the file's identity (size, mtime, ctime, inode, device, symlink target) is unchanged, or,
//! when the identity moved, while its content hash is unchanged; and the validated zone while
//! the regions it was validated against are unchanged too. A rescan that finds nothing changed
//! costs a `stat` per file and no parse; with [`ZoneCache::observe`], the reloader skips even
//! the parse of the main file while no file the config was loaded from changed identity
//! (identities of files changed in the last seconds before that load are not trusted).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{self, ConfigError};
use super::{RegionConfig, SourceFile, ZoneConfig, raw};

/// Zone maps as last read, by path. Hold one per reloader; a fresh one makes a full load.
#[derive(Default)]
pub struct ZoneCache {
    files: HashMap<PathBuf, Entry>,
    /// The regions the cached validated zones were checked against.
    regions: Option<RegionSig>,
    /// The identities of the files the serving config was loaded from, taken before it was
    /// read ([`Self::observe`], [`Self::loaded`]).
    seen: Option<Identities>,
    /// The identities taken before the load in progress.
    pending: Option<Identities>,
    /// When they were taken (seconds since the epoch).
    observed_at: i64,
    /// Zones whose keys directory held keys at an earlier load: an empty one then is an
    /// operator's mistake, not a new zone to write first keys for.
    keyed: Keyed,
}

/// Zone origins and keys directories (see [`ZoneCache::keyed`]).
pub(super) type Keyed = std::collections::BTreeSet<(hickory_proto::rr::Name, PathBuf)>;

/// Seconds before an observation within which a change makes identities untrusted: a second
/// change in the same timestamp tick, of the same size, would look the same.
const RACY: i64 = 2;

type Identities = Vec<(PathBuf, Option<FileId>)>;

struct Entry {
    id: FileId,
    hash: u64,
    raw: Arc<raw::Zone>,
    /// The zone validated from `raw` under [`ZoneCache::regions`], when it had no errors.
    valid: Option<Arc<ZoneConfig>>,
}

/// Everything a zone's validation reads from the region table: every region (in index order)
/// with the file that owns it (`None` = shared), and the names that failed validation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RegionSig {
    pub regions: Vec<(RegionConfig, Option<PathBuf>)>,
    pub failed: Vec<String>,
}

/// What `stat` says about a file: any write, replace or re-link changes one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
    link: Option<PathBuf>,
}

/// One `lstat` for a plain file; a symlink is followed (`stat`) and its target read.
fn file_id(path: &Path) -> Option<FileId> {
    let l = std::fs::symlink_metadata(path).ok()?;
    let (m, link) = if l.file_type().is_symlink() {
        (std::fs::metadata(path).ok()?, std::fs::read_link(path).ok())
    } else {
        (l, None)
    };
    Some(FileId {
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        ino: m.ino(),
        dev: m.dev(),
        link,
    })
}

impl ZoneCache {
    /// The parsed zone map at `path` (recording it in `files`): from the cache while the file
    /// is unchanged, else read and parsed.
    pub(super) fn read(
        &mut self,
        path: &Path,
        files: &mut Vec<SourceFile>,
    ) -> Result<Arc<raw::Zone>, ConfigError> {
        let id = file_id(path);
        if let (Some(id), Some(e)) = (&id, self.files.get(path))
            && *id == e.id
        {
            files.push(SourceFile {
                path: path.to_path_buf(),
                hash: e.hash,
            });
            return Ok(e.raw.clone());
        }
        let text = super::source::read(path, crate::files::MAX_ZONE_MAP, "zone map", files);
        let text = text.inspect_err(|_| {
            self.files.remove(path);
        })?;
        let hash = files.last().map_or(0, |f| f.hash);
        if let Some(e) = self.files.get_mut(path)
            && e.hash == hash
        {
            // Touched or replaced by an identical copy: same parse.
            if let Some(id) = id {
                e.id = id;
            }
            return Ok(e.raw.clone());
        }
        self.files.remove(path);
        let parsed: raw::Zone =
            serde_saphyr::from_str(&text).map_err(|e| error::from_yaml(path, &e))?;
        let raw = Arc::new(parsed);
        if let Some(id) = id {
            let valid = None;
            let entry = Entry {
                id,
                hash,
                raw: raw.clone(),
                valid,
            };
            self.files.insert(path.to_path_buf(), entry);
        }
        Ok(raw)
    }

    /// Starts validating against `sig`: validated zones of other regions are forgotten.
    pub(super) fn regions(&mut self, sig: RegionSig) {
        if self.regions.as_ref() != Some(&sig) {
            for e in self.files.values_mut() {
                e.valid = None;
            }
            self.regions = Some(sig);
        }
    }

    /// The validated zone of `raw` (read from `path` by this load), if one is cached.
    pub(super) fn valid(&self, path: &Path, raw: &Arc<raw::Zone>) -> Option<Arc<ZoneConfig>> {
        let e = self.files.get(path)?;
        if Arc::ptr_eq(&e.raw, raw) {
            e.valid.clone()
        } else {
            None
        }
    }

    /// Keeps the error-free validation of `raw` for the next load.
    pub(super) fn set_valid(&mut self, path: &Path, raw: &Arc<raw::Zone>, zone: Arc<ZoneConfig>) {
        if let Some(e) = self.files.get_mut(path)
            && Arc::ptr_eq(&e.raw, raw)
        {
            e.valid = Some(zone);
        }
    }

    /// The zones whose keys directory held keys at an earlier load with this cache.
    pub(super) fn keyed(&mut self) -> &mut Keyed {
        &mut self.keyed
    }

    /// Before a load: takes the identity of every one of `paths` that is not a cached zone
    /// map (`None`: missing). With `compare`, also says whether they and the cached zone maps
    /// among `paths` are all what they were before the load of the serving config.
    pub fn observe(&mut self, paths: Vec<PathBuf>, compare: bool) -> bool {
        let (zones, others): (Vec<PathBuf>, Vec<PathBuf>) =
            paths.into_iter().partition(|p| self.files.contains_key(p));
        let now: Identities = others
            .into_iter()
            .map(|p| {
                let id = file_id(&p);
                (p, id)
            })
            .collect();
        let same = compare
            && self.seen.as_ref() == Some(&now)
            && zones
                .iter()
                .all(|p| self.files.get(p).map(|e| &e.id) == file_id(p).as_ref());
        self.pending = Some(now);
        self.observed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        same
    }

    /// After a load: `Some(paths)` of the config now serving when it was loaded without
    /// errors (the identities observed before it stand for it when it names the same paths
    /// besides its zone maps, whose identities were taken as they were read), `None` when it
    /// was rejected (the next rescan loads again).
    pub fn loaded(&mut self, paths: Option<&[PathBuf]>) {
        let pending = self.pending.take();
        let others = paths.map(|p| {
            p.iter()
                .filter(|p| !self.files.contains_key(*p))
                .collect::<Vec<_>>()
        });
        let settled = |id: &FileId| id.ctime.0.max(id.mtime.0) < self.observed_at - RACY;
        let zones_settled = paths.is_some_and(|p| {
            p.iter()
                .filter_map(|p| self.files.get(p))
                .all(|e| settled(&e.id))
        });
        self.seen = pending.filter(|ids| {
            zones_settled
                && ids.iter().all(|(_, id)| id.as_ref().is_none_or(settled))
                && others.is_some_and(|o| {
                    o.len() == ids.len() && o.iter().zip(ids).all(|(a, (b, _))| *a == b)
                })
        });
    }

    /// Forgets files that are no longer zone maps.
    pub(super) fn keep_only(&mut self, paths: &[PathBuf]) {
        if self.files.len() != paths.len() || paths.iter().any(|p| !self.files.contains_key(p)) {
            let wanted: std::collections::HashSet<&PathBuf> = paths.iter().collect();
            self.files.retain(|p, _| wanted.contains(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str =
        "zone: example.com\nsoa: { primary: ns1, contact: hostmaster, serial: 1 }\nns: [ns1]\n";

    /// A load of `paths` with the zone map read through the cache, observed long after the
    /// files were written (a load right after a write is not trusted, see [`RACY`]).
    fn load(c: &mut ZoneCache, paths: &[PathBuf], zone: &Path, ok: bool) {
        c.read(zone, &mut Vec::new()).unwrap();
        settle(c);
        c.loaded(ok.then_some(paths));
    }

    fn settle(c: &mut ZoneCache) {
        c.observed_at += 60;
    }

    #[test]
    fn a_rescan_is_skipped_only_while_every_file_keeps_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let zones = dir.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        let (main, zone) = (
            dir.path().join("sipsteer.yaml"),
            zones.join("example.com.yaml"),
        );
        let absent = dir.path().join("operator.yaml");
        std::fs::write(&main, "zones: zones\n").unwrap();
        std::fs::write(&zone, ZONE).unwrap();
        let paths = vec![main.clone(), zone.clone(), zones.clone(), absent.clone()];
        let mut c = ZoneCache::default();
        // The first load (at start) reads through the cache without observing.
        c.read(&zone, &mut Vec::new()).unwrap();
        assert!(!c.observe(paths.clone(), true), "no load observed yet");
        load(&mut c, &paths, &zone, true);
        assert!(c.observe(paths.clone(), true));
        c.loaded(Some(&paths));
        assert!(
            !c.observe(paths.clone(), true),
            "a load right after a write is not trusted"
        );
        settle(&mut c);
        c.loaded(Some(&paths));
        assert!(
            !c.observe(paths.clone(), false),
            "other triggers always load"
        );
        settle(&mut c);
        c.loaded(Some(&paths));
        let changes: [&dyn Fn(); 4] = [
            &|| std::fs::write(&zone, format!("{ZONE}# longer\n")).unwrap(),
            &|| std::fs::write(&main, "zones: zones # longer\n").unwrap(),
            &|| std::fs::write(&absent, "# now present\n").unwrap(),
            &|| std::fs::write(zones.join("other.yaml"), ZONE).unwrap(),
        ];
        for (i, change) in changes.iter().enumerate() {
            assert!(c.observe(paths.clone(), true), "before change {i}");
            settle(&mut c);
            c.loaded(Some(&paths));
            change();
            assert!(!c.observe(paths.clone(), true), "change {i} unseen");
            load(&mut c, &paths, &zone, true);
        }
        assert!(c.observe(paths.clone(), true));
        load(&mut c, &paths, &zone, false);
        assert!(
            !c.observe(paths.clone(), true),
            "a rejected load is loaded again"
        );
        load(&mut c, &paths, &zone, true);
        let more = [paths.clone(), vec![zones.join("other.yaml")]].concat();
        assert!(!c.observe(paths.clone(), false));
        load(&mut c, &more, &zone, true);
        assert!(
            !c.observe(more, true),
            "a load that named other paths is loaded again"
        );
    }
}
