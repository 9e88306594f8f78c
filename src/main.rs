//! The `sipsteer` binary.
fn main() {}
