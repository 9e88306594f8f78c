//! Country centroids and continents (`centroids.tsv`), for databases that know only the
//! country of a network.

use std::collections::HashMap;
use std::sync::OnceLock;

const DATA: &str = include_str!("centroids.tsv");

/// Country → (continent, lat, lon).
type Table = HashMap<[u8; 2], ([u8; 2], f64, f64)>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        DATA.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let mut f = l.split('\t');
                let cc = f.next()?.as_bytes();
                let ct = f.next()?.as_bytes();
                let lat = f.next()?.parse().ok()?;
                let lon = f.next()?.parse().ok()?;
                Some((
                    [*cc.first()?, *cc.get(1)?],
                    ([*ct.first()?, *ct.get(1)?], lat, lon),
                ))
            })
            .collect()
    })
}

/// The approximate centre of a country.
pub fn centroid(cc: [u8; 2]) -> Option<(f64, f64)> {
    table().get(&cc).map(|e| (e.1, e.2))
}

/// The continent of a country.
pub fn continent_of(cc: [u8; 2]) -> Option<[u8; 2]> {
    table().get(&cc).map(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_countries() {
        assert!(table().len() > 240);
        assert_eq!(continent_of(*b"GB"), Some(*b"EU"));
        assert_eq!(continent_of(*b"BR"), Some(*b"SA"));
        let (lat, lon) = centroid(*b"AU").unwrap();
        assert!(lat < -20.0 && lon > 130.0);
        assert_eq!(centroid(*b"ZZ"), None);
    }
}
