//! The reload thread: every trigger (file watcher, rescan, SIGHUP, `POST /v1/reload`) queues
//! a request here, and one dedicated thread runs them, coalescing requests that arrive while
//! a reload runs. Nothing async ever waits on a reload's file reads, and shutdown never joins
//! this thread: a reload stuck on a hung filesystem cannot stop the process from exiting.
//! File events are debounced and the periodic rescan is timed by [`run`], on the runtime.
//!
//! While the config has a TLS certificate, the thread also checks the certificate and key
//! files itself between requests (one `stat` each every [`CERT_POLL`]), so a renewal reaches
//! new handshakes within a second even where the file watcher sees nothing: a directory it
//! cannot watch, a network filesystem, a directory symlink swapped above the files, events
//! lost to a full queue.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

use super::{Outcome, Reloader};
use crate::lock::guard;

/// What asked for a reload. Its name ([`Trigger::as_str`]) is the `trigger` field of the
/// reload log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A watched file changed (events debounced by [`run`]).
    FileChange,
    /// The periodic rescan (`reload.rescan`): the only trigger that trusts file identities.
    Rescan,
    /// SIGHUP.
    Sighup,
    /// `POST /v1/reload`.
    Api,
    /// The GeoIP database of an early start is to be compiled.
    Geoip,
    /// The certificate or key of the encrypted listeners changed on disk.
    CertificateChange,
}

impl Trigger {
    /// The name written in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::FileChange => "file change",
            Trigger::Rescan => "rescan",
            Trigger::Sighup => "SIGHUP",
            Trigger::Api => "api",
            Trigger::Geoip => "geoip",
            Trigger::CertificateChange => "certificate change",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Requests waiting for the reload thread; more are refused (a full queue already means a
/// reload is pending).
pub(crate) const QUEUE_DEPTH: usize = 64;

struct Request {
    why: Trigger,
    reply: Option<oneshot::Sender<Outcome>>,
}

/// The sending side, kept in the [`Reloader`].
pub(crate) struct Queue(SyncSender<Request>);

/// Why a reload request was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// [`QUEUE_DEPTH`] requests are already waiting.
    Full,
    /// No reload thread runs (not started, or gone).
    Stopped,
}

/// Starts the reload thread for `reloader` (once; later calls do nothing).
pub(crate) fn spawn(reloader: &Arc<Reloader>) -> std::io::Result<()> {
    if reloader.queue.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_DEPTH);
    let weak = Arc::downgrade(reloader);
    // The files as the first load found them (give or take the moments since it read them).
    let certs = CertPoll {
        seen: CertPoll::stamps(&reloader.shared().load().config),
        pending: None,
    };
    std::thread::Builder::new()
        .name("sipsteer-reload".into())
        .spawn(move || serve(weak, rx, certs))?;
    let _ = reloader.queue.set(Queue(tx));
    Ok(())
}

/// How often the certificate and key are checked for a change (see the module notes).
pub(crate) const CERT_POLL: Duration = Duration::from_millis(250);

