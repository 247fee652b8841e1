"""book.locality: traces against a NumPy enumeration, reuse distances and LRU misses against a plain LRU cache."""

import subprocess
from collections import OrderedDict
from itertools import product

import numpy as np
import pytest

from book import locality


def lru_reference(trace, capacity):
    """A literal LRU cache: an ordered dict of lines, the oldest evicted first."""
    cache, misses = OrderedDict(), 0
    for line in trace:
        if line in cache:
            cache.move_to_end(line)
        else:
            misses += 1
            cache[line] = True
            if len(cache) > capacity:
                cache.popitem(last=False)
    return misses


def distances_reference(trace):
    out = []
    for t, line in enumerate(trace):
        if line in trace[:t]:
            previous = max(s for s in range(t) if trace[s] == line)
            out.append(len(set(trace[previous + 1:t])))
        else:
            out.append(-1)
    return out


@pytest.mark.parametrize("order", locality.LOOP_ORDERS)
@pytest.mark.parametrize("n, tile", [(0, None), (1, None), (3, None), (5, 2), (4, 3)])
def test_trace_visits_every_term_in_its_order(order, n, tile):
    trace = locality.matmul_trace(n, order, tile=tile, line_bytes=16, itemsize=8)
    assert trace.shape == (3 * n**3,)
    lines = -(-n * n // 2)
    # Every (i, j, k) appears once; untiled, in lexicographic order of the loop indices.
    terms = [(a, b, c) for a, b, c in zip(trace[0::3], trace[1::3] - lines, trace[2::3] - 2 * lines)]
    if tile is None:
        expected = []
        for outer in product(range(n), repeat=3):
            index = dict(zip(order, outer))
            i, j, k = index["i"], index["j"], index["k"]
            expected.append(((i * n + k) // 2, (k * n + j) // 2, (i * n + j) // 2))
        assert terms == expected
    else:
        assert len(set(terms)) <= n**3 and len(terms) == n**3


def test_tiled_trace_covers_the_same_accesses():
    plain = locality.matmul_trace(6, "ikj", line_bytes=8)
    tiled = locality.matmul_trace(6, "ikj", tile=4, line_bytes=8)
    key = lambda t: sorted(zip(t[0::3], t[1::3], t[2::3]))
    assert key(plain) == key(tiled) and not np.array_equal(plain, tiled)


def test_trace_refuses_bad_arguments():
    with pytest.raises(ValueError, match="permutation"):
        locality.matmul_trace(4, "iik")
    with pytest.raises(ValueError, match="tile"):
        locality.matmul_trace(4, "ijk", tile=0)
    with pytest.raises(ValueError, match="multiple"):
        locality.matmul_trace(4, "ijk", line_bytes=12)


def test_reuse_distances_against_a_literal_count():
    rng = np.random.default_rng(0)
    for size in (0, 1, 2, 17, 300):
        trace = rng.integers(0, 9, size)
        assert locality.reuse_distances(trace).tolist() == distances_reference(trace.tolist())
    trace = rng.integers(0, 40, 1000)[::2]  # non-contiguous
    assert locality.reuse_distances(trace).tolist() == distances_reference(trace.tolist())


@pytest.mark.parametrize("capacity", [0, 1, 3, 8, 50])
def test_lru_misses_match_an_lru_cache(capacity):
    trace = locality.matmul_trace(5, "ijk", line_bytes=16)
    distances = locality.reuse_distances(trace)
    assert locality.lru_misses(distances, capacity) == lru_reference(trace.tolist(), capacity)
    with pytest.raises(ValueError):
        locality.lru_misses(distances, -1)


def test_loop_order_changes_the_misses():
    """With a cache that holds a few rows, i-k-j reuses b's and c's rows; j-k-i walks columns."""
    n, capacity = 16, 24
    misses = {order: locality.lru_misses(locality.reuse_distances(locality.matmul_trace(n, order)), capacity)
              for order in ("ikj", "jki")}
    assert misses["ikj"] * 4 < misses["jki"]


@pytest.mark.parametrize("stderr, expected", [("<not supported>,,cache-misses,0,100.00,,\n", False),
                                              ("123456,,cache-misses,998,100.00,,\n", True), ("", False)])
def test_hardware_counters_read_perf_stat(monkeypatch, stderr, expected):
    monkeypatch.setattr(locality.shutil, "which", lambda name: "/usr/bin/perf")
    monkeypatch.setattr(locality.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout="", stderr=stderr))
    assert locality.hardware_counters_available() is expected
    monkeypatch.setattr(locality.shutil, "which", lambda name: None)
    assert locality.hardware_counters_available() is False
