//! Steered answers: NAPTR, SRV and A/AAAA records written from the steering core's plan.

use std::net::IpAddr;

use super::answer::Answer;
use super::writer::Writer;
use crate::routing::SteerRef;
use crate::snapshot::Snapshot;

/// What a steered answer was based on (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steered {
    pub service: u32,
}

/// Writes the steered answer for `qtype`; false when the name has no data of that type.
pub fn answer(
    _snap: &Snapshot,
    _sref: SteerRef,
    _qtype: u16,
    _name: &[u8],
    _client: IpAddr,
    _w: &mut Writer,
    _a: &mut Answer,
) -> bool {
    false
}
