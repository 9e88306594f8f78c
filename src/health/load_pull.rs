//! Load pulled from Prometheus: every `load.interval`, one instant query per distinct PromQL
//! string (a template without per-server variables is one query for every server), each
//! server's series picked out by its label, and the round's loads recorded in the hub at once
//! (one published view per round, whatever the number of servers).
//!
//! A reply is read as it arrives, on a blocking thread (`fetch`, `reply`), never built as a
//! tree and never on a runtime worker: only the series of configured servers are kept, found
//! through a label map built once per config (`plan`). A reply over `load.max_series` or
//! `load.max_bytes` fails its query; NaN, infinite and negative values are refused, counted
//! and shown (`round`, `status`). When Prometheus cannot be reached or a query fails, no
//! report is made, so the last one expires after `capacity.report_ttl` and the server's load
//! becomes unknown (fail open). The puller owns its query tasks and its HTTP client's
//! connection tasks: it stops and waits for them when cancelled.
//!
//! Its handle, [`LoadPuller`], owns the load source it follows (each config the health hub is
//! bound to hands it over, [`LoadPuller::follow`]) and what its rounds did (`/v1/status`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod fetch;
mod meters;
mod plan;
pub mod reply;
mod round;
mod status;
#[cfg(test)]
mod tests;

use super::hub::HealthHub;
use crate::config::Config;
use crate::config::load_source::LoadSource;
use crate::events::Kind;
use crate::lock::guard;
use fetch::{HttpClient, Owned, PullError};
use plan::Plan;
pub use status::PullStatus;

/// Queries in flight at once.
const MAX_IN_FLIGHT: usize = 8;

/// The trust anchors a client was built for (`None`: the built-in roots).
type Trust = Option<Vec<CertificateDer<'static>>>;
/// One round's replies, by query (`None`: not run).
type Replies = Vec<Option<Result<reply::Reply, PullError>>>;

/// The load puller's handle: the load source it follows and what its rounds did.
#[derive(Default)]
pub struct LoadPuller {
    /// The load source of the config bound last, if it pulls load.
    source: Mutex<Option<Arc<LoadSource>>>,
    /// What the last rounds did; `None` until a round has run.
    status: Mutex<Option<PullStatus>>,
}

impl LoadPuller {
    pub fn new() -> Arc<LoadPuller> {
        Arc::new(LoadPuller::default())
    }

    /// Follows the load source of `cfg` from the next round on (none: pulls nothing). Called
    /// with every config the health hub is bound to.
    pub fn follow(&self, cfg: &Config) {
        *guard(&self.source) = cfg.load_source.clone().map(Arc::new);
    }

    /// The load source followed.
    pub(crate) fn source(&self) -> Option<Arc<LoadSource>> {
        guard(&self.source).clone()
    }

    /// What the last rounds of pulled load did, once a round has run.
    pub fn status(&self) -> Option<PullStatus> {
        guard(&self.status).clone()
    }

    /// Records a round in the status.
    fn record(&self, f: impl FnOnce(&mut PullStatus)) {
        f(guard(&self.status).get_or_insert_with(PullStatus::default));
    }

    /// Polls until `cancel` fires, following the load source and recording the loads in
    /// `hub`; then stops its queries and connections and waits for them.
    pub async fn run(self: Arc<Self>, hub: Arc<HealthHub>, cancel: CancellationToken) {
        let mut puller = Puller::new(self, hub);
        puller.poll(&cancel).await;
        puller.stop().await;
    }
}

