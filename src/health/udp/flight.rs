//! The SIP-over-UDP transactions of the engine ([`Flights`]), whoever owns them (`O`: a
//! scheduled target or a one-off probe). A transaction is opened when a probe starts, its
//! request sent at once and again from T1 = 500 ms doubling until its timeout; it ends with
//! the first final response that matches it, an ICMP error, a send the socket refused, or its
//! timeout. The engine keeps each transaction's next retransmission or timeout in its wheel
//! (by the tick [`Flights::open`] and [`Flights::advance`] return) and is handed each ended
//! transaction ([`Ended`]) to give its owner the result.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use super::io::{Event, Family, Outgoing, mmsg};
use super::schedule::Ticks;
use super::table::{Answer, Table, round_trip};
use crate::health::sip::{Ids, push_options_request};
use crate::health::vocab::{CodePolicy, ProbeError, Res, T1};
use crate::sys::Mmsg;

/// One transaction's own data (the table holds what a reply must match).
struct Flight<O> {
    owner: O,
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
}

/// A transaction that ended, on its way to its owner.
pub(super) struct Ended<O> {
    pub owner: O,
    pub verdict: Verdict,
}

/// How a transaction ended, and when.
pub(super) struct Verdict {
    outcome: Result<Answer, ProbeError>,
    wall: SystemTime,
    /// From the first send to the end.
    pub elapsed: Duration,
}

impl Verdict {
    /// The probe's answer or error, and the exact round trip when a final response came.
    pub(super) fn judge(self, policy: &CodePolicy) -> (Res, Option<Duration>) {
        match self.outcome {
            Ok(Answer::Final { code, detail, at }) => (
                Ok((policy.classify(code), Some(code), detail)),
                Some(round_trip(self.wall, self.elapsed, at)),
            ),
            Ok(Answer::Unreachable(errno)) => {
                (Err(std::io::Error::from_raw_os_error(errno).into()), None)
            }
            Err(e) => (Err(e), None),
        }
    }
}

/// What a transaction does next.
pub(super) enum Step<O> {
    /// Its next retransmission or timeout is due at this tick.
    Wait(u64),
    Ended(Ended<O>),
    /// Nothing: it is gone, or answered and waiting to be handed over.
    Nothing,
}

pub(super) struct Flights<O> {
    ticks: Ticks,
    table: Table<Flight<O>>,
    /// The sockets, opened at first need (`Some(None)`: could not be).
    v4: Option<Option<Family>>,
    v6: Option<Option<Family>>,
    send4: Outgoing,
    send6: Outgoing,
    mmsg: Mmsg,
    /// Room for the list of answered transactions.
    answered: Vec<u64>,
    /// Transactions the last send refused, with why.
    refused: Vec<(u64, std::io::Error)>,
}

