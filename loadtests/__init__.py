"""Load tests (locust) and the latency harness for collab (docs/benchmarks.md)."""
