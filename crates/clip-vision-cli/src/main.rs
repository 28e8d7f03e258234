//! The `clip-vision` command (built out in the CLI issue).

fn main() {}
