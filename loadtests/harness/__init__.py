"""The latency harness: ``python -m loadtests.harness --help``."""
