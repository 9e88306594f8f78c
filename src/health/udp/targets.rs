//! The engine's scheduled targets: one slot each, reused once freed, with an era bumped each
//! time a slot is freed so that the wheel's keys naming an earlier target miss. A target
//! keeps its own copy of its state machine (to pick its next probe), its next timeout and its
//! probe in flight.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::health::state::Probed;
use crate::health::vocab::{ProbeSpec, Target};

/// A place for a target, and its era (kept beside the target: one line to read for both).
#[derive(Default)]
struct Place {
    era: u32,
    slot: Option<Slot>,
}

/// One scheduled target.
pub(super) struct Slot {
    pub spec: ProbeSpec,
    pub health: Probed,
    /// The next probe's timeout.
    pub timeout: Duration,
    /// Its probe in flight.
    pub busy: Option<Busy>,
}

/// A probe in flight.
pub(super) enum Busy {
    /// A SIP-over-UDP transaction.
    Flight(u64),
    /// A task running a TCP check.
    Check(AbortHandle),
}

#[derive(Default)]
pub(super) struct Targets {
    places: Vec<Place>,
    free: Vec<u32>,
    by_target: HashMap<Target, u32>,
}

impl Targets {
    /// Targets scheduled.
    pub(super) fn len(&self) -> usize {
        self.by_target.len()
    }

    pub(super) fn contains(&self, t: &Target) -> bool {
        self.by_target.contains_key(t)
    }

    /// Drops every target not in `wanted`, or wanted with another spec; `gone` gets the
    /// probe each had in flight.
    pub(super) fn retain(
        &mut self,
        wanted: &HashMap<Target, ProbeSpec>,
        mut gone: impl FnMut(Busy),
    ) {
        let places = &self.places;
        let drop: Vec<(Target, u32)> = self
            .by_target
            .iter()
            .filter(|(t, i)| {
                let spec = places[**i as usize].slot.as_ref().map(|s| &s.spec);
                wanted.get(*t) != spec
            })
            .map(|(t, i)| (t.clone(), *i))
            .collect();
        for (t, i) in drop {
            self.by_target.remove(&t);
            let place = &mut self.places[i as usize];
            place.era = place.era.wrapping_add(1);
            if let Some(busy) = place.slot.take().and_then(|s| s.busy) {
                gone(busy);
            }
            self.free.push(i);
        }
    }

    /// A new target: its slot and era.
    pub(super) fn add(&mut self, spec: ProbeSpec) -> (u32, u32) {
        let i = self.free.pop().unwrap_or_else(|| {
            self.places.push(Place::default());
            (self.places.len() - 1) as u32
        });
        self.by_target.insert(spec.target.clone(), i);
        let place = &mut self.places[i as usize];
        place.slot = Some(Slot {
            health: Probed::new(spec.thresholds),
            timeout: spec.cadence.timeout,
            spec,
            busy: None,
        });
        (i, place.era)
    }

    /// The target in `slot` if it is still the one `era` named.
    pub(super) fn live(&mut self, slot: u32, era: u32) -> Option<&mut Slot> {
        let place = self.places.get_mut(slot as usize)?;
        if place.era != era {
            return None;
        }
        place.slot.as_mut()
    }

    /// Whether `slot` still holds the target `era` named.
    pub(super) fn is_live(&self, slot: u32, era: u32) -> bool {
        self.places
            .get(slot as usize)
            .is_some_and(|p| p.era == era && p.slot.is_some())
    }
}
