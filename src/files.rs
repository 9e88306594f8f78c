//! Reading the operator's files (main config, zone maps, GeoIP database, state file) without
//! ever blocking on them: opened with `O_NONBLOCK`, checked with `fstat` to be a regular file
//! (a FIFO, a device or a directory is refused at once), and read up to a size bound.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest main config file (`sipsteer.yaml`) read.
pub(crate) const MAX_MAIN_CONFIG: u64 = 1024 * 1024;
/// Largest zone map read.
pub(crate) const MAX_ZONE_MAP: u64 = 16 * 1024 * 1024;
/// Largest GeoIP database read (GeoLite2-City is about 70 MB).
pub(crate) const MAX_GEOIP: u64 = 512 * 1024 * 1024;
/// Largest state file read.
pub(crate) const MAX_STATE_FILE: u64 = 4 * 1024 * 1024;

/// An OS error as `reason (os error N)`, lower case first letter.
pub(crate) fn os_reason(e: &std::io::Error) -> String {
    lower(&e.to_string())
}

/// An OS error's reason alone, without ` (os error N)`, lower case first letter.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    lower(s.split(" (os error").next().unwrap_or(&s))
}

/// `s` with its first letter in lower case.
pub(crate) fn lower(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// What a non-regular file is, for messages.
pub(crate) fn kind_name(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    }
}

/// Reads a whole regular file of at most `max` bytes. The error is the reason only (the
/// caller adds the path and what the file is): `no such file or directory (os error 2)`,
/// `is a fifo, not a regular file`, `is 20000000 bytes, more than the 16777216-byte limit`.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| os_reason(&e))?;
    let meta = file.metadata().map_err(|e| os_reason(&e))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "is {}, not a regular file",
            kind_name(meta.file_type())
        ));
    }
    if meta.len() > max {
        return Err(too_big(meta.len(), max));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| os_reason(&e))?;
    if buf.len() as u64 > max {
        return Err(too_big(buf.len() as u64, max));
    }
    Ok(buf)
}

/// Like [`read_bounded`], as UTF-8 text.
pub(crate) fn read_text(path: &Path, max: u64) -> Result<String, String> {
    let bytes = read_bounded(path, max)?;
    String::from_utf8(bytes).map_err(|_| "is not valid utf-8".to_string())
}

fn too_big(len: u64, max: u64) -> String {
    format!("is {len} bytes, more than the {max}-byte limit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_bounded_regular_file() {
        let dir = std::env::temp_dir().join(format!("sipsteer-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_bounded(&f, 5).unwrap(), b"12345");
        assert_eq!(
            read_bounded(&f, 4).unwrap_err(),
            "is 5 bytes, more than the 4-byte limit"
        );
        assert_eq!(
            read_bounded(&dir, 4).unwrap_err(),
            "is a directory, not a regular file"
        );
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert_eq!(
            read_bounded(&fifo, 4).unwrap_err(),
            "is a fifo, not a regular file"
        );
        assert_eq!(
            read_bounded(&dir.join("none"), 4).unwrap_err(),
            "no such file or directory (os error 2)"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
