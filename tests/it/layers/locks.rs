//! The poisoned-lock rule of `src/lock.rs`, checked on the source text: outside that file no
//! std lock is taken with its `Result` handled by hand (`.lock().unwrap()`, `.read().ok()`,
//! `let Ok(g) = m.lock() else`, `match m.lock()`, `?`) and `PoisonError` is not named, so
//! every lock goes through the one helper and its one policy.

use std::path::Path;

/// Files still handling a lock's `Result` themselves (an entry with none left fails the
/// test, so it is removed once its file goes through `src/lock.rs`).
const KNOWN_STRAY: &[&str] = &[];

/// Calls that take a std lock (with no arguments: `reader.read(&mut buf)` is not one).
const TAKES: &[&str] = &[
    ".lock()",
    ".read()",
    ".write()",
    ".try_lock()",
    ".try_read()",
    ".try_write()",
];

/// What follows a lock call that handles its `Result` by hand.
const HANDLES: &[&str] = &[
    ".unwrap", ".expect", ".ok()", ".err()", ".is_ok", ".is_err", ".map", ".into_", "?", "else",
    "{",
];

/// The lines (from 1) of `text` that handle a lock's `Result` by hand or name `PoisonError`.
pub(super) fn stray_locks(text: &str) -> Vec<usize> {
    // The text without comments and whitespace, and the line each byte of it came from, so
    // a chain split over lines reads as one.
    let mut flat = String::new();
    let mut line_of = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.find("//").map_or(line, |c| &line[..c]);
        for ch in code.chars().filter(|c| !c.is_whitespace()) {
            flat.push(ch);
            line_of.resize(flat.len(), i + 1);
        }
    }
    let mut out = Vec::new();
    for (at, _) in flat.match_indices("PoisonError") {
        out.push(line_of[at]);
    }
    for take in TAKES {
        for (at, _) in flat.match_indices(take) {
            let rest = &flat[at + take.len()..];
            if HANDLES.iter().any(|h| rest.starts_with(h)) {
                out.push(line_of[at]);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn every_std_lock_goes_through_the_helper() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    let mut used = vec![false; KNOWN_STRAY.len()];
    for f in &super::krate().files {
        let rel = f.rel.display().to_string();
        if rel == "src/lock.rs" {
            continue;
        }
        let text = std::fs::read_to_string(root.join(&f.rel)).expect("read a source file");
        let lines = stray_locks(&text);
        if lines.is_empty() {
            continue;
        }
        if let Some(i) = KNOWN_STRAY.iter().position(|k| *k == rel) {
            used[i] = true;
            continue;
        }
        wrong.push(format!("{rel}: lines {lines:?}"));
    }
    for (i, k) in KNOWN_STRAY.iter().enumerate() {
        if !used[i] {
            wrong.push(format!(
                "{k}: no stray lock now: remove it from KNOWN_STRAY"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "locks taken outside crate::lock (use lock::guard, lock::read or lock::write):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_lock_check_finds_each_way_of_handling_the_result() {
    let text = "fn f() {
        let a = m.lock().unwrap();
        let b = l
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(c) = m.lock() else { return };
        match l.write() { _ => {} }
        let d = m.try_lock().ok();
        let e = crate::lock::guard(&m);
        let n = reader.read(&mut buf)?;
        self.flights.read();
        let t = tokio_mutex.lock().await;
        // m.lock().unwrap() in a comment
    }";
    assert_eq!(stray_locks(text), [2, 4, 5, 6, 7, 8]);
}
