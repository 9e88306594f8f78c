//! The probe scheduler. SIP-over-UDP targets all go to one task, the shared UDP prober's
//! ([`super::udp_engine`]); every other target (SIP over TCP, TCP connect) gets a task of its
//! own. Either way a target is probed at its interval with jitter (the first probe at a random
//! point of the interval, later ones ±10%), a semaphore bounds probes in flight, and results
//! go to the hub on a bounded channel, in batches. Each target keeps its own copy of its state
//! machine to pick the next probe: a suspect server is re-probed at the suspect cadence.
//! Targets are diffed on reload: unchanged ones keep their schedule, removed ones stop. Every
//! wait ends on a common 10 ms tick ([`on_tick`]), so timers fire in batches. The monitor owns
//! its probe tasks (spawned on the runtime it was started in, whichever thread sets the
//! targets); [`Monitor::shutdown`] stops and waits for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::probe::{CodePolicy, ProbeResult, Target, probe_with};
use super::state::{Cadence, Probed, Thresholds};
use super::udp_engine::Sink;
use super::udp_prober::UdpProber;
use super::udp_sched::{first_delay, jitter};
use crate::config::Check;

/// Probe results on their way to the hub, a batch at a time.
pub(crate) type Results = mpsc::Sender<Batch>;
/// The probe results of one pass of the UDP scheduler, or one result of another probe.
pub(crate) type Batch = Vec<(Target, ProbeResult)>;

/// How one target is probed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProbeSpec {
    pub target: Target,
    pub cadence: Cadence,
    pub thresholds: Thresholds,
    pub policy: Arc<CodePolicy>,
}

/// A target being probed: how, and how to stop its task (none for SIP over UDP, which the
/// shared UDP prober schedules).
struct ProbeTask {
    spec: ProbeSpec,
    cancel: Option<CancellationToken>,
}

pub(crate) struct Monitor {
    running: Mutex<HashMap<Target, ProbeTask>>,
    slots: Arc<Semaphore>,
    results: Results,
    /// The scheduler and sockets of every SIP-over-UDP probe.
    udp: UdpProber,
    origin: Instant,
    /// Milliseconds after `origin` of the last probe started (0 = none yet).
    last_tick: Arc<AtomicU64>,
    cancel: CancellationToken,
    /// The probe tasks (lock after `running`).
    tasks: Mutex<JoinSet<()>>,
    /// The runtime probe tasks run on; none outside a runtime.
    runtime: Option<tokio::runtime::Handle>,
}

impl Monitor {
    /// A scheduler with no targets yet; call within a tokio runtime.
    pub(crate) fn start(max_concurrent: usize, results: Results) -> Monitor {
        let slots = Arc::new(Semaphore::new(max_concurrent.max(1)));
        let (origin, last_tick) = (Instant::now(), Arc::new(AtomicU64::new(0)));
        let udp = UdpProber::scheduling(Sink {
            results: results.clone(),
            slots: slots.clone(),
            last_tick: last_tick.clone(),
            origin,
        });
        Monitor {
            running: Mutex::new(HashMap::new()),
            slots,
            results,
            udp,
            origin,
            last_tick,
            cancel: CancellationToken::new(),
            tasks: Mutex::new(JoinSet::new()),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Probes exactly these targets from now on (none once shut down).
    pub(crate) fn set_targets(&self, specs: Vec<ProbeSpec>) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if self.cancel.is_cancelled() {
            return;
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        while tasks.try_join_next().is_some() {}
        let wanted: HashMap<Target, ProbeSpec> =
            specs.into_iter().map(|s| (s.target.clone(), s)).collect();
        let udp: Vec<ProbeSpec> = wanted
            .values()
            .filter(|s| s.target.check == Check::SipUdp)
            .cloned()
            .collect();
        self.udp.set_targets(udp, self.runtime.as_ref());
        running.retain(|t, r| {
            let keep = wanted.get(t) == Some(&r.spec);
            if !keep && let Some(c) = &r.cancel {
                c.cancel();
            }
            keep
        });
        for (t, spec) in wanted {
            if running.contains_key(&t) {
                continue;
            }
            if spec.target.check == Check::SipUdp {
                running.insert(t, ProbeTask { spec, cancel: None });
                continue;
            }
            let cancel = self.cancel.child_token();
            let task = Prober {
                spec: spec.clone(),
                slots: self.slots.clone(),
                results: self.results.clone(),
                origin: self.origin,
                last_tick: self.last_tick.clone(),
                cancel: cancel.clone(),
            };
            if let Some(rt) = &self.runtime {
                tasks.spawn_on(task.run(), rt);
            }
            let cancel = Some(cancel);
            running.insert(t, ProbeTask { spec, cancel });
        }
    }

    /// Targets being probed.
    pub(crate) fn targets(&self) -> usize {
        self.running.lock().map_or(0, |r| r.len())
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

    /// Stops every probe and waits for the probe tasks and the shared UDP prober's task to end.
    pub(crate) async fn shutdown(&self) {
        let mut tasks = {
            let _running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            self.cancel.cancel();
            let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *tasks)
        };
        while tasks.join_next().await.is_some() {}
        self.udp.shutdown().await;
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The task of one target probed otherwise than SIP over UDP.
struct Prober {
    spec: ProbeSpec,
    slots: Arc<Semaphore>,
    results: Results,
    origin: Instant,
    last_tick: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl Prober {
    /// Probes until cancelled. The cancellation is awaited once around the whole loop, not
    /// at each of its waits.
    async fn run(self) {
        let cancel = self.cancel.clone();
        tokio::select! {
            biased;
            () = cancel.cancelled() => {}
            () = self.probe_forever() => {}
        }
    }

    async fn probe_forever(&self) {
        let cadence = self.spec.cadence;
        let first = first_delay(cadence.interval, rand::random::<f64>());
        tokio::time::sleep_until(on_tick(first)).await;
        let mut health = Probed::new(self.spec.thresholds);
        let mut timeout = cadence.timeout;
        loop {
            let Ok(permit) = self.slots.acquire().await else {
                return;
            };
            let started = Instant::now();
            let ms = started.duration_since(self.origin).as_millis().max(1) as u64;
            self.last_tick.store(ms, Ordering::Relaxed);
            let result = probe_with(&self.spec.target, timeout, &self.spec.policy, None).await;
            drop(permit);
            let took = started.elapsed();
            health.apply(result.outcome);
            let batch = vec![(self.spec.target.clone(), result)];
            if self.results.send(batch).await.is_err() {
                return;
            }
            let jitter = jitter(rand::random::<f64>());
            let (wait, next_timeout) = health.next_probe(&cadence, took, jitter);
            timeout = next_timeout;
            tokio::time::sleep_until(on_tick(wait)).await;
        }
    }
}

/// Timers of all probes fire on a common 10 ms tick, so the probes due in one tick run in one
/// wake-up of the runtime instead of one each.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// `after` from now, rounded up to the next tick of a grid aligned on the wall clock (so every
/// timer of the process shares the same ticks without a shared origin).
pub(crate) fn on_tick(after: Duration) -> tokio::time::Instant {
    let at = Instant::now() + after;
    let wall = std::time::SystemTime::now() + after;
    let since = wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tick = TICK.as_nanos();
    let up = Duration::from_nanos(((tick - since % tick) % tick) as u64);
    tokio::time::Instant::from_std(at + up)
}
