//! A transaction of the scheduler: opened when a probe starts, its request sent at once and
//! again from T1 = 500 ms doubling until its timeout, ended by the first final response that
//! matches it, an ICMP error, or its timeout. Its result goes to its target's state machine
//! (which picks the next probe) and the hub, or to the caller of a one-off probe.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{Engine, Key};
use crate::health::probe::{CodePolicy, ProbeError, ProbeResult, Res, T1};
use crate::health::sip::{NumericIds, push_options_request};
use crate::health::udp_sched::jitter;
use crate::health::udp_socket::Family;
use crate::health::udp_table::{Answer, round_trip};

/// Whose the transaction is.
pub(super) enum Owner {
    /// The target in this slot, if it is still the one `era` names.
    Target { slot: u32, era: u32 },
    /// A one-off probe (boxed: rare, and larger than a target's).
    Once(Box<OnceOwner>),
}

pub(super) struct OnceOwner {
    pub reply: oneshot::Sender<(Res, Option<Duration>)>,
    pub policy: CodePolicy,
}

pub(super) struct Flight {
    owner: Owner,
    started: tokio::time::Instant,
    /// The wall clock at the first send, for the kernel's receive times.
    wall: SystemTime,
    timeout: Duration,
    /// The tick it times out at.
    deadline: u64,
    /// When the next retransmission is due, after the first send.
    sent: Duration,
    interval: Duration,
    tag: u64,
    call_id: u64,
    /// The address in Via and From.
    local: SocketAddr,
    /// Its place among the probes in flight, given back when it ends.
    _permit: Option<OwnedSemaphorePermit>,
}

/// What a transaction's outcome says: the probe's answer or error, and the exact round trip
/// when a final response came.
fn judge(
    outcome: Result<Answer, ProbeError>,
    policy: &CodePolicy,
    wall: SystemTime,
    elapsed: Duration,
) -> (Res, Option<Duration>) {
    match outcome {
        Ok(Answer::Final { code, detail, at }) => (
            Ok((policy.classify(code), Some(code), detail)),
            Some(round_trip(wall, elapsed, at)),
        ),
        Ok(Answer::Unreachable(errno)) => {
            (Err(std::io::Error::from_raw_os_error(errno).into()), None)
        }
        Err(e) => (Err(e), None),
    }
}

impl Engine {
    /// The socket for targets of this family, opened at first need.
    fn family(&mut self, v4: bool) -> Option<&mut Family> {
        let cell = if v4 { &mut self.v4 } else { &mut self.v6 };
        cell.get_or_insert_with(|| Family::open(v4).ok()).as_mut()
    }

