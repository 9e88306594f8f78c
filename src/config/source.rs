//! The files a config is read from: one file read without blocking up to a bound and
//! recorded with the hash of its contents, and which entries of the zones directory are zone
//! maps.

use std::path::{Path, PathBuf};

use siphasher::sip::SipHasher24;

use super::SourceFile;
use super::error::{ConfigError, ConfigErrors, whole_file};
use crate::files::os_reason;

/// The SipHash key of [`content_hash`]: the bytes 0 to 15, the key of the SipHash paper's
/// test vectors.
const HASH_KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// The hash of a file's contents that tells a changed file from an unchanged one and that
/// `/v1/status` shows: SipHash-2-4 (Aumasson and Bernstein, 2012) with the fixed key
/// [`HASH_KEY`], so the same bytes give the same hash on every build and every instance.
pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    SipHasher24::new_with_key(&HASH_KEY).hash(bytes)
}

/// Reads one config file (never blocking, at most `max` bytes) and records its hash.
pub(super) fn read(
    path: &Path,
    max: u64,
    what: &str,
    files: &mut Vec<SourceFile>,
) -> Result<String, ConfigError> {
    let text = crate::files::read_text(path, max)
        .map_err(|e| whole_file(path, format!("cannot read {what}: {e}")))?;
    files.push(SourceFile {
        path: path.to_path_buf(),
        hash: content_hash(text.as_bytes()),
    });
    Ok(text)
}

/// The zone maps: `*.yaml`/`*.yml` in the directory, sorted, skipping dotfiles and editor files.
/// Anything named like a zone map that is not a readable regular file (a broken symlink, a
/// symlink loop, a FIFO, a directory) is an error naming it, never silently skipped.
pub(super) fn zone_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigErrors> {
    let dir_err = |e: std::io::Error| {
        ConfigErrors(vec![whole_file(
            dir,
            format!("cannot read zones directory: {}", os_reason(&e)),
        )])
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        let p = entry.path();
        if !is_zone_file(&p) {
            continue;
        }
        // The directory entry's type needs no `stat`; symlinks and the rest are checked.
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            out.push(p);
            continue;
        }
        match zone_file_problem(&p) {
            None => out.push(p),
            Some(why) => errors.push(whole_file(&p, format!("cannot read zone map: {why}"))),
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.file.cmp(&b.file));
        return Err(ConfigErrors(errors));
    }
    // Names of one directory: byte order, the order of `Path` comparison here, but cheaper.
    out.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    Ok(out)
}

/// Why a zone map path cannot be read as a regular file (stat only: never opens it).
fn zone_file_problem(p: &Path) -> Option<String> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => None,
        Ok(m) => Some(format!(
            "is {}, not a regular file",
            crate::files::kind_name(m.file_type())
        )),
        Err(e) => {
            let link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
            let suffix = match (link, e.raw_os_error()) {
                (true, Some(libc::ELOOP)) => " (symlink loop)",
                (true, _) => " (broken symlink)",
                _ => "",
            };
            Some(format!("{}{suffix}", os_reason(&e)))
        }
    }
}

/// Whether a file name is a zone map (and not a dotfile, swap or backup file).
pub(super) fn is_zone_file(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && !name.ends_with('~')
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_siphash_2_4_with_the_paper_key() {
        // The SipHash paper's example (appendix A) and the first of its test vectors.
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(content_hash(&message), 0xa129_ca61_49be_45e5);
        assert_eq!(content_hash(b""), 0x726f_db47_dd0e_0e31);
    }
}
