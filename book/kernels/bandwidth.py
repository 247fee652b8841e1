"""Kernels that read memory as fast as the core can: the memory mountain's read loops.

The chapter "What makes computation fast" times them over working sets from
smaller than L1 to larger than the L3. A read kernel measures the memory
level only if the core can consume data faster than that level delivers it,
so the two kernels differ in exactly that:

- :func:`read_strided` sums every ``stride``-th value with eight scalar
  accumulators (``fastmath=False``). Scalar adds cap it at a few bytes per
  cycle, below what L1 and L2 deliver, so for small strides it measures the
  core's adds while the data is in a cache; for large strides every value
  costs a cache line and it measures memory.
- :func:`read_simd` sums contiguous values with packed (SIMD) adds on two
  halves of the array at once, each vectorised and interleaved by the
  compiler, so enough vector additions are in flight to hide the add latency
  (Little's law) and the loads, not the adds, set the pace.

Tests: ``tests/test_kernels_bandwidth.py``.
"""

import numba

__all__ = ["passes_for", "read_simd", "read_strided"]


def passes_for(n, stride=1, at_least=2**18):
    """Passes over ``x[::stride]`` of ``n`` float64 values so that one call reads at least ``at_least`` bytes.

    Repeating a pass inside one call keeps the call's fixed cost (a few
    hundred nanoseconds from Python) negligible next to the reading.

    Parameters
    ----------
    n : int
        Length of the array, at least 1.
    stride : int
        Step between the values read, at least 1.
    at_least : int
        Bytes one call should read, at least 1.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> passes_for(2048), passes_for(2**20)
    (16, 1)
    """
    for name, value in (("n", n), ("stride", stride), ("at_least", at_least)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    values = -(-n // stride)  # x[::stride] holds n / stride values, rounded up
    return max(1, -(-at_least // (values * 8)))


@numba.njit(fastmath=False)
def read_strided(x, stride, passes):
    """Sum every ``stride``-th value of ``x``, ``passes`` times, with eight scalar accumulators.

    Eight independent chains hide the latency of a scalar add, so the loop
    runs at the core's scalar add rate when the data is close (a few adds per
    cycle), and slower when each value's cache line must come from further
    away. ``fastmath=False`` keeps the adds scalar.

    Parameters
    ----------
    x : ndarray of float64, 1-D
    stride : int
        Step between the values read, at least 1.
    passes : int
        How many times to read them, at least 0.

    Returns
    -------
    float
        ``passes`` times the sum of ``x[::stride]`` (rounded differently).

    Examples
    --------
    >>> import numpy as np
    >>> float(read_strided(np.arange(10.0), 3, 2))  # 2 × (0 + 3 + 6 + 9)
    36.0
    """
    if stride < 1:
        raise ValueError("read_strided needs stride >= 1")
    if passes < 0:
        raise ValueError("read_strided needs passes >= 0")
    y = x[::stride]
    blocks = y.size // 8
    total = 0.0
    for _ in range(passes):
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        for b in range(blocks):
            i = 8 * b
            a0 += y[i]
            a1 += y[i + 1]
            a2 += y[i + 2]
            a3 += y[i + 3]
            a4 += y[i + 4]
            a5 += y[i + 5]
            a6 += y[i + 6]
            a7 += y[i + 7]
        total += ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
        for i in range(8 * blocks, y.size):  # the leftover values
            total += y[i]
    return total


@numba.njit(fastmath={"reassoc"})
def read_simd(x, passes):
    """Sum the values of ``x``, ``passes`` times, with packed adds on two halves at once.

    ``fastmath={"reassoc"}`` lets the compiler reorder the additions, and
    nothing else (no other fast-math flag): it vectorises each half's sum and
    interleaves several vector accumulators per half. Two halves double the
    independent vector chains, enough to keep a core's adders busy, so the
    loop is limited by how fast the loads arrive.

    Parameters
    ----------
    x : ndarray of float64, 1-D
        The values; contiguous for the compiler's packed loads (a strided
        view works, on its slower gathering path).
    passes : int
        How many times to read them, at least 0.

    Returns
    -------
    float
        ``passes`` times the sum of ``x`` (rounded differently).

    Examples
    --------
    >>> import numpy as np
    >>> float(read_simd(np.arange(5.0), 3))  # 3 × (0 + 1 + 2 + 3 + 4)
    30.0
    """
    if passes < 0:
        raise ValueError("read_simd needs passes >= 0")
    half = x.size // 2
    total = 0.0
    for _ in range(passes):
        low = high = 0.0
        for i in range(half):  # two independent sums, each vectorised by the compiler
            low += x[i]
            high += x[half + i]
        total += low + high
        if x.size % 2:  # the last value of an odd length
            total += x[x.size - 1]
    return total
