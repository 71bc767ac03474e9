//! Benchmarks of token validation (written next).

fn main() {}
