//! The signer thread: takes queries handed off by the query threads (a bounded queue;
//! a push to a full one fails at once), signs each one's proof unless another query had it
//! signed meanwhile, keeps it in the cache and sends the completed reply itself: over UDP
//! through a clone of the listener's socket, from the address the query was sent to; over a
//! stream (TCP, DNS over TLS, DNS over HTTPS) to the connection waiting on a oneshot channel,
//! which blocks no thread. One thread: a proof takes about 300 µs with ECDSA P-256 and
//! 50-90 µs with Ed25519, so it signs some 3,000 (P-256) to over 10,000 (Ed25519) new names
//! a second, and a flood of new names beyond that is shed at the queue rather than taking the
//! query threads' cores.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};

use super::cache::Proofs;
use super::proof::on_signer_thread;
use super::{Counts, Pending, Proof};
use crate::lock::guard;
use crate::routing::ZoneData;

/// Where a completed reply goes.
pub(crate) enum Route {
    /// A UDP query: the listener socket's clone, the sender, and the address the query was
    /// sent to (a wildcard socket's reply leaves from it).
    Udp {
        sock: Arc<UdpSocket>,
        peer: SocketAddr,
        source: Option<IpAddr>,
    },
    /// A stream connection waiting for the reply.
    Stream(tokio::sync::oneshot::Sender<Vec<u8>>),
}

/// One query waiting for its proof: its reply but for the proof, and what signing and
/// sending it take.
pub(super) struct Job {
    pub reply: Vec<u8>,
    pub pending: Pending,
    pub zone: Arc<ZoneData>,
    pub proofs: Arc<Proofs>,
    pub counts: Arc<Counts>,
    pub route: Route,
}

/// The queries waiting for the signer, at most the configured number (read at each push,
/// so a reload that changes `dnssec.denial.queue` applies at once). The signer thread parks
/// while it is empty and a push unparks it.
#[derive(Default)]
pub(crate) struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    /// The number of jobs, read without the lock.
    len: AtomicUsize,
    closed: AtomicBool,
    /// The signer thread, once started.
    signer: OnceLock<Thread>,
}

impl Queue {
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Queues `job` unless `cap` jobs wait already (or the signer has stopped).
    pub(super) fn try_push(&self, job: Job, cap: usize) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let mut jobs = guard(&self.jobs);
        if jobs.len() >= cap {
            return false;
        }
        jobs.push_back(job);
        self.len.store(jobs.len(), Ordering::Relaxed);
        drop(jobs);
        if let Some(t) = self.signer.get() {
            t.unpark();
        }
        true
    }

    /// The next job, parking while there is none; `None` once the queue is closed.
    fn pop(&self) -> Option<Job> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            let mut jobs = guard(&self.jobs);
            if let Some(j) = jobs.pop_front() {
                self.len.store(jobs.len(), Ordering::Relaxed);
                return Some(j);
            }
            drop(jobs);
            // A push (or close) after the check above unparks: this returns at once then.
            std::thread::park();
        }
    }

    /// Stops the signer; the jobs still queued are dropped (a stream connection waiting for
    /// one sees its channel closed).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let dropped = std::mem::take(&mut *guard(&self.jobs));
        self.len.store(0, Ordering::Relaxed);
        if let Some(t) = self.signer.get() {
            t.unpark();
        }
        drop(dropped);
    }
}

/// The running signer thread.
pub(crate) struct SignerThread {
    queue: Arc<Queue>,
    thread: JoinHandle<()>,
}

/// Starts the signer thread on `queue`.
pub(crate) fn spawn_signer(queue: Arc<Queue>) -> io::Result<SignerThread> {
    let q = queue.clone();
    let thread = std::thread::Builder::new()
        .name("sipsteer-signer".into())
        .spawn(move || run(&q))?;
    Ok(SignerThread { queue, thread })
}

impl SignerThread {
    /// Stops the thread (the jobs still queued are dropped) and waits for it.
    pub(crate) fn stop(self) {
        self.queue.close();
        let _ = self.thread.join();
    }

    /// Tells the thread to stop, without waiting for it.
    pub(crate) fn close(&self) {
        self.queue.close();
    }
}

fn run(queue: &Queue) {
    on_signer_thread();
    // Before the first look at the queue, so no push can miss waking this thread. One signer
    // per queue (per instance).
    let _ = queue.signer.set(std::thread::current());
    let mut send = Sender::new();
    while let Some(job) = queue.pop() {
        serve(job, &mut send);
    }
}

/// Signs (or finds) the job's proof, completes its reply and sends it.
fn serve(job: Job, send: &mut Sender) {
    let Job {
        mut reply,
        pending,
        zone,
        proofs,
        counts,
        route,
    } = job;
    let Some(key) = zone.key.as_deref() else {
        return;
    };
    let name = pending.owner.name();
    let ttl = super::proof::ttl(&zone);
    let kept = proofs
        .get(key, zone.window.inception, name)
        .filter(|p| p.fits(key, ttl));
    let proof = match kept {
        Some(p) => p,
        None => {
            let Some(p) = Proof::sign(&zone, name, &counts) else {
                return;
            };
            let p = Arc::new(p);
            proofs.insert(key, zone.window.inception, name, p.clone());
            p
        }
    };
    if !proof.splice(&mut reply, pending.at, &pending.owner) {
        return;
    }
    match route {
        Route::Udp { sock, peer, source } => send.udp(&sock, &reply, peer, source),
        Route::Stream(tx) => {
            let _ = tx.send(reply);
        }
    }
}

/// Sends UDP replies from a chosen source address (`sendmmsg` of one, with the source in a
/// control message, as the listener sends its batches).
struct Sender {
    #[cfg(target_os = "linux")]
    mmsg: crate::sys::Mmsg,
}

impl Sender {
    fn new() -> Sender {
        Sender {
            #[cfg(target_os = "linux")]
            mmsg: crate::sys::Mmsg::new(crate::sys::Shape {
                recv: 0,
                part: 0,
                send: 1,
                control: false,
            }),
        }
    }

    #[cfg(target_os = "linux")]
    fn udp(&mut self, sock: &UdpSocket, reply: &[u8], peer: SocketAddr, source: Option<IpAddr>) {
        let mut out = self.mmsg.outbox();
        if out.push(reply, crate::sys::To::Addr(peer), source)
            && let Err(e) = out.send(sock, 0, 0)
        {
            tracing::debug!(error = %e, %peer, "udp send of a signed reply failed");
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn udp(&mut self, sock: &UdpSocket, reply: &[u8], peer: SocketAddr, _: Option<IpAddr>) {
        if let Err(e) = sock.send_to(reply, peer) {
            tracing::debug!(error = %e, %peer, "udp send of a signed reply failed");
        }
    }
}
