"""Benchmarks: each compares longtail's path with a baseline in the same run (ratios, not absolute
times: the machines are shared and noisy). Run `python -m bench --help`."""
