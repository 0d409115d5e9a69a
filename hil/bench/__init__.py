"""Benchmarks of WPP on a target (``hil bench``): the seed's evaluation, re-run here.

Layout: `stats` (median, spread, ratio, linear fit), `results` (measurements, table,
JSON), `plots` (PNG), `guest` (every command line run on the target and the parsers of
their output), `remote` (thin `target.shell.run` helpers), one module per workload
(`synthetic`, `redis`, `neighbours`, `persist`) and `runner` (profiles, output files).
"""
