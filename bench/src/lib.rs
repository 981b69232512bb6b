//! weir benchmarks. Criterion microbenchmarks live in `benches/` (`cargo bench -p weir-bench`);
//! load generators and the LinkedIn benchmark reproduction come with the performance issue.
//! Report results as ratios against a baseline measured in the same run: the machine
//! is shared and noisy.
