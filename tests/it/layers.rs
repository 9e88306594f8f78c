//! The structure rules of docs/architecture.md, checked on the source (read by [`source`]):
//! every path a top-level module names lands in a module of a lower layer; the files of one
//! module use each other without a cycle; no file is longer than [`MAX_LINES`]; every std
//! lock is taken through `src/lock.rs` ([`locks`]).

mod locks;
mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use source::{Crate, ModPath};

/// Top-level modules from the bottom up; a module may use the modules of earlier layers only.
const LAYERS: &[&[&str]] = &[
    &[
        "cli",
        "dnssec",
        "files",
        "lock",
        "proto",
        "sys",
        "telemetry",
    ],
    &["conns", "events"],
    &["config"],
    &["geo", "lint"],
    &["routing"],
    &["steering"],
    &["health"],
    &["dns"],
    &["explain"],
    &["reload"],
    &["admin"],
    &["app", "ctl"],
];

/// Import cycles between files of one module not taken apart yet: the module and the files
/// of one cycle. A cycle found must lie within one of these; an entry with no cycle left in
/// it fails the test, so it is removed once its cycle is gone.
const KNOWN_CYCLES: &[(&str, &[&str])] = &[];

/// Longest file under `src/`, in lines.
const MAX_LINES: usize = 500;

/// Files under `src/` longer than [`MAX_LINES`] not split yet (an entry no longer too long
/// fails the test, so it is removed once its file is split).
const KNOWN_LONG: &[&str] = &[];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn krate() -> &'static Crate {
    static CRATE: OnceLock<Crate> = OnceLock::new();
    CRATE.get_or_init(|| Crate::read(Path::new(env!("CARGO_MANIFEST_DIR"))))
}

/// Every use of a top-level module from another one: `(file, user, used)`.
fn cross_uses(c: &Crate) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for f in &c.files {
        let Some(top) = f.module.first() else {
            continue;
        };
        for n in &f.named {
            let Some(to) = c.resolve(f, n).and_then(|p| p.into_iter().next()) else {
                continue;
            };
            if to != *top && c.is_child(&[], &to) {
                out.insert((f.rel.display().to_string(), top.clone(), to));
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_lower_layers() {
    let c = krate();
    let wrong: Vec<String> = cross_uses(c)
        .into_iter()
        .filter(|(_, from, to)| match (layer_of(from), layer_of(to)) {
            (Some(a), Some(b)) => b >= a,
            _ => true,
        })
        .map(|(file, from, to)| format!("{file}: {from} uses {to}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "upward or sideways uses:\n{}",
        wrong.join("\n")
    );
    let modules: BTreeSet<String> = c.children[&ModPath::new()].iter().cloned().collect();
    let listed: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|l| l.iter().map(std::string::ToString::to_string))
        .collect();
    assert_eq!(
        modules, listed,
        "every listed module exists and every module is listed"
    );
}

#[test]
fn every_source_file_is_read() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut on_disk = BTreeSet::new();
    rust_files(&root.join("src"), &mut on_disk);
    let read: BTreeSet<_> = krate().files.iter().map(|f| root.join(&f.rel)).collect();
    let missed: Vec<_> = on_disk
        .difference(&read)
        .filter(|p| !p.ends_with("src/main.rs"))
        .collect();
    assert!(missed.is_empty(), "files no `mod` reaches: {missed:?}");
}

fn rust_files(dir: &Path, out: &mut BTreeSet<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.insert(p);
        }
    }
}

/// The uses between the files of each module. A module's files are its own (`mod.rs`,
/// `hub.rs`) and one per child module (a child's files below it count as the child). The
/// module's own file declares the others and holds what they share, so uses to and from it
/// are not counted; a name it re-exports (`pub use child::Item`) counts as the child's.
/// Returns, per module, each `(from, to)` with the paths that make it.
fn sibling_uses(c: &Crate) -> BTreeMap<ModPath, BTreeMap<(String, String), Vec<String>>> {
    let mut reexports: BTreeMap<ModPath, BTreeMap<String, String>> = BTreeMap::new();
    for f in &c.files {
        let k = f.module.len();
        for n in f.named.iter().filter(|n| n.scope == f.module) {
            let (Some(Some(name)), Some(to)) = (&n.import, c.resolve(f, n)) else {
                continue;
            };
            if to.len() > k + 1 && to[..k] == f.module[..] && c.is_child(&f.module, &to[k]) {
                let m = reexports.entry(f.module.clone()).or_default();
                m.insert(name.clone(), to[k].clone());
            }
        }
    }
    let mut out: BTreeMap<ModPath, BTreeMap<(String, String), Vec<String>>> = BTreeMap::new();
    for f in &c.files {
        for n in &f.named {
            let Some(to) = c.resolve(f, n) else { continue };
            for k in 1..n.scope.len() {
                let module = &n.scope[..k];
                if to.len() <= k || to[..k] != *module {
                    continue;
                }
                let target = if c.is_child(module, &to[k]) {
                    Some(&to[k])
                } else {
                    reexports.get(module).and_then(|r| r.get(&to[k]))
                };
                let from = &n.scope[k];
                if let Some(target) = target.filter(|t| *t != from) {
                    let edges = out.entry(module.to_vec()).or_default();
                    let why = format!("{}: {}", f.rel.display(), n.segments.join("::"));
                    let e = edges.entry((from.clone(), target.clone())).or_default();
                    e.push(why);
                }
            }
        }
    }
    out
}

