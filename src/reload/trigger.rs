//! The reload thread: every trigger (file watcher, rescan, SIGHUP, `POST /v1/reload`) queues
//! a request here, and one dedicated thread runs them, coalescing requests that arrive while
//! a reload runs. Nothing async ever waits on a reload's file reads, and shutdown never joins
//! this thread: a reload stuck on a hung filesystem cannot stop the process from exiting.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Weak};

use tokio::sync::oneshot;

use super::{Outcome, Reloader};
use crate::lock::guard;

/// Requests waiting for the reload thread; more are refused (a full queue already means a
/// reload is pending).
pub(crate) const QUEUE_DEPTH: usize = 64;

struct Request {
    why: &'static str,
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
    std::thread::Builder::new()
        .name("sipsteer-reload".into())
        .spawn(move || serve(weak, rx))?;
    let _ = reloader.queue.set(Queue(tx));
    Ok(())
}

/// Runs queued reloads until the [`Reloader`] (and with it the queue) is dropped.
fn serve(reloader: Weak<Reloader>, rx: Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let Some(r) = reloader.upgrade() else {
            return;
        };
        let why = batch[0].why;
        // A bug in one reload must not take reloads down for good.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.reload(why)))
            .unwrap_or_else(|_| {
                tracing::error!(
                    trigger = why,
                    "reload panicked; still serving the previous config"
                );
                Outcome::Rejected(super::Rejection::Panicked)
            });
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

impl Reloader {
    /// Asks for a reload and returns at once; the outcome arrives on the receiver.
    pub fn request(&self, why: &'static str) -> Result<oneshot::Receiver<Outcome>, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(Request {
            why,
            reply: Some(tx),
        })?;
        Ok(rx)
    }

    /// Asks for a reload without waiting for it (a full queue already means one is pending).
    pub fn nudge(&self, why: &'static str) {
        if let Err(QueueError::Stopped) = self.enqueue(Request { why, reply: None }) {
            tracing::warn!(trigger = why, "reload thread is not running");
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
