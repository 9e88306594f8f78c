//! `load:` in `sipsteer.yaml`: load pulled from Prometheus instead of (or beside) pushed
//! reports. PromQL templates for current calls and calls per second, globally, per region and
//! per server, with `$server`, `$region`, `$address` and `$port` filled in per server; each
//! server's series is picked out of a shared query's result by a label. How Prometheus is
//! reached (https, credentials) and the caps on a reply are in `access`.

mod access;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::error::Sink;
use super::values::{Scalar, parse_duration};
use super::{RegionConfig, SourceFile};

pub(crate) use access::Credential;

type S<T> = Spanned<T>;

/// The YAML shape of `load:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoad {
    /// Base URL of the Prometheus HTTP API: `http://prometheus:9090`, `https://…`.
    pub prometheus: S<String>,
    /// PEM file of the CA certificates that replace the built-in roots (https only).
    #[serde(default)]
    pub ca_file: Option<S<String>>,
    #[serde(default)]
    pub bearer_token: Option<S<String>>,
    #[serde(default)]
    pub bearer_token_env: Option<S<String>>,
    #[serde(default)]
    pub bearer_token_file: Option<S<String>>,
    #[serde(default)]
    pub basic_auth: Option<S<access::RawBasicAuth>>,
    /// Most series one reply may hold.
    #[serde(default)]
    pub max_series: Option<S<u64>>,
    /// Most bytes one reply may hold (`65536`, `64MiB`).
    #[serde(default)]
    pub(super) max_bytes: Option<S<Scalar>>,
    #[serde(default)]
    pub interval: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub calls: Option<S<String>>,
    #[serde(default)]
    pub cps: Option<S<String>>,
    #[serde(default, rename = "match")]
    pub matcher: Option<RawMatch>,
    #[serde(default)]
    pub regions: HashMap<S<String>, RawQueries>,
    #[serde(default)]
    pub servers: HashMap<S<String>, RawQueries>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueries {
    #[serde(default)]
    pub calls: Option<S<String>>,
    #[serde(default)]
    pub cps: Option<S<String>>,
    #[serde(default, rename = "match")]
    pub matcher: Option<RawMatch>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub label: S<String>,
    pub value: S<String>,
}

/// Where load comes from, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSource {
    /// `http://host:port` or `https://host:port` (no trailing slash).
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Trust anchors replacing the built-in roots (from `ca_file`).
    pub ca: Option<Vec<CertificateDer<'static>>>,
    /// Sent as `Authorization` with every query.
    pub auth: Option<Credential>,
    /// A reply with more series fails its query.
    pub max_series: usize,
    /// A reply with more bytes fails its query.
    pub max_bytes: u64,
    /// The CA and secret files read: a change to one reloads the config.
    pub files: Vec<PathBuf>,
    /// One entry per server with a capacity and at least one query.
    pub servers: Vec<ServerQueries>,
}

/// The queries of one server, templates filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerQueries {
    pub region: String,
    pub server: String,
    pub calls: Option<String>,
    pub cps: Option<String>,
    /// The label (and its value for this server) that picks this server's series out of a
    /// query's result.
    pub label: String,
    pub value: String,
}

/// Compiles `load:` against the regions it names; `base` resolves the CA and secret files,
/// which join `files`.
pub(crate) fn compile(
    raw: &RawLoad,
    regions: &[RegionConfig],
    base: &Path,
    files: &mut Vec<SourceFile>,
    sink: &mut Sink,
) -> Option<LoadSource> {
    let access = access::access(raw, base, files, sink);
    let interval = duration(&raw.interval, "load.interval", Duration::from_secs(5), sink);
    let timeout = duration(&raw.timeout, "load.timeout", Duration::from_secs(2), sink);
    check_names(raw, regions, sink);
    let servers = server_queries(raw, regions, sink);
    Some(LoadSource {
        url: access.url,
        interval,
        timeout,
        ca: access.ca,
        auth: access.auth,
        max_series: access.max_series,
        max_bytes: access.max_bytes,
        files: access.files,
        servers,
    })
}

/// Every region and `region/server` named under `load:` exists (and the server has a capacity).
fn check_names(raw: &RawLoad, regions: &[RegionConfig], sink: &mut Sink) {
    for key in raw.regions.keys() {
        if !regions.iter().any(|r| r.name == key.value) {
            sink.on(
                key,
                format!("load.regions.{}", key.value),
                format!("no region `{}`", key.value),
            );
        }
    }
    for key in raw.servers.keys() {
        let found = key.value.split_once('/').and_then(|(r, s)| {
            let rc = regions.iter().find(|x| x.name == r)?;
            rc.servers.iter().find(|x| x.name == s)
        });
        match found {
            None => sink.on(
                key,
                format!("load.servers.{}", key.value),
                format!("no server `{}` (write region/server)", key.value),
            ),
            Some(s) if s.capacity.is_none() => sink.on(
                key,
                format!("load.servers.{}", key.value),
                "server declares no capacity, so its load is never used",
            ),
            Some(_) => {}
        }
    }
}

