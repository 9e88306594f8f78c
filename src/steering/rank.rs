//! Ranking regions for a location: overrides aside, country and continent lists first, then
//! great-circle distance less each region's bias, and the fallback order when nothing is
//! known.

use crate::config::RegionConfig;
use crate::geo::{Location, distance_km};

use super::Reason;

/// An ordered list of positions in a service's region list, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ranking {
    pub order: Box<[u16]>,
    pub reason: Reason,
}

/// Ranks `regions` (a service's list, in its order) for a client location.
/// `fallback` (positions) is used when the location says nothing useful. `bias` (per
/// position, or empty) is taken off each region's distance in kilometres; a distance ranking
/// whose order the bias changed has the reason [`Reason::Bias`].
pub fn rank_location(
    loc: Option<&Location>,
    regions: &[&RegionConfig],
    fallback: &[u16],
    bias: &[f64],
) -> Ranking {
    let Some(loc) = loc else {
        return fallback_ranking(regions.len(), fallback);
    };
    let tier = |r: &RegionConfig| {
        if loc.country.is_some_and(|c| r.countries.contains(&c)) {
            0u8
        } else if loc.continent.is_some_and(|c| r.continents.contains(&c)) {
            1
        } else {
            2
        }
    };
    let mut keyed: Vec<(u8, f64, u16)> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let d = loc
                .coords
                .map_or(f64::INFINITY, |c| distance_km(c, r.location));
            (tier(r), d, i as u16)
        })
        .collect();
    let best = keyed.iter().map(|k| k.0).min().unwrap_or(2);
    if best == 2 && loc.coords.is_none() {
        return fallback_ranking(regions.len(), fallback);
    }
    let sort = |keyed: &mut Vec<(u8, f64, u16)>| {
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    };
    let unbiased = (best == 2 && !bias.is_empty()).then(|| {
        let mut plain = keyed.clone();
        sort(&mut plain);
        plain
    });
    for k in &mut keyed {
        k.1 -= bias.get(k.2 as usize).copied().unwrap_or(0.0);
    }
    sort(&mut keyed);
    let biased = unbiased.is_some_and(|u| u.iter().zip(&keyed).any(|(a, b)| a.2 != b.2));
    Ranking {
        order: keyed.iter().map(|k| k.2).collect(),
        reason: match best {
            0 => Reason::Country,
            1 => Reason::Continent,
            _ if biased => Reason::Bias,
            _ => Reason::Distance,
        },
    }
}

/// The fallback order, then every other region in the service's order.
pub(super) fn fallback_ranking(n: usize, fallback: &[u16]) -> Ranking {
    let mut order: Vec<u16> = fallback.to_vec();
    order.extend((0..n as u16).filter(|i| !fallback.contains(i)));
    Ranking {
        order: order.into_boxed_slice(),
        reason: Reason::Fallback,
    }
}

/// Region `pos` first, then the others by distance from it.
pub fn rank_pinned(pos: u16, regions: &[&RegionConfig], reason: Reason) -> Ranking {
    let home = regions[pos as usize].location;
    let mut others: Vec<(f64, u16)> = regions
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u16 != pos)
        .map(|(i, r)| (distance_km(home, r.location), i as u16))
        .collect();
    others.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut order = vec![pos];
    order.extend(others.iter().map(|o| o.1));
    Ranking {
        order: order.into_boxed_slice(),
        reason,
    }
}
