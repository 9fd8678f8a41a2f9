"""Real benchmarks as PromptRecords: each read from its published file format or from the hub,
its categories mapped to ours through a replaceable mapping file (see docs/benchmarks.md)."""
from tasks.benchmarks.registry import BENCHMARKS, BenchmarkSpec, benchmark_spec, load_benchmark

__all__ = ["BENCHMARKS", "BenchmarkSpec", "benchmark_spec", "load_benchmark"]
