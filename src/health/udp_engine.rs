//! The SIP-over-UDP scheduler: one task runs every SIP-over-UDP probe of a monitor (and the
//! one-off probes asked of its prober) on the common 10 ms tick, instead of a task and a timer
//! per target. Targets wait in a time-ordered queue ([`Due`]); at each tick the task reads the
//! sockets (replies and ICMP errors, with their kernel receive times), gives each answered
//! transaction its result, then takes what became due: a target's next probe (at most
//! `max_concurrent` probes in flight, the others waiting their turn in order), a
//! retransmission (T1 = 500 ms, doubling), a timeout. The requests of a tick go out in one
//! batch per socket ([`super::udp_send`]) and the results to the hub in one message. Each
//! target keeps its own copy of its state machine to pick its next probe (the suspect
//! cadence); a new target's first probe comes at a random point of its interval, later ones
//! after the interval ±10 %. On reload, unchanged targets keep their schedule; a removed one
//! stops, its transaction in flight with it. The task sleeps while nothing is in flight or due.

mod flight;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use super::monitor::ProbeSpec;
use super::probe::{CodePolicy, ProbeResult, Res, Target};
use super::state::Probed;
use super::udp_sched::{Due, Ticks, first_delay};
use super::udp_send::Batch;
use super::udp_socket::Family;
use super::udp_table::Table;
use flight::Flight;

/// Largest datagram read (a longer one is cut and read as truncated).
const MAX_DATAGRAM: usize = 65_535;
/// Room for the datagrams one read takes: only the pages datagrams were read into become
/// resident.
const ROOM: usize = MAX_DATAGRAM * super::udp_recv::PER_CALL;

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

/// A one-off probe and where its outcome goes.
pub(super) struct Once {
    pub target: SocketAddr,
    pub timeout: Duration,
    pub policy: CodePolicy,
    pub reply: oneshot::Sender<(Res, Option<Duration>)>,
}

/// Where the results of scheduled probes go, and what bounds them.
pub(crate) struct Sink {
    pub results: super::monitor::Results,
    /// Probes in flight (shared with the monitor's other probes).
    pub slots: Arc<Semaphore>,
    /// Milliseconds after `origin` at which a probe last started.
    pub last_tick: Arc<AtomicU64>,
    pub origin: std::time::Instant,
}

/// What the queue holds: a target's next probe, or a transaction's next retransmission or
/// timeout. A key whose target or transaction is gone is skipped when it comes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Start { slot: u32, era: u32 },
    Flight(u64),
}

/// A place for a target, and its era: bumped each time the place is freed, so keys naming
/// an earlier target miss (kept beside the target: one line to read for both).
#[derive(Default)]
struct Place {
    era: u32,
    slot: Option<Slot>,
}

/// One scheduled target.
struct Slot {
    spec: ProbeSpec,
    health: Probed,
    /// The next probe's timeout.
    timeout: Duration,
    /// Its transaction in flight.
    flight: Option<u64>,
}

pub(super) struct Engine {
    shared: Arc<Shared>,
    sink: Option<Sink>,
    ticks: Ticks,
    due: Due<Key>,
    slots: Vec<Place>,
    free: Vec<u32>,
    by_target: HashMap<Target, u32>,
    /// Targets due while `max_concurrent` probes were in flight, in the order they became due.
    waiting: VecDeque<(u32, u32)>,
    table: Table<Flight>,
    /// The sockets, opened at first need (`Some(None)`: could not be).
    v4: Option<Option<Family>>,
    v6: Option<Option<Family>>,
    send4: Batch,
    send6: Batch,
    /// Transactions the last send refused, with why.
    refused: Vec<(u64, std::io::Error)>,
    results: Vec<(Target, ProbeResult)>,
    /// Room for the list of answered transactions.
    answered: Vec<u64>,
    /// Room for the list of keys due.
    popped: Vec<Key>,
    room: Box<[u8]>,
}

impl Engine {
    pub(super) fn new(shared: Arc<Shared>, sink: Option<Sink>) -> Engine {
        Engine {
            shared,
            sink,
            ticks: Ticks::start(),
            due: Due::default(),
            slots: Vec::new(),
            free: Vec::new(),
            by_target: HashMap::new(),
            waiting: VecDeque::new(),
            table: Table::default(),
            v4: None,
            v6: None,
            send4: Batch::default(),
            send6: Batch::default(),
            refused: Vec::new(),
            results: Vec::new(),
            answered: Vec::new(),
            popped: Vec::new(),
            room: vec![0u8; ROOM].into_boxed_slice(),
        }
    }

    /// Runs until `cancel` fires or the hub stops taking results (then fires `cancel`, so
    /// one-off probes asked of it end).
    pub(super) async fn run(self, cancel: CancellationToken) {
        self.serve(&cancel).await;
        cancel.cancel();
    }

