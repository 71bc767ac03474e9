//! Benchmarks of site binding (written next).

fn main() {}
