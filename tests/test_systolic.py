"""book.systolic: exact products, cycle counts against the formula derived in chapter 3, the trace."""

import math

import numpy as np
import pytest

from book import systolic


def formula(m, k, n, rows, cols, dataflow):
    """Chapter 3's cycle count, derived independently of the simulator.

    Weight-stationary: each weight tile (kt × nt) takes kt cycles to load and
    m + kt + nt - 2 to stream every row of a through it. Output-stationary:
    each output tile (mt × nt) takes k + mt + nt - 2 cycles to compute and mt
    to shift out.
    """
    def tiles(total, size):
        return [min(size, total - start) for start in range(0, total, size)]
    if dataflow == "weight":
        return sum(2 * kt + m + nt - 2 for kt in tiles(k, rows) for nt in tiles(n, cols))
    return sum(k + 2 * mt + nt - 2 for mt in tiles(m, rows) for nt in tiles(n, cols))


SHAPES = [(1, 1, 1), (1, 5, 1), (3, 1, 4), (5, 7, 3), (8, 8, 8), (9, 4, 13), (2, 17, 6)]
ARRAYS = [(1, 1), (4, 4), (3, 5), (8, 2)]


@pytest.mark.parametrize("dataflow", systolic.DATAFLOWS)
@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("rows, cols", ARRAYS)
def test_integer_product_is_exact_and_cycles_match_the_formula(m, k, n, rows, cols, dataflow):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.integers(-2**20, 2**20, size=(m, k), dtype=np.int32)
    b = rng.integers(-2**20, 2**20, size=(k, n), dtype=np.int32)
    r = systolic.matmul(a, b, rows=rows, cols=cols, dataflow=dataflow)
    assert r.c.dtype == np.int64
    np.testing.assert_array_equal(r.c, a.astype(np.int64) @ b.astype(np.int64))
    assert r.cycles == formula(m, k, n, rows, cols, dataflow)
    assert r.utilization == pytest.approx(m * k * n / (rows * cols * r.cycles))
    assert 0 < r.utilization <= 1
    assert r.trace is None


def test_int64_products_do_not_overflow_into_float():
    a = np.full((2, 3), 2**30, dtype=np.int64)
    b = np.full((3, 2), 2**30, dtype=np.int64)
    r = systolic.matmul(a, b, rows=2, cols=2)
    assert r.c.dtype == np.int64 and int(r.c[0, 0]) == 3 * 2**60


@pytest.mark.parametrize("dataflow", systolic.DATAFLOWS)
def test_float_and_non_contiguous_inputs(dataflow):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((14, 22))[::2, ::2]  # 7 × 11, strided
    b = np.asfortranarray(rng.standard_normal((11, 5)))
    r = systolic.matmul(a, b, rows=4, cols=3, dataflow=dataflow)
    assert r.c.dtype == np.float64
    np.testing.assert_allclose(r.c, a @ b, rtol=1e-12, atol=1e-12)


def test_lists_and_float32_are_accepted():
    r = systolic.matmul(np.ones((2, 2), np.float32), [[1.5, 0], [0, 1.5]], rows=2, cols=2)
    np.testing.assert_allclose(r.c, [[1.5, 1.5], [1.5, 1.5]])


@pytest.mark.parametrize("dataflow", systolic.DATAFLOWS)
def test_trace_counts_every_mac_once(dataflow):
    m, k, n = 6, 5, 7
    r = systolic.matmul(np.ones((m, k), int), np.ones((k, n), int), rows=3, cols=4, dataflow=dataflow, trace=True)
    assert r.trace.shape == (r.cycles, 3, 4) and r.trace.dtype == bool
    assert int(r.trace.sum()) == m * k * n
    assert r.utilization == pytest.approx(r.trace.mean())


def test_weight_stationary_trace_is_a_skewed_wavefront():
    # One 2×2 weight tile, 3 rows of a: PE (r, j) works on row i at cycle load + i + r + j.
    r = systolic.matmul(np.ones((3, 2)), np.ones((2, 2)), rows=2, cols=2, trace=True)
    load = 2
    for t in range(r.cycles):
        expected = np.array([[0 <= t - load - rr - j < 3 for j in range(2)] for rr in range(2)])
        np.testing.assert_array_equal(r.trace[t], expected, err_msg=f"cycle {t}")


def test_a_shape_that_fills_the_array_uses_it_better():
    big = systolic.matmul(np.ones((64, 8)), np.ones((8, 8)), rows=8, cols=8)
    ragged = systolic.matmul(np.ones((64, 9)), np.ones((9, 9)), rows=8, cols=8)
    assert big.utilization > 1.5 * ragged.utilization  # k = n = 9 needs four tiles, three nearly empty
    assert big.utilization == pytest.approx(64 * 8 * 8 / (8 * 8 * formula(64, 8, 8, 8, 8, "weight")))


@pytest.mark.parametrize("a_shape, b_shape, kwargs, match", [
    ((0, 3), (3, 2), {}, "at least 1"),
    ((2, 3), (3, 0), {}, "at least 1"),
    ((2, 3), (4, 2), {}, "inner dimensions"),
    ((2, 3), (3, 2), {"rows": 0}, "rows"),
    ((2, 3), (3, 2), {"cols": -1}, "cols"),
    ((2, 3), (3, 2), {"rows": 2.5}, "rows"),
    ((2, 3), (3, 2), {"dataflow": "row"}, "dataflow"),
    ((3,), (3, 2), {}, "2-D"),
])
def test_bad_input_is_refused(a_shape, b_shape, kwargs, match):
    options = {"rows": 2, "cols": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        systolic.matmul(np.ones(a_shape), np.ones(b_shape), **options)


def test_non_numbers_are_refused():
    with pytest.raises(TypeError):
        systolic.matmul(np.array([["a"]]), np.array([["b"]]), rows=1, cols=1)
    assert math.isclose(systolic.matmul([[True]], [[True]], rows=1, cols=1).c[0, 0], 1)
