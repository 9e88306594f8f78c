//! How the load puller reaches Prometheus and what one reply may cost: the URL (`http://` or
//! `https://`), the CA file that replaces the built-in roots, the credential sent with every
//! query (a bearer token or basic auth, written inline, named by an environment variable or
//! read from a file) and the caps on series and bytes per reply. Secret and CA files are read
//! while the config loads, so `sipsteer check` validates them and a bad one is a config error.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rustls::pki_types::CertificateDer;

use super::super::error::Sink;
use super::super::values::Scalar;
use super::super::{SourceFile, pem, source};
use super::{RawLoad, S};

/// Series one reply may hold unless `load.max_series` says otherwise.
pub(crate) const DEFAULT_MAX_SERIES: usize = 100_000;
/// Bytes one reply may hold unless `load.max_bytes` says otherwise.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 64 << 20;
const MAX_SERIES_LIMIT: u64 = 10_000_000;
const MIN_BYTES: u64 = 1 << 10;
const MAX_BYTES_LIMIT: u64 = 1 << 30;
/// Largest token or password file read.
const MAX_SECRET_FILE: u64 = 4096;

/// The `Authorization` header value sent with every query. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(http::HeaderValue);

impl Credential {
    /// The header value (marked sensitive).
    pub fn header(&self) -> &http::HeaderValue {
        &self.0
    }

    fn new(value: &str) -> Option<Credential> {
        let mut v = http::HeaderValue::from_str(value).ok()?;
        v.set_sensitive(true);
        Some(Credential(v))
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(redacted)")
    }
}

/// The YAML shape of `load.basic_auth`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBasicAuth {
    pub username: S<String>,
    #[serde(default)]
    pub password: Option<S<String>>,
    #[serde(default)]
    pub password_env: Option<S<String>>,
    #[serde(default)]
    pub password_file: Option<S<String>>,
}

/// What `access` compiles.
pub(super) struct Access {
    pub url: String,
    pub ca: Option<Vec<CertificateDer<'static>>>,
    pub auth: Option<Credential>,
    pub max_series: usize,
    pub max_bytes: u64,
    /// The CA and secret files read (watched like the config).
    pub files: Vec<PathBuf>,
}

pub(super) fn access(
    raw: &RawLoad,
    base: &Path,
    files: &mut Vec<SourceFile>,
    sink: &mut Sink,
) -> Access {
    let (url, https) = url(&raw.prometheus, sink);
    let mut read = Vec::new();
    let ca = raw
        .ca_file
        .as_ref()
        .and_then(|f| ca_file(f, https, base, files, &mut read, sink));
    let mut secrets = Secrets {
        base,
        files,
        read: &mut read,
        sink,
    };
    let auth = credential(raw, &mut secrets);
    Access {
        url,
        ca,
        auth,
        max_series: max_series(raw.max_series.as_ref(), sink),
        max_bytes: max_bytes(raw.max_bytes.as_ref(), sink),
        files: read,
    }
}

/// The base URL without a trailing slash, and whether it is https.
fn url(v: &S<String>, sink: &mut Sink) -> (String, bool) {
    let url = v.value.trim_end_matches('/').to_owned();
    let uri = url.parse::<http::Uri>().ok();
    let scheme = uri.as_ref().and_then(http::Uri::scheme_str);
    let host = uri.as_ref().and_then(http::Uri::authority);
    let ok = matches!(scheme, Some("http" | "https"))
        && host.is_some_and(|a| !a.host().is_empty())
        && !url.contains(['?', '#', ' ']);
    if !ok {
        sink.on(
            v,
            "load.prometheus",
            "must be an http:// or https:// URL of the Prometheus server, e.g. http://127.0.0.1:9090",
        );
    } else if host.is_some_and(|a| a.as_str().contains('@')) {
        sink.on(
            v,
            "load.prometheus",
            "credentials go in load.bearer_token or load.basic_auth, not in the URL",
        );
    }
    (url, scheme == Some("https"))
}

/// The certificates of `ca_file`, each usable as a trust anchor.
fn ca_file(
    f: &S<String>,
    https: bool,
    base: &Path,
    files: &mut Vec<SourceFile>,
    read: &mut Vec<PathBuf>,
    sink: &mut Sink,
) -> Option<Vec<CertificateDer<'static>>> {
    if !https {
        sink.on(
            f,
            "load.ca_file",
            "applies only to an https:// prometheus URL",
        );
        return None;
    }
    let path = base.join(&f.value);
    read.push(path.clone());
    let certs = pem::read_pem(&path, files)
        .and_then(|b| pem::chain(&b).map_err(|e| format!("{}: {e}", path.display())))
        .and_then(|certs| {
            let mut roots = rustls::RootCertStore::empty();
            for c in &certs {
                roots.add(c.clone()).map_err(|e| {
                    format!(
                        "{}: not a usable CA certificate: {}",
                        path.display(),
                        crate::files::lower(&e.to_string())
                    )
                })?;
            }
            Ok(certs)
        });
    certs.map_err(|e| sink.on(f, "load.ca_file", e)).ok()
}

/// Reads secrets from the environment or from files, reporting at the key that named them.
struct Secrets<'a, 'b> {
    base: &'a Path,
    files: &'a mut Vec<SourceFile>,
    read: &'a mut Vec<PathBuf>,
    sink: &'a mut Sink<'b>,
}