/// Runs queued reloads until the [`Reloader`] (and with it the queue) is dropped.
fn serve(reloader: Weak<Reloader>, rx: Receiver<Request>, mut certs: CertPoll) {
    loop {
        let polling = reloader
            .upgrade()
            .is_some_and(|r| r.shared().load().config.tls.is_some());
        let first = if polling {
            match rx.recv_timeout(CERT_POLL) {
                Ok(req) => req,
                Err(RecvTimeoutError::Timeout) => {
                    let Some(r) = reloader.upgrade() else { return };
                    if !certs.due(&r.shared().load().config) {
                        continue;
                    }
                    Request {
                        why: Trigger::CertificateChange,
                        reply: None,
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(req) => req,
                Err(_) => return,
            }
        };
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let Some(r) = reloader.upgrade() else {
            return;
        };
        let why = batch[0].why;
        let before = CertPoll::stamps(&r.shared().load().config);
        // A bug in one reload must not take reloads down for good.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.reload(why)))
            .unwrap_or_else(|_| {
                tracing::error!(
                    trigger = why.as_str(),
                    "reload panicked; still serving the previous config"
                );
                Outcome::Rejected(super::Rejection::Panicked)
            });
        certs.reloaded(before);
        if let Some(w) = guard(&r.watcher).as_mut() {
            w.refresh(&r.shared().load().config);
        }
        drop(r);
        for req in batch {
            if let Some(reply) = req.reply {
                let _ = reply.send(out.clone());
            }
        }
    }
}

/// What `stat` says about one file (symlinks followed): a rename over it, an in-place write or
/// a symlink re-aimed anywhere on its path changes one of these. `None`: cannot be read.
type Stamp = Option<(u64, u64, u64, (i64, i64, i64, i64))>;

/// The certificate and key as the last reload found them, and a change seen by the last poll.
struct CertPoll {
    seen: Vec<(PathBuf, Stamp)>,
    pending: Option<Vec<(PathBuf, Stamp)>>,
}

impl CertPoll {
    fn stamps(cfg: &Config) -> Vec<(PathBuf, Stamp)> {
        let files = cfg.tls.iter().flat_map(|t| [&t.certificate, &t.key]);
        files
            .map(|p| {
                let stamp = std::fs::metadata(p).ok().map(|m| {
                    let times = (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
                    (m.dev(), m.ino(), m.len(), times)
                });
                (p.clone(), stamp)
            })
            .collect()
    }

    /// Whether the files changed since the last reload and then held still for one poll (so a
    /// certificate renamed in just before its key is not loaded alone).
    fn due(&mut self, cfg: &Config) -> bool {
        let now = Self::stamps(cfg);
        if self.seen == now {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() == Some(&now) {
            return true;
        }
        self.pending = Some(now);
        false
    }

    /// A reload ran; `before` is what the files were just before it read them.
    fn reloaded(&mut self, before: Vec<(PathBuf, Stamp)>) {
        self.seen = before;
        self.pending = None;
    }
}

impl Reloader {
    /// Asks for a reload and returns at once; the outcome arrives on the receiver.
    pub fn request(&self, why: Trigger) -> Result<oneshot::Receiver<Outcome>, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Request {
            why,
            reply: Some(tx),
        })?;
        Ok(rx)
    }

    /// Asks for a reload without waiting for it (a full queue already means one is pending).
    pub fn nudge(&self, why: Trigger) {
        if let Err(QueueError::Stopped) = self.enqueue(Request { why, reply: None }) {
            tracing::warn!(trigger = why.as_str(), "reload thread is not running");
        }
    }

    fn enqueue(&self, req: Request) -> Result<(), QueueError> {
        let q = self.queue.get().ok_or(QueueError::Stopped)?;
        q.0.try_send(req).map_err(|e| match e {
            TrySendError::Full(_) => QueueError::Full,
            TrySendError::Disconnected(_) => QueueError::Stopped,
        })
    }
}

/// Quiet time that ends a burst of file events (editors write in bursts: rename, write, chmod).
pub(crate) const DEBOUNCE_QUIET: Duration = Duration::from_millis(300);
/// Longest wait after the first event of a burst: a file rewritten without pause (a log, a
/// generator, an attacker) cannot hold reloads off for longer than this.
pub(crate) const DEBOUNCE_MAX: Duration = Duration::from_secs(1);

/// Asks the reload thread for a reload on nudges (debounced: [`DEBOUNCE_QUIET`] without an
/// event, at most [`DEBOUNCE_MAX`] after the first) and on the periodic rescan (every
/// `reload.rescan` of the serving config), until `cancel` fires; never waits for the reload
/// itself. Neither trigger starves the other.
pub async fn run(
    reloader: Arc<Reloader>,
    mut nudges: mpsc::Receiver<()>,
    cancel: CancellationToken,
) {
    use tokio::time::{Instant, sleep_until};
    let mut last_rescan = Instant::now();
    loop {
        // Read each time: a reload may have changed it.
        let next_rescan = last_rescan + reloader.shared().load().config.rescan;
        let why = tokio::select! {
            // A due rescan goes first: a stream of file events cannot postpone it.
            biased;
            () = cancel.cancelled() => return,
            () = sleep_until(next_rescan) => {
                last_rescan = Instant::now();
                Trigger::Rescan
            }
            n = nudges.recv() => match n {
                Some(()) => {
                    let deadline = Instant::now() + DEBOUNCE_MAX;
                    loop {
                        let quiet = (Instant::now() + DEBOUNCE_QUIET).min(deadline);
                        tokio::select! {
                            more = nudges.recv() => if more.is_none() { break },
                            () = sleep_until(quiet) => break,
                            () = cancel.cancelled() => return,
                        }
                    }
                    Trigger::FileChange
                }
                None => return,
            },
        };
        reloader.nudge(why);
    }
}
