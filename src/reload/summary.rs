//! How a refused reload is reported in logs, `/v1/status` and `POST /v1/reload`: the first
//! [`MAX_REPORTED`] problems, each cut at [`MAX_PROBLEM_BYTES`], then how many more there
//! are. `sipsteer check` prints them all.

use super::{LoadError, Outcome, Rejection, ReloadResult, Reloader, Trigger};
use crate::lock::guard;

/// Problems of one refused reload written out in full.
pub const MAX_REPORTED: usize = 20;
/// Longest problem written out; a longer one is cut and ends with `…`.
pub const MAX_PROBLEM_BYTES: usize = 1024;

impl Rejection {
    /// How many problems the refused load had.
    pub fn count(&self) -> usize {
        match self {
            Rejection::Load(e) => e.count(),
            Rejection::Panicked => 1,
        }
    }

    /// The first [`MAX_REPORTED`] problems, one a line, and a last line
    /// `and K more problems (run \`sipsteer check\` to see them all)` when there are more.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        match self {
            Rejection::Load(LoadError::Config(errors)) => {
                for (i, e) in errors.0.iter().take(MAX_REPORTED).enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    push_cut(&mut out, &e.to_string());
                }
            }
            Rejection::Load(LoadError::Geo(e)) => push_cut(&mut out, &e.to_string()),
            Rejection::Panicked => push_cut(&mut out, &self.to_string()),
        }
        let more = self.count().saturating_sub(MAX_REPORTED);
        if more > 0 {
            let s = if more == 1 { "" } else { "s" };
            out.push_str(&format!(
                "\nand {more} more problem{s} (run `sipsteer check` to see them all)"
            ));
        }
        out
    }
}

impl Reloader {
    /// Records a rejected load, reported as its [`Rejection::summary`]. The same error again
    /// (the rescan, or several triggers for one edit) is one rejection: logged and counted
    /// once. The log line is written after the status lock is released.
    pub(super) fn reject(&self, why: Trigger, r: Rejection, serving: u64) -> Outcome {
        let e = r.summary();
        let fresh = {
            let mut st = guard(&self.status);
            st.last_result = ReloadResult::Error;
            let fresh = st.last_error.as_deref() != Some(&e);
            if fresh {
                st.rejected += 1;
                st.last_error = Some(e.clone());
                st.last_error_count = Some(r.count());
            }
            fresh
        };
        if fresh {
            self.count(ReloadResult::Error, serving);
            tracing::error!(
                trigger = why.as_str(),
                "config rejected, still serving generation {serving}:\n{e}"
            );
            self.events.record(
                crate::events::Kind::ReloadRejected,
                self.path.display().to_string(),
                format!(
                    "refused ({}), still serving generation {serving}:\n{e}",
                    why.as_str()
                ),
            );
        }
        Outcome::Rejected(r)
    }
}

/// Appends `text`, cut at [`MAX_PROBLEM_BYTES`] (on a character boundary) with `…`.
fn push_cut(out: &mut String, text: &str) {
    if text.len() <= MAX_PROBLEM_BYTES {
        out.push_str(text);
    } else {
        let mut end = MAX_PROBLEM_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&text[..end]);
        out.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, ConfigErrors};

    fn problems(n: usize, message: &str) -> Rejection {
        let errors = (1..=n)
            .map(|i| ConfigError {
                file: "zones/a.yaml".into(),
                line: i as u64,
                column: 3,
                path: "records.x".into(),
                message: message.into(),
            })
            .collect();
        Rejection::Load(LoadError::Config(ConfigErrors(errors)))
    }

    #[test]
    fn up_to_the_cap_every_problem_is_written() {
        let r = problems(MAX_REPORTED, "bad");
        assert_eq!(r.summary(), r.to_string());
        assert_eq!(r.summary().lines().count(), MAX_REPORTED);
    }

    #[test]
    fn past_the_cap_the_rest_are_counted() {
        let r = problems(MAX_REPORTED + 1, "bad");
        let s = r.summary();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), MAX_REPORTED + 1);
        assert_eq!(lines[0], "zones/a.yaml:1:3: records.x: bad");
        assert_eq!(lines[MAX_REPORTED - 1], "zones/a.yaml:20:3: records.x: bad");
        assert_eq!(
            lines[MAX_REPORTED],
            "and 1 more problem (run `sipsteer check` to see them all)"
        );
        assert!(
            problems(57, "bad")
                .summary()
                .ends_with("\nand 37 more problems (run `sipsteer check` to see them all)")
        );
    }

    #[test]
    fn a_long_problem_is_cut_on_a_character_boundary() {
        let r = problems(1, &"é".repeat(MAX_PROBLEM_BYTES));
        let s = r.summary();
        assert!(s.ends_with('…'));
        assert!(s.len() <= MAX_PROBLEM_BYTES + '…'.len_utf8());
        assert!(s.starts_with("zones/a.yaml:1:3: records.x: éé"));
    }
}
