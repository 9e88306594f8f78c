//! The network table: every network a database knows, as sorted, non-overlapping address
//! ranges (IPv4 and IPv6 apart) pointing at deduplicated locations. Built once per database.

use std::net::IpAddr;

use super::Location;

/// Sorted, non-overlapping ranges `(first, last, location id)`.
#[derive(Debug, Default)]
pub struct NetworkTable {
    pub v4: Vec<(u32, u32, u32)>,
    pub v6: Vec<(u128, u128, u32)>,
    /// Deduplicated; a location id indexes this.
    pub locations: Vec<Location>,
}

impl NetworkTable {
    /// The range of the database holding `ip` (first and last address) and its location id.
    pub fn lookup_range(&self, ip: IpAddr) -> Option<(IpAddr, IpAddr, u32)> {
        match super::canonical(ip) {
            IpAddr::V4(a) => {
                let r = find(&self.v4, u32::from(a))?;
                Some((IpAddr::V4(r.0.into()), IpAddr::V4(r.1.into()), r.2))
            }
            IpAddr::V6(a) => {
                let r = find(&self.v6, u128::from(a))?;
                Some((IpAddr::V6(r.0.into()), IpAddr::V6(r.1.into()), r.2))
            }
        }
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The range holding `x`.
fn find<T: Ord + Copy>(ranges: &[(T, T, u32)], x: T) -> Option<&(T, T, u32)> {
    let i = ranges.partition_point(|r| r.0 <= x);
    let r = ranges.get(i.checked_sub(1)?)?;
    (x <= r.1).then_some(r)
}

/// Turns possibly nested CIDR ranges into non-overlapping ranges where the most specific
/// network wins. Input: `(first, last, loc)` with CIDR-aligned bounds.
pub(super) fn flatten(mut nets: Vec<(u128, u128, u32)>) -> Vec<(u128, u128, u32)> {
    nets.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    struct Open {
        last: u128,
        loc: u32,
        /// Next address not yet emitted; `None` once past the end of the space.
        cursor: Option<u128>,
    }
    let mut out = Vec::with_capacity(nets.len());
    let mut stack: Vec<Open> = Vec::new();
    fn close(stack: &mut Vec<Open>, out: &mut Vec<(u128, u128, u32)>) {
        let Some(top) = stack.pop() else { return };
        if let Some(c) = top.cursor
            && c <= top.last
        {
            out.push((c, top.last, top.loc));
        }
        if let Some(parent) = stack.last_mut() {
            parent.cursor = top.last.checked_add(1);
        }
    }
    for (first, last, loc) in nets {
        while stack.last().is_some_and(|t| t.last < first) {
            close(&mut stack, &mut out);
        }
        if let Some(top) = stack.last_mut() {
            if let Some(c) = top.cursor
                && c < first
            {
                out.push((c, first - 1, top.loc));
            }
            top.cursor = Some(first);
        }
        stack.push(Open {
            last,
            loc,
            cursor: Some(first),
        });
    }
    while !stack.is_empty() {
        close(&mut stack, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_networks_flatten_most_specific_first() {
        // 10.0.0.0/8 (loc 0) containing 10.1.0.0/16 (loc 1) containing 10.1.2.0/24 (loc 2).
        let a = 10u128 << 24;
        let nets = vec![
            (a + (1 << 16) + (2 << 8), a + (1 << 16) + (2 << 8) + 255, 2),
            (a, a + (1 << 24) - 1, 0),
            (a + (1 << 16), a + (1 << 16) + 65535, 1),
        ];
        let f = flatten(nets);
        assert_eq!(
            f,
            vec![
                (a, a + (1 << 16) - 1, 0),
                (a + (1 << 16), a + (1 << 16) + (2 << 8) - 1, 1),
                (a + (1 << 16) + (2 << 8), a + (1 << 16) + (2 << 8) + 255, 2),
                (a + (1 << 16) + (3 << 8), a + (1 << 16) + 65535, 1),
                (a + (2 << 16), a + (1 << 24) - 1, 0),
            ]
        );
        let whole = flatten(vec![(0, u128::MAX, 0), (5, 5, 1)]);
        assert_eq!(whole, vec![(0, 4, 0), (5, 5, 1), (6, u128::MAX, 0)]);
    }

    #[test]
    fn lookup() {
        let t = NetworkTable {
            v4: vec![(10, 20, 0), (30, 40, 1)],
            v6: vec![],
            locations: vec![],
        };
        assert_eq!(find(&t.v4, 10).map(|r| r.2), Some(0));
        assert_eq!(find(&t.v4, 25), None);
        assert_eq!(find(&t.v4, 40).map(|r| r.2), Some(1));
        assert_eq!(find(&t.v4, 5), None);
    }
}
