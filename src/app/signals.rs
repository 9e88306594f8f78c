//! The signals `serve` reacts to: SIGTERM and SIGINT stop it, SIGHUP asks for a reload.
//! Installed before the config loads, so a signal that arrives while a large GeoIP database
//! compiles is handled rather than taking its default action (which, for SIGHUP, kills).

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::Reloader;

pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Registers the handlers (needs a tokio runtime).
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT; each SIGHUP meanwhile queues a reload.
    pub async fn wait(&mut self, reloader: &Reloader) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    reloader.nudge(crate::reload::Trigger::Sighup);
                }
            }
        }
    }
}
