//! The probe engine: one task schedules every probe of a monitor, whatever its check, on the
//! common 10 ms tick, instead of a task and a timer per target. Targets wait in a timing
//! wheel ([`Due`]). Each pass takes what the handle asked (the targets of a reload, one-off
//! probes), reads the sockets (replies and ICMP errors, with their kernel receive times) and
//! gives each answered transaction its result, takes the checks that finished, then what
//! became due: a target's next probe (at most `max_concurrent` in flight, the others waiting
//! their turn in the order they became due), a retransmission, a timeout. SIP over UDP runs
//! here as a transaction ([`super::flight`]); a TCP connect, SIP-over-TCP or SIP-over-TLS
//! check runs as a short task the engine spawns and owns. The requests of a pass go out in
//! one batch per socket and the results to the hub in one message. Each target keeps its own copy of its
//! state machine to pick its next probe (the suspect cadence); a new target's first probe
//! comes at a random point of its interval, later ones after the interval ±10 %. On reload,
//! unchanged targets keep their schedule; a removed one stops, its probe in flight with it.
//! The task sleeps while nothing is in flight or due.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::flight::{Ended, Flights, Step};
use super::schedule::{Due, Ticks};
use super::targets::{Busy, Slot, Targets};
use crate::config::Check;
use crate::health::vocab::{
    CodePolicy, ProbeResult, ProbeSpec, Res, Results, Target, first_delay, jitter,
};
use crate::health::{tcp, tls, ws};

/// What the task and its handle share.
#[derive(Default)]
pub(super) struct Shared {
    pub inbox: Mutex<Inbox>,
    /// Told when the inbox has something.
    pub wake: Notify,
}

/// What the handle asked of the task since it last looked.
#[derive(Default)]
pub(super) struct Inbox {
    /// The targets wanted from now on, if they changed.
    pub targets: Option<Vec<ProbeSpec>>,
    pub once: Vec<Once>,
}

/// A one-off SIP-over-UDP probe and where its outcome goes.
pub(super) struct Once {
    pub target: SocketAddr,
    pub timeout: Duration,
    pub policy: CodePolicy,
    pub reply: oneshot::Sender<(Res, Option<Duration>)>,
}

/// Where the results of scheduled probes go, and what bounds them.
pub(crate) struct Sink {
    pub results: Results,
    /// Probes in flight at most.
    pub max_concurrent: usize,
    /// Milliseconds after `origin` at which a probe last started.
    pub last_tick: Arc<AtomicU64>,
    pub origin: std::time::Instant,
}

/// What the wheel holds: a target's next probe, or a transaction's next retransmission or
/// timeout. A key whose target or transaction is gone is skipped when it comes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Start { slot: u32, era: u32 },
    Flight(u64),
}

/// Whose a transaction is.
enum Owner {
    /// The target in this slot, if it is still the one `era` names, with its place among
    /// the probes in flight (given back when the transaction ends).
    Target {
        slot: u32,
        era: u32,
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// A one-off probe (boxed: rare, and larger than a target's).
    Once(Box<OnceOwner>),
}

struct OnceOwner {
    reply: oneshot::Sender<(Res, Option<Duration>)>,
    policy: CodePolicy,
}

/// A TCP check that finished: whose, its result, and how long it took.
struct Checked {
    slot: u32,
    era: u32,
    result: ProbeResult,
    took: Duration,
}

pub(super) struct Engine {
    shared: Arc<Shared>,
    sink: Option<Sink>,
    permits: Arc<Semaphore>,
    ticks: Ticks,
    due: Due<Key>,
    targets: Targets,
    /// Targets due while `max_concurrent` probes were in flight, in the order they became due.
    waiting: VecDeque<(u32, u32)>,
    flights: Flights<Owner>,
    /// The TCP checks in flight, and those that finished since the last pass.
    checks: JoinSet<Checked>,
    checked: Vec<Checked>,
    results: Vec<(Target, ProbeResult)>,
    /// Room for the list of ended transactions.
    ended: Vec<Ended<Owner>>,
    /// Room for the list of keys due.
    popped: Vec<Key>,
}

impl Engine {
    pub(super) fn new(shared: Arc<Shared>, sink: Option<Sink>) -> Engine {
        let max = sink.as_ref().map_or(1, |s| s.max_concurrent.max(1));
        let ticks = Ticks::start();
        Engine {
            shared,
            sink,
            permits: Arc::new(Semaphore::new(max)),
            ticks,
            due: Due::default(),
            targets: Targets::default(),
            waiting: VecDeque::new(),
            flights: Flights::new(ticks),
            checks: JoinSet::new(),
            checked: Vec::new(),
            results: Vec::new(),
            ended: Vec::new(),
            popped: Vec::new(),
        }
    }

