//! The probe engine and its one entry, [`UdpProber`]: one task that schedules every probe of
//! a monitor on the common tick and runs SIP OPTIONS over UDP for all of them through one
//! socket per address family (`engine`, with its transactions in `flight` and `table`, its
//! wheel in `schedule`, its targets in `targets`, its sockets in `io`); TCP checks run as short tasks it spawns. Anyone
//! may also ask it for a one-off SIP-over-UDP probe ([`UdpProber::sip`]), which takes the same
//! path as a scheduled one. A UDP probe costs a table entry and its sends; no socket, buffer,
//! task, timer or channel of its own. The kernel stamps each reply with its arrival time
//! (`SO_TIMESTAMPNS`), so the round trip is exact however late in the tick the reply is read,
//! and a probe's timeout is judged only after the sockets were read in that tick, so a reply
//! that arrived in time always counts.

mod engine;
mod flight;
mod io;
mod schedule;
mod table;
mod targets;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::vocab::{CodePolicy, ProbeError, ProbeSpec, Res};
pub(crate) use engine::Sink;
use engine::{Engine, Once, Shared};

/// The probe engine of a monitor, or a standalone one for one-off probes.
pub struct UdpProber {
    shared: std::sync::Arc<Shared>,
    /// Where scheduled results go, until the task starts with it.
    sink: Mutex<Option<Sink>>,
    task: Mutex<Option<JoinHandle<()>>>,
    cancel: CancellationToken,
}

impl Default for UdpProber {
    /// A prober for one-off probes only; its task starts with the first probe.
    fn default() -> Self {
        UdpProber::new(None)
    }
}

impl UdpProber {
    fn new(sink: Option<Sink>) -> UdpProber {
        UdpProber {
            shared: std::sync::Arc::default(),
            sink: Mutex::new(sink),
            task: Mutex::new(None),
            cancel: CancellationToken::new(),
        }
    }

    /// A prober that also schedules targets ([`UdpProber::set_targets`]), their results going
    /// to `sink`.
    pub(crate) fn scheduling(sink: Sink) -> UdpProber {
        UdpProber::new(Some(sink))
    }

    /// Starts the task on `rt` (or the current runtime) unless it runs already.
    fn ensure_task(&self, rt: Option<&tokio::runtime::Handle>) {
        let mut task = crate::lock::guard(&self.task);
        if task.is_some() || self.cancel.is_cancelled() {
            return;
        }
        let Some(rt) = rt
            .cloned()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
        else {
            return;
        };
        let sink = crate::lock::guard(&self.sink).take();
        let engine = Engine::new(self.shared.clone(), sink);
        *task = Some(rt.spawn(engine.run(self.cancel.clone())));
    }

    /// Probes exactly these targets from now on, whatever their check, on the task running
    /// on `rt`.
    pub(crate) fn set_targets(&self, specs: Vec<ProbeSpec>, rt: Option<&tokio::runtime::Handle>) {
        let running = crate::lock::guard(&self.task).is_some();
        if specs.is_empty() && !running {
            return;
        }
        crate::lock::guard(&self.shared.inbox).targets = Some(specs);
        self.shared.wake.notify_one();
        self.ensure_task(rt);
    }

    /// Stops the task and waits for it (and the checks it runs) to end; probes still open
    /// end with `probe socket closed`.
    pub(crate) async fn shutdown(&self) {
        self.cancel.cancel();
        let task = crate::lock::guard(&self.task).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// One SIP OPTIONS probe of `target`: sent at once, retransmitted from T1 = 500 ms
    /// doubling, 1xx skipped, answered by the first final response that matches branch,
    /// Call-ID and CSeq; refused when the target's port is unreachable. With a final
    /// response comes its round trip, from the first send to the kernel's receive time.
    pub(crate) async fn sip(
        &self,
        target: SocketAddr,
        timeout: Duration,
        policy: &CodePolicy,
    ) -> (Res, Option<Duration>) {
        let (tx, rx) = oneshot::channel();
        crate::lock::guard(&self.shared.inbox).once.push(Once {
            target,
            timeout,
            policy: policy.clone(),
            reply: tx,
        });
        self.shared.wake.notify_one();
        self.ensure_task(None);
        tokio::select! {
            r = rx => r.unwrap_or((Err(ProbeError::SocketClosed), None)),
            () = self.cancel.cancelled() => (Err(ProbeError::SocketClosed), None),
        }
    }
}

impl Drop for UdpProber {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
