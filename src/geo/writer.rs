//! A MaxMind DB writer (format 2.0): a binary search tree over IPv6 (IPv4 at `::/96`, aliased
//! from `::ffff:0:0/96`), a deduplicated data section in the GeoIP2 City/Country schema, and
//! the metadata. Enough for custom and private networks and for tests; readable by the
//! maxminddb crate and `mmdblookup`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use super::{GeoError, Location};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

/// Encodes MaxMind data-section values.
struct Enc(Vec<u8>);

impl Enc {
    fn ctrl(&mut self, ty: u8, size: usize) {
        let (t, ext) = if ty <= 7 {
            (ty << 5, None)
        } else {
            (0, Some(ty - 7))
        };
        let push_ext = |v: &mut Vec<u8>| {
            if let Some(e) = ext {
                v.push(e);
            }
        };
        match size {
            0..=28 => {
                self.0.push(t | size as u8);
                push_ext(&mut self.0);
            }
            29..=284 => {
                self.0.push(t | 29);
                push_ext(&mut self.0);
                self.0.push((size - 29) as u8);
            }
            285..=65_820 => {
                self.0.push(t | 30);
                push_ext(&mut self.0);
                self.0
                    .extend_from_slice(&((size - 285) as u16).to_be_bytes());
            }
            _ => {
                self.0.push(t | 31);
                push_ext(&mut self.0);
                let v = (size - 65_821) as u32;
                self.0.extend_from_slice(&v.to_be_bytes()[1..]);
            }
        }
    }
    fn str(&mut self, s: &str) {
        self.ctrl(2, s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn double(&mut self, v: f64) {
        self.ctrl(3, 8);
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn uint(&mut self, ty: u8, v: u64) {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        self.ctrl(ty, 8 - skip);
        self.0.extend_from_slice(&bytes[skip..]);
    }
    fn map(&mut self, n: usize) {
        self.ctrl(7, n);
    }
    fn array(&mut self, n: usize) {
        self.ctrl(11, n);
    }
}

fn record(l: &Location) -> Vec<u8> {
    let mut e = Enc(Vec::new());
    let cc = |c: [u8; 2]| String::from_utf8_lossy(&c).into_owned();
    let n = [
        l.city.is_some(),
        l.continent.is_some(),
        l.country.is_some(),
        l.coords.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    e.map(n);
    if let Some(city) = &l.city {
        e.str("city");
        e.map(1);
        e.str("names");
        e.map(1);
        e.str("en");
        e.str(city);
    }
    if let Some(c) = l.continent {
        e.str("continent");
        e.map(1);
        e.str("code");
        e.str(&cc(c));
    }
    if let Some(c) = l.country {
        e.str("country");
        e.map(1);
        e.str("iso_code");
        e.str(&cc(c));
    }
    if let Some((lat, lon)) = l.coords {
        e.str("location");
        e.map(2);
        e.str("latitude");
        e.double(lat);
        e.str("longitude");
        e.double(lon);
    }
    e.0
}

/// The network's bits in the IPv6 tree and its prefix length there.
fn bits(net: &IpNet) -> (u128, u8) {
    match net {
        IpNet::V4(n) => (u128::from(u32::from(n.network())), 96 + n.prefix_len()),
        IpNet::V6(n) => (u128::from(n.network()), n.prefix_len()),
    }
}

/// Writes a database holding `entries`; more specific networks override the ones that
/// contain them.
pub fn write(entries: &[(IpNet, Location)], database_type: &str) -> Result<Vec<u8>, GeoError> {
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    let mut data = Vec::new();
    let mut offsets: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut sorted: Vec<&(IpNet, Location)> = entries.iter().collect();
    sorted.sort_by_key(|(n, _)| bits(n).1);
    for (net, loc) in sorted {
        let off = intern(&mut data, &mut offsets, record(loc));
        insert(&mut nodes, net, off);
    }
    alias_ipv4_mapped(&mut nodes);

    let node_count = nodes.len() as u64;
    let record_size = record_size(node_count + 16 + data.len() as u64)?;
    let mut out = Vec::with_capacity(nodes.len() * (record_size as usize / 4) + data.len() + 256);
    write_tree(&mut out, &nodes, record_size);
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    out.extend_from_slice(&metadata(database_type, node_count, record_size));
    Ok(out)
}

/// The offset of `rec` in the data section, appending it there the first time it is seen.
fn intern(data: &mut Vec<u8>, offsets: &mut HashMap<Vec<u8>, u32>, rec: Vec<u8>) -> u32 {
    if let Some(o) = offsets.get(&rec) {
        return *o;
    }
    let o = data.len() as u32;
    data.extend_from_slice(&rec);
    offsets.insert(rec, o);
    o
}

/// Points `net` at the data at `off`, splitting leaves on the way; networks must be inserted
/// from the least to the most specific.
fn insert(nodes: &mut Vec<[Rec; 2]>, net: &IpNet, off: u32) {
    let (addr, len) = bits(net);
    if len == 0 {
        nodes[0] = [Rec::Data(off), Rec::Data(off)];
        return;
    }
    let mut node = 0usize;
    for depth in 0..len {
        let bit = ((addr >> (127 - depth)) & 1) as usize;
        if depth == len - 1 {
            nodes[node][bit] = Rec::Data(off);
            break;
        }
        node = match nodes[node][bit] {
            Rec::Node(n) => n as usize,
            other => {
                // Split: an empty or data leaf becomes a node whose halves inherit it.
                let inherit = if let Rec::Data(_) = other {
                    other
                } else {
                    Rec::Empty
                };
                nodes.push([inherit, inherit]);
                let n = nodes.len() - 1;
                nodes[node][bit] = Rec::Node(n as u32);
                n
            }
        };
    }
}

/// Aliases `::ffff:0:0/96` to the IPv4 subtree (`::/96`), as MaxMind's databases do.
fn alias_ipv4_mapped(nodes: &mut Vec<[Rec; 2]>) {
    let mut node = 0usize;
    let mut v4root = Some(Rec::Node(0));
    for _ in 0..96 {
        v4root = match nodes[node][0] {
            Rec::Node(n) => {
                node = n as usize;
                Some(Rec::Node(n))
            }
            _ => None,
        };
        if v4root.is_none() {
            break;
        }
    }
    let Some(v4) = v4root else {
        return;
    };
    let target: u128 = 0xFFFF << 32;
    let mut node = 0usize;
    for depth in 0..96u32 {
        let bit = ((target >> (127 - depth)) & 1) as usize;
        if depth == 95 {
            if nodes[node][bit] == Rec::Empty {
                nodes[node][bit] = v4;
            }
            break;
        }
        node = match nodes[node][bit] {
            Rec::Node(n) => n as usize,
            Rec::Empty => {
                nodes.push([Rec::Empty, Rec::Empty]);
                let n = nodes.len() - 1;
                nodes[node][bit] = Rec::Node(n as u32);
                n
            }
            Rec::Data(_) => break,
        };
    }
}

/// The smallest record size (24, 28 or 32 bits) that holds pointers up to `max`.
fn record_size(max: u64) -> Result<u16, GeoError> {
    if max < 1 << 24 {
        Ok(24)
    } else if max < 1 << 28 {
        Ok(28)
    } else if max < 1 << 32 {
        Ok(32)
    } else {
        Err(GeoError::File {
            path: String::new(),
            message: "database too large".into(),
        })
    }
}

/// Appends the search tree: each node's two records, `record_size` bits each.
fn write_tree(out: &mut Vec<u8>, nodes: &[[Rec; 2]], record_size: u16) {
    let node_count = nodes.len() as u64;
    let value = |r: Rec| -> u32 {
        match r {
            Rec::Node(n) => n,
            Rec::Empty => node_count as u32,
            Rec::Data(o) => (node_count + 16 + u64::from(o)) as u32,
        }
    };
    for [l, r] in nodes {
        let (l, r) = (value(*l), value(*r));
        match record_size {
            24 => {
                out.extend_from_slice(&l.to_be_bytes()[1..]);
                out.extend_from_slice(&r.to_be_bytes()[1..]);
            }
            28 => {
                out.extend_from_slice(&l.to_be_bytes()[1..]);
                out.push((((l >> 24) & 0x0F) << 4) as u8 | ((r >> 24) & 0x0F) as u8);
                out.extend_from_slice(&r.to_be_bytes()[1..]);
            }
            _ => {
                out.extend_from_slice(&l.to_be_bytes());
                out.extend_from_slice(&r.to_be_bytes());
            }
        }
    }
}

/// The metadata map that follows the `\xAB\xCD\xEFMaxMind.com` marker.
fn metadata(database_type: &str, node_count: u64, record_size: u16) -> Vec<u8> {
    let mut m = Enc(Vec::new());
    m.map(9);
    m.str("binary_format_major_version");
    m.uint(5, 2);
    m.str("binary_format_minor_version");
    m.uint(5, 0);
    m.str("build_epoch");
    m.uint(
        9,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    m.str("database_type");
    m.str(database_type);
    m.str("description");
    m.map(1);
    m.str("en");
    m.str("built by sipsteer geoip build");
    m.str("ip_version");
    m.uint(5, 6);
    m.str("languages");
    m.array(1);
    m.str("en");
    m.str("node_count");
    m.uint(6, node_count);
    m.str("record_size");
    m.uint(5, u64::from(record_size));
    m.0
}