/// The sets of files that use each other in a circle (strongly connected, two or more).
fn cycles<'e>(edges: &'e BTreeMap<(String, String), Vec<String>>) -> Vec<BTreeSet<String>> {
    let mut next: BTreeMap<&'e str, Vec<&'e str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
        next.entry(b).or_default();
    }
    let reach = |from: &'e str| -> BTreeSet<&'e str> {
        let mut seen = BTreeSet::from([from]);
        let mut todo = vec![from];
        while let Some(x) = todo.pop() {
            for y in &next[x] {
                if seen.insert(*y) {
                    todo.push(*y);
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&str, BTreeSet<&str>> = next.keys().map(|k| (*k, reach(k))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for (a, from_a) in &reached {
        let set: BTreeSet<String> = from_a
            .iter()
            .filter(|b| reached[**b].contains(a))
            .map(|b| (*b).to_string())
            .collect();
        if set.len() > 1 && !out.contains(&set) {
            out.push(set);
        }
    }
    out
}

#[test]
fn no_import_cycle_between_files_of_a_module() {
    let mut wrong = Vec::new();
    let mut used = vec![false; KNOWN_CYCLES.len()];
    for (module, edges) in sibling_uses(krate()) {
        let name = module.join("::");
        for set in cycles(&edges) {
            let known = KNOWN_CYCLES.iter().position(|(m, files)| {
                *m == name && set.iter().all(|f| files.contains(&f.as_str()))
            });
            if let Some(i) = known {
                used[i] = true;
                continue;
            }
            let mut lines = vec![format!("{name}: {set:?}")];
            for ((a, b), why) in &edges {
                if set.contains(a) && set.contains(b) {
                    lines.push(format!("  {a} -> {b}: {}", why.join(", ")));
                }
            }
            wrong.push(lines.join("\n"));
        }
    }
    for (i, (m, files)) in KNOWN_CYCLES.iter().enumerate() {
        if !used[i] {
            wrong.push(format!(
                "{m}: {files:?} is no cycle now: remove it from KNOWN_CYCLES"
            ));
        }
    }
    assert!(wrong.is_empty(), "import cycles:\n{}", wrong.join("\n"));
}

#[test]
fn no_file_is_longer_than_the_limit() {
    let mut wrong = Vec::new();
    for f in &krate().files {
        let rel = f.rel.display().to_string();
        let known = KNOWN_LONG.contains(&rel.as_str());
        if f.lines > MAX_LINES && !known {
            wrong.push(format!("{rel}: {} lines", f.lines));
        } else if f.lines <= MAX_LINES && known {
            wrong.push(format!(
                "{rel}: {} lines: remove it from KNOWN_LONG",
                f.lines
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_resolves_groups_and_super_super() {
    let c = Crate::of(&[
        (
            "",
            "mod app; mod config; mod dns; mod geo; mod health; mod lock;",
        ),
        ("app", ""),
        ("config", ""),
        ("dns", ""),
        ("geo", ""),
        ("health", "mod hub;"),
        ("health::hub", "mod apply;"),
        ("lock", ""),
        (
            "health::hub::apply",
            "use crate::{dns::x, config as c}; \
             fn f() { super::super::super::geo::g(); tracing::info!(\"{}\", crate::lock::y()); } \
             /// [`crate::app`] is a doc link, not a use.
             fn g() {}",
        ),
    ]);
    let used: Vec<String> = cross_uses(&c).into_iter().map(|(_, _, to)| to).collect();
    assert_eq!(used, ["config", "dns", "geo", "lock"]);
}

#[test]
fn the_checker_finds_a_cycle_through_a_group_a_reexport_and_an_alias() {
    let c = Crate::of(&[
        ("", "mod m;"),
        (
            "m",
            "mod a; mod b; mod c; pub use b::Thing; fn f() { a::x(); c::y(); }",
        ),
        ("m::a", "use super::{Thing, c};"),
        ("m::b", "fn g() { crate::m::a::x(); }"),
        (
            "m::c",
            "use super::*; use crate::m as parent; fn h() { parent::b::z(); a::x(); }",
        ),
    ]);
    let edges = sibling_uses(&c);
    let m = &edges[&vec!["m".to_string()]];
    let pairs: Vec<_> = m.keys().cloned().collect();
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    let want = [
        pair("a", "b"),
        pair("a", "c"),
        pair("b", "a"),
        pair("c", "a"),
        pair("c", "b"),
    ];
    assert_eq!(pairs, want);
    let set: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    assert_eq!(cycles(m), [set]);
}
