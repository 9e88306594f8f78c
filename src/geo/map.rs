//! A GeoIP map compiled for one set of regions: the whole address space cut into blocks of
//! equal ranking (class). A lookup reads a directory entry indexed by the top 16 bits of the
//! address; where that whole /16 lies in one block, the entry holds the class and ECS scope
//! and the lookup ends there. Where the entry holds many blocks, a sub-directory entry indexed
//! by the next 8 bits either names the one block its /24 lies in (with the scope) or bounds a
//! search over the few blocks it holds; the block gives the class.

use std::net::IpAddr;

#[cfg(test)]
use super::NetworkTable;
use super::RangeSet;

/// Bits of the address that index the directory (2^16 + 1 entries per family).
const DIR_BITS: u32 = 16;
/// The next bits, indexing the sub-directory of an entry that holds many blocks.
const SUB_BITS: u32 = 8;
/// Entries over this many blocks get a sub-directory (2^8 + 1 entries, 1 KiB).
const SPLIT: usize = 48;
/// A directory entry with neither a sub-directory nor a class of its own.
const NONE: u32 = u32::MAX;
/// Tags a directory entry's second word, or a sub-directory entry, as covering one block only.
const LEAF: u32 = 1 << 31;
/// A directory leaf: the class in the low bits, the scope above them.
const DIR_CLASS_BITS: u32 = 23;
/// A sub-directory entry: the block index in the low bits, a leaf's scope above them.
const SUB_INDEX_BITS: u32 = 24;

/// One family's blocks: sorted starts (the first is 0), their classes, and the directory.
#[derive(Debug, Default)]
struct Blocks<T> {
    starts: Vec<T>,
    class: Vec<u32>,
    /// `dir[h][0]`: the block holding the first address whose top [`DIR_BITS`] bits are `h`
    /// (`dir[2^DIR_BITS][0]` is the last block), so the block of any address with top bits
    /// `h` lies in `dir[h][0]..=dir[h + 1][0]`. `dir[h][1]`: [`LEAF`] with the class and scope
    /// when the whole prefix lies in one block, else where in `sub` the entry's
    /// sub-directory starts, or [`NONE`].
    dir: Vec<[u32; 2]>,
    /// Sub-directories: the same bounds for the next [`SUB_BITS`] bits, `2^SUB_BITS + 1`
    /// entries each, each a block index tagged [`LEAF`] (with the scope) when its whole
    /// prefix lies in that block.
    sub: Vec<u32>,
    /// The bits of a sub-directory entry that hold the block index: below the scope when
    /// there are leaves, all but [`LEAF`] when there are too many blocks for them.
    index_mask: u32,
}

/// An address family's integer: its leading bits for the directories, the arithmetic for
/// scopes.
trait Addr: Copy + Ord + Into<u128> {
    const BITS: u32;
    /// The top `bits` bits.
    fn prefix(self, bits: u32) -> usize;
    /// The first address whose top `bits` bits are `p`.
    fn from_prefix(p: usize, bits: u32) -> Self;
}

impl Addr for u32 {
    const BITS: u32 = 32;
    #[inline]
    fn prefix(self, bits: u32) -> usize {
        (self >> (32 - bits)) as usize
    }
    fn from_prefix(p: usize, bits: u32) -> Self {
        (p as u32) << (32 - bits)
    }
}

impl Addr for u128 {
    const BITS: u32 = 128;
    #[inline]
    fn prefix(self, bits: u32) -> usize {
        (self >> (128 - bits)) as usize
    }
    fn from_prefix(p: usize, bits: u32) -> Self {
        (p as u128) << (128 - bits)
    }
}

/// For each prefix `first..first + n` of `bits` bits: the block holding its first address
/// (searching from block `i`), then `last`.
fn bounds<T: Addr>(
    starts: &[T],
    mut i: usize,
    first: usize,
    n: usize,
    bits: u32,
    last: u32,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(n + 1);
    for p in first..first + n {
        let a = T::from_prefix(p, bits);
        while starts.get(i + 1).is_some_and(|&s| s <= a) {
            i += 1;
        }
        out.push(i as u32);
    }
    out.push(last);
    out
}

