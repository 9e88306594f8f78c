//! The event log: a bounded ring of what happened to one instance that an operator wants to
//! see in order (server flips, forced states set, applied or expired, reloads applied or
//! refused with their errors, load pulls failing and recovering). `/v1/events`, the `/ui`
//! page and `sipsteer ctl events` read it. Events are recorded off the query path; the ring
//! holds the last [`CAPACITY`] of them, each message cut at [`MAX_MESSAGE`] bytes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::lock::guard;

/// Events kept; the oldest gives way to a new one.
pub const CAPACITY: usize = 1024;
/// Longest message kept; a longer one is cut (on a character boundary) and ends with `…`.
pub const MAX_MESSAGE: usize = 4096;
/// Most events one read returns.
pub const MAX_READ: usize = CAPACITY;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A server's probed state changed (`up` → `down`, …).
    Flip,
    /// An operator forced a state through the admin API, or cleared it.
    Forced,
    /// A forced state took effect with time, not through an action or a reload (an operator
    /// state file entry under one that ended).
    ForcedStarted,
    /// A forced state (from the API or the operator state file) ended at its `until`.
    ForcedEnded,
    /// A reload applied a new config.
    Reload,
    /// A reload was refused; the old config keeps serving.
    ReloadRejected,
    /// Pulling load from Prometheus failed.
    LoadPullFailed,
    /// Pulling load from Prometheus works again.
    LoadPullRecovered,
}

impl Kind {
    /// The word written out (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Flip => "flip",
            Kind::Forced => "forced",
            Kind::ForcedStarted => "forced_started",
            Kind::ForcedEnded => "forced_ended",
            Kind::Reload => "reload",
            Kind::ReloadRejected => "reload_rejected",
            Kind::LoadPullFailed => "load_pull_failed",
            Kind::LoadPullRecovered => "load_pull_recovered",
        }
    }
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Numbers every event of this instance from 1, without gaps.
    pub seq: u64,
    /// Wall-clock time, Unix milliseconds.
    pub unix_ms: u64,
    pub kind: Kind,
    /// What it happened to: `region/server`, the config file, the Prometheus URL.
    pub subject: String,
    pub message: String,
}

/// What one read returns.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The events after the `since` asked for, oldest first.
    pub events: Vec<Event>,
    /// The `since` to ask for next (the last event's `seq`, or the `since` given when none).
    pub next: u64,
    /// Events after `since` that are no longer in the ring (it had to give them away).
    pub missed: u64,
}

#[derive(Default)]
struct Ring {
    last_seq: u64,
    items: VecDeque<Event>,
}

/// The ring. Cheap to record into; one short lock, never held across an await.
#[derive(Default)]
pub struct EventLog {
    ring: Mutex<Ring>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventLog")
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `text` cut at [`MAX_MESSAGE`] bytes with `…`.
fn cut(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl EventLog {
    /// Records one event now.
    pub fn record(&self, kind: Kind, subject: impl Into<String>, message: impl Into<String>) {
        let (subject, message) = (cut(subject.into()), cut(message.into()));
        let unix_ms = unix_ms();
        let mut ring = guard(&self.ring);
        ring.last_seq += 1;
        let seq = ring.last_seq;
        if ring.items.len() == CAPACITY {
            ring.items.pop_front();
        }
        ring.items.push_back(Event {
            seq,
            unix_ms,
            kind,
            subject,
            message,
        });
    }

    /// The events with `seq > since`, oldest first, at most `limit` (and [`MAX_READ`]). A
    /// `since` beyond the last event (numbered by an instance that has restarted since) reads
    /// from the start.
    pub fn since(&self, since: u64, limit: usize) -> Page {
        let limit = limit.min(MAX_READ);
        let ring = guard(&self.ring);
        let since = if since > ring.last_seq { 0 } else { since };
        let first = ring.items.front().map_or(ring.last_seq + 1, |e| e.seq);
        let missed = first.saturating_sub(since.saturating_add(1));
        let skip = ring.items.partition_point(|e| e.seq <= since);
        let events: Vec<Event> = ring.items.iter().skip(skip).take(limit).cloned().collect();
        let next = events.last().map_or(since, |e| e.seq);
        Page {
            events,
            next,
            missed,
        }
    }

    /// The number of the last event recorded (0 before the first).
    pub fn last_seq(&self) -> u64 {
        guard(&self.ring).last_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_capacity_events_and_reports_what_was_missed() {
        let log = EventLog::default();
        for i in 0..(CAPACITY + 10) {
            log.record(Kind::Flip, format!("uk/s{i}"), "up → down");
        }
        let p = log.since(0, MAX_READ);
        assert_eq!(p.events.len(), CAPACITY);
        assert_eq!(p.events[0].seq, 11);
        assert_eq!(p.missed, 10);
        assert_eq!(p.next, (CAPACITY + 10) as u64);
        let p = log.since(p.next - 2, 1);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].subject, format!("uk/s{}", CAPACITY + 8));
        assert_eq!(p.missed, 0);
        let p = log.since((CAPACITY + 10) as u64, 5);
        assert!(p.events.is_empty());
        assert_eq!(p.next, (CAPACITY + 10) as u64);
    }

    #[test]
    fn long_messages_are_cut() {
        let log = EventLog::default();
        log.record(Kind::ReloadRejected, "a.yaml", "é".repeat(MAX_MESSAGE));
        let m = &log.since(0, 1).events[0].message;
        assert!(m.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(m.ends_with('…'));
    }

    #[test]
    fn a_since_beyond_the_last_event_reads_from_the_start() {
        let log = EventLog::default();
        log.record(Kind::Reload, "sipsteer.yaml", "generation 2");
        let p = log.since(99, 10);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.next, 1);
        assert_eq!(p.missed, 0);
    }
}
