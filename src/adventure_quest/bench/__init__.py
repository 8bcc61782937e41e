"""Reproducible performance measurements, run through ``aq bench``.

Results, with the machine and the command, are recorded in docs/benchmarks.md.
"""
