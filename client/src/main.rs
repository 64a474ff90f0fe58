//! The `runnel` CLI; see `cli/`.
fn main() {}