impl<T: Addr> Blocks<T> {
    fn new(starts: Vec<T>, class: Vec<u32>) -> Blocks<T> {
        let last = starts.len().saturating_sub(1) as u32;
        let top = bounds(&starts, 0, 0, 1 << DIR_BITS, DIR_BITS, last);
        let mut b = Blocks {
            starts,
            class,
            dir: Vec::with_capacity(top.len()),
            sub: Vec::new(),
            index_mask: !LEAF,
        };
        // Leaves need the block index below the scope bits (sub) or the class (dir).
        let leaves = b.starts.len() < 1 << SUB_INDEX_BITS;
        if leaves {
            b.index_mask = (1 << SUB_INDEX_BITS) - 1;
        }
        for (h, w) in top.windows(2).enumerate() {
            let (lo, hi) = (w[0], w[1]);
            let mut second = NONE;
            if leaves && let Some(leaf) = b.dir_leaf(lo as usize, h) {
                second = leaf;
            } else if (hi - lo) as usize > SPLIT {
                second = b.sub.len() as u32;
                let bits = DIR_BITS + SUB_BITS;
                let entries = bounds(
                    &b.starts,
                    lo as usize,
                    h << SUB_BITS,
                    1 << SUB_BITS,
                    bits,
                    hi,
                );
                let tagged: Vec<u32> = entries
                    .iter()
                    .enumerate()
                    .map(|(m, &i)| match leaves && m < 1 << SUB_BITS {
                        true => b.sub_leaf(i as usize, (h << SUB_BITS) | m),
                        false => i,
                    })
                    .collect();
                b.sub.extend(tagged);
            }
            b.dir.push([lo, second]);
        }
        b.dir.push([last, NONE]);
        b.sub.shrink_to_fit();
        b
    }

    /// Whether every address with top `bits` bits `p` lies in block `i`, and then the scope
    /// (the same for all of them: the prefix is within the block).
    fn uniform(&self, i: usize, p: usize, bits: u32) -> Option<u8> {
        let first = T::from_prefix(p, bits);
        let next = self.starts.get(i + 1).copied();
        let ends_inside = match p.checked_add(1) {
            Some(q) if q < 1 << bits => next.is_none_or(|n| n >= T::from_prefix(q, bits)),
            _ => next.is_none(),
        };
        if self.starts.get(i).is_none_or(|&s| s > first) || !ends_inside {
            return None;
        }
        Some(self.lookup_in(first, i).1)
    }

    /// The directory leaf for prefix `h` whose first address is in block `i`, if it is one.
    fn dir_leaf(&self, i: usize, h: usize) -> Option<u32> {
        let scope = self.uniform(i, h, DIR_BITS)?;
        let class = *self.class.get(i)?;
        (class < 1 << DIR_CLASS_BITS).then(|| LEAF | (u32::from(scope) << DIR_CLASS_BITS) | class)
    }

    /// The sub-directory entry for prefix `p` (of [`DIR_BITS`] + [`SUB_BITS`] bits) whose
    /// first address is in block `i`: `i`, tagged as a leaf with its scope when it is one.
    fn sub_leaf(&self, i: usize, p: usize) -> u32 {
        match self.uniform(i, p, DIR_BITS + SUB_BITS) {
            Some(scope) => LEAF | (u32::from(scope) << SUB_INDEX_BITS) | i as u32,
            None => i as u32,
        }
    }

    /// The class of `x` and the widest prefix around it that stays in its block.
    #[inline]
    fn lookup(&self, x: T) -> (u32, u8) {
        let h = x.prefix(DIR_BITS);
        let [mut a, second] = self.dir.get(h).copied().unwrap_or([0, NONE]);
        let mut b = self.dir.get(h + 1).map_or(a, |e| e[0]);
        if second != NONE {
            if second & LEAF != 0 {
                let class = second & ((1 << DIR_CLASS_BITS) - 1);
                return (class, ((second & !LEAF) >> DIR_CLASS_BITS) as u8);
            }
            let m = second as usize + (x.prefix(DIR_BITS + SUB_BITS) & ((1 << SUB_BITS) - 1));
            let index = |e: u32| e & self.index_mask;
            let lo = self.sub.get(m).copied().unwrap_or(a);
            if lo & LEAF != 0 {
                let i = index(lo) as usize;
                let scope = ((lo & !LEAF) >> SUB_INDEX_BITS) as u8;
                return (self.class.get(i).copied().unwrap_or(0), scope);
            }
            a = index(lo);
            b = self.sub.get(m + 1).map_or(b, |&e| index(e));
        }
        let (a, b) = (a as usize, b as usize);
        let run = self.starts.get(a..=b).unwrap_or(&[]);
        self.lookup_in(x, a + run.partition_point(|&s| s <= x).saturating_sub(1))
    }

    /// The class of `x`, which lies in block `i`, and the widest prefix around it that stays
    /// in that block.
    #[inline]
    fn lookup_in(&self, x: T, i: usize) -> (u32, u8) {
        let lo: u128 = self.starts.get(i).map_or(0, |&s| s.into());
        let hi: u128 = self
            .starts
            .get(i + 1)
            .map_or(u128::MAX >> (128 - T::BITS), |&n| n.into() - 1);
        let c = self.class.get(i).copied().unwrap_or(0);
        (c, scope(x.into(), lo, hi, T::BITS))
    }

    /// Asks the CPU for the directory entry a lookup of `x` reads first.
    #[inline]
    fn prefetch_dir(&self, x: T) {
        if let Some(e) = self.dir.get(x.prefix(DIR_BITS)) {
            prefetch(e);
        }
    }

