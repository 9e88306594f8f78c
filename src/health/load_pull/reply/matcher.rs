//! Which servers a series belongs to: label name → label value → the query's users (the
//! servers that use it, by their place in its user list). Built once per config.

use std::collections::HashMap;

/// Which users of one query (servers, by their position in the query's user list) a series
/// belongs to, by label name and value.
#[derive(Debug, Default)]
pub struct Matcher {
    pub(super) by_label: HashMap<String, HashMap<String, Vec<u32>>>,
    pub(super) users: usize,
}

impl Matcher {
    /// One item per user: the label and the value that pick its series out of a reply.
    pub fn new<'a>(users: impl IntoIterator<Item = (&'a str, &'a str)>) -> Matcher {
        let mut m = Matcher::default();
        for (label, value) in users {
            let i = u32::try_from(m.users).unwrap_or(u32::MAX);
            m.by_label
                .entry(label.to_owned())
                .or_default()
                .entry(value.to_owned())
                .or_default()
                .push(i);
            m.users += 1;
        }
        m
    }

    /// How many users the query has.
    pub fn users(&self) -> usize {
        self.users
    }
}