    /// Runs until `cancel` fires or the hub stops taking results (then fires `cancel`, so
    /// one-off probes asked of it end), then stops its checks in flight and waits for them.
    pub(super) async fn run(mut self, cancel: CancellationToken) {
        self.serve(&cancel).await;
        cancel.cancel();
        self.checks.shutdown().await;
    }

    async fn serve(&mut self, cancel: &CancellationToken) {
        let shared = self.shared.clone();
        loop {
            let now = tokio::time::Instant::now();
            self.pass(now);
            if !self.deliver(cancel).await {
                return;
            }
            let next = self.next_wake(now);
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let checking = !self.checks.is_empty();
            let joined = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = shared.wake.notified() => None,
                Some(j) = self.checks.join_next(), if checking => Some(j),
                () = sleep => None,
            };
            // A check that was aborted (its target removed) has nothing to say.
            if let Some(Ok(c)) = joined {
                self.checked.push(c);
            }
        }
    }

    /// One pass: what was asked, what was answered, what became due, then the sends.
    fn pass(&mut self, now: tokio::time::Instant) {
        let t = self.ticks.now(now);
        self.take_inbox(now);
        self.flights.read();
        let mut ended = std::mem::take(&mut self.ended);
        self.flights.take_answered(&mut ended);
        self.conclude_all(&mut ended, now);
        self.finish_checks(now);
        self.start_waiting(now);
        let mut due = std::mem::take(&mut self.popped);
        self.due.take_due(t, &mut due);
        for &k in &due {
            match k {
                Key::Start { slot, era } => self.start(slot, era, now),
                Key::Flight(id) => match self.flights.advance(id, t) {
                    Step::Wait(tick) => self.due.push(tick, Key::Flight(id)),
                    Step::Ended(e) => self.conclude(e, now),
                    Step::Nothing => {}
                },
            }
        }
        due.clear();
        self.popped = due;
        self.start_waiting(now);
        self.flights.flush(&mut ended);
        self.conclude_all(&mut ended, now);
        self.ended = ended;
        self.compact();
    }

    /// When to look again: every tick while a transaction is in flight or a probe waiting
    /// (to read its reply), else when the next key is due; `None` while nothing is (a check
    /// that finishes wakes the task by itself).
    fn next_wake(&self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        let next = self.ticks.now(now) + 1;
        let at = if self.flights.len() > 0 || !self.waiting.is_empty() {
            Some(next)
        } else {
            self.due.next().map(|t| t.max(next))
        };
        at.map(|t| self.ticks.instant(t))
    }

    /// Hands the results of this pass to the hub, waiting while its queue is full; false once
    /// the hub is gone or `cancel` fired.
    async fn deliver(&mut self, cancel: &CancellationToken) -> bool {
        let Some(sink) = &self.sink else {
            return true;
        };
        if self.results.is_empty() {
            return true;
        }
        // The next pass's room sized like this one's, so it seldom grows.
        let room = Vec::with_capacity(self.results.len());
        let batch = std::mem::replace(&mut self.results, room);
        tokio::select! {
            biased;
            () = cancel.cancelled() => false,
            r = sink.results.send(batch) => r.is_ok(),
        }
    }

