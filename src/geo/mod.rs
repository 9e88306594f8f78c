//! GeoIP: reading MaxMind databases and sipsteer's CSV (and loading one for serving,
//! `load.rs`), compiling them into a table of
//! networks and then into address blocks of equal ranking, and writing MaxMind databases.
//!
//! maxminddb is used only here (`db.rs`).

mod build;
mod centroids;
mod csv;
mod db;
mod load;
mod map;
mod networks;
mod table;
mod tree;
mod writer;

pub use build::{BuildSummary, build_file};
pub use centroids::{centroid, continent_of};
pub use csv::{CsvError, parse as parse_csv};
pub use db::{DbInfo, GeoDb};
pub use load::GeoData;
pub use map::GeoMap;
pub use networks::{Networks, RangeSet};
pub use table::NetworkTable;
pub use writer::write as write_mmdb;

/// Where a client is, as far as the database knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// ISO 3166 alpha-2, upper case.
    pub country: Option<[u8; 2]>,
    /// AF AN AS EU NA OC SA.
    pub continent: Option<[u8; 2]>,
    /// (latitude, longitude) in degrees.
    pub coords: Option<(f64, f64)>,
    pub city: Option<Box<str>>,
}

/// A location's identity, to give equal locations one index: every field, the coordinates
/// by their bits.
pub(crate) type LocationKey = (
    Option<[u8; 2]>,
    Option<[u8; 2]>,
    Option<(u64, u64)>,
    Option<Box<str>>,
);

impl Location {
    pub(crate) fn key(&self) -> LocationKey {
        (
            self.country,
            self.continent,
            self.coords.map(|(a, b)| (a.to_bits(), b.to_bits())),
            self.city.clone(),
        )
    }
}

/// The IPv4 form of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as IPv4 clients appear on
/// a dual-stack socket); any other address unchanged.
pub fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 @ std::net::IpAddr::V4(_) => v4,
    }
}

/// Great-circle distance in km (haversine).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    const R: f64 = 6371.0088;
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

/// A GeoIP problem, with the file it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeoError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{}", .0.iter().map(std::string::ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Csv(Vec<CsvFileError>),
}

/// A CSV error with its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFileError {
    pub path: String,
    pub error: CsvError,
}

impl std::fmt::Display for CsvFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.error.line, self.error.column, self.error.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let london = (51.51, -0.13);
        let frankfurt = (50.11, 8.68);
        let d = distance_km(london, frankfurt);
        assert!((d - 638.0).abs() < 10.0, "{d}");
        assert_eq!(distance_km(london, london), 0.0);
        let antipode = distance_km((0.0, 0.0), (0.0, 180.0));
        assert!((antipode - 20015.0).abs() < 5.0, "{antipode}");
    }
}
