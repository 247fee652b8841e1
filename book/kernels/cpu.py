"""Kernels that expose the CPU's design: out-of-order overlap, branch prediction, the memory system.

The chapter "What makes computation fast" times them in its sections on the
core (pipelining, out-of-order execution, branch prediction) and on the
memory system (memory-level parallelism, cache associativity, the TLB and
prefetching). The memory kernels are pointer chases, like
:func:`book.kernels.memory.chase`, through cycles that this module lays out:
which words are visited, how far apart, in which order, and on which kind of
page. Tests: ``tests/test_kernels_cpu.py``.
"""

import mmap
import re
import sys

import numba
import numpy as np

from book.kernels.memory import LINE, WORDS_PER_LINE

__all__ = ["HUGE_PAGE", "PAGE", "chase_chains", "chase_with_adds", "huge_page_bytes", "keep_above",
           "keep_above_branchless", "link_cycle", "one_line_per_page", "page_backed_zeros", "sum_above",
           "visit_order"]

PAGE = 4096
"""Bytes in a base page of virtual memory on x86-64 Linux (and most systems)."""

HUGE_PAGE = 2 * 1024 * 1024
"""Bytes in an x86-64 huge page, the size Linux's transparent huge pages use."""


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def visit_order(count, stride_bytes, order="random", seed=0):
    """Word positions of ``count`` words ``stride_bytes`` apart, in the order a chase will visit them.

    Parameters
    ----------
    count : int
        Number of words (at least 1).
    stride_bytes : int
        Distance between neighbouring words in bytes, a positive multiple of 8:
        ``LINE`` packs one word per cache line, ``PAGE + LINE`` puts one per
        page at a different line of each page, a cache's size puts every word
        in the same set of that cache.
    order : {"random", "sequential"}
        Visit the words in address order (a pattern the prefetcher can follow)
        or in a random order (one it cannot).
    seed : int
        Seed of the random order.

    Returns
    -------
    ndarray of uint64
        Indices into a ``uint64`` buffer, in visiting order.

    Examples
    --------
    >>> visit_order(4, 16, order="sequential").tolist()
    [0, 2, 4, 6]
    >>> sorted(visit_order(4, 16).tolist())
    [0, 2, 4, 6]
    """
    count, stride_bytes = _positive_int(count, "count"), _positive_int(stride_bytes, "stride_bytes")
    if stride_bytes % 8:
        raise ValueError(f"stride_bytes must be a multiple of 8 (one uint64 word), got {stride_bytes}")
    if order == "sequential":
        slots = np.arange(count, dtype=np.uint64)
    elif order == "random":
        slots = np.random.default_rng(seed).permutation(count).astype(np.uint64)
    else:
        raise ValueError(f"order must be 'random' or 'sequential', got {order!r}")
    return slots * np.uint64(stride_bytes // 8)


def one_line_per_page(pages, seed=0):
    """Word positions of one word in each of ``pages`` base pages, at a random line of each, in random order.

    Each step of a chase through them lands on a different page, so it needs
    a different address translation, while the cache holds only ``pages``
    lines. The random line within each page spreads those lines over the
    cache's sets (the same line of every page would put them all in a few).

    Parameters
    ----------
    pages : int
        Number of pages (at least 1).
    seed : int
        Seed of the order and of the lines.

    Returns
    -------
    ndarray of uint64
        Indices into a ``uint64`` buffer of ``pages * PAGE`` bytes, in visiting order; word 0
        (the first line of page 0) is one of them.

    Examples
    --------
    >>> sorted(int(p) * 8 // PAGE for p in one_line_per_page(3))
    [0, 1, 2]
    """
    pages = _positive_int(pages, "pages")
    rng = np.random.default_rng(seed)
    lines = rng.integers(0, PAGE // LINE, pages).astype(np.uint64)
    lines[0] = 0  # word 0 on the cycle, so a chase from buffer[0] (book.kernels.memory.chase) follows it
    page_order = rng.permutation(pages).astype(np.uint64)
    return page_order * np.uint64(PAGE // 8) + lines[page_order] * np.uint64(WORDS_PER_LINE)


def link_cycle(positions, out=None):
    """A buffer in which ``positions`` form one cycle: ``buffer[positions[k]] = positions[k + 1]``.

    The last position links back to the first, so a chase from
    ``positions[0]`` visits every position once per lap, in the given order.

    Parameters
    ----------
    positions : array of non-negative int, 1-D
        Distinct word indices, in visiting order (e.g. from :func:`visit_order`).
    out : ndarray of uint64, optional
        The buffer to fill (e.g. from :func:`page_backed_zeros`); by default
        a new zeroed buffer just long enough, rounded up to whole cache lines.

    Returns
    -------
    ndarray of uint64
        ``out``, or the new buffer.

    Examples
    --------
    >>> link_cycle(np.array([0, 16, 8]))[[0, 8, 16]].tolist()
    [16, 0, 8]
    """
    positions = np.asarray(positions)
    if positions.ndim != 1 or positions.size == 0 or not np.issubdtype(positions.dtype, np.integer):
        raise ValueError("positions must be a non-empty 1-D array of integers")
    if positions.min() < 0 or np.unique(positions).size != positions.size:
        raise ValueError("positions must be distinct non-negative word indices")
    positions = positions.astype(np.uint64)
    words = -(-(int(positions.max()) + 1) // WORDS_PER_LINE) * WORDS_PER_LINE
    if out is None:
        out = np.zeros(words, dtype=np.uint64)
    elif out.dtype != np.uint64 or out.ndim != 1 or out.size <= int(positions.max()):
        raise ValueError(f"out must be a 1-D uint64 buffer of more than {int(positions.max())} words")
    out[positions] = np.roll(positions, -1)
    return out


def page_backed_zeros(n_bytes, huge):
    """A zeroed ``uint64`` buffer on its own memory mapping, with or without huge pages.

    The mapping is advised before its first touch (``madvise``): with
    ``MADV_HUGEPAGE`` the kernel may back it with 2 MiB pages, with
    ``MADV_NOHUGEPAGE`` it uses base pages only, whatever NumPy's allocator
    would have asked for. The kernel may refuse huge pages;
    :func:`huge_page_bytes` says what it granted. Where ``madvise`` is not
    available (not Linux) this is ``np.zeros``.

    Parameters
    ----------
    n_bytes : int
        Size in bytes, rounded down to whole words (at least one word).
    huge : bool
        Ask for huge pages (True) or forbid them (False).

    Returns
    -------
    ndarray of uint64
        Starting on a 2 MiB boundary, so every whole 2 MiB of it can be one huge page.
    """
    words = _positive_int(n_bytes, "n_bytes") // 8
    if words == 0:
        raise ValueError(f"n_bytes must hold at least one 8-byte word, got {n_bytes}")
    advice = getattr(mmap, "MADV_HUGEPAGE" if huge else "MADV_NOHUGEPAGE", None)
    if advice is None:
        return np.zeros(words, dtype=np.uint64)
    # Private: a shared anonymous mapping is shared memory, which follows another huge-page policy.
    mapping = mmap.mmap(-1, words * 8 + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    mapping.madvise(advice)
    whole = np.frombuffer(mapping, dtype=np.uint64)  # anonymous memory reads as zeros
    start = (-whole.ctypes.data % HUGE_PAGE) // 8
    return whole[start:start + words]


def huge_page_bytes(array):
    """Bytes of the memory mapping holding ``array`` that the kernel backs with huge pages.

    Read from ``AnonHugePages`` in ``/proc/self/smaps`` (Linux); the mapping
    may be larger than the array.

    Parameters
    ----------
    array : ndarray

    Returns
    -------
    int or None
        ``None`` where ``/proc/self/smaps`` does not exist or the address is not found.
    """
    if not sys.platform.startswith("linux"):
        return None
    address = np.asarray(array).ctypes.data
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            span = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
            if span:
                inside = int(span.group(1), 16) <= address < int(span.group(2), 16)
            elif inside and line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024
    return None


@numba.njit
def chase_chains(buffer, starts, steps):
    """Follow ``starts.size`` independent chases through ``buffer`` at once, ``steps`` loads each.

    Within one chain every load waits for the previous one, as in
    :func:`book.kernels.memory.chase`; the chains do not depend on each
    other, so the core can have one load of each in flight at the same time.

    Parameters
    ----------
    buffer : ndarray of uint64
        Next-index buffer (e.g. from :func:`link_cycle`).
    starts : ndarray of uint64
        Where each chain starts (valid indices into ``buffer``).
    steps : int
        Loads per chain, at least 0.

    Returns
    -------
    ndarray of uint64
        The index each chain reached.

    Examples
    --------
    >>> buffer = link_cycle(visit_order(4, LINE))
    >>> chase_chains(buffer, np.array([0, 16], dtype=np.uint64), 4).tolist()  # a whole lap: back at the starts
    [0, 16]
    """
    if steps < 0:
        raise ValueError("chase_chains needs steps >= 0")
    positions = starts.copy()
    for _ in range(steps):
        for j in range(positions.size):
            positions[j] = buffer[positions[j]]  # chain j waits only for its own previous load
    return positions


@numba.njit(fastmath=False)
def chase_with_adds(buffer, steps, adds):
    """A pointer chase with a second, independent chain of ``adds`` additions after each load.

    The additions do not need the loaded value, so an out-of-order core runs
    them while it waits for the load; an in-order core would run them after.
    ``fastmath=False`` keeps the additions in order, one dependent chain.

    Parameters
    ----------
    buffer : ndarray of uint64
        Next-index buffer (e.g. from :func:`link_cycle`).
    steps : int
        Loads, at least 0.
    adds : int
        Additions per load, at least 0.

    Returns
    -------
    tuple of (uint64, float)
        The index reached, and the sum (``steps * adds``, so nothing can be skipped).

    Examples
    --------
    >>> chase_with_adds(link_cycle(visit_order(4, LINE)), 8, 3)
    (0, 24.0)
    """
    if steps < 0 or adds < 0:
        raise ValueError("chase_with_adds needs steps >= 0 and adds >= 0")
    i = buffer[0] if steps > 0 else np.uint64(0)
    total = 0.0
    for step in range(steps):
        if step > 0:
            i = buffer[i]  # the next address is the value just loaded
        for _ in range(adds):
            total += 1.0  # needs the previous total, not the load
    return i, total


@numba.njit
def sum_above(x, threshold):
    """Sum of the values of ``x`` that are at least ``threshold``, written with an ``if``.

    Whether the machine code branches is the compiler's choice: on integers
    LLVM turns the ``if`` into a select on vector lanes, and the order of the
    data no longer matters (the chapter checks the assembly).

    Parameters
    ----------
    x : ndarray of int, 1-D
    threshold : int

    Returns
    -------
    int

    Examples
    --------
    >>> sum_above(np.array([5, 200, 130, 7]), 128)
    330
    """
    total = 0
    for i in range(x.size):
        if x[i] >= threshold:
            total += x[i]
    return total


@numba.njit
def keep_above(x, threshold, out):
    """Copy the values of ``x`` that are at least ``threshold`` to the front of ``out``; return how many.

    A store that happens only when the condition holds cannot be made
    unconditional by the compiler (it may not write memory the program does
    not write), so this loop keeps a real conditional branch, and its speed
    depends on whether the branch predictor guesses the condition.

    Parameters
    ----------
    x : ndarray, 1-D
    threshold : scalar
    out : ndarray, 1-D, at least as long as ``x``

    Returns
    -------
    int
        Number of values kept, ``out[:count]``.

    Examples
    --------
    >>> out = np.zeros(4, dtype=np.int64)
    >>> count = keep_above(np.array([5, 200, 130, 7]), 128, out)
    >>> out[:count].tolist()
    [200, 130]
    """
    if out.size < x.size:
        raise ValueError("out must be at least as long as x")
    count = 0
    for i in range(x.size):
        if x[i] >= threshold:  # a branch: taken or not, the predictor must guess
            out[count] = x[i]
            count += 1
    return count


@numba.njit
def keep_above_branchless(x, threshold, out):
    """:func:`keep_above` without a branch: always store, advance the count by the condition (0 or 1).

    The store to ``out[count]`` is overwritten by the next value when the
    condition is false, so the result is the same; the work per value no
    longer depends on the data.

    Examples
    --------
    >>> out = np.zeros(4, dtype=np.int64)
    >>> count = keep_above_branchless(np.array([5, 200, 130, 7]), 128, out)
    >>> out[:count].tolist()
    [200, 130]
    """
    if out.size < x.size:
        raise ValueError("out must be at least as long as x")
    count = 0
    for i in range(x.size):
        out[count] = x[i]
        count += x[i] >= threshold  # True counts 1: no jump, whatever the data
    return count
