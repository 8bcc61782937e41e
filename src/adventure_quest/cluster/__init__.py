"""Simulated multi-host deployments on one machine, for scaling benchmarks and fault tests."""
