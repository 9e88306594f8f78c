//! The SIP-over-UDP transactions in flight on the probe sockets: keyed by a random number that
//! the request's branch carries as 16 hex digits, each holding what a reply must match (the
//! target, the Call-ID), the scheduler's data of the transaction, and its answer once one
//! came; the transactions answered since the scheduler last looked are listed in order.
//! Replies and ICMP errors are matched here without copying what they carry.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::health::sip::{ParseError, parse_datagram_head};
use crate::health::vocab::describe;

/// How a transaction ended, as read from the socket.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A final response: its code, its detail (`200 OK`) and when the kernel received it.
    Final {
        code: u16,
        detail: String,
        at: Option<SystemTime>,
    },
    /// An ICMP error for the target: the OS error number.
    Unreachable(i32),
}

/// One transaction: what a reply must match, what became of it, and the scheduler's `data`.
pub(super) struct Pending<D> {
    pub target: SocketAddr,
    call_id: u64,
    /// Why the last datagram from the target could not be read, for the timeout message.
    pub bad: Option<ParseError>,
    pub answer: Option<Answer>,
    pub data: D,
}

pub(super) struct Table<D> {
    map: HashMap<u64, Pending<D>, BuildHasherDefault<IdHasher>>,
    /// Transactions that got their answer, in the order they got it.
    answered: Vec<u64>,
}

impl<D> Default for Table<D> {
    fn default() -> Self {
        Table {
            map: HashMap::default(),
            answered: Vec::new(),
        }
    }
}

/// Hashes a transaction id to itself: ids are random already.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<D> Table<D> {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// A new transaction to `target` whose Call-ID is `call_id`, with the scheduler's `data`:
    /// its id.
    pub(super) fn open(&mut self, target: SocketAddr, call_id: u64, data: D) -> u64 {
        let mut id = rand::random::<u64>();
        while self.map.contains_key(&id) {
            id = rand::random::<u64>();
        }
        let p = Pending {
            target,
            call_id,
            bad: None,
            answer: None,
            data,
        };
        self.map.insert(id, p);
        id
    }

    /// Ends transaction `id`: what it was.
    pub(super) fn close(&mut self, id: u64) -> Option<Pending<D>> {
        self.map.remove(&id)
    }

    pub(super) fn contains(&self, id: u64) -> bool {
        self.map.contains_key(&id)
    }

    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut Pending<D>> {
        self.map.get_mut(&id)
    }

    /// Takes the list of transactions answered since the last call (some may have been
    /// closed since), leaving `spare`'s room in its place.
    pub(super) fn take_answered(&mut self, spare: &mut Vec<u64>) {
        spare.clear();
        std::mem::swap(&mut self.answered, spare);
    }

    /// Gives a datagram from `from`, received at `at`, to the transaction it answers.
    pub(super) fn dispatch(
        &mut self,
        datagram: &[u8],
        truncated: bool,
        from: SocketAddr,
        at: Option<SystemTime>,
    ) {
        let r = match parse_datagram_head(datagram, truncated) {
            Ok(r) => r,
            Err(e) => {
                for p in self.map.values_mut().filter(|p| same(p.target, from)) {
                    p.bad = Some(e.clone());
                }
                return;
            }
        };
        if r.code < 200 {
            return;
        }
        let Some(id) = r.branch_id() else {
            return; // not a reply to a probe
        };
        let Some(p) = self.map.get_mut(&id) else {
            return; // a stray or late reply
        };
        if !same(p.target, from) {
            return; // only the target answers for itself, as on a connected socket
        }
        if r.answers(p.call_id) && p.answer.is_none() {
            let detail = describe(r.code, &r.reason, r.retry_after);
            p.answer = Some(Answer::Final {
                code: r.code,
                detail,
                at,
            });
            self.answered.push(id);
        }
    }

    /// Ends the transactions to `dst` with an ICMP error.
    pub(super) fn unreachable(&mut self, dst: SocketAddr, errno: i32) {
        for (id, p) in self.map.iter_mut().filter(|(_, p)| same(p.target, dst)) {
            if p.answer.is_none() {
                p.answer = Some(Answer::Unreachable(errno));
                self.answered.push(*id);
            }
        }
    }
}

/// The round trip of a reply the kernel received at `at` to a request first sent at `sent`
/// (wall clock), `elapsed` ago: exact, but never more than `elapsed` (the wall clock may have
/// been stepped meanwhile); `elapsed` when the kernel gave no time.
pub(super) fn round_trip(sent: SystemTime, elapsed: Duration, at: Option<SystemTime>) -> Duration {
    let exact = at.and_then(|at| at.duration_since(sent).ok());
    exact.map_or(elapsed, |d| d.min(elapsed))
}

/// The same address and port (flow label and scope aside).
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip() && a.port() == b.port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_the_kernel_time_bounded_by_elapsed() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ms = Duration::from_millis;
        assert_eq!(round_trip(sent, ms(12), Some(sent + ms(3))), ms(3));
        assert_eq!(round_trip(sent, ms(12), None), ms(12));
        assert_eq!(round_trip(sent, ms(12), Some(sent - ms(1))), ms(12));
        assert_eq!(round_trip(sent, ms(12), Some(sent + ms(20))), ms(12));
    }
}
