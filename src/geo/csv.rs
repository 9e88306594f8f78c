//! sipsteer's CSV GeoIP format: `network,country,continent,latitude,longitude,city`.
//! Every field but the network may be empty; `#` lines and blank lines are skipped.

use std::collections::HashSet;

use ipnet::IpNet;

use super::Location;
use crate::config::CONTINENTS;

/// One problem in a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

const HEADER: &str = "network,country,continent,latitude,longitude,city";

/// Parses the whole file; every error is reported.
pub fn parse(text: &str) -> Result<Vec<(IpNet, Location)>, Vec<CsvError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut header = false;
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if !header {
            if l.trim() != HEADER {
                errors.push(CsvError {
                    line,
                    column: 1,
                    message: format!("the first line must be the header `{HEADER}`"),
                });
                return Err(errors);
            }
            header = true;
            continue;
        }
        match row(line, l, &mut seen) {
            Ok(entry) => out.push(entry),
            Err(e) => errors.extend(e),
        }
    }
    if !header && errors.is_empty() {
        errors.push(CsvError {
            line: 1,
            column: 1,
            message: format!("empty file: the header `{HEADER}` is missing"),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// One data line: its network (not in `seen` yet; added there) and its location.
fn row(
    line: usize,
    l: &str,
    seen: &mut HashSet<IpNet>,
) -> Result<(IpNet, Location), Vec<CsvError>> {
    let fields = match <[(usize, &str); 6]>::try_from(fields(l)) {
        Ok(f) => f,
        Err(f) => {
            return Err(vec![CsvError {
                line,
                column: 1,
                message: format!("expected 6 fields, found {}", f.len()),
            }]);
        }
    };
    let net = network(line, fields[0], seen).map_err(|e| vec![e])?;
    Ok((net, location(line, &fields)?))
}

/// The fields of a line, trimmed, each with the column it starts at (1-based).
fn fields(l: &str) -> Vec<(usize, &str)> {
    let mut col = 1;
    l.split(',')
        .map(|f| {
            let c = col;
            col += f.len() + 1;
            (c, f.trim())
        })
        .collect()
}

/// The network field: a CIDR without host bits, not listed before (it is added to `seen`).
fn network(
    line: usize,
    (c, s): (usize, &str),
    seen: &mut HashSet<IpNet>,
) -> Result<IpNet, CsvError> {
    let err = |message: String| CsvError {
        line,
        column: c,
        message,
    };
    let net: IpNet = s.parse().map_err(|_| {
        err(format!(
            "invalid network `{s}` (use CIDR, e.g. 81.2.69.0/24)"
        ))
    })?;
    if net.trunc() != net {
        return Err(err(format!(
            "network `{net}` has host bits set (did you mean {}?)",
            net.trunc()
        )));
    }
    if !seen.insert(net) {
        return Err(err(format!("network `{net}` listed twice")));
    }
    Ok(net)
}

/// The location fields (country, continent, latitude, longitude, city); every bad field is
/// reported.
fn location(line: usize, fields: &[(usize, &str); 6]) -> Result<Location, Vec<CsvError>> {
    let country = code(line, fields[1], "country", None);
    let continent = code(line, fields[2], "continent", Some(&CONTINENTS));
    let lat = coord(line, fields[3], "latitude", 90.0);
    let lon = coord(line, fields[4], "longitude", 180.0);
    let (country, continent, lat, lon) = match (country, continent, lat, lon) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (a, b, c, d) => {
            return Err([a.err(), b.err(), c.err(), d.err()]
                .into_iter()
                .flatten()
                .collect());
        }
    };
    let coords = match (lat, lon) {
        (Some(a), Some(b)) => Some((a, b)),
        (None, None) => None,
        _ => {
            return Err(vec![CsvError {
                line,
                column: fields[3].0,
                message: "give both latitude and longitude, or neither".into(),
            }]);
        }
    };
    let city = (!fields[5].1.is_empty()).then(|| fields[5].1.into());
    Ok(Location {
        country,
        continent,
        coords,
        city,
    })
}

/// A two-letter code (upper-cased), or none when the field is empty; `allowed` limits the
/// codes accepted.
fn code(
    line: usize,
    (c, s): (usize, &str),
    what: &str,
    allowed: Option<&[&str]>,
) -> Result<Option<[u8; 2]>, CsvError> {
    if s.is_empty() {
        return Ok(None);
    }
    let up = s.to_ascii_uppercase();
    let b = up.as_bytes();
    if b.len() != 2
        || !b.iter().all(u8::is_ascii_alphabetic)
        || allowed.is_some_and(|a| !a.contains(&up.as_str()))
    {
        return Err(CsvError {
            line,
            column: c,
            message: format!("bad {what} code `{s}`"),
        });
    }
    Ok(Some([b[0], b[1]]))
}

/// A coordinate within ±`max`, or none when the field is empty.
fn coord(
    line: usize,
    (c, s): (usize, &str),
    what: &str,
    max: f64,
) -> Result<Option<f64>, CsvError> {
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() <= max => Ok(Some(v)),
        _ => Err(CsvError {
            line,
            column: c,
            message: format!("{what} must be a number within ±{max}, got `{s}`"),
        }),
    }
}

/// Reads and parses a CSV file; errors carry the file name.
pub(super) fn read(path: &std::path::Path) -> Result<Vec<(IpNet, Location)>, super::GeoError> {
    let text = crate::files::read_text(path, crate::files::MAX_GEOIP).map_err(|e| {
        super::GeoError::File {
            path: path.display().to_string(),
            message: format!("cannot read GeoIP database: {e}"),
        }
    })?;
    parse(&text).map_err(|errs| {
        super::GeoError::Csv(
            errs.into_iter()
                .map(|error| super::CsvFileError {
                    path: path.display().to_string(),
                    error,
                })
                .collect(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows() {
        let t = "# comment\nnetwork,country,continent,latitude,longitude,city\n81.2.69.0/24,GB,EU,51.5,-0.13,London\n\n2a00::/16,de,,,,\n";
        let v = parse(t).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].1.country, Some(*b"GB"));
        assert_eq!(v[0].1.coords, Some((51.5, -0.13)));
        assert_eq!(v[0].1.city.as_deref(), Some("London"));
        assert_eq!(v[1].1.country, Some(*b"DE"));
        assert_eq!(v[1].1.coords, None);
    }

    #[test]
    fn reports_every_error_with_position() {
        let t = "network,country,continent,latitude,longitude,city\n81.2.69.1/24,GB,EU,,,\n10.0.0.0/8,G1,EU,,,\n10.1.0.0/16,GB,XX,91,0,\n10.2.0.0/16,GB,EU,1,,\n10.0.0.0/8,GB,EU,,,\nfoo\n";
        let e = parse(t).unwrap_err();
        let got: Vec<String> = e
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
            .collect();
        assert_eq!(
            got,
            [
                "2:1: network `81.2.69.1/24` has host bits set (did you mean 81.2.69.0/24?)",
                "3:12: bad country code `G1`",
                "4:16: bad continent code `XX`",
                "4:19: latitude must be a number within ±90, got `91`",
                "5:19: give both latitude and longitude, or neither",
                "6:1: network `10.0.0.0/8` listed twice",
                "7:1: expected 6 fields, found 1",
            ]
        );
        assert!(parse("net\n").unwrap_err()[0].message.contains("header"));
    }
}