/// The queries of every server with a capacity: its own, else its region's, else the global
/// ones, with the variables filled in.
fn server_queries(raw: &RawLoad, regions: &[RegionConfig], sink: &mut Sink) -> Vec<ServerQueries> {
    let global = RawQueries {
        calls: raw.calls.clone(),
        cps: raw.cps.clone(),
        matcher: raw.matcher.clone(),
    };
    let region_q: HashMap<&str, &RawQueries> = raw
        .regions
        .iter()
        .map(|(k, v)| (k.value.as_str(), v))
        .collect();
    let server_q: HashMap<&str, &RawQueries> = raw
        .servers
        .iter()
        .map(|(k, v)| (k.value.as_str(), v))
        .collect();
    let mut servers = Vec::new();
    for r in regions {
        for s in r.servers.iter().filter(|s| s.capacity.is_some()) {
            let key = format!("{}/{}", r.name, s.name);
            let layers = [
                server_q.get(key.as_str()).copied(),
                region_q.get(r.name.as_str()).copied(),
                Some(&global),
            ];
            if let Some(q) = one_server(&layers, r, s, sink) {
                servers.push(q);
            }
        }
    }
    servers
}

/// The queries of server `s` of region `r` from the first layer that has each.
fn one_server(
    layers: &[Option<&RawQueries>; 3],
    r: &RegionConfig,
    s: &crate::config::ServerConfig,
    sink: &mut Sink,
) -> Option<ServerQueries> {
    let pick_q =
        |f: fn(&RawQueries) -> Option<&S<String>>| layers.iter().flatten().find_map(|q| f(q));
    let address = s
        .addresses
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let vars = Vars {
        server: &s.name,
        region: &r.name,
        address: &address,
        port: s.port,
    };
    let mut fill = |t: Option<&S<String>>, what: &str| {
        t.and_then(|t| match vars.fill(&t.value) {
            Ok(q) => Some(q),
            Err(e) => {
                sink.on(t, format!("load.{what}"), e);
                None
            }
        })
    };
    let calls = fill(pick_q(|q| q.calls.as_ref()), "calls");
    let cps = fill(pick_q(|q| q.cps.as_ref()), "cps");
    if calls.is_none() && cps.is_none() {
        return None;
    }
    let matcher = layers.iter().flatten().find_map(|q| q.matcher.clone());
    let (label, value) = match &matcher {
        Some(m) => (
            m.label.value.clone(),
            fill(Some(&m.value), "match.value").unwrap_or_default(),
        ),
        None => ("server".to_owned(), s.name.clone()),
    };
    Some(ServerQueries {
        region: r.name.clone(),
        server: s.name.clone(),
        calls,
        cps,
        label,
        value,
    })
}

fn duration(v: &Option<S<String>>, path: &str, default: Duration, sink: &mut Sink) -> Duration {
    let Some(v) = v else { return default };
    match parse_duration(&v.value) {
        Ok(d) if d >= Duration::from_millis(100) && d <= Duration::from_secs(3600) => d,
        Ok(_) => {
            sink.on(v, path, "must be between 100ms and 1h");
            default
        }
        Err(e) => {
            sink.on(v, path, e);
            default
        }
    }
}

/// The template variables of one server.
struct Vars<'a> {
    server: &'a str,
    region: &'a str,
    address: &'a str,
    port: u16,
}

impl Vars<'_> {
    /// Replaces `$server`, `$region`, `$address` and `$port` (`$$` is a literal `$`).
    fn fill(&self, t: &str) -> Result<String, String> {
        let mut out = String::with_capacity(t.len());
        let mut rest = t;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
                continue;
            }
            let n = after
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(after.len());
            match &after[..n] {
                "server" => out.push_str(self.server),
                "region" => out.push_str(self.region),
                "address" => out.push_str(self.address),
                "port" => out.push_str(&self.port.to_string()),
                other => {
                    return Err(format!(
                        "unknown template variable `${other}` (use $server, $region, $address, $port or $$)"
                    ));
                }
            }
            rest = &after[n..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_templates() {
        let v = Vars {
            server: "lon1",
            region: "uk",
            address: "192.0.2.10",
            port: 5060,
        };
        assert_eq!(
            v.fill(r#"sum(calls{instance="$address:$port", dc="$region"}) by ($$x)"#)
                .as_deref(),
            Ok(r#"sum(calls{instance="192.0.2.10:5060", dc="uk"}) by ($x)"#)
        );
        assert_eq!(v.fill("x{s=\"$server\"}").as_deref(), Ok("x{s=\"lon1\"}"));
        assert!(v.fill("$nope").unwrap_err().contains("`$nope`"));
    }
}