impl<O> Flights<O> {
    pub(super) fn new(ticks: Ticks) -> Flights<O> {
        Flights {
            ticks,
            table: Table::default(),
            v4: None,
            v6: None,
            send4: Outgoing::default(),
            send6: Outgoing::default(),
            mmsg: mmsg(),
            answered: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// Transactions in flight.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn contains(&self, id: u64) -> bool {
        self.table.contains(id)
    }

    /// Forgets the source addresses found for destinations that `keep` refuses.
    pub(super) fn retain_local(&mut self, keep: impl Fn(&IpAddr) -> bool) {
        for fam in [&mut self.v4, &mut self.v6].into_iter().flatten().flatten() {
            fam.retain_local(&keep);
        }
    }

    /// The socket for targets of this family, opened at first need.
    fn family(&mut self, v4: bool) -> Option<&mut Family> {
        let cell = if v4 { &mut self.v4 } else { &mut self.v6 };
        cell.get_or_insert_with(|| Family::open(v4).ok()).as_mut()
    }

    /// Opens a transaction to `target` for `owner` and writes its request into this pass's
    /// batch: its id and the tick of its next step, or its end when there is no socket.
    pub(super) fn open(
        &mut self,
        target: SocketAddr,
        timeout: Duration,
        owner: O,
        now: tokio::time::Instant,
    ) -> Result<(u64, u64), Ended<O>> {
        let local = self
            .family(target.is_ipv4())
            .map(|f| SocketAddr::new(f.local_ip(target.ip()), f.port));
        let unspecified: IpAddr = match target {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let call_id = rand::random::<u64>();
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
        };
        if local.is_none() {
            let e = std::io::Error::other("cannot open the probe socket");
            return Err(ended(flight, Err(e.into())));
        }
        let id = self.table.open(target, call_id, flight);
        let next = self.send(id).unwrap_or(deadline);
        Ok((id, next))
    }

    /// Writes the request of `id` into its socket's batch: the tick of what comes next, the
    /// retransmission at T1, 3·T1, 7·T1... after the first send, or the timeout if sooner.
    fn send(&mut self, id: u64) -> Option<u64> {
        let p = self.table.get_mut(id)?;
        let target = p.target;
        let f = &mut p.data;
        let batch = if target.is_ipv4() {
            &mut self.send4
        } else {
            &mut self.send6
        };
        let ids = Ids {
            branch: id,
            tag: f.tag,
            call_id: f.call_id,
        };
        let local = f.local;
        batch.push(target, id, |w| {
            push_options_request(w, target, local, "UDP", &ids);
        });
        f.sent += f.interval;
        f.interval *= 2;
        Some(self.ticks.after(f.started, f.sent).min(f.deadline))
    }

    /// The retransmission or timeout of `id` is due at tick `t` (the sockets were read in
    /// this tick already, so a reply that came in time has ended it).
    pub(super) fn advance(&mut self, id: u64, t: u64) -> Step<O> {
        let Some(p) = self.table.get_mut(id) else {
            return Step::Nothing;
        };
        if p.answer.is_some() {
            return Step::Nothing;
        }
        if t < p.data.deadline {
            return self.send(id).map_or(Step::Nothing, Step::Wait);
        }
        let timeout = p.data.timeout;
        let e = p.bad.take().map_or(ProbeError::Timeout(timeout), |e| {
            ProbeError::BadResponse(e.to_string())
        });
        self.end(id, Err(e)).map_or(Step::Nothing, Step::Ended)
    }

    /// Reads the sockets into the table (only while something is in flight).
    pub(super) fn read(&mut self) {
        if self.table.len() == 0 {
            return;
        }
        let table = &mut self.table;
        for fam in [&self.v4, &self.v6].into_iter().flatten().flatten() {
            fam.read(&mut self.mmsg, |e| match e {
                Event::Reply {
                    data,
                    truncated,
                    from,
                    at,
                } => table.dispatch(data, truncated, from, at),
                Event::Unreachable { dst, errno } => table.unreachable(dst, errno),
            });
        }
    }

    /// Ends the transactions answered since the last pass, in the order they were answered,
    /// into `out`.
    pub(super) fn take_answered(&mut self, out: &mut Vec<Ended<O>>) {
        let mut answered = std::mem::take(&mut self.answered);
        self.table.take_answered(&mut answered);
        for &id in &answered {
            let Some(p) = self.table.close(id) else {
                continue;
            };
            // Not answered after all cannot happen; it would time out as if never answered.
            let outcome = p.answer.ok_or(ProbeError::Timeout(Duration::ZERO));
            out.push(ended(p.data, outcome));
        }
        self.answered = answered;
    }

    /// Sends this pass's requests; a request the socket refused ends its transaction, into
    /// `out`.
    pub(super) fn flush(&mut self, out: &mut Vec<Ended<O>>) {
        let refused = &mut self.refused;
        if let Some(Some(f)) = &self.v4 {
            self.send4
                .flush(&f.sock, &mut self.mmsg, |id, e| refused.push((id, e)));
        }
        if let Some(Some(f)) = &self.v6 {
            self.send6
                .flush(&f.sock, &mut self.mmsg, |id, e| refused.push((id, e)));
        }
        for (id, e) in std::mem::take(&mut self.refused) {
            out.extend(self.end(id, Err(e.into())));
        }
    }

    /// Ends transaction `id` with `outcome`.
    fn end(&mut self, id: u64, outcome: Result<Answer, ProbeError>) -> Option<Ended<O>> {
        self.table.close(id).map(|p| ended(p.data, outcome))
    }

    /// Ends transaction `id` without a result (its owner went away): the owner.
    pub(super) fn close(&mut self, id: u64) -> Option<O> {
        self.table.close(id).map(|p| p.data.owner)
    }
}

fn ended<O>(f: Flight<O>, outcome: Result<Answer, ProbeError>) -> Ended<O> {
    Ended {
        owner: f.owner,
        verdict: Verdict {
            outcome,
            wall: f.wall,
            elapsed: tokio::time::Instant::now().saturating_duration_since(f.started),
        },
    }
}
