//! `sipsteer geoip build`: CSV in, MaxMind DB out (written to a temporary file and renamed,
//! so a running sipsteer never reads a half-written database).

use std::path::Path;

use super::GeoError;

#[derive(Debug, Clone)]
pub struct BuildSummary {
    pub networks: usize,
    pub bytes: usize,
    pub database_type: String,
}

pub fn build_file(csv: &Path, out: &Path) -> Result<BuildSummary, GeoError> {
    let err = |p: &Path, m: String| GeoError::File {
        path: p.display().to_string(),
        message: m,
    };
    let rows = super::csv::read(csv)?;
    let database_type = if rows.iter().any(|(_, l)| l.coords.is_some()) {
        "GeoIP2-City"
    } else {
        "GeoIP2-Country"
    };
    let bytes = super::writer::write(&rows, database_type)?;
    let tmp = out.with_file_name(format!(
        ".{}.tmp",
        out.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("geoip.mmdb")
    ));
    std::fs::write(&tmp, &bytes).map_err(|e| err(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, out).map_err(|e| err(out, format!("cannot rename into place: {e}")))?;
    Ok(BuildSummary {
        networks: rows.len(),
        bytes: bytes.len(),
        database_type: database_type.into(),
    })
}
