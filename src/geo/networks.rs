//! The network table as kept after loading: per family, the start of every range and of
//! every gap between them, with the location id (or none for a gap). A range's end is the
//! next start; nothing else is stored, so a range costs 8 bytes (IPv4) or 20 (IPv6).

use std::net::IpAddr;

use super::{Location, NetworkTable};

/// The location id of a gap (addresses the database does not know).
const GAP: u32 = u32::MAX;

/// Sorted starts from address 0 up; `loc[i]` holds from `starts[i]` to `starts[i + 1] - 1`
/// (the last to the end of the space). Empty when the family has no networks.
#[derive(Debug, Default)]
struct Ranges<T> {
    starts: Vec<T>,
    loc: Vec<u32>,
}

impl<T> Ranges<T>
where
    T: Copy + Ord + From<u8> + std::ops::Add<Output = T> + std::ops::Sub<Output = T>,
{
    fn new(ranges: &[(T, T, u32)], max: T) -> Ranges<T> {
        let (zero, one) = (T::from(0), T::from(1));
        let mut r = Ranges {
            starts: Vec::with_capacity(ranges.len() + ranges.len() / 4 + 2),
            loc: Vec::with_capacity(ranges.len() + ranges.len() / 4 + 2),
        };
        let mut next = Some(zero);
        for &(first, last, loc) in ranges {
            if next.is_some_and(|n| n < first) {
                r.push(next.unwrap_or(zero), GAP);
            }
            r.push(first, loc);
            next = (last < max).then(|| last + one);
        }
        if let Some(n) = next
            && !r.starts.is_empty()
        {
            r.push(n, GAP);
        }
        r.starts.shrink_to_fit();
        r.loc.shrink_to_fit();
        r
    }

    fn push(&mut self, start: T, loc: u32) {
        self.starts.push(start);
        self.loc.push(loc);
    }

    /// Every range with a location, as `(first, last, location id)`.
    fn iter(&self, max: T) -> impl Iterator<Item = (T, T, u32)> + '_ {
        let one = T::from(1);
        (0..self.starts.len()).filter_map(move |i| {
            let loc = self.loc[i];
            let last = self.starts.get(i + 1).map_or(max, |&n| n - one);
            (loc != GAP).then(|| (self.starts[i], last, loc))
        })
    }

    fn find(&self, x: T, max: T) -> Option<(T, T, u32)> {
        let i = self.starts.partition_point(|&s| s <= x).checked_sub(1)?;
        let loc = *self.loc.get(i)?;
        let last = self.starts.get(i + 1).map_or(max, |&n| n - T::from(1));
        (loc != GAP).then(|| (self.starts[i], last, loc))
    }

    fn len(&self) -> usize {
        self.loc.iter().filter(|&&l| l != GAP).count()
    }
}

/// The compact form of a [`NetworkTable`]: same ranges, same locations.
#[derive(Debug, Default)]
pub struct Networks {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
    /// Deduplicated; a location id indexes this.
    pub locations: Vec<Location>,
}

/// Anything that lists sorted, non-overlapping ranges per family (for compiling maps).
pub trait RangeSet {
    fn v4_ranges(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_;
    fn v6_ranges(&self) -> impl Iterator<Item = (u128, u128, u32)> + '_;
}

impl RangeSet for NetworkTable {
    fn v4_ranges(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        self.v4.iter().copied()
    }
    fn v6_ranges(&self) -> impl Iterator<Item = (u128, u128, u32)> + '_ {
        self.v6.iter().copied()
    }
}

impl RangeSet for Networks {
    fn v4_ranges(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        self.v4.iter(u32::MAX)
    }
    fn v6_ranges(&self) -> impl Iterator<Item = (u128, u128, u32)> + '_ {
        self.v6.iter(u128::MAX)
    }
}

impl Networks {
    /// Compacts a table (its range vectors are freed).
    pub fn new(table: NetworkTable) -> Networks {
        let v4 = Ranges::new(&table.v4, u32::MAX);
        drop(table.v4);
        let v6 = Ranges::new(&table.v6, u128::MAX);
        drop(table.v6);
        let mut locations = table.locations;
        locations.shrink_to_fit();
        Networks { v4, v6, locations }
    }

    /// The range of the database holding `ip` (first and last address) and its location id.
    pub fn lookup_range(&self, ip: IpAddr) -> Option<(IpAddr, IpAddr, u32)> {
        match super::canonical(ip) {
            IpAddr::V4(a) => {
                let r = self.v4.find(u32::from(a), u32::MAX)?;
                Some((IpAddr::V4(r.0.into()), IpAddr::V4(r.1.into()), r.2))
            }
            IpAddr::V6(a) => {
                let r = self.v6.find(u128::from(a), u128::MAX)?;
                Some((IpAddr::V6(r.0.into()), IpAddr::V6(r.1.into()), r.2))
            }
        }
    }

    /// Ranges with a location, per family.
    pub fn counts(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    /// Memory held by the ranges and locations, in bytes (city names not counted).
    pub fn bytes(&self) -> usize {
        self.v4.starts.capacity() * 8
            + self.v6.starts.capacity() * 20
            + self.locations.capacity() * std::mem::size_of::<Location>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_ranges_and_lookups_as_the_table() {
        let t = NetworkTable {
            v4: vec![(0, 3, 0), (4, 9, 1), (30, 40, 2), (41, u32::MAX, 0)],
            v6: vec![(10, 20, 1), (u128::MAX - 1, u128::MAX - 1, 2)],
            locations: vec![],
        };
        let (v4, v6): (Vec<_>, Vec<_>) = (t.v4.clone(), t.v6.clone());
        let probes4 = [0u32, 3, 4, 9, 10, 29, 30, 40, 41, u32::MAX];
        let probes6 = [
            0u128,
            9,
            10,
            20,
            21,
            u128::MAX - 2,
            u128::MAX - 1,
            u128::MAX,
        ];
        let want4: Vec<_> = probes4
            .iter()
            .map(|&x| t.lookup_range(IpAddr::V4(x.into())))
            .collect();
        let want6: Vec<_> = probes6
            .iter()
            .map(|&x| t.lookup_range(IpAddr::V6(x.into())))
            .collect();
        let n = Networks::new(t);
        assert_eq!(n.v4_ranges().collect::<Vec<_>>(), v4);
        assert_eq!(n.v6_ranges().collect::<Vec<_>>(), v6);
        assert_eq!(n.counts(), (4, 2));
        let got4: Vec<_> = probes4
            .iter()
            .map(|&x| n.lookup_range(IpAddr::V4(x.into())))
            .collect();
        let got6: Vec<_> = probes6
            .iter()
            .map(|&x| n.lookup_range(IpAddr::V6(x.into())))
            .collect();
        assert_eq!(got4, want4);
        assert_eq!(got6, want6);
        assert_eq!(want6[0], None);
        let empty = Networks::new(NetworkTable::default());
        assert_eq!(empty.lookup_range(IpAddr::V4(0.into())), None);
        assert_eq!(empty.v4_ranges().count(), 0);
    }
}
