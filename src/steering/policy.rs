//! Ranking policies: for each distinct set of regions and fallback order, every ranking a
//! client can get and the GeoIP map from address blocks to them; built once per set and
//! GeoIP database, and taken over from the previous compile while both are unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use super::rank::{Ranking, rank_location};
use crate::config::{Config, RegionConfig, ServiceConfig};
use crate::geo::{GeoData, GeoMap};

/// The rankings of one set of regions and fallback order: every distinct ranking, and the
/// GeoIP map from address blocks to their positions.
#[derive(Debug)]
pub(super) struct Policy {
    /// What the rankings depend on: the regions (location, country and continent lists, in
    /// order), the fallback order, the biases, and the GeoIP data.
    key: PolicyKey,
    geo: Option<std::sync::Weak<GeoData>>,
    pub(super) map: Option<GeoMap>,
    pub(super) rankings: Vec<Ranking>,
}

type PolicyKey = (
    Vec<(String, u64, u64, Vec<[u8; 2]>, Vec<[u8; 2]>)>,
    Vec<u16>,
    Vec<u64>,
);

fn policy_key(regs: &[&RegionConfig], fallback: &[u16], bias: &[f64]) -> PolicyKey {
    (
        regs.iter()
            .map(|r| {
                (
                    r.name.clone(),
                    r.location.0.to_bits(),
                    r.location.1.to_bits(),
                    r.countries.clone(),
                    r.continents.clone(),
                )
            })
            .collect(),
        fallback.to_vec(),
        bias.iter().map(|b| b.to_bits()).collect(),
    )
}

impl Policy {
    /// Its rankings, those covering the most address space first.
    pub(super) fn by_catchment(&self) -> Vec<&Ranking> {
        let mut by_size: Vec<(u128, &Ranking)> = match &self.map {
            Some(m) => m
                .catchments(self.rankings.len())
                .into_iter()
                .zip(&self.rankings)
                .collect(),
            None => self.rankings.iter().map(|r| (0, r)).collect(),
        };
        by_size.sort_by_key(|b| std::cmp::Reverse(b.0));
        by_size.into_iter().map(|(_, r)| r).collect()
    }
}

/// The ranking policies built so far for one compile: one per distinct set of regions and
/// fallback order, taken from the previous compile when its regions and database match.
pub(super) struct Policies<'a> {
    list: Vec<Arc<Policy>>,
    index: HashMap<PolicyKey, usize>,
    /// Positions of policies taken over from the previous compile, by address: services of
    /// unchanged zones find theirs without hashing its key.
    adopted: HashMap<*const Policy, usize>,
    /// The policies of the previous compile.
    previous: Option<&'a [Arc<Policy>]>,
    geo: Option<&'a Arc<GeoData>>,
}

impl<'a> Policies<'a> {
    pub(super) fn new(
        previous: Option<&'a [Arc<Policy>]>,
        geo: Option<&'a Arc<GeoData>>,
    ) -> Policies<'a> {
        Policies {
            list: Vec::new(),
            index: HashMap::new(),
            adopted: HashMap::new(),
            previous,
            geo,
        }
    }

    /// Every policy built or taken over, by position.
    pub(super) fn into_list(self) -> Vec<Arc<Policy>> {
        self.list
    }

    /// The position of a policy of the previous compile for service `s`: itself when it was
    /// built on the same GeoIP data, else built or reused by key.
    pub(super) fn adopt(&mut self, old: &Arc<Policy>, cfg: &Config, s: &ServiceConfig) -> usize {
        if !same_geo(old.geo.as_ref(), self.geo) {
            let (regs, fallback, bias) = regions_of(cfg, s);
            return self.position(&regs, &fallback, &bias);
        }
        if let Some(&i) = self.adopted.get(&Arc::as_ptr(old)) {
            return i;
        }
        let i = match self.index.get(&old.key) {
            Some(&i) => i,
            None => {
                self.list.push(old.clone());
                self.index.insert(old.key.clone(), self.list.len() - 1);
                self.list.len() - 1
            }
        };
        self.adopted.insert(Arc::as_ptr(old), i);
        i
    }

    /// The position of the policy for these regions, fallback order and biases, built or
    /// reused.
    pub(super) fn position(
        &mut self,
        regs: &[&RegionConfig],
        fallback: &[u16],
        bias: &[f64],
    ) -> usize {
        let key = policy_key(regs, fallback, bias);
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let reused = self.previous.and_then(|p| {
            p.iter()
                .find(|old| old.key == key && same_geo(old.geo.as_ref(), self.geo))
        });
        let policy = match reused {
            Some(p) => p.clone(),
            None => Arc::new(build_policy(key.clone(), regs, fallback, bias, self.geo)),
        };
        self.list.push(policy);
        self.index.insert(key, self.list.len() - 1);
        self.list.len() - 1
    }
}

/// A service's regions, its fallback order as positions among them, and its biases per
/// position (empty when it has none).
pub(super) fn regions_of<'c>(
    cfg: &'c Config,
    s: &ServiceConfig,
) -> (Vec<&'c RegionConfig>, Vec<u16>, Vec<f64>) {
    let regs: Vec<&RegionConfig> = s.regions.iter().map(|&i| &cfg.regions[i]).collect();
    let pos_of = |g: usize| s.regions.iter().position(|&r| r == g).unwrap_or(0) as u16;
    let fallback: Vec<u16> = s.fallback.iter().map(|&g| pos_of(g)).collect();
    let mut bias = Vec::new();
    if !s.bias.is_empty() {
        bias = vec![0.0; regs.len()];
        for &(g, km) in &s.bias {
            bias[pos_of(g) as usize] = km;
        }
    }
    (regs, fallback, bias)
}

fn same_geo(old: Option<&std::sync::Weak<GeoData>>, new: Option<&Arc<GeoData>>) -> bool {
    match (old, new) {
        (None, None) => true,
        (Some(o), Some(n)) => std::ptr::eq(o.as_ptr(), Arc::as_ptr(n)),
        _ => false,
    }
}

fn build_policy(
    key: PolicyKey,
    regs: &[&RegionConfig],
    fallback: &[u16],
    bias: &[f64],
    geo: Option<&Arc<GeoData>>,
) -> Policy {
    let mut rankings: Vec<Ranking> = Vec::new();
    let mut index: HashMap<Ranking, u32> = HashMap::new();
    let mut intern = |r: Ranking| -> u32 {
        *index.entry(r.clone()).or_insert_with(|| {
            rankings.push(r);
            (rankings.len() - 1) as u32
        })
    };
    let no_location = intern(rank_location(None, regs, fallback, bias));
    let map = geo.map(|g| {
        let classes: Vec<u32> = g
            .table
            .locations
            .iter()
            .map(|l| intern(rank_location(Some(l), regs, fallback, bias)))
            .collect();
        GeoMap::compile(&g.table, &classes, no_location)
    });
    Policy {
        key,
        geo: geo.map(Arc::downgrade),
        map,
        rankings,
    }
}