impl Secrets<'_, '_> {
    /// The secret of the one source given (inline, environment variable, file), or `None`
    /// (reported) when more than one or none is given, or it cannot be read.
    fn one(&mut self, what: &str, sources: [(&Option<S<String>>, &str); 3]) -> Option<String> {
        let names: Vec<&str> = sources.iter().map(|(_, k)| *k).collect();
        let mut given = sources
            .iter()
            .filter_map(|(v, k)| v.as_ref().map(|v| (v, *k)));
        let (v, key) = given.next()?;
        if let Some((second, key2)) = given.next() {
            self.sink.on(
                second,
                format!("load.{key2}"),
                format!("give one of {}, {} or {}", names[0], names[1], names[2]),
            );
            return None;
        }
        let secret = if key.ends_with("_env") {
            env(&v.value)
        } else if key.ends_with("_file") {
            self.file(&v.value, what)
        } else {
            Ok(v.value.clone())
        };
        secret
            .map_err(|e| self.sink.on(v, format!("load.{key}"), e))
            .ok()
    }

    /// A secret file: its text, surrounding whitespace (a final newline) trimmed.
    fn file(&mut self, rel: &str, what: &str) -> Result<String, String> {
        let path = self.base.join(rel);
        self.read.push(path.clone());
        source::read(&path, MAX_SECRET_FILE, what, self.files)
            .map(|t| t.trim().to_owned())
            .map_err(|e| format!("{}: {}", path.display(), e.message))
    }
}

fn env(name: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(v) if v.is_empty() => Err(format!("environment variable {name} is empty")),
        Ok(v) => Ok(v),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("environment variable {name} is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not valid UTF-8"))
        }
    }
}

/// The `Authorization` header: `Bearer TOKEN` or `Basic base64(user:password)`.
fn credential(raw: &RawLoad, s: &mut Secrets) -> Option<Credential> {
    let bearer = [
        (&raw.bearer_token, "bearer_token"),
        (&raw.bearer_token_env, "bearer_token_env"),
        (&raw.bearer_token_file, "bearer_token_file"),
    ];
    let named = bearer.iter().find_map(|(v, k)| v.as_ref().map(|v| (v, *k)));
    if let (Some(b), Some(_)) = (&raw.basic_auth, named) {
        s.sink.on(
            b,
            "load.basic_auth",
            "give either a bearer token or basic_auth, not both",
        );
        return None;
    }
    if let Some(b) = &raw.basic_auth {
        return basic(b, s);
    }
    let (v, key) = named?;
    let token = s.one("bearer token file", bearer)?;
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        s.sink.on(
            v,
            format!("load.{key}"),
            "a bearer token is printable ASCII without spaces",
        );
        return None;
    }
    Credential::new(&format!("Bearer {token}"))
}

fn basic(b: &S<RawBasicAuth>, s: &mut Secrets) -> Option<Credential> {
    let user = &b.value.username;
    if user.value.is_empty() || user.value.contains(':') || user.value.chars().any(char::is_control)
    {
        s.sink.on(
            user,
            "load.basic_auth.username",
            "a username is not empty and holds no `:` or control characters",
        );
        return None;
    }
    let sources = [
        (&b.value.password, "basic_auth.password"),
        (&b.value.password_env, "basic_auth.password_env"),
        (&b.value.password_file, "basic_auth.password_file"),
    ];
    if sources.iter().all(|(v, _)| v.is_none()) {
        s.sink.on(
            b,
            "load.basic_auth",
            "needs password, password_env or password_file",
        );
        return None;
    }
    let password = s.one("password file", sources)?;
    let pair =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", user.value));
    Credential::new(&format!("Basic {pair}"))
}

fn max_series(v: Option<&S<u64>>, sink: &mut Sink) -> usize {
    let Some(v) = v else {
        return DEFAULT_MAX_SERIES;
    };
    if (1..=MAX_SERIES_LIMIT).contains(&v.value) {
        v.value as usize
    } else {
        sink.on(
            v,
            "load.max_series",
            format!("must be between 1 and {MAX_SERIES_LIMIT}"),
        );
        DEFAULT_MAX_SERIES
    }
}

fn max_bytes(v: Option<&S<Scalar>>, sink: &mut Sink) -> u64 {
    let Some(v) = v else {
        return DEFAULT_MAX_BYTES;
    };
    match parse_size(&v.value.0) {
        Ok(n) if (MIN_BYTES..=MAX_BYTES_LIMIT).contains(&n) => n,
        Ok(_) => {
            sink.on(v, "load.max_bytes", "must be between 1KiB and 1GiB");
            DEFAULT_MAX_BYTES
        }
        Err(e) => {
            sink.on(v, "load.max_bytes", e);
            DEFAULT_MAX_BYTES
        }
    }
}

/// `65536`, `512KiB`, `64MiB`, `1GiB` as bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => {
            return Err(format!(
                "invalid size `{s}` (use e.g. 65536, 512KiB, 64MiB)"
            ));
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("invalid size `{s}` (use e.g. 65536, 512KiB, 64MiB)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12XB").unwrap_err().contains("`12XB`"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn a_credential_is_never_printed() {
        let c = Credential::new("Bearer s3cret").expect("valid");
        assert_eq!(format!("{c:?}"), "Credential(redacted)");
        assert!(c.header().is_sensitive());
    }
}
