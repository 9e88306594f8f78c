//! Opening GeoIP data: a MaxMind DB (`.mmdb`, City or Country) through the maxminddb crate,
//! or sipsteer's CSV compiled in memory. Country-only records get their country's centroid.

use std::collections::HashMap;
use std::path::Path;

use ipnet::IpNet;
use maxminddb::{Reader, WithinOptions, geoip2};

use super::table::{NetworkTable, flatten};
use super::{GeoError, Location, LocationKey, centroids};

/// Metadata shown in status and explain.
#[derive(Debug, Clone)]
pub struct DbInfo {
    pub database_type: String,
    pub build_epoch: u64,
    /// Networks (address ranges) the database holds.
    pub networks: usize,
}

enum Source {
    /// The reader and the number of networks its checked tree holds.
    Mmdb(Box<Reader<Vec<u8>>>, usize),
    Csv(Vec<(IpNet, Location)>),
}

/// An opened database.
pub struct GeoDb {
    path: String,
    source: Source,
}

fn file_err(path: &Path, message: impl Into<String>) -> GeoError {
    GeoError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn code(s: Option<&str>) -> Option<[u8; 2]> {
    let b = s?.as_bytes();
    (b.len() == 2).then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
}

/// Fills what a record leaves out: continent from the country, coordinates from the
/// country's centroid.
fn complete(mut l: Location) -> Location {
    if let Some(cc) = l.country {
        if l.continent.is_none() {
            l.continent = centroids::continent_of(cc);
        }
        if l.coords.is_none() {
            l.coords = centroids::centroid(cc);
        }
    }
    l
}

/// The location of a record; `Ok(None)` when it has none, an error when it does not decode.
fn decode(
    r: &maxminddb::LookupResult<'_, Vec<u8>>,
) -> Result<Option<Location>, maxminddb::MaxMindDbError> {
    let Some(city) = r.decode::<geoip2::City>()? else {
        return Ok(None);
    };
    let coords = match (city.location.latitude, city.location.longitude) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    let l = Location {
        country: code(city.country.iso_code),
        continent: code(city.continent.code),
        coords,
        city: city.city.names.english.map(Into::into),
    };
    Ok((l.country.is_some() || l.coords.is_some() || l.continent.is_some()).then(|| complete(l)))
}

impl GeoDb {
    /// Opens `.mmdb` files with maxminddb (read into memory, never mapped: a file replaced
    /// in place must not change under us) after checking their search tree (see `tree`),
    /// anything else as CSV.
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let is_mmdb = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mmdb"));
        let source = if is_mmdb {
            let bytes = crate::files::read_bounded(path, crate::files::MAX_GEOIP)
                .map_err(|e| file_err(path, format!("cannot read GeoIP database: {e}")))?;
            let networks = super::tree::check(&bytes).map_err(|e| file_err(path, e))?;
            let r = Reader::from_source(bytes)
                .map_err(|e| file_err(path, format!("cannot read MaxMind database: {e}")))?;
            Source::Mmdb(Box::new(r), networks)
        } else {
            let rows = super::csv::read(path)?;
            Source::Csv(rows.into_iter().map(|(n, l)| (n, complete(l))).collect())
        };
        Ok(GeoDb {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn info(&self) -> DbInfo {
        match &self.source {
            Source::Mmdb(r, _) => {
                let m = r.metadata();
                DbInfo {
                    database_type: m.database_type.clone(),
                    build_epoch: m.build_epoch,
                    networks: m.node_count as usize,
                }
            }
            Source::Csv(rows) => DbInfo {
                database_type: "sipsteer-csv".into(),
                build_epoch: 0,
                networks: rows.len(),
            },
        }
    }

    /// Every network with its location, as a table of ranges.
    pub fn table(&self) -> Result<NetworkTable, GeoError> {
        let mut locations: Vec<Location> = Vec::new();
        let mut v4: Vec<(u128, u128, u32)> = Vec::new();
        let mut v6: Vec<(u128, u128, u32)> = Vec::new();
        let mut push = |net: IpNet, loc: u32| match net {
            IpNet::V4(n) => v4.push((
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
                loc,
            )),
            IpNet::V6(n) => {
                // A network covering all of ::/96 covers all of IPv4 too.
                if n.prefix_len() < 96 && n.contains(&std::net::Ipv6Addr::UNSPECIFIED) {
                    v4.push((0, u128::from(u32::MAX), loc));
                }
                // IPv4 stored in an IPv6 tree at ::/96 is served from the IPv4 table.
                if n.prefix_len() >= 96 && u128::from(n.network()) >> 32 == 0 {
                    let first = u128::from(n.network()) & 0xFFFF_FFFF;
                    let last = u128::from(n.broadcast()) & 0xFFFF_FFFF;
                    v4.push((first, last, loc));
                } else {
                    v6.push((u128::from(n.network()), u128::from(n.broadcast()), loc));
                }
            }
        };
        match &self.source {
            Source::Mmdb(r, networks) => {
                // Records are shared between networks: decode each data record once.
                let mut by_offset: HashMap<usize, Option<u32>> = HashMap::new();
                let mut by_value: HashMap<LocationKey, u32> = HashMap::new();
                let iter = r.networks(WithinOptions::default()).map_err(|e| {
                    file_err(Path::new(&self.path), format!("cannot walk database: {e}"))
                })?;
                // The checked tree bounds the walk; stop anyway if it yields more.
                for (seen, item) in iter.enumerate() {
                    let item = item.map_err(|e| {
                        file_err(Path::new(&self.path), format!("corrupt database: {e}"))
                    })?;
                    if seen >= *networks {
                        return Err(file_err(
                            Path::new(&self.path),
                            format!(
                                "search tree yields more than its {networks} networks (crafted or corrupt database)"
                            ),
                        ));
                    }
                    let Some(offset) = item.offset() else {
                        continue;
                    };
                    let id = match by_offset.get(&offset) {
                        Some(id) => *id,
                        None => {
                            let id = decode(&item)
                                .map_err(|e| {
                                    file_err(
                                        Path::new(&self.path),
                                        format!(
                                            "data record at offset {offset} cannot be decoded: {e}"
                                        ),
                                    )
                                })?
                                .map(|l| {
                                    *by_value.entry(l.key()).or_insert_with(|| {
                                        locations.push(l);
                                        (locations.len() - 1) as u32
                                    })
                                });
                            by_offset.insert(offset, id);
                            id
                        }
                    };
                    let (Some(id), Ok(net)) = (id, item.network()) else {
                        continue;
                    };
                    if let Ok(net) = IpNet::new(net.ip(), net.prefix()) {
                        push(net, id);
                    }
                }
            }
            Source::Csv(rows) => {
                let mut by_value: HashMap<LocationKey, u32> = HashMap::new();
                for (net, l) in rows {
                    let id = *by_value.entry(l.key()).or_insert_with(|| {
                        locations.push(l.clone());
                        (locations.len() - 1) as u32
                    });
                    push(*net, id);
                }
            }
        }
        Ok(NetworkTable {
            v4: merge(flatten(v4))
                .into_iter()
                .map(|(a, b, l)| (a as u32, b as u32, l))
                .collect(),
            v6: merge(flatten(v6)),
            locations,
        })
    }
}

/// Joins neighbouring ranges of the same location (a database splits networks around more
/// specific ones).
fn merge(ranges: Vec<(u128, u128, u32)>) -> Vec<(u128, u128, u32)> {
    let mut out: Vec<(u128, u128, u32)> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.2 == r.2 && last.1.checked_add(1) == Some(r.0) => last.1 = r.1,
            _ => out.push(r),
        }
    }
    out
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeoDb({})", self.path)
    }
}
