"""Benchmarks against a private, embedded stack: `python -m bench.roundtrip`, `python -m bench.flash_sale`."""
