"""Support package of the Hands-On Acceleration book (no side effects on import)."""

from book.hardware import card, collect_metadata
from book.timing import BenchResult, bench

__all__ = ["BenchResult", "bench", "card", "collect_metadata"]
