//! An accept loop's errors: every failed `accept` is counted
//! (`sipsteer_accept_errors_total{listener,reason}`) and followed by a wait that doubles from
//! [`FIRST_WAIT`] to [`LAST_WAIT`] while the errors go on, so a listener whose process is out of
//! descriptors (`EMFILE`, `ENFILE`) or kernel memory (`ENOBUFS`, `ENOMEM`) never spins on a
//! socket that stays readable. Out of descriptors or memory, the listener's table closes an
//! idle connection first, which frees a descriptor for the next accept. A warning is logged at
//! the first error and then at most once per [`WARN_EVERY`], with the errors since the last one.
//!
//! [`Accept::next`] is cancel safe: a `select!` may drop it at any point, and the next call
//! waits out what is left of the current wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::Conns;
use crate::telemetry::Telemetry;

/// The wait after the first error of a run.
pub(crate) const FIRST_WAIT: Duration = Duration::from_millis(5);
/// The longest wait between two tries.
pub(crate) const LAST_WAIT: Duration = Duration::from_secs(1);
/// At most one warning per listener in this time.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// The `reason` labels of `sipsteer_accept_errors_total`.
pub(crate) const REASONS: [&str; 5] = ["emfile", "enfile", "enobufs", "enomem", "other"];

/// What happened to an accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM` (the index in [`REASONS`]).
    Exhausted(usize),
    /// Anything else (a connection that failed before it was taken, an unexpected error).
    Other,
}

impl Reason {
    fn of(e: &std::io::Error) -> Reason {
        match e.raw_os_error() {
            Some(libc::EMFILE) => Reason::Exhausted(0),
            Some(libc::ENFILE) => Reason::Exhausted(1),
            Some(libc::ENOBUFS) => Reason::Exhausted(2),
            Some(libc::ENOMEM) => Reason::Exhausted(3),
            _ => Reason::Other,
        }
    }

    fn index(self) -> usize {
        match self {
            Reason::Exhausted(i) => i,
            Reason::Other => REASONS.len() - 1,
        }
    }
}

/// One listener's accept: its backoff, counters and warnings.
pub(crate) struct Accept {
    listener: &'static str,
    errors: [Counter; REASONS.len()],
    /// The table to take an idle connection from when descriptors run out, and the counter
    /// of connections evicted.
    evict: Option<(Arc<Conns>, Counter)>,
    wait: Duration,
    retry_at: Option<Instant>,
    warned_at: Option<Instant>,
    since_warning: u64,
}

impl Accept {
    /// The accept of the listener called `listener` (the metric label); its error series are
    /// registered at 0.
    pub(crate) fn new(listener: &'static str, telemetry: &Telemetry) -> Accept {
        let errors = REASONS.map(|reason| {
            let c = telemetry.counter(
                "sipsteer_accept_errors_total",
                &[("listener", listener), ("reason", reason)],
            );
            c.increment(0);
            c
        });
        Accept {
            listener,
            errors,
            evict: None,
            wait: FIRST_WAIT,
            retry_at: None,
            warned_at: None,
            since_warning: 0,
        }
    }

    /// Out of descriptors or memory, closes an idle connection of `table` (counted on
    /// `evicted`) before the next try.
    pub(crate) fn evicting(self, table: Arc<Conns>, evicted: Counter) -> Accept {
        Accept {
            evict: Some((table, evicted)),
            ..self
        }
    }

    /// The next connection; errors are handled here (see the module notes).
    pub(crate) async fn next(&mut self, listener: &TcpListener) -> (TcpStream, SocketAddr) {
        loop {
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
                self.retry_at = None;
            }
            match listener.accept().await {
                Ok(x) => {
                    self.wait = FIRST_WAIT;
                    return x;
                }
                Err(e) => self.failed(&e, Instant::now()),
            }
        }
    }

    /// Counts one error, frees a descriptor if it can, warns if due and sets the next try.
    fn failed(&mut self, e: &std::io::Error, now: Instant) {
        let reason = Reason::of(e);
        self.errors[reason.index()].increment(1);
        self.since_warning += 1;
        let mut evicted = false;
        if let (Reason::Exhausted(_), Some((table, counter))) = (reason, &self.evict)
            && table.evict_idle()
        {
            counter.increment(1);
            evicted = true;
        }
        if self.warned_at.is_none_or(|at| now >= at + WARN_EVERY) {
            tracing::warn!(
                listener = self.listener,
                errors = self.since_warning,
                error = %e,
                evicted_idle = evicted,
                wait_ms = self.wait.as_millis() as u64,
                "accept failed; backing off (one warning per 10 s at most)"
            );
            self.warned_at = Some(now);
            self.since_warning = 0;
        }
        self.retry_at = Some(now + self.wait);
        self.wait = (self.wait * 2).min(LAST_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conns::Limits;

    fn emfile() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::EMFILE)
    }

    fn count(t: &Telemetry, reason: &str) -> String {
        let want = format!("sipsteer_accept_errors_total{{listener=\"tcp\",reason=\"{reason}\"}} ");
        t.render()
            .lines()
            .find_map(|l| l.strip_prefix(&want).map(str::to_string))
            .unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_a_second_and_reset_after_a_success() {
        let t = Telemetry::new();
        let mut a = Accept::new("tcp", &t);
        let start = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..10 {
            a.failed(&emfile(), start);
            waits.push(a.retry_at.expect("a wait") - start);
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(count(&t, "emfile"), "10");
        assert_eq!(count(&t, "other"), "0");
        a.failed(&std::io::Error::from_raw_os_error(libc::ENOBUFS), start);
        assert_eq!(count(&t, "enobufs"), "1");
        // A real accept resets the wait.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let _c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        a.retry_at = None;
        a.next(&l).await;
        a.failed(&emfile(), start);
        assert_eq!(a.retry_at, Some(start + FIRST_WAIT));
    }

    #[tokio::test(start_paused = true)]
    async fn warns_once_per_interval_counting_the_errors_between() {
        let t = Telemetry::new();
        let mut a = Accept::new("tcp", &t);
        let start = Instant::now();
        a.failed(&emfile(), start);
        assert_eq!((a.warned_at, a.since_warning), (Some(start), 0));
        for i in 1..=5 {
            a.failed(&emfile(), start + Duration::from_secs(i));
        }
        assert_eq!(a.warned_at, Some(start), "no second warning within 10 s");
        assert_eq!(a.since_warning, 5);
        a.failed(&emfile(), start + WARN_EVERY);
        assert_eq!(
            (a.warned_at, a.since_warning),
            (Some(start + WARN_EVERY), 0)
        );
    }

    #[tokio::test]
    async fn out_of_descriptors_an_idle_connection_is_closed() {
        let t = Telemetry::new();
        let table = Conns::new(Limits {
            max: 4,
            per_source: 4,
        });
        let evicted = t.counter("evicted", &[]);
        let mut a = Accept::new("tcp", &t).evicting(table.clone(), evicted);
        let ip = "192.0.2.1".parse().expect("ip");
        let idle = table.admit(ip).expect("admit").conn;
        a.failed(&std::io::Error::other("unexpected"), Instant::now());
        assert!(!idle.is_evicted(), "only exhaustion evicts");
        a.failed(&emfile(), Instant::now());
        assert!(idle.is_evicted());
        assert!(t.render().contains("evicted 1\n"));
    }
}
