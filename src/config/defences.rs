//! The `dns.cookies`, `dns.rrl` and `dns.nsid` settings: DNS Cookies and their secrets,
//! response rate limiting, and the server identity sent as NSID.

use std::path::Path;
use std::time::Duration;

use super::SourceFile;
use super::error::Sink;
use super::raw;
use super::values::parse_duration;

/// A 128-bit cookie secret (never printed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CookieSecret(pub [u8; 16]);

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSecret(..)")
    }
}

/// Defences of an internet-facing authoritative.
#[derive(Debug, Clone, PartialEq)]
pub struct DefenceSettings {
    /// Answer DNS Cookies (on by default).
    pub cookies: bool,
    /// Configured secrets, the signing one first; empty = a random secret per process.
    pub secrets: Vec<CookieSecret>,
    /// Response rate limiting; `None` = off (the default).
    pub rrl: Option<RrlSettings>,
    /// The identity sent to NSID queries; `None` = NSID not answered.
    pub nsid: Option<Vec<u8>>,
}

impl Default for DefenceSettings {
    fn default() -> Self {
        DefenceSettings {
            cookies: true,
            secrets: Vec::new(),
            rrl: None,
            nsid: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RrlSettings {
    pub responses_per_second: u32,
    /// Responses per second of one client prefix across all names; `None` = no such budget.
    pub all_per_second: Option<u32>,
    pub window: Duration,
    pub slip: u8,
    pub table_size: usize,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

/// Reads the defence settings of `dns:`; `base` resolves `secret_file`, which joins `files`
/// (so that editing it triggers a reload).
pub(super) fn settings(
    d: Option<&raw::Dns>,
    base: &Path,
    files: &mut Vec<SourceFile>,
    sink: &mut Sink,
) -> DefenceSettings {
    let mut s = DefenceSettings::default();
    let Some(d) = d else { return s };
    if let Some(c) = &d.cookies {
        cookies(c, base, files, &mut s, sink);
    }
    if let Some(r) = &d.rrl {
        s.rrl = rrl(r, sink);
    }
    if let Some(n) = &d.nsid {
        s.nsid = nsid(n, sink);
    }
    s
}

fn cookies(
    c: &raw::Cookies,
    base: &Path,
    files: &mut Vec<SourceFile>,
    s: &mut DefenceSettings,
    sink: &mut Sink,
) {
    s.cookies = c.enabled.as_ref().is_none_or(|e| e.value);
    if let (Some(f), Some(_)) = (&c.secret_file, &c.secret) {
        sink.on(
            f,
            "dns.cookies.secret_file",
            "give either secret or secret_file, not both",
        );
        return;
    }
    if let Some(f) = &c.secret_file {
        let path = base.join(&f.value);
        match read_secret_file(&path, files) {
            Ok(keys) => s.secrets = keys,
            Err(e) => sink.on(f, "dns.cookies.secret_file", e),
        }
        return;
    }
    for (v, key) in [
        (&c.secret, "dns.cookies.secret"),
        (&c.previous_secret, "dns.cookies.previous_secret"),
    ] {
        if let Some(v) = v {
            match parse_secret(&v.value) {
                Ok(k) => s.secrets.push(k),
                Err(e) => sink.on(v, key, e),
            }
        }
    }
    if c.secret.is_none()
        && let Some(p) = &c.previous_secret
    {
        sink.on(
            p,
            "dns.cookies.previous_secret",
            "previous_secret needs a secret",
        );
    }
}

/// A secret file holds the signing secret on its first line and optionally the previous
/// one on the second, in hex; blank lines and `#` comments are ignored.
fn read_secret_file(path: &Path, files: &mut Vec<SourceFile>) -> Result<Vec<CookieSecret>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() || meta.len() > 4096 {
        return Err(format!(
            "{shown} is not a regular file of at most 4096 bytes"
        ));
    }
    let text =
        super::source::read(path, 4096, "cookie secret file", files).map_err(|e| e.message)?;
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if keys.len() == 2 {
            return Err(format!(
                "{shown} has more than two secrets (current, previous)"
            ));
        }
        keys.push(parse_secret(line).map_err(|e| format!("{shown}: {e}"))?);
    }
    if keys.is_empty() {
        return Err(format!("{shown} holds no secret"));
    }
    Ok(keys)
}

fn parse_secret(s: &str) -> Result<CookieSecret, String> {
    let s = s.trim();
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a cookie secret is 32 hex digits (128 bits)".into());
    }
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(CookieSecret(k))
}

fn rrl(r: &raw::Rrl, sink: &mut Sink) -> Option<RrlSettings> {
    let mut s = RrlSettings {
        responses_per_second: 100,
        all_per_second: None,
        window: Duration::from_secs(5),
        slip: 2,
        table_size: 65536,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
    };
    let before = sink.errors.len();
    if let Some(v) = &r.responses_per_second {
        match v.value {
            1..=1_000_000 => s.responses_per_second = v.value,
            _ => sink.on(
                v,
                "dns.rrl.responses_per_second",
                "must be between 1 and 1000000",
            ),
        }
    }
    if let Some(v) = &r.all_per_second {
        match v.value {
            1..=10_000_000 => s.all_per_second = Some(v.value),
            _ => sink.on(
                v,
                "dns.rrl.all_per_second",
                "must be between 1 and 10000000",
            ),
        }
    }
    if let Some(v) = &r.window {
        match parse_duration(&v.value) {
            Ok(w) if (1..=3600).contains(&w.as_secs()) => s.window = w,
            Ok(_) => sink.on(v, "dns.rrl.window", "must be between 1s and 1h"),
            Err(e) => sink.on(v, "dns.rrl.window", e),
        }
    }
    if let Some(v) = &r.slip {
        match v.value {
            0..=10 => s.slip = v.value as u8,
            _ => sink.on(v, "dns.rrl.slip", "must be between 0 (drop all) and 10"),
        }
    }
    if let Some(v) = &r.table_size {
        match v.value {
            1024..=16_777_216 => s.table_size = v.value as usize,
            _ => sink.on(v, "dns.rrl.table_size", "must be between 1024 and 16777216"),
        }
    }
    for (v, key, max, dst) in [
        (
            &r.ipv4_prefix,
            "dns.rrl.ipv4_prefix",
            32,
            &mut s.ipv4_prefix,
        ),
        (
            &r.ipv6_prefix,
            "dns.rrl.ipv6_prefix",
            128,
            &mut s.ipv6_prefix,
        ),
    ] {
        if let Some(v) = v {
            if v.value <= max {
                *dst = v.value;
            } else {
                sink.on(v, key, format!("must be between 0 and {max}"));
            }
        }
    }
    let ok = sink.errors.len() == before;
    let enabled = r.enabled.as_ref().is_none_or(|e| e.value);
    (ok && enabled).then_some(s)
}

fn nsid(n: &raw::S<String>, sink: &mut Sink) -> Option<Vec<u8>> {
    let id = match n.value.as_str() {
        "off" => return None,
        "hostname" => hostname(),
        other => other.as_bytes().to_vec(),
    };
    if id.is_empty() || id.len() > 128 {
        sink.on(n, "dns.nsid", "must be 1 to 128 bytes, `hostname` or `off`");
        return None;
    }
    Some(id)
}

fn hostname() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Vec::new();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf[..n].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse() {
        let k = parse_secret("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
        assert_eq!(k.0[0], 0xe5);
        assert_eq!(k.0[15], 0xcf);
        assert!(parse_secret("e5e9").is_err());
        assert!(parse_secret("g5e973e5a6b2a43f48e7dc849e37bfcf").is_err());
        assert_eq!(format!("{k:?}"), "CookieSecret(..)");
    }
}
