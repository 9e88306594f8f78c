//! Feedback while a long GeoIP load runs: a progress line every few seconds, and dates as the
//! logs print them.

use std::path::Path;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// How often a slow step says it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// `2026-11-25` for a Unix time, `unknown` for none (0).
pub fn date(epoch: u64) -> String {
    if epoch == 0 {
        return "unknown".into();
    }
    let t = UNIX_EPOCH + Duration::from_secs(epoch);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(..10).unwrap_or(&s).to_string()
}

/// Runs `f`, logging `what` every few seconds until it returns.
pub fn with_progress<T>(what: &str, path: &Path, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let (done, wait) = channel::<()>();
    std::thread::scope(|s| {
        let ticker = std::thread::Builder::new()
            .name("progress".into())
            .spawn_scoped(s, move || {
                while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(PROGRESS_EVERY) {
                    tracing::info!(
                        path = %path.display(),
                        secs = started.elapsed().as_secs(),
                        "{what}"
                    );
                }
            });
        let out = f();
        drop(done);
        drop(ticker);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "unknown");
        assert_eq!(date(1_764_028_800), "2025-11-25");
    }
}
