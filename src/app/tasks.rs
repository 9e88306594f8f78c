//! The supervisor of a running instance's tasks. Every task is spawned under a name (`tcp`,
//! `tls`, `https`, `admin`, `health`, `load_pull`, `reload`); the supervisor waits for them
//! while the instance runs and, once it stops, until every one has ended. A task that panics,
//! or ends before shutdown (a listener that stopped accepting), is logged and counted in
//! `sipsteer_task_failures_total{task}`; the others keep serving. The UDP threads report the
//! same way ([`Tasks::failures`] gives them their counter).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use metrics::Counter;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::telemetry::Telemetry;

/// The metric counting tasks and threads that died.
pub(crate) const FAILURES: &str = "sipsteer_task_failures_total";

/// Named tasks, and the failure counter of each name.
pub(crate) struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    counters: HashMap<&'static str, Counter>,
    telemetry: Arc<Telemetry>,
}

impl Tasks {
    pub(crate) fn new(telemetry: Arc<Telemetry>) -> Tasks {
        Tasks {
            set: JoinSet::new(),
            names: HashMap::new(),
            counters: HashMap::new(),
            telemetry,
        }
    }

    /// The failure counter of `name`, present (at 0) from now on.
    pub(crate) fn failures(&mut self, name: &'static str) -> Counter {
        let t = &self.telemetry;
        self.counters
            .entry(name)
            .or_insert_with(|| {
                let c = t.counter(FAILURES, &[("task", name)]);
                c.increment(0);
                c
            })
            .clone()
    }

    /// Spawns `task` under `name`.
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let _ = self.failures(name);
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Supervises the tasks of `set` as one task called `name`: it ends when they all have,
    /// and panics with the panic of the first of them that panicked.
    pub(crate) fn adopt(&mut self, name: &'static str, mut set: JoinSet<()>) {
        self.spawn(name, async move {
            while let Some(r) = set.join_next().await {
                if let Err(e) = r
                    && e.is_panic()
                {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        });
    }

    /// Watches the tasks until `stop` fires and every task has ended, logging and counting
    /// each that dies (see the module notes).
    pub(crate) async fn supervise(mut self, stop: CancellationToken) {
        while let Some(r) = self.set.join_next_with_id().await {
            let (id, panic) = match r {
                Ok((id, ())) => (id, None),
                Err(e) => (e.id(), panic_of(e)),
            };
            let name = self.names.remove(&id).unwrap_or("unnamed");
            let died = match &panic {
                Some(p) => {
                    tracing::error!(task = name, panic = message(p.as_ref()), "task panicked");
                    true
                }
                None if !stop.is_cancelled() => {
                    tracing::error!(task = name, "task ended before shutdown");
                    true
                }
                None => false,
            };
            if died {
                self.failures(name).increment(1);
            }
        }
    }
}

/// The payload of a task that panicked (`None` for one that was aborted).
fn panic_of(e: JoinError) -> Option<Box<dyn Any + Send>> {
    e.try_into_panic().ok()
}

/// What a panic said, when it said it with a string.
pub(crate) fn message(p: &(dyn Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(t: &Telemetry, task: &str) -> Option<u64> {
        let line = format!("{FAILURES}{{task=\"{task}\"}} ");
        t.render()
            .lines()
            .find_map(|l| l.strip_prefix(&line)?.parse().ok())
    }

    /// What the log lines written while it is held say.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            crate::lock::guard(&self.0).extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&crate::lock::guard(&self.0)).into_owned()
        }
    }

    /// One test for every way a task dies: the log lines are checked with a subscriber of
    /// this test's own, which must be the first to see the supervisor's log call sites.
    #[tokio::test]
    async fn a_task_that_dies_is_logged_and_counted_and_the_others_go_on() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // The test's runtime runs every task on this thread.
        let _log = tracing::subscriber::set_default(subscriber);
        let t = Arc::new(Telemetry::new());
        let mut tasks = Tasks::new(t.clone());
        let stop = CancellationToken::new();
        let (s1, s2) = (stop.clone(), stop.clone());
        tasks.spawn("tcp", async move { s1.cancelled().await });
        tasks.spawn("admin", async { panic!("listener broke") });
        tasks.spawn("load_pull", async {});
        let mut inner = JoinSet::new();
        inner.spawn(async move { s2.cancelled().await });
        inner.spawn(async { panic!("probe loop broke") });
        tasks.adopt("health", inner);
        let supervisor = tokio::spawn(tasks.supervise(stop.clone()));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let died = |t: &Telemetry| ["admin", "load_pull", "health"].map(|n| failures(t, n));
        while died(&t) != [Some(1); 3] {
            assert!(tokio::time::Instant::now() < deadline, "{}", t.render());
            tokio::task::yield_now().await;
        }
        assert_eq!(failures(&t, "tcp"), Some(0));
        assert!(!supervisor.is_finished(), "tcp is still supervised");
        let text = log.text();
        for line in [
            "task panicked task=\"admin\" panic=\"listener broke\"",
            "task panicked task=\"health\" panic=\"probe loop broke\"",
            "task ended before shutdown task=\"load_pull\"",
        ] {
            let found = text.lines().find(|l| l.contains(line));
            assert!(
                found.is_some_and(|l| l.contains(" ERROR ")),
                "{line}\n{text}"
            );
        }
        stop.cancel();
        supervisor.await.expect("supervisor ends");
        assert_eq!(
            failures(&t, "tcp"),
            Some(0),
            "ended at shutdown: not a failure"
        );
        assert_eq!(died(&t), [Some(1); 3]);
    }

    #[test]
    fn panic_messages_are_read_from_either_string() {
        assert_eq!(message(&"static"), "static");
        assert_eq!(message(&String::from("owned")), "owned");
        assert_eq!(message(&42u8), "(no message)");
    }
}
