"""Numbers in the units readers expect: times, sizes and rates.

Every page and figure formats through these, so "32 KiB" and "239 ns" read
the same everywhere in the book.
"""


def _check_number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}: {value!r}")
    return float(value)


def format_seconds(seconds):
    """``2.39e-07`` -> ``'239 ns'``: a time in the unit that suits it."""
    seconds = _check_number(seconds, "seconds")
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"


def format_bytes(n):
    """``32768`` -> ``'32 KiB'``: binary units, as cache sizes are quoted."""
    n = _check_number(n, "a byte count")
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if n.is_integer() else f"{n:.1f} {unit}"
        n /= 1024


def format_rate(per_second, unit):
    """``3.2e10, "B"`` -> ``'32 GB/s'``; ``2.5e11, "FLOP"`` -> ``'250 GFLOP/s'``.

    Rates use decimal prefixes (10⁹), as bandwidths and FLOP rates are quoted
    on spec sheets; sizes (:func:`format_bytes`) use binary ones.
    """
    per_second = _check_number(per_second, "a rate")
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1)):
        if abs(per_second) >= scale or prefix == "":
            return f"{per_second / scale:.3g} {prefix}{unit}/s"
