"""`hub bench`: the hub's throughput and latency beside the broker's and Python's ceilings and
a naive starting point, measured side by side in one run (see docs/BENCHMARKS.md)."""
