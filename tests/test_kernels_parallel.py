"""book.kernels.parallel: each rewrite of a loop that blocks parallelism against NumPy, on 1 and all threads."""

import numba
import numpy as np
import pytest

from book.kernels import parallel as par

SIZES = [0, 1, 2, 7, 1001]


def on_threads(threads, kernel, *args):
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(previous)


THREADS = sorted({1, numba.config.NUMBA_NUM_THREADS})


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("n", SIZES)
def test_sums(n, threads):
    x = np.random.default_rng(n).standard_normal(2 * n)[::2]  # a non-contiguous view
    assert par.sum_sequential(x) == pytest.approx(np.sum(x), abs=1e-12 * max(n, 1))
    assert on_threads(threads, par.sum_prange, x) == pytest.approx(np.sum(x), abs=1e-12 * max(n, 1))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("n", SIZES)
def test_histograms_count_every_value(n, threads):
    values = np.random.default_rng(n).integers(0, 5, n)
    expected = np.bincount(values, minlength=5)
    np.testing.assert_array_equal(par.histogram_sequential(values, 5), expected)
    np.testing.assert_array_equal(on_threads(threads, par.histogram_per_thread, values, 5), expected)


@pytest.mark.parametrize("kernel", [par.histogram_sequential, par.histogram_per_thread])
def test_histogram_refuses_values_outside_the_bins(kernel):
    with pytest.raises(ValueError, match="0 <= v < bins"):
        kernel(np.array([0, 5]), 5)
    with pytest.raises(ValueError, match="0 <= v < bins"):
        kernel(np.array([-1, 2]), 5)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_scans_match_cumsum(n, dtype, threads):
    x = (np.random.default_rng(n).standard_normal(2 * n) * 100).astype(dtype)[1::2]
    for kernel in (par.scan_sequential, par.scan_two_pass):
        out = on_threads(threads, kernel, x)
        assert out.dtype == x.dtype and out.shape == x.shape
        np.testing.assert_allclose(out, np.cumsum(x), rtol=1e-12, atol=1e-9)


def test_two_pass_scan_splits_into_blocks():
    """More blocks than values and uneven blocks still give the right offsets."""
    x = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(on_threads(numba.config.NUMBA_NUM_THREADS, par.scan_two_pass, x), np.cumsum(x))