    /// Opens a transaction to `target` and sends its request in this tick's batch.
    pub(super) fn open(
        &mut self,
        target: SocketAddr,
        timeout: Duration,
        owner: Owner,
        permit: Option<OwnedSemaphorePermit>,
        now: tokio::time::Instant,
    ) {
        let local = self
            .family(target.is_ipv4())
            .map(|f| SocketAddr::new(f.local_ip(target.ip()), f.port));
        let unspecified: IpAddr = match target {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let call_id = rand::random::<u64>();
        let target_slot = match owner {
            Owner::Target { slot, era } => Some((slot, era)),
            Owner::Once(_) => None,
        };
        // A probe has at least until the next tick.
        let deadline = self.ticks.after(now, timeout).max(self.ticks.now(now) + 1);
        let flight = Flight {
            owner,
            started: tokio::time::Instant::now(),
            wall: SystemTime::now(),
            timeout,
            deadline,
            sent: Duration::ZERO,
            interval: T1,
            tag: rand::random::<u64>(),
            call_id,
            local: local.unwrap_or(SocketAddr::new(unspecified, 0)),
            _permit: permit,
        };
        if local.is_none() {
            let e = std::io::Error::other("cannot open the probe socket");
            self.conclude(flight, Err(e.into()), now);
            return;
        }
        let id = self.table.open(target, call_id, flight);
        if let Some(s) = target_slot.and_then(|(slot, era)| self.live(slot, era)) {
            s.flight = Some(id);
        }
        self.send(id, now);
    }

    /// Writes the request of `id` into its socket's batch and queues what comes next: the
    /// retransmission at T1, 3·T1, 7·T1... after the first send, or the timeout if sooner.
    fn send(&mut self, id: u64, now: tokio::time::Instant) {
        let Some(p) = self.table.get_mut(id) else {
            return;
        };
        let target = p.target;
        let f = &mut p.data;
        let batch = if target.is_ipv4() {
            &mut self.send4
        } else {
            &mut self.send6
        };
        let ids = NumericIds {
            branch: id,
            tag: f.tag,
            call_id: f.call_id,
        };
        let local = f.local;
        let written = batch.push(target, id, |w| {
            push_options_request(w, target, local, &ids);
            Ok(())
        });
        f.sent += f.interval;
        f.interval *= 2;
        let next = self.ticks.after(f.started, f.sent).min(f.deadline);
        match written {
            Ok(()) => self.due.push(next, Key::Flight(id)),
            Err(e) => self.end(id, Err(e.into()), now),
        }
    }

    /// The retransmission or timeout of `id` is due at tick `t` (the sockets were read in
    /// this tick already, so a reply that came in time has ended it).
    pub(super) fn advance(&mut self, id: u64, t: u64, now: tokio::time::Instant) {
        let Some(p) = self.table.get_mut(id) else {
            return;
        };
        if p.answer.is_some() {
            return;
        }
        if t < p.data.deadline {
            self.send(id, now);
            return;
        }
        let timeout = p.data.timeout;
        let e = p
            .bad
            .take()
            .map_or(ProbeError::Timeout(timeout), ProbeError::from);
        self.end(id, Err(e), now);
    }

    /// Reads the sockets into the table (only while something is in flight).
    pub(super) fn read(&mut self) {
        if self.table.len() == 0 {
            return;
        }
        for fam in [&self.v4, &self.v6].into_iter().flatten().flatten() {
            fam.read(&mut self.table, &mut self.room);
        }
    }

    /// Ends the transactions answered since the last pass, in the order they were answered.
    pub(super) fn finish_answered(&mut self, now: tokio::time::Instant) {
        let mut answered = std::mem::take(&mut self.answered);
        self.table.take_answered(&mut answered);
        for &id in &answered {
            let Some(p) = self.table.close(id) else {
                continue;
            };
            match p.answer {
                Some(a) => self.conclude(p.data, Ok(a), now),
                // Not answered after all: cannot happen; it times out as if never answered.
                None => self.conclude(p.data, Err(ProbeError::Timeout(Duration::ZERO)), now),
            }
        }
        self.answered = answered;
    }

    /// Sends this tick's requests; a request the socket refused ends its transaction.
    pub(super) fn flush(&mut self, now: tokio::time::Instant) {
        let refused = &mut self.refused;
        if let Some(Some(f)) = &self.v4 {
            self.send4.flush(&f.sock, |id, e| refused.push((id, e)));
        }
        if let Some(Some(f)) = &self.v6 {
            self.send6.flush(&f.sock, |id, e| refused.push((id, e)));
        }
        for (id, e) in std::mem::take(&mut self.refused) {
            self.end(id, Err(e.into()), now);
        }
    }

    /// Ends transaction `id` with `outcome`.
    fn end(&mut self, id: u64, outcome: Result<Answer, ProbeError>, now: tokio::time::Instant) {
        if let Some(p) = self.table.close(id) {
            self.conclude(p.data, outcome, now);
        }
    }

    /// Gives an ended transaction's result to its owner. A target's state machine picks its
    /// next probe (the suspect cadence, or the steady interval ±10 %), and the result joins
    /// this pass's batch for the hub; a target removed meanwhile gets nothing.
    fn conclude(
        &mut self,
        flight: Flight,
        outcome: Result<Answer, ProbeError>,
        now: tokio::time::Instant,
    ) {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(flight.started);
        let (wall, ticks) = (flight.wall, self.ticks);
        match flight.owner {
            Owner::Once(once) => {
                let _ = once.reply.send(judge(outcome, &once.policy, wall, elapsed));
            }
            Owner::Target { slot, era } => {
                let Some(s) = self.live(slot, era) else {
                    return;
                };
                s.flight = None;
                let (res, exact) = judge(outcome, &s.spec.policy, wall, elapsed);
                let result = ProbeResult::from_res(res, exact.unwrap_or(elapsed));
                s.health.apply(result.outcome);
                let (wait, timeout) =
                    s.health
                        .next_probe(&s.spec.cadence, elapsed, jitter(rand::random::<f64>()));
                s.timeout = timeout;
                let target = s.spec.target.clone();
                // Never within the tick it ended in, so a target cannot spin inside one pass.
                let at = ticks.after(now, wait).max(ticks.now(now) + 1);
                self.due.push(at, Key::Start { slot, era });
                self.results.push((target, result));
            }
        }
    }
}
