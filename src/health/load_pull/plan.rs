//! What one load source asks, worked out once per config rather than per round: its
//! distinct queries, each with the [`Matcher`] of the servers that use it, and where each
//! server's calls and cps come from.

use std::collections::HashMap;
use std::sync::Arc;

use super::reply::Matcher;
use crate::config::load_source::LoadSource;

/// One distinct PromQL string and the servers that use it.
pub(super) struct Query {
    pub promql: Arc<str>,
    pub matcher: Arc<Matcher>,
}

/// Where one value of a server comes from: a query, and the server's place among its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub query: usize,
    pub user: usize,
}

pub(super) struct Plan {
    pub source: Arc<LoadSource>,
    pub queries: Vec<Query>,
    /// Per server of `source.servers`, in order: its calls and its cps.
    pub slots: Vec<[Option<Slot>; 2]>,
}

impl Plan {
    pub(super) fn new(source: Arc<LoadSource>) -> Plan {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut users: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
        let mut slots = Vec::with_capacity(source.servers.len());
        for s in &source.servers {
            let user = (s.label.as_str(), s.value.as_str());
            let calls = slot(s.calls.as_deref(), user, &mut index, &mut users);
            let cps = slot(s.cps.as_deref(), user, &mut index, &mut users);
            slots.push([calls, cps]);
        }
        let queries = users
            .into_iter()
            .map(|(q, list)| Query {
                promql: Arc::from(q),
                matcher: Arc::new(Matcher::new(list)),
            })
            .collect();
        Plan {
            source,
            queries,
            slots,
        }
    }
}

/// The slot of one user of query `q`, the query added if it is new.
fn slot<'a>(
    q: Option<&'a str>,
    user: (&'a str, &'a str),
    index: &mut HashMap<&'a str, usize>,
    users: &mut Vec<(&'a str, Vec<(&'a str, &'a str)>)>,
) -> Option<Slot> {
    let q = q?;
    let query = *index.entry(q).or_insert_with(|| {
        users.push((q, Vec::new()));
        users.len() - 1
    });
    let list = &mut users.get_mut(query)?.1;
    list.push(user);
    Some(Slot {
        query,
        user: list.len() - 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_source::ServerQueries;

    fn server(name: &str, calls: Option<&str>, cps: Option<&str>) -> ServerQueries {
        ServerQueries {
            region: "uk".into(),
            server: name.into(),
            calls: calls.map(Into::into),
            cps: cps.map(Into::into),
            label: "server".into(),
            value: name.into(),
        }
    }

    #[test]
    fn shared_queries_are_asked_once_with_every_user() {
        let src = LoadSource {
            url: "http://127.0.0.1:9".into(),
            interval: std::time::Duration::from_secs(5),
            timeout: std::time::Duration::from_secs(2),
            ca: None,
            auth: None,
            max_series: 10,
            max_bytes: 1024,
            files: Vec::new(),
            servers: vec![
                server("a", Some("calls"), Some("cps")),
                server("b", Some("calls"), None),
                server("c", Some("own"), Some("cps")),
            ],
        };
        let p = Plan::new(Arc::new(src));
        let names: Vec<&str> = p.queries.iter().map(|q| &*q.promql).collect();
        assert_eq!(names, ["calls", "cps", "own"]);
        let users: Vec<usize> = p.queries.iter().map(|q| q.matcher.users()).collect();
        assert_eq!(users, [2, 2, 1]);
        let s = |query, user| Some(Slot { query, user });
        assert_eq!(
            p.slots,
            [[s(0, 0), s(1, 0)], [s(0, 1), None], [s(2, 0), s(1, 1)]]
        );
    }
}