/// The puller's state across rounds: the plan of the current load source and a client for
/// its CA (both rebuilt only when the config changes them).
pub(super) struct Puller {
    handle: Arc<LoadPuller>,
    hub: Arc<HealthHub>,
    owned: Owned,
    client: Option<(Trust, Result<HttpClient, String>)>,
    plan: Option<Arc<Plan>>,
    meters: meters::Meters,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Puller {
    pub(super) fn new(handle: Arc<LoadPuller>, hub: Arc<HealthHub>) -> Puller {
        Puller {
            handle,
            owned: Owned::default(),
            client: None,
            plan: None,
            meters: meters::Meters::new(&hub.telemetry),
            hub,
        }
    }

    async fn poll(&mut self, cancel: &CancellationToken) {
        loop {
            let wait = match self.handle.source() {
                Some(src) => {
                    if !self.round(&src, cancel).await {
                        return;
                    }
                    src.interval
                }
                None => Duration::from_secs(1),
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Drops the client and waits for its connections to end.
    pub(super) async fn stop(mut self) {
        self.client = None;
        self.owned.shutdown().await;
    }

    /// The plan of `src`, built again only when the load source changed.
    fn plan(&mut self, src: &Arc<LoadSource>) -> Arc<Plan> {
        match &self.plan {
            Some(p) if Arc::ptr_eq(&p.source, src) || *p.source == **src => p.clone(),
            _ => {
                let p = Arc::new(Plan::new(src.clone()));
                self.plan = Some(p.clone());
                p
            }
        }
    }

    /// A client trusting the CA of `src`, built again only when that changed.
    fn client(&mut self, src: &LoadSource) -> Result<HttpClient, String> {
        if self.client.as_ref().is_none_or(|(ca, _)| *ca != src.ca) {
            let c = fetch::client(src.ca.as_deref(), self.owned.clone());
            self.client = Some((src.ca.clone(), c));
        }
        match &self.client {
            Some((_, c)) => c.clone(),
            None => Err("no client".to_owned()),
        }
    }

    /// One round: every distinct query once, then the loads of every server recorded at once.
    /// False when `cancel` fired first (the queries in flight are stopped and waited for).
    pub(super) async fn round(
        &mut self,
        src: &Arc<LoadSource>,
        cancel: &CancellationToken,
    ) -> bool {
        let started = Instant::now();
        let plan = self.plan(src);
        let replies = match self.client(src) {
            Ok(client) => match queries(&client, &plan, cancel).await {
                Some(r) => r,
                None => return false,
            },
            Err(e) => (0..plan.queries.len())
                .map(|_| Some(Err(PullError::Tls(e.clone()))))
                .collect(),
        };
        let loads = round::loads(&plan, &replies);
        let recorded = self.hub.load_round(loads.reports.iter().copied());
        self.account(&plan, &replies, &loads, recorded, started);
        true
    }

    /// Counts the round in the metrics and `/v1/status`.
    fn account(
        &self,
        plan: &Plan,
        replies: &Replies,
        loads: &round::Loads<'_>,
        recorded: usize,
        started: Instant,
    ) {
        let src = &plan.source;
        let m = &self.meters;
        let (mut ok, mut failed, mut series) = (0u64, 0u64, 0usize);
        let mut first_error = None;
        for (q, r) in plan.queries.iter().zip(replies) {
            match r {
                Some(Ok(reply)) => {
                    ok += 1;
                    series += reply.series;
                }
                Some(Err(e)) => {
                    failed += 1;
                    if let Some(c) = e.over_limit().and_then(|l| m.refused(l)) {
                        c.increment(1);
                    }
                    if first_error.is_none() {
                        first_error = Some(format!("query `{}` to {}: {e}", q.promql, src.url));
                    }
                }
                None => {}
            }
        }
        m.ok.increment(ok);
        m.error.increment(failed);
        for (c, n) in m.rejected.iter().zip(loads.rejected) {
            c.increment(n);
        }
        let now = now_unix();
        self.handle.record(|st| {
            st.url.clone_from(&src.url);
            st.servers = src.servers.len();
            st.queries_per_interval = plan.queries.len();
            st.max_series = src.max_series;
            st.max_bytes = src.max_bytes;
            st.last_attempt_unix = now;
            st.queries_ok += ok;
            st.queries_failed += failed;
            if failed == 0 {
                st.last_success_unix = now;
            }
            st.last_round_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            st.last_round_series = series;
            st.last_round_loads = recorded;
            st.last_round_rejected = usize::try_from(loads.rejected_total()).unwrap_or(usize::MAX);
            st.rejected_total += loads.rejected_total();
            st.rejections.clone_from(&loads.listed);
            if st.last_error != first_error {
                let events = self.hub.events();
                if let Some(e) = &first_error {
                    tracing::warn!(
                        "load from prometheus failed (loads expire after capacity.report_ttl): {e}"
                    );
                    events.record(Kind::LoadPullFailed, src.url.clone(), e.clone());
                } else if st.last_error.is_some() {
                    tracing::info!(url = %src.url, "load from prometheus works again");
                    events.record(Kind::LoadPullRecovered, src.url.clone(), "works again");
                }
            }
            st.last_error = first_error;
        });
        if failed == 0 {
            m.last_success.set(now as f64);
        }
    }
}

/// Every query of `plan`, at most [`MAX_IN_FLIGHT`] at once; `None` when `cancel` fired.
async fn queries(
    client: &HttpClient,
    plan: &Arc<Plan>,
    cancel: &CancellationToken,
) -> Option<Replies> {
    let mut replies: Replies = (0..plan.queries.len()).map(|_| None).collect();
    let mut pending = 0..plan.queries.len();
    let mut set = JoinSet::new();
    loop {
        while set.len() < MAX_IN_FLIGHT
            && let Some(i) = pending.next()
        {
            let (client, plan) = (client.clone(), plan.clone());
            set.spawn(async move {
                let q = &plan.queries[i];
                let r = fetch::query(&client, &plan.source, &q.promql, q.matcher.clone()).await;
                (i, r)
            });
        }
        if set.is_empty() {
            return Some(replies);
        }
        let next = tokio::select! {
            r = set.join_next() => r,
            () = cancel.cancelled() => {
                set.shutdown().await;
                return None;
            }
        };
        if let Some(Ok((i, r))) = next
            && let Some(slot) = replies.get_mut(i)
        {
            *slot = Some(r);
        }
    }
}