    async fn serve(mut self, cancel: &CancellationToken) {
        let shared = self.shared.clone();
        loop {
            let now = tokio::time::Instant::now();
            self.tick(now);
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
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = shared.wake.notified() => {}
                () = sleep => {}
            }
        }
    }

    /// One pass: what was asked, what was answered, what became due, then the sends.
    fn tick(&mut self, now: tokio::time::Instant) {
        let t = self.ticks.now(now);
        self.take_inbox(now);
        self.read();
        self.finish_answered(now);
        self.start_waiting(now);
        let mut due = std::mem::take(&mut self.popped);
        self.due.take_due(t, &mut due);
        for &k in &due {
            match k {
                Key::Start { slot, era } => self.start(slot, era, now),
                Key::Flight(id) => self.advance(id, t, now),
            }
        }
        due.clear();
        self.popped = due;
        self.start_waiting(now);
        self.flush(now);
        self.compact();
    }

    /// When to look again: every tick while a probe is in flight or waiting (to read its
    /// reply), else when the next one is due; `None` while nothing is.
    fn next_wake(&self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        let next = self.ticks.now(now) + 1;
        let at = if self.table.len() > 0 || !self.waiting.is_empty() {
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
            let owner = flight::Owner::Once(Box::new(flight::OnceOwner {
                reply: o.reply,
                policy: o.policy,
            }));
            self.open(o.target, o.timeout, owner, None, now);
        }
    }

    /// Probes exactly these targets from now on: unchanged ones keep their schedule.
    fn set_targets(&mut self, specs: Vec<ProbeSpec>, now: tokio::time::Instant) {
        let wanted: HashMap<Target, ProbeSpec> =
            specs.into_iter().map(|s| (s.target.clone(), s)).collect();
        let ips: HashSet<IpAddr> = wanted.keys().map(|t| t.addr.ip()).collect();
        for fam in [&mut self.v4, &mut self.v6].into_iter().flatten().flatten() {
            fam.retain_local(|ip| ips.contains(ip));
        }
        let slots = &self.slots;
        let gone: Vec<(Target, u32)> = self
            .by_target
            .iter()
            .filter(|(t, i)| {
                let spec = slots[**i as usize].slot.as_ref().map(|s| &s.spec);
                wanted.get(*t) != spec
            })
            .map(|(t, i)| (t.clone(), *i))
            .collect();
        for (t, i) in gone {
            self.by_target.remove(&t);
            self.remove(i);
        }
        for (t, spec) in wanted {
            if !self.by_target.contains_key(&t) {
                let i = self.add(spec, now);
                self.by_target.insert(t, i);
            }
        }
    }

    /// A new target, its first probe at a random point of its interval.
    fn add(&mut self, spec: ProbeSpec, now: tokio::time::Instant) -> u32 {
        let i = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Place::default());
            (self.slots.len() - 1) as u32
        });
        let first = first_delay(spec.cadence.interval, rand::random::<f64>());
        self.due.push(
            self.ticks.after(now, first),
            Key::Start {
                slot: i,
                era: self.slots[i as usize].era,
            },
        );
        self.slots[i as usize].slot = Some(Slot {
            health: Probed::new(spec.thresholds),
            timeout: spec.cadence.timeout,
            spec,
            flight: None,
        });
        i
    }

    /// Stops probing the target in slot `i`, ending its transaction in flight.
    fn remove(&mut self, i: u32) {
        let place = &mut self.slots[i as usize];
        place.era = place.era.wrapping_add(1);
        if let Some(id) = place.slot.take().and_then(|s| s.flight) {
            self.table.close(id);
        }
        self.free.push(i);
    }

    /// The slot `slot` if it still holds the target `era` named.
    fn live(&mut self, slot: u32, era: u32) -> Option<&mut Slot> {
        let place = self.slots.get_mut(slot as usize)?;
        if place.era != era {
            return None;
        }
        place.slot.as_mut()
    }

    /// The target in `slot` is due: probes it if a probe may start, else it waits its turn.
    fn start(&mut self, slot: u32, era: u32, now: tokio::time::Instant) {
        if self.live(slot, era).is_none_or(|s| s.flight.is_some()) {
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
            Some(sink) => match sink.slots.clone().try_acquire_owned() {
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
        let (addr, timeout) = (s.spec.target.addr, s.timeout);
        self.open(
            addr,
            timeout,
            flight::Owner::Target { slot, era },
            permit,
            now,
        );
        true
    }

    /// Drops the keys of removed targets when they have piled up (many reloads in one
    /// interval).
    fn compact(&mut self) {
        let live = self.by_target.len() + self.table.len() + self.waiting.len();
        if self.due.len() <= 2 * live + 4096 {
            return;
        }
        let (slots, table) = (&self.slots, &self.table);
        self.due.retain(|k| match k {
            Key::Start { slot, era } => slots
                .get(slot as usize)
                .is_some_and(|p| p.era == era && p.slot.is_some()),
            Key::Flight(id) => table.contains(id),
        });
    }
}
