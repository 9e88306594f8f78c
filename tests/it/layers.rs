//! The one-way dependency rule of docs/architecture.md, checked on the source: every
//! `crate::<module>` path in a top-level module names a module of a lower layer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up; a module may use the modules of earlier layers only.
const LAYERS: &[&[&str]] = &[
    &["cli", "files", "lock", "proto", "sys", "telemetry"],
    &["conns"],
    &["config"],
    &["geo", "lint"],
    &["routing"],
    &["steering"],
    &["health"],
    &["dns"],
    &["explain"],
    &["reload"],
    &["admin"],
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules a source text names as `crate::<module>`.
fn used(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .filter(|(i, _)| {
            // `sipsteer::crate::` never occurs; skip identifiers that merely end in "crate".
            !text[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut modules = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .expect("a name");
        if top == "lib" || top == "main" {
            continue;
        }
        let mine = layer_of(&top).unwrap_or_else(|| panic!("module {top} is in no layer"));
        modules.insert(top.clone());
        let text = std::fs::read_to_string(f).expect("read source");
        for m in used(&text) {
            if m == top {
                continue;
            }
            match layer_of(&m) {
                Some(l) if l < mine => {}
                _ => wrong.push(format!("{}: {top} uses {m}", rel.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward or sideways uses:\n{}",
        wrong.join("\n")
    );
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
fn the_checker_sees_a_path() {
    let u = used("use crate::dns::x; fn f() { crate::config::load(); } // mycrate::no");
    assert_eq!(
        u.into_iter().collect::<Vec<_>>(),
        vec!["config".to_string(), "dns".to_string()]
    );
}
