"""Tooling that never runs in AWS: the `audiomixer` CLI, `remix`, benchmarks and test signals."""
