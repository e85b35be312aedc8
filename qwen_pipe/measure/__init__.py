"""Measuring an engine, shared by coverage and performance: GPU and host memory, a fresh process per
measurement watched from the parent, and the timed workload run inside it."""
