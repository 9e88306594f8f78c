//! One probe of one target outside the scheduler (tests, tools): SIP OPTIONS over UDP through
//! a probe engine ([`UdpProber`], the path scheduled probes take), a TCP connect or SIP over
//! TCP or TLS directly. The words of a probe are re-exported from the health vocabulary.

use std::time::{Duration, Instant};

pub use super::vocab::{CodePolicy, Outcome, ProbeError, ProbeResult, Target, TlsFailure, TlsSeen};

use super::udp::UdpProber;
use super::{tcp, tls, ws};
use crate::config::Check;

/// Runs one probe, bounded by `timeout` (SIP over UDP through an engine of its own).
pub async fn probe(target: &Target, timeout: Duration, policy: &CodePolicy) -> ProbeResult {
    probe_with(target, timeout, policy, None).await
}

/// Like [`probe`], sending SIP over UDP through `udp`'s engine when given (else through an
/// engine started for this probe).
pub async fn probe_with(
    target: &Target,
    timeout: Duration,
    policy: &CodePolicy,
    udp: Option<&UdpProber>,
) -> ProbeResult {
    match target.check {
        Check::SipTls | Check::SipWss => {
            return Box::pin(tls::probe(target, timeout, policy)).await;
        }
        Check::SipWs => return ws::probe(target, timeout, policy).await,
        Check::SipUdp => {}
        _ => return tcp::probe(target, timeout, policy).await,
    }
    let start = Instant::now();
    let (r, exact) = match udp {
        Some(u) => u.sip(target.addr, timeout, policy).await,
        None => UdpProber::default().sip(target.addr, timeout, policy).await,
    };
    ProbeResult::from_res(r, exact.unwrap_or_else(|| start.elapsed()))
}
