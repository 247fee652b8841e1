"""Locality of reference, quantified: the cache lines a loop nest touches and their reuse distances.

Chapter 6 (Loop optimizations) simulates the matrix multiply's memory trace in each loop order,
computes the **reuse distance** of every access (how many distinct cache lines were touched since
the same line was last touched) and from it the misses of a fully associative LRU cache of any
size: an access hits exactly when its reuse distance is smaller than the cache's capacity in
lines. The simulation runs at small sizes; it models no associativity and no prefetching.

Tests: ``tests/test_locality.py``.
"""

import shutil
import subprocess

import numba
import numpy as np

__all__ = ["LOOP_ORDERS", "hardware_counters_available", "lru_misses", "matmul_trace", "reuse_distances"]

LOOP_ORDERS = ("ijk", "ikj", "jik", "jki", "kij", "kji")
"""Loop orders of ``c[i, j] += a[i, k] * b[k, j]``, outermost first (``k`` is the shared dimension)."""


@numba.njit
def _trace(n, position, tile, line_elems, base_b, base_c):
    out = np.empty(3 * n**3, np.int64)
    index = np.zeros(3, np.int64)
    t = 0
    for x0 in range(0, n, tile):
        for x1 in range(0, n, tile):
            for x2 in range(0, n, tile):
                for y0 in range(x0, min(x0 + tile, n)):
                    index[position[0]] = y0
                    for y1 in range(x1, min(x1 + tile, n)):
                        index[position[1]] = y1
                        for y2 in range(x2, min(x2 + tile, n)):
                            index[position[2]] = y2
                            i, j, k = index[0], index[1], index[2]
                            out[t] = (i * n + k) // line_elems  # a[i, k]
                            out[t + 1] = base_b + (k * n + j) // line_elems  # b[k, j]
                            out[t + 2] = base_c + (i * n + j) // line_elems  # c[i, j], read and written
                            t += 3
    return out


def matmul_trace(n, order="ikj", tile=None, line_bytes=64, itemsize=8):
    """The cache lines that ``c = a @ b`` touches, in order, for square C-ordered ``n x n`` matrices.

    Parameters
    ----------
    n : int
        Matrix side.
    order : str
        Loop order, a permutation of ``"ijk"`` listed outermost first (see :data:`LOOP_ORDERS`).
    tile : int, optional
        Tile side: the loops walk ``tile``-sized blocks of every index in ``order``, then the
        elements inside a block in the same order (``None``: no tiling).
    line_bytes, itemsize : int
        Cache-line size and element size in bytes.

    Returns
    -------
    ndarray of int64
        ``3 n³`` line numbers: for every step of the innermost loop, the lines of ``a[i, k]``,
        ``b[k, j]`` and ``c[i, j]``; the three matrices occupy disjoint line ranges.

    Examples
    --------
    >>> matmul_trace(1).tolist()
    [0, 1, 2]
    """
    if sorted(order) != ["i", "j", "k"]:
        raise ValueError(f"order must be a permutation of 'ijk'; got {order!r}")
    if n < 0 or line_bytes < itemsize or line_bytes % itemsize:
        raise ValueError("n must be >= 0 and line_bytes a positive multiple of itemsize")
    tile = n if tile is None else tile
    if tile < 1 and n > 0:
        raise ValueError(f"tile must be positive; got {tile}")
    line_elems = line_bytes // itemsize
    lines_per_matrix = -(-n * n // line_elems)
    position = np.array(["ijk".index(name) for name in order], np.int64)
    return _trace(n, position, max(tile, 1), line_elems, lines_per_matrix, 2 * lines_per_matrix)


@numba.njit
def reuse_distances(trace):
    """Reuse distance of every access in ``trace``: the number of distinct lines touched since the
    previous access to the same line, or ``-1`` for a line's first access (a cold miss).

    A Fenwick tree over time marks, for each line, the moment it was last touched; the distance is
    the number of marks between that moment and now, so the whole trace costs ``O(N log N)``.
    """
    size = trace.size
    out = np.empty(size, np.int64)
    if size == 0:
        return out
    if trace.min() < 0:
        raise ValueError("line numbers must be non-negative")
    last = np.full(trace.max() + 1, -1, np.int64)
    tree = np.zeros(size + 1, np.int64)
    for t in range(size):
        line = trace[t]
        previous = last[line]
        if previous < 0:
            out[t] = -1
        else:
            # Marks at times previous+1 .. t-1: prefix(t) - prefix(previous + 1).
            count = 0
            position = t
            while position > 0:
                count += tree[position]
                position -= position & -position
            position = previous + 1
            while position > 0:
                count -= tree[position]
                position -= position & -position
            out[t] = count
            position = previous + 1  # unmark the old moment
            while position <= size:
                tree[position] -= 1
                position += position & -position
        position = t + 1
        while position <= size:
            tree[position] += 1
            position += position & -position
        last[line] = t
    return out


def lru_misses(distances, capacity_lines):
    """Misses of a fully associative LRU cache of ``capacity_lines`` lines over accesses with these
    reuse distances: cold misses (distance ``-1``) plus every reuse at distance ``>= capacity``."""
    if capacity_lines < 0:
        raise ValueError(f"capacity must be >= 0 lines; got {capacity_lines}")
    distances = np.asarray(distances)
    return int(np.count_nonzero((distances < 0) | (distances >= capacity_lines)))


def hardware_counters_available():
    """Whether ``perf stat`` can count cache misses here (virtual machines often hide the counters).

    Returns ``False`` when ``perf`` is missing, fails, or reports the event ``<not supported>``.
    """
    if shutil.which("perf") is None:
        return False
    try:
        run = subprocess.run(["perf", "stat", "-x,", "-e", "cache-misses", "true"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    fields = [line.split(",") for line in run.stderr.splitlines() if "cache-misses" in line]
    return run.returncode == 0 and bool(fields) and fields[0][0].strip().isdigit()
