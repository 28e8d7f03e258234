//! The `clip-vision` command (built out in the CLI issue).
#![forbid(unsafe_code)]

fn main() {}
