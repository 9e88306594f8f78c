//! Build script: records the git commit a release binary is built from (`SIPSTEER_GIT_COMMIT`),
//! for the startup log and `--version`. A source tarball without git builds with `unknown`; a
//! build from elsewhere (a container build) can pass `SIPSTEER_GIT_COMMIT` itself. Debug
//! builds say `debug build`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=SIPSTEER_GIT_COMMIT");
    let given = std::env::var("SIPSTEER_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty());
    // Only release builds follow HEAD: tracking it in debug builds would rebuild the crate
    // and every test after each commit.
    if given.is_none() && std::env::var("PROFILE").as_deref() != Ok("release") {
        println!("cargo:rustc-env=SIPSTEER_BUILD=debug build");
        return;
    }
    let commit = given
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it points at.
    // Only files that exist: a missing one would rerun this script on every build.
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &r]));
    }
    for path in watch.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=SIPSTEER_BUILD=commit {commit}");
}