    fn take_inbox(&mut self, now: tokio::time::Instant) {
        let (targets, once) = {
            let mut inbox = crate::lock::guard(&self.shared.inbox);
            if inbox.targets.is_none() && inbox.once.is_empty() {
                return;
            }
            (inbox.targets.take(), std::mem::take(&mut inbox.once))
        };
        if let Some(specs) = targets {
            self.set_targets(specs, now);
        }
        for o in once {
            let owner = Owner::Once(Box::new(OnceOwner {
                reply: o.reply,
                policy: o.policy,
            }));
            self.open(o.target, o.timeout, owner, now);
        }
    }

    /// Probes exactly these targets from now on: unchanged ones keep their schedule, removed
    /// ones end their probe in flight, new ones start at a random point of their interval.
    fn set_targets(&mut self, specs: Vec<ProbeSpec>, now: tokio::time::Instant) {
        let wanted: HashMap<Target, ProbeSpec> =
            specs.into_iter().map(|s| (s.target.clone(), s)).collect();
        let ips: HashSet<IpAddr> = wanted
            .keys()
            .filter(|t| t.check == Check::SipUdp)
            .map(|t| t.addr.ip())
            .collect();
        self.flights.retain_local(|ip| ips.contains(ip));
        let flights = &mut self.flights;
        self.targets.retain(&wanted, |busy| match busy {
            Busy::Flight(id) => drop(flights.close(id)),
            Busy::Check(task) => task.abort(),
        });
        for (t, spec) in wanted {
            if self.targets.contains(&t) {
                continue;
            }
            let first = first_delay(spec.cadence.interval, rand::random::<f64>());
            let (slot, era) = self.targets.add(spec);
            self.due
                .push(self.ticks.after(now, first), Key::Start { slot, era });
        }
    }

    /// The slot `slot` if it still holds the target `era` named.
    fn live(&mut self, slot: u32, era: u32) -> Option<&mut Slot> {
        self.targets.live(slot, era)
    }

    /// The target in `slot` is due: probes it if a probe may start, else it waits its turn.
    fn start(&mut self, slot: u32, era: u32, now: tokio::time::Instant) {
        if self.live(slot, era).is_none_or(|s| s.busy.is_some()) {
            return;
        }
        if !self.waiting.is_empty() || !self.try_start(slot, era, now) {
            self.waiting.push_back((slot, era));
        }
    }

    /// Starts the targets waiting for a free probe slot, in order, while there are free ones.
    fn start_waiting(&mut self, now: tokio::time::Instant) {
        while let Some(&(slot, era)) = self.waiting.front() {
            if self.live(slot, era).is_some() && !self.try_start(slot, era, now) {
                return;
            }
            self.waiting.pop_front();
        }
    }

