//! weir benchmarks. Criterion microbenchmarks live in `benches/` (`cargo bench -p weir-bench`);
//! `perf` holds the load tools behind `weir perf produce|consume|e2e-latency` and
//! `linkedin` the LinkedIn benchmark runner behind `weir perf linkedin`. Report results
//! as ratios against a baseline measured in the same run: the machine is shared and noisy.

pub mod linkedin;
pub mod perf;
