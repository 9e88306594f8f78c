//! Checking a MaxMind DB search tree before anything walks it: the metadata against the file
//! size, every record pointing at a node, the empty marker or inside the data section, no
//! node reached twice and no path deeper than the address. A tree that passes has at most
//! `node_count + 1` networks, so every later walk costs time and memory bounded by the file.
//!
//! The walk mirrors the maxminddb crate's `networks()`: in an IPv6 tree the IPv4 subtree
//! (the node at `::/96`) is also reachable through aliases such as `::ffff:0:0/96`; those
//! references are not followed, as maxminddb does not follow them either.

use maxminddb::Reader;

/// The 16 zero bytes between the search tree and the data section.
const SEPARATOR: usize = 16;

const CRAFTED: &str = "(crafted or corrupt database)";

/// The tree as laid out in the file.
struct Tree<'a> {
    bytes: &'a [u8],
    node_count: usize,
    /// Bytes per node: 6, 7 or 8.
    node_size: usize,
    /// Length of the data section (between the separator and the metadata marker).
    data_len: usize,
}

impl Tree<'_> {
    /// The two records of node `n` (`n < node_count`, so inside the checked tree).
    fn records(&self, n: usize) -> [usize; 2] {
        let b = &self.bytes[n * self.node_size..(n + 1) * self.node_size];
        let be = |s: &[u8]| s.iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        match self.node_size {
            6 => [be(&b[0..3]), be(&b[3..6])],
            7 => [
                ((b[3] as usize & 0xF0) << 20) | be(&b[0..3]),
                ((b[3] as usize & 0x0F) << 24) | be(&b[4..7]),
            ],
            _ => [be(&b[0..4]), be(&b[4..8])],
        }
    }
}

/// Start of the metadata marker (end of the data section).
fn metadata_marker(bytes: &[u8]) -> Option<usize> {
    const MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
    bytes.windows(MARKER.len()).rposition(|w| w == MARKER)
}

/// Checks the database in `bytes`; returns how many networks (records holding data or the
/// empty marker) its tree has. Errors are lowercase sentences without the path.
pub(super) fn check(bytes: &[u8]) -> Result<usize, String> {
    let reader =
        Reader::from_source(bytes).map_err(|e| format!("cannot read MaxMind database: {e}"))?;
    let m = reader.metadata();
    let node_size = match m.record_size {
        24 => 6,
        28 => 7,
        32 => 8,
        n => return Err(format!("record_size {n} is not 24, 28 or 32 {CRAFTED}")),
    };
    let bits = match m.ip_version {
        4 => 32,
        6 => 128,
        v => return Err(format!("ip_version {v} is not 4 or 6 {CRAFTED}")),
    };
    let node_count = m.node_count as usize;
    let data_end = metadata_marker(bytes).ok_or("no metadata marker")?;
    let tree_len = node_count.checked_mul(node_size);
    let data_start = tree_len.and_then(|t| t.checked_add(SEPARATOR));
    let Some(data_start) = data_start.filter(|&s| node_count > 0 && s <= data_end) else {
        return Err(format!(
            "node_count {node_count} with record_size {} needs more than the {} bytes before the metadata {CRAFTED}",
            m.record_size, data_end
        ));
    };
    let tree = Tree {
        bytes,
        node_count,
        node_size,
        data_len: data_end - data_start,
    };
    walk(&tree, bits, ipv4_start(&tree, bits))
}

/// The node at `::/96` in an IPv6 tree (what maxminddb uses for IPv4 lookups), if the
/// all-zero path gets that deep.
fn ipv4_start(t: &Tree<'_>, bits: u32) -> Option<usize> {
    if bits != 128 {
        return None;
    }
    let mut node = 0;
    for _ in 0..96 {
        if node >= t.node_count {
            break;
        }
        node = t.records(node)[0];
    }
    // maxminddb treats a start node of 0 as "no IPv4 subtree".
    (node != 0).then_some(node)
}

/// One reference still to look at: the record value, the node holding it, its depth and
/// whether the path so far is all zeros in its first 96 bits (`::/96`).
struct Pending {
    record: usize,
    parent: usize,
    depth: u32,
    zero96: bool,
}

/// Depth-first walk with a visited bit per node; the stack never holds more than
/// `node_count + 1` entries because every node is expanded at most once.
fn walk(t: &Tree<'_>, bits: u32, v4: Option<usize>) -> Result<usize, String> {
    let mut seen = vec![0u64; t.node_count.div_ceil(64)];
    let mut stack = vec![Pending {
        record: 0,
        parent: 0,
        depth: 0,
        zero96: true,
    }];
    let mut networks = 0usize;
    while let Some(p) = stack.pop() {
        if Some(p.record) == v4 && !p.zero96 {
            continue; // an alias of the IPv4 subtree
        }
        let n = p.record;
        if n > t.node_count {
            let offset = (n - t.node_count).checked_sub(SEPARATOR);
            if offset.is_none_or(|o| o >= t.data_len) {
                return Err(format!(
                    "search tree node {} points to {n}, outside the data section {CRAFTED}",
                    p.parent
                ));
            }
        }
        if n >= t.node_count {
            networks += 1;
            continue;
        }
        if p.depth >= bits {
            return Err(format!(
                "search tree is deeper than {bits} bits at node {n} {CRAFTED}"
            ));
        }
        let (word, bit) = (n / 64, 1u64 << (n % 64));
        if seen[word] & bit != 0 {
            return Err(format!("search tree node {n} is reached twice {CRAFTED}"));
        }
        seen[word] |= bit;
        let [left, right] = t.records(n);
        stack.push(Pending {
            record: right,
            parent: n,
            depth: p.depth + 1,
            zero96: p.zero96 && p.depth >= 96,
        });
        stack.push(Pending {
            record: left,
            parent: n,
            depth: p.depth + 1,
            zero96: p.zero96,
        });
    }
    Ok(networks)
}
