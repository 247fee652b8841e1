"""Kernels that expose latency: dependent chains of additions and of loads.

The chapter "What makes computation fast" explains them and Lab 2 uses them:
a sum with one accumulator (every addition waits for the previous one), the
same sum with ``k`` independent accumulators, and a pointer chase through a
buffer whose cache lines form one random cycle (every load waits for the
previous one). Tests: ``tests/test_kernels_memory.py``.
"""

import numba
import numpy as np

__all__ = ["LINE", "WORDS_PER_LINE", "accumulator_source", "chase", "random_cycle", "sum_chain",
           "sum_with_accumulators"]

LINE = 64
"""Bytes in a cache line on x86 and most ARM cores."""

WORDS_PER_LINE = LINE // 8
"""8-byte words (``uint64`` indices, ``float64`` values) in a cache line."""


@numba.njit(fastmath=False)
def sum_chain(x):
    """Sum a 1-D array one value after the other: one dependent chain of additions.

    ``fastmath=False`` (numba's default, spelled out) obliges the compiler to
    add in exactly the order written, so each addition waits for the latency
    of the previous one.

    Parameters
    ----------
    x : ndarray, 1-D
        The values (any layout, e.g. a strided view).

    Returns
    -------
    float
        Their sum, added from first to last.

    Examples
    --------
    >>> sum_chain(np.array([1.0, 2.0, 3.5]))
    6.5
    """
    total = 0.0
    for i in range(x.size):
        total += x[i]  # needs the previous total: one add at a time
    return total


def accumulator_source(k):
    """Python source of a sum over ``x`` with ``k`` independent accumulators ``a0`` … ``a(k-1)``.

    The function it defines, ``sum_<k>_accumulators(x)``, adds blocks of ``k``
    values into ``k`` separate chains, then the leftover values (when the
    length is not a multiple of ``k``) after the chains are combined.

    Parameters
    ----------
    k : int
        Number of accumulators, at least 1.

    Returns
    -------
    str

    Examples
    --------
    >>> print(accumulator_source(2))
    def sum_2_accumulators(x):
        blocks = x.size // 2
        a0 = a1 = 0.0
        for b in range(blocks):
            i = 2 * b
            a0 += x[i + 0]
            a1 += x[i + 1]
        total = a0 + a1
        for i in range(2 * blocks, x.size):  # the leftover values
            total += x[i]
        return total
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"the number of accumulators must be a positive integer, got {k!r}")
    names = [f"a{j}" for j in range(k)]
    return "\n".join(
        [f"def sum_{k}_accumulators(x):",
         f"    blocks = x.size // {k}",
         f"    {' = '.join(names)} = 0.0",
         "    for b in range(blocks):",
         f"        i = {k} * b"]
        + [f"        a{j} += x[i + {j}]" for j in range(k)]
        + [f"    total = {' + '.join(names)}",
           f"    for i in range({k} * blocks, x.size):  # the leftover values",
           "        total += x[i]",
           "    return total"])


def sum_with_accumulators(k):
    """The sum of :func:`accumulator_source`, compiled with ``numba.njit(fastmath=False)``.

    Separate scalar variables keep the ``k`` partial sums in registers, so up
    to ``k`` additions are in flight at once; only their number differs
    between the variants the chapter times.

    Parameters
    ----------
    k : int
        Number of accumulators, at least 1.

    Returns
    -------
    numba dispatcher
        ``f(x)`` for a 1-D array ``x``, named ``sum_<k>_accumulators``.

    Examples
    --------
    >>> sum_with_accumulators(4)(np.arange(10.0))
    45.0
    """
    namespace = {"__name__": __name__}  # the function then belongs to this module, not to a notebook
    exec(compile(accumulator_source(k), f"<{__name__}.accumulator_source({k})>", "exec"), namespace)
    return numba.njit(fastmath=False)(namespace[f"sum_{k}_accumulators"])


def random_cycle(n_bytes, seed=0):
    """A buffer of ``n_bytes`` whose cache lines form one random cycle: ``buffer[i]`` is the next index.

    The first word of every 64-byte line holds the index of the first word of
    the next line in a random order that visits every line once before coming
    back. Random order defeats the hardware prefetcher; unsigned indices let
    numba skip the wrap-around check for negative indices in :func:`chase`.

    Parameters
    ----------
    n_bytes : int
        Size of the buffer in bytes, rounded down to whole lines (at least 2 lines).
    seed : int
        Seed of the random order.

    Returns
    -------
    ndarray of uint64
        ``n_bytes // 8`` words (rounded to whole lines).

    Examples
    --------
    >>> buffer = random_cycle(4 * LINE)
    >>> buffer.size, sorted(int(i) for i in buffer[::WORDS_PER_LINE])
    (32, [0, 8, 16, 24])
    """
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, (int, np.integer)) or n_bytes < 1:
        raise ValueError(f"n_bytes must be a positive integer, got {n_bytes!r}")
    lines = max(2, n_bytes // LINE)
    order = np.random.default_rng(seed).permutation(lines).astype(np.uint64) * np.uint64(WORDS_PER_LINE)
    buffer = np.zeros(lines * WORDS_PER_LINE, dtype=np.uint64)
    buffer[order] = np.roll(order, -1)
    return buffer


@numba.njit
def chase(buffer, steps):
    """Follow the chain of :func:`random_cycle` for ``steps`` loads; return the index reached.

    Every load's address is the value the previous load returned, so no two
    loads overlap and the time per step is the latency of the memory level
    that holds the buffer.

    Parameters
    ----------
    buffer : ndarray of uint64
        A buffer from :func:`random_cycle` (any buffer whose values are valid indices into it).
    steps : int
        Number of dependent loads after the first, at least 0.

    Returns
    -------
    uint64
        The index after ``steps`` steps from ``buffer[0]``.

    Examples
    --------
    >>> buffer = random_cycle(4 * LINE)
    >>> int(chase(buffer, 4)) == int(buffer[0])  # 4 lines: back at the start
    True
    """
    if buffer.size == 0:
        raise ValueError("chase needs a non-empty buffer")
    if steps < 0:
        raise ValueError("chase needs steps >= 0")
    i = buffer[0]
    for _ in range(steps):
        i = buffer[i]  # the next address is the value just loaded
    return i
