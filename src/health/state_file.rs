//! The state file: operator-forced server states (`{"uk/lon1": "drained"}`), written on every
//! change by renaming a temporary file into place, read at start.

use std::collections::BTreeMap;

use super::state::Forced;

pub fn read(path: &std::path::Path) -> BTreeMap<(String, String), Forced> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let parsed: Result<BTreeMap<String, String>, _> = serde_json::from_str(&text);
    match parsed {
        Ok(map) => {
            for (k, v) in map {
                let Some((r, s)) = k.split_once('/') else {
                    continue;
                };
                let f = match v.as_str() {
                    "drained" => Forced::Drained,
                    "up" => Forced::Up,
                    "down" => Forced::Down,
                    _ => continue,
                };
                out.insert((r.to_owned(), s.to_owned()), f);
            }
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable state file")
        }
    }
    out
}

pub fn write(path: &std::path::Path, forced: &BTreeMap<(String, String), Forced>) {
    let map: BTreeMap<String, String> = forced
        .iter()
        .map(|((r, s), f)| (format!("{r}/{s}"), format!("{f:?}").to_lowercase()))
        .collect();
    let tmp = path.with_extension("tmp");
    let r = serde_json::to_vec_pretty(&map)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        tracing::error!(file = %path.display(), error = %e, "cannot write state file");
    }
}
