//! The hub's handle on its probe scheduler: the probe engine ([`super::udp`]), one task that
//! probes every target at its interval with jitter (the first probe at a random point of the
//! interval, later ones ±10%, the suspect cadence while a server is suspect), at most
//! `max_concurrent` at a time, and sends the results to the hub on a bounded channel, in
//! batches. Targets are diffed on reload: unchanged ones keep their schedule, removed ones
//! stop. The engine runs on the runtime the monitor was started in, whichever thread sets the
//! targets; [`Monitor::shutdown`] stops it and waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::udp::{Sink, UdpProber};
use super::vocab::{ProbeSpec, Results};

pub(crate) struct Monitor {
    engine: UdpProber,
    /// Distinct targets being probed.
    targets: AtomicUsize,
    origin: Instant,
    /// Milliseconds after `origin` of the last probe started (0 = none yet).
    last_tick: Arc<AtomicU64>,
    /// The runtime the engine runs on; none outside a runtime.
    runtime: Option<tokio::runtime::Handle>,
}

impl Monitor {
    /// A scheduler with no targets yet; call within a tokio runtime.
    pub(crate) fn start(max_concurrent: usize, results: Results) -> Monitor {
        let (origin, last_tick) = (Instant::now(), Arc::new(AtomicU64::new(0)));
        let engine = UdpProber::scheduling(Sink {
            results,
            max_concurrent,
            last_tick: last_tick.clone(),
            origin,
        });
        Monitor {
            engine,
            targets: AtomicUsize::new(0),
            origin,
            last_tick,
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Probes exactly these targets from now on (none once shut down).
    pub(crate) fn set_targets(&self, specs: Vec<ProbeSpec>) {
        self.targets.store(specs.len(), Ordering::Relaxed);
        self.engine.set_targets(specs, self.runtime.as_ref());
    }

    /// Targets being probed.
    pub(crate) fn targets(&self) -> usize {
        self.targets.load(Ordering::Relaxed)
    }

    /// When a probe last started: a stalled scheduler shows here.
    pub(crate) fn last_tick(&self) -> Option<Instant> {
        match self.last_tick.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.origin + Duration::from_millis(ms)),
        }
    }

    /// When the scheduler started.
    pub(crate) fn started(&self) -> Instant {
        self.origin
    }

    /// Stops every probe and waits for the engine (and the checks it runs) to end.
    pub(crate) async fn shutdown(&self) {
        self.engine.shutdown().await;
    }
}
