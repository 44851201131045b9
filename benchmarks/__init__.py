"""Benchmarks of ppacer-async against plain asyncio; run with ``python -m benchmarks``.

Kept out of the test run: tests check behaviour, this package measures speed.
"""
