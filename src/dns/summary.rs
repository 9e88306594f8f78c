//! What one answered query was, in the words the counters and the query log use: the
//! transport it arrived on ([`Proto`]), the reply's outline ([`Summary`]) and, for a steered
//! name, what steering based it on ([`Steered`]). A leaf: the answer path writes these, the
//! counters and the log read them.

use crate::steering::Reason;

/// How the query arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
    /// DNS over TLS.
    Tls,
    /// DNS over HTTPS.
    Https,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
            Proto::Https => "https",
        }
    }
}

/// What was answered, for metrics and the query log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub proto: Proto,
    pub rcode: u16,
    pub qtype: u16,
    pub truncated: bool,
    pub ecs: bool,
    /// Set for steered answers.
    pub steered: Option<Steered>,
    /// Index of the zone that answered.
    pub zone: Option<u32>,
}

/// What a steered answer was based on (for metrics and the query log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steered {
    pub service: u32,
    /// Global index of the first region answered, if any.
    pub region: Option<usize>,
    pub reason: Reason,
    pub fail_open: bool,
}

/// The label of a fail-open answer (every candidate down, the nearest answered anyway).
pub(crate) const ALL_DOWN: &str = "all_down";

impl Steered {
    /// The reason as the query log and metrics name it: `all_down` when every candidate was
    /// down and the nearest was answered anyway (fail open), else the ranking's reason.
    pub fn reason_label(&self) -> &'static str {
        if self.fail_open {
            ALL_DOWN
        } else {
            self.reason.as_str()
        }
    }
}
