//! A GeoIP map compiled for one set of regions: the whole address space cut into blocks of
//! equal ranking (class). A lookup is one binary search; the block gives the ECS scope.

use std::net::IpAddr;

use super::NetworkTable;

#[derive(Debug, Default)]
pub struct GeoMap {
    v4_starts: Vec<u32>,
    v4_class: Vec<u32>,
    v6_starts: Vec<u128>,
    v6_class: Vec<u32>,
}

/// Cuts `[0, max]` into blocks: the table's ranges mapped to classes, gaps to `gap`,
/// neighbours of equal class merged.
fn blocks<T>(ranges: &[(T, T, u32)], class_of: &[u32], gap: u32, max: T) -> (Vec<T>, Vec<u32>)
where
    T: Copy + Ord + From<u8> + std::ops::Add<Output = T>,
{
    let zero = T::from(0);
    let one = T::from(1);
    let mut starts = vec![zero];
    let mut class = vec![gap];
    let push = |start: T, c: u32, starts: &mut Vec<T>, class: &mut Vec<u32>| {
        if class.last() == Some(&c) {
            return;
        }
        if starts.last() == Some(&start) {
            class.pop();
            starts.pop();
            if class.last() == Some(&c) {
                return;
            }
        }
        starts.push(start);
        class.push(c);
    };
    for &(first, last, loc) in ranges {
        let c = class_of.get(loc as usize).copied().unwrap_or(gap);
        push(first, c, &mut starts, &mut class);
        if last < max {
            push(last + one, gap, &mut starts, &mut class);
        }
    }
    (starts, class)
}

/// The widest prefix `p` whose aligned block around `x` lies within `[lo, hi]`.
fn scope(x: u128, lo: u128, hi: u128, bits: u32) -> u8 {
    let fits = |p: u32| {
        let host = if p == 0 {
            u128::MAX
        } else {
            (1u128 << (128 - p)) - 1
        };
        let host = host >> (128 - bits);
        let start = x & !host;
        let end = x | host;
        start >= lo && end <= hi
    };
    let (mut a, mut b) = (0u32, bits);
    while a < b {
        let m = (a + b) / 2;
        if fits(m) { b = m } else { a = m + 1 }
    }
    a as u8
}

impl GeoMap {
    /// Compiles a table: `class_of[location id]` is the class of that location, `gap` the
    /// class of addresses the table does not know.
    pub fn compile(table: &NetworkTable, class_of: &[u32], gap: u32) -> GeoMap {
        let (v4_starts, v4_class) = blocks(&table.v4, class_of, gap, u32::MAX);
        let (v6_starts, v6_class) = blocks(&table.v6, class_of, gap, u128::MAX);
        GeoMap {
            v4_starts,
            v4_class,
            v6_starts,
            v6_class,
        }
    }

    /// The class of `ip` and the ECS scope of that answer.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> (u32, u8) {
        match super::canonical(ip) {
            IpAddr::V4(a) => {
                let x = u32::from(a);
                let i = self
                    .v4_starts
                    .partition_point(|&s| s <= x)
                    .saturating_sub(1);
                let lo = self.v4_starts.get(i).copied().unwrap_or(0);
                let hi = self.v4_starts.get(i + 1).map_or(u32::MAX, |n| n - 1);
                let c = self.v4_class.get(i).copied().unwrap_or(0);
                (c, scope(x as u128, lo as u128, hi as u128, 32))
            }
            IpAddr::V6(a) => {
                let x = u128::from(a);
                let i = self
                    .v6_starts
                    .partition_point(|&s| s <= x)
                    .saturating_sub(1);
                let lo = self.v6_starts.get(i).copied().unwrap_or(0);
                let hi = self.v6_starts.get(i + 1).map_or(u128::MAX, |n| n - 1);
                let c = self.v6_class.get(i).copied().unwrap_or(0);
                (c, scope(x, lo, hi, 128))
            }
        }
    }

    /// Number of blocks (both families).
    pub fn blocks(&self) -> usize {
        self.v4_starts.len() + self.v6_starts.len()
    }

    /// Approximate memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.v4_starts.len() * 8 + self.v6_starts.len() * 20
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn classes_scopes_and_merging() {
        // Two neighbouring /24s of one class merge into a /23; a /25 of another class
        // inside a /24 gives longer scopes around it.
        let t = NetworkTable {
            v4: vec![
                (v4("81.2.68.0"), v4("81.2.68.255"), 0),
                (v4("81.2.69.0"), v4("81.2.69.255"), 1),
                (v4("90.0.0.0"), v4("90.0.0.127"), 2),
                (v4("90.0.0.128"), v4("90.0.0.255"), 0),
            ],
            v6: vec![],
            locations: vec![],
        };
        let m = GeoMap::compile(&t, &[5, 5, 7], 9);
        assert_eq!(m.lookup(ip("81.2.69.160")), (5, 23));
        assert_eq!(m.lookup(ip("81.2.68.1")), (5, 23));
        assert_eq!(m.lookup(ip("90.0.0.1")), (7, 25));
        assert_eq!(m.lookup(ip("90.0.0.200")), (5, 25));
        assert_eq!(m.lookup(ip("10.0.0.1")).0, 9);
        assert_eq!(m.lookup(ip("0.0.0.0")), (9, 2));
        assert_eq!(m.lookup(ip("::ffff:81.2.69.1")), (5, 23));
        assert_eq!(m.lookup(ip("2001:db8::1")), (9, 0));
    }

    #[test]
    fn one_class_is_one_block() {
        let t = NetworkTable {
            v4: (0..1000u32)
                .map(|i| (i * 256, i * 256 + 255, i % 3))
                .collect(),
            v6: vec![],
            locations: vec![],
        };
        let m = GeoMap::compile(&t, &[1, 1, 1], 1);
        assert_eq!(m.blocks(), 2);
        assert_eq!(m.lookup(ip("0.1.2.3")), (1, 0));
    }
}