    /// Asks the CPU for what a lookup of `x` reads after its directory entry (which should
    /// be in cache by now): the sub-directory entry, or the first block start to search.
    #[inline]
    fn prefetch_next(&self, x: T) {
        let Some(&[a, second]) = self.dir.get(x.prefix(DIR_BITS)) else {
            return;
        };
        if second == NONE {
            if let Some(s) = self.starts.get(a as usize) {
                prefetch(s);
            }
        } else if second & LEAF == 0 {
            let m = second as usize + (x.prefix(DIR_BITS + SUB_BITS) & ((1 << SUB_BITS) - 1));
            if let Some(e) = self.sub.get(m) {
                prefetch(e);
            }
        }
    }

    fn bytes(&self) -> usize {
        self.starts.len() * std::mem::size_of::<T>()
            + self.class.len() * 4
            + self.dir.len() * 8
            + self.sub.len() * 4
    }
}

#[derive(Debug, Default)]
pub struct GeoMap {
    v4: Blocks<u32>,
    v6: Blocks<u128>,
}

/// Cuts `[0, max]` into blocks: the table's ranges mapped to classes, gaps to `gap`,
/// neighbours of equal class merged.
fn blocks<T>(
    ranges: impl Iterator<Item = (T, T, u32)>,
    class_of: &[u32],
    gap: u32,
    max: T,
) -> (Vec<T>, Vec<u32>)
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
    for (first, last, loc) in ranges {
        let c = class_of.get(loc as usize).copied().unwrap_or(gap);
        push(first, c, &mut starts, &mut class);
        if last < max {
            push(last + one, gap, &mut starts, &mut class);
        }
    }
    (starts, class)
}

/// Asks the CPU to bring the cache line holding `v` closer (a no-op where unsupported).
#[inline]
fn prefetch<V>(v: &V) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never faults; `v` is a valid reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(v).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
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
        let m = u32::midpoint(a, b);
        if fits(m) { b = m } else { a = m + 1 }
    }
    a as u8
}

impl GeoMap {
    /// Compiles a table: `class_of[location id]` is the class of that location, `gap` the
    /// class of addresses the table does not know.
    pub fn compile(table: &impl RangeSet, class_of: &[u32], gap: u32) -> GeoMap {
        let (mut v4_starts, mut v4_class) = blocks(table.v4_ranges(), class_of, gap, u32::MAX);
        let (mut v6_starts, mut v6_class) = blocks(table.v6_ranges(), class_of, gap, u128::MAX);
        v4_starts.shrink_to_fit();
        v4_class.shrink_to_fit();
        v6_starts.shrink_to_fit();
        v6_class.shrink_to_fit();
        GeoMap {
            v4: Blocks::new(v4_starts, v4_class),
            v6: Blocks::new(v6_starts, v6_class),
        }
    }

    /// The class of `ip` and the ECS scope of that answer.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> (u32, u8) {
        match super::canonical(ip) {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    /// Warms the cache for a coming lookup of `ip`: `first` asks for the directory entry,
    /// else for what the lookup reads after it. A hint only: the answer never depends on it.
    #[inline]
    pub fn prefetch(&self, ip: IpAddr, first: bool) {
        match (super::canonical(ip), first) {
            (IpAddr::V4(a), true) => self.v4.prefetch_dir(u32::from(a)),
            (IpAddr::V4(a), false) => self.v4.prefetch_next(u32::from(a)),
            (IpAddr::V6(a), true) => self.v6.prefetch_dir(u128::from(a)),
            (IpAddr::V6(a), false) => self.v6.prefetch_next(u128::from(a)),
        }
    }

    /// How much address space each class covers (`classes` entries): IPv4 addresses plus
    /// IPv6 /32s, so the classes most clients fall into can be served first.
    pub fn catchments(&self, classes: usize) -> Vec<u128> {
        let mut out = vec![0u128; classes];
        let mut add = |starts: &[u128], class: &[u32], end: u128, shift: u32| {
            for (i, (&s, &c)) in starts.iter().zip(class).enumerate() {
                let next = starts.get(i + 1).copied().unwrap_or(end);
                if let Some(o) = out.get_mut(c as usize) {
                    *o = o.saturating_add((next - s) >> shift);
                }
            }
        };
        let v4: Vec<u128> = self.v4.starts.iter().map(|&s| u128::from(s)).collect();
        add(&v4, &self.v4.class, 1 << 32, 0);
        add(&self.v6.starts, &self.v6.class, u128::MAX, 96);
        out
    }

    /// Number of blocks (both families).
    pub fn blocks(&self) -> usize {
        self.v4.starts.len() + self.v6.starts.len()
    }

    /// Approximate memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
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

#[cfg(test)]
#[path = "map_boundaries.rs"]
mod boundaries;
