"""Loops that block parallelism, and the rewrites that unblock them.

The chapter "Loops that block parallelism" (chapter 6, Loop optimizations) times each pair on the
machine's cores: a reduction whose accumulator numba privatises per thread, a histogram with one
private copy of the counts per chunk, and a prefix sum, sequential and as a two-pass blocked scan.
Every function takes a 1-D array and returns a new one (or a scalar); ``prange`` loops use
``numba.get_num_threads()`` threads.

Tests: ``tests/test_kernels_parallel.py``.
"""

import numba
import numpy as np
from numba import prange

__all__ = ["histogram_per_thread", "histogram_sequential", "scan_sequential", "scan_two_pass", "sum_prange",
           "sum_sequential"]


@numba.njit
def sum_sequential(x):
    """The sum of ``x``, one running total: every iteration reads the total the previous one wrote."""
    total = 0.0
    for i in range(x.size):
        total += x[i]
    return total


@numba.njit(parallel=True)
def sum_prange(x):
    """The sum of ``x`` over threads: numba recognises ``total += ...`` as a reduction and gives each
    thread a private total, combined at the end (the additions run in another order, so the rounding
    differs from :func:`sum_sequential`)."""
    total = 0.0
    for i in prange(x.size):
        total += x[i]
    return total


@numba.njit
def _check_bins(values, bins):
    # An index outside the counts would write past the array: numba does not check bounds.
    if values.size and (values.min() < 0 or values.max() >= bins):
        raise ValueError("histogram values must lie in 0 <= v < bins")


@numba.njit
def histogram_sequential(values, bins):
    """Counts of the integers ``values`` (each in ``0 <= v < bins``), one shared array of counts."""
    _check_bins(values, bins)
    counts = np.zeros(bins, np.int64)
    for i in range(values.size):
        counts[values[i]] += 1
    return counts


@numba.njit(parallel=True)
def histogram_per_thread(values, bins):
    """:func:`histogram_sequential` over threads, one private row of counts per chunk.

    Two threads incrementing one shared ``counts[v]`` race (both read, both add one, one write is
    lost), and numba does not privatise an indexed update. Each chunk therefore counts into its own
    row, and the rows are summed once at the end: ``chunks * bins`` extra additions instead of a lock
    per value.
    """
    _check_bins(values, bins)
    chunks = numba.get_num_threads()
    private = np.zeros((chunks, bins), np.int64)
    step = (values.size + chunks - 1) // chunks
    for chunk in prange(chunks):
        row = private[chunk]
        for i in range(chunk * step, min(values.size, (chunk + 1) * step)):
            row[values[i]] += 1
    return private.sum(axis=0)


@numba.njit
def scan_sequential(x):
    """Inclusive prefix sum ``out[i] = x[0] + ... + x[i]``: a loop-carried dependence, since
    ``out[i]`` needs ``out[i - 1]``."""
    out = np.empty_like(x)
    if x.size == 0:
        return out
    total = out[0] = x[0]
    for i in range(1, x.size):
        total += x[i]
        out[i] = total
    return out


@numba.njit(parallel=True)
def scan_two_pass(x):
    """Inclusive prefix sum over threads, in two parallel passes over ``blocks`` contiguous blocks.

    Pass 1 sums each block independently; a short sequential scan over the ``blocks`` block sums
    gives each block its offset (the sum of everything before it); pass 2 scans each block again,
    starting from its offset. Each pass is independent across blocks, but the data is read twice:
    about twice the sequential scan's work, which is the price of breaking the dependence.
    """
    n = x.size
    blocks = numba.get_num_threads()
    step = (n + blocks - 1) // blocks
    sums = np.zeros(blocks, x.dtype)
    for block in prange(blocks):
        total = sums[block]
        for i in range(block * step, min(n, (block + 1) * step)):
            total += x[i]
        sums[block] = total
    offsets = np.zeros(blocks, x.dtype)
    for block in range(1, blocks):
        offsets[block] = offsets[block - 1] + sums[block - 1]
    out = np.empty_like(x)
    for block in prange(blocks):
        total = offsets[block]
        for i in range(block * step, min(n, (block + 1) * step)):
            total += x[i]
            out[i] = total
    return out
