//! The one way a transport serves a query: load the snapshot, answer from it
//! ([`respond_pending`]), count the answer ([`Tally`]) and offer it to the query log. UDP,
//! TCP, DNS over TLS and DNS over HTTPS all call [`Answering`]; they only move bytes around
//! it. A reply that waits for a proof to be signed (a name that does not exist, in a signed
//! zone, with DO=1) is handed to the signer thread here, after the defences and the counters,
//! and the transport is told to send nothing now ([`Served::Later`]).

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::Guard;

use super::answer::respond_pending;
use super::denial::Route;
use super::querylog::QueryLog;
use super::snapshot::{Shared, Snapshot};
use super::stats::Tally;
use super::summary::{Proto, Summary};

/// What serving a query needs: the published snapshot, the listener's counters and the
/// query log. Each UDP thread and each stream connection has its own (a clone).
#[derive(Clone)]
pub(crate) struct Answering {
    shared: Shared,
    tally: Tally,
    log: Option<Arc<QueryLog>>,
}

impl Answering {
    pub(crate) fn new(shared: Shared, tally: Tally, log: Option<Arc<QueryLog>>) -> Answering {
        Answering { shared, tally, log }
    }

    /// The published snapshot (for what a transport reads besides answers, such as the
    /// certificate).
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Answers `request` from `client` into `out` from the current snapshot, and counts and
    /// logs it; a reply that waits for a proof goes to the signer thread, which sends it
    /// along the route `route` makes.
    #[inline]
    pub(crate) fn answer(
        &mut self,
        client: IpAddr,
        proto: Proto,
        request: &[u8],
        out: &mut Vec<u8>,
        route: impl FnOnce() -> Route,
    ) -> Served {
        let snap = self.load();
        self.on(&snap).answer(client, proto, request, out, route)
    }

    /// The current snapshot, loaded once for a batch of queries (one UDP receive) and
    /// answered from with [`Answering::on`].
    #[inline]
    pub(crate) fn load(&self) -> Guard<Arc<Snapshot>> {
        self.shared.load()
    }

    /// Answers from `snap` (from [`Answering::load`]) until dropped.
    #[inline]
    pub(crate) fn on<'a>(&'a mut self, snap: &'a Snapshot) -> OnSnapshot<'a> {
        OnSnapshot {
            snap,
            tally: &mut self.tally,
            log: self.log.as_deref(),
        }
    }
}

/// One snapshot, and the counters and log its answers go to.
pub(crate) struct OnSnapshot<'a> {
    snap: &'a Snapshot,
    tally: &'a mut Tally,
    log: Option<&'a QueryLog>,
}

impl OnSnapshot<'_> {
    /// Answers one query from this snapshot (see [`Answering::answer`]). Inlined into each
    /// transport's loop, so counting stays where the listener counted before and the summary
    /// is not copied out to a caller that only asks whether to send (the UDP thread).
    #[inline(always)]
    pub(crate) fn answer(
        &mut self,
        client: IpAddr,
        proto: Proto,
        request: &[u8],
        out: &mut Vec<u8>,
        route: impl FnOnce() -> Route,
    ) -> Served {
        let mut pending = None;
        // A signature made while this thread answers would count as the query's own.
        super::sigs::on_query(true);
        let summary = respond_pending(self.snap, client, proto, request, out, &mut pending);
        super::sigs::on_query(false);
        let Some(s) = summary else {
            return Served::Nothing;
        };
        self.tally.record(self.snap, &s);
        if let Some(log) = self.log {
            log.note(self.snap, client, request, &s);
        }
        let Some(p) = pending else {
            return Served::Send(s);
        };
        let Some(zone) = self.snap.routing.zones.get(p.zone as usize) else {
            return Served::Dropped(s);
        };
        if self.snap.denial.hand_off(&zone.data, &p, out, route) {
            Served::Later(s)
        } else {
            Served::Dropped(s)
        }
    }
}

/// What became of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// Send the reply now.
    Send(Summary),
    /// The signer thread completes the reply and sends it along the route given.
    Later(Summary),
    /// The reply waited for a proof and the signer's queue was full: nothing is sent
    /// (counted).
    Dropped(Summary),
    /// Send nothing (not a query, or dropped by rate limiting).
    Nothing,
}