    /// Starts a probe of the target in `slot` if one may start; whether it could.
    fn try_start(&mut self, slot: u32, era: u32, now: tokio::time::Instant) -> bool {
        let permit = match &self.sink {
            Some(sink) => match self.permits.clone().try_acquire_owned() {
                Ok(p) => {
                    let ms = sink.origin.elapsed().as_millis().max(1) as u64;
                    sink.last_tick.store(ms, Ordering::Relaxed);
                    Some(p)
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => return false,
                // Closed: nothing starts any more; the target is dropped from the queue.
                Err(tokio::sync::TryAcquireError::Closed) => return true,
            },
            None => None,
        };
        let Some(s) = self.live(slot, era) else {
            return true;
        };
        let (target, timeout) = (s.spec.target.clone(), s.timeout);
        if target.check != Check::SipUdp {
            let policy = s.spec.policy.clone();
            let task = self.checks.spawn(async move {
                let _permit = permit;
                let started = tokio::time::Instant::now();
                let result = match target.check {
                    Check::SipTls | Check::SipWss => {
                        Box::pin(tls::probe(&target, timeout, &policy)).await
                    }
                    Check::SipWs => ws::probe(&target, timeout, &policy).await,
                    _ => tcp::probe(&target, timeout, &policy).await,
                };
                let took = started.elapsed();
                Checked {
                    slot,
                    era,
                    result,
                    took,
                }
            });
            if let Some(s) = self.live(slot, era) {
                s.busy = Some(Busy::Check(task));
            }
            return true;
        }
        let owner = Owner::Target {
            slot,
            era,
            _permit: permit,
        };
        self.open(target.addr, timeout, owner, now);
        true
    }

    /// Opens a transaction for `owner`; one that cannot start ends at once.
    fn open(
        &mut self,
        target: SocketAddr,
        timeout: Duration,
        owner: Owner,
        now: tokio::time::Instant,
    ) {
        let slot = match &owner {
            Owner::Target { slot, era, .. } => Some((*slot, *era)),
            Owner::Once(_) => None,
        };
        match self.flights.open(target, timeout, owner, now) {
            Ok((id, next)) => {
                if let Some(s) = slot.and_then(|(slot, era)| self.live(slot, era)) {
                    s.busy = Some(Busy::Flight(id));
                }
                self.due.push(next, Key::Flight(id));
            }
            Err(e) => self.conclude(e, now),
        }
    }

    fn conclude_all(&mut self, ended: &mut Vec<Ended<Owner>>, now: tokio::time::Instant) {
        for e in ended.drain(..) {
            self.conclude(e, now);
        }
    }

    /// Gives an ended transaction's result to its owner: a one-off probe's caller, or a
    /// scheduled target (then this pass's batch for the hub).
    fn conclude(&mut self, e: Ended<Owner>, now: tokio::time::Instant) {
        let elapsed = e.verdict.elapsed;
        match e.owner {
            Owner::Once(once) => {
                let _ = once.reply.send(e.verdict.judge(&once.policy));
            }
            Owner::Target { slot, era, .. } => {
                let Some(s) = self.live(slot, era) else {
                    return;
                };
                let (res, exact) = e.verdict.judge(&s.spec.policy);
                let result = ProbeResult::from_res(res, exact.unwrap_or(elapsed));
                self.reschedule(slot, era, result, elapsed, now);
            }
        }
    }

    /// Takes the TCP checks that finished and reschedules their targets.
    fn finish_checks(&mut self, now: tokio::time::Instant) {
        while let Some(j) = self.checks.try_join_next() {
            if let Ok(c) = j {
                self.checked.push(c);
            }
        }
        let mut checked = std::mem::take(&mut self.checked);
        for c in checked.drain(..) {
            self.reschedule(c.slot, c.era, c.result, c.took, now);
        }
        self.checked = checked;
    }

    /// A probe of the target in `slot` that took `took` ended with `result`: its state
    /// machine picks the next probe (the suspect cadence, or the steady interval ±10 %), and
    /// the result joins this pass's batch for the hub; a target removed meanwhile gets
    /// nothing.
    fn reschedule(
        &mut self,
        slot: u32,
        era: u32,
        result: ProbeResult,
        took: Duration,
        now: tokio::time::Instant,
    ) {
        let ticks = self.ticks;
        let Some(s) = self.live(slot, era) else {
            return;
        };
        s.busy = None;
        s.health.apply(result.outcome);
        let (wait, timeout) =
            s.health
                .next_probe(&s.spec.cadence, took, jitter(rand::random::<f64>()));
        s.timeout = timeout;
        let target = s.spec.target.clone();
        // Never within the tick it ended in, so a target cannot spin inside one pass.
        let at = ticks.after(now, wait).max(ticks.now(now) + 1);
        self.due.push(at, Key::Start { slot, era });
        self.results.push((target, result));
    }

    /// Drops the keys of removed targets when they have piled up (many reloads in one
    /// interval).
    fn compact(&mut self) {
        let live = self.targets.len() + self.flights.len() + self.waiting.len();
        if self.due.len() <= 2 * live + 4096 {
            return;
        }
        let (targets, flights) = (&self.targets, &self.flights);
        self.due.retain(|k| match k {
            Key::Start { slot, era } => targets.is_live(slot, era),
            Key::Flight(id) => flights.contains(id),
        });
    }
}
