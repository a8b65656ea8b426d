//! No build step: this file exists only so that `[build-dependencies]` in this
//! crate's manifest take effect (see the comment there).

fn main() {}
