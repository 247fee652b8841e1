"""book.kernels.bandwidth against NumPy references over edge sizes and layouts, and its emitted code."""

import math

import numpy as np
import pytest

from book import asm
from book.kernels import bandwidth

SIZES = [0, 1, 2, 7, 8, 9, 17, 1003]


def values(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


@pytest.mark.parametrize("stride", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("n", SIZES)
def test_read_strided_sums_every_stride_th_value(n, stride):
    x = values(n, seed=n)
    for passes in (0, 1, 3):
        np.testing.assert_allclose(bandwidth.read_strided(x, stride, passes), passes * math.fsum(x[::stride]),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_read_simd_sums_every_value(n):
    x = values(n, seed=n)
    for passes in (0, 1, 3):
        np.testing.assert_allclose(bandwidth.read_simd(x, passes), passes * math.fsum(x), rtol=1e-12, atol=1e-12)


def test_read_simd_on_a_strided_view_leaves_its_input_alone():
    x = values(2003)[::2]
    before = x.copy()
    np.testing.assert_allclose(bandwidth.read_simd(x, 2), 2 * math.fsum(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(x, before)


def test_negative_arguments_are_refused():
    x = values(16)
    with pytest.raises(ValueError, match="stride"):
        bandwidth.read_strided(x, 0, 1)
    with pytest.raises(ValueError, match="passes"):
        bandwidth.read_strided(x, 1, -1)
    with pytest.raises(ValueError, match="passes"):
        bandwidth.read_simd(x, -1)


def hot_loop_adds(kernel, *args):
    kernel(*args)
    return asm.summary(asm.hottest_loop(kernel.inspect_asm(kernel.signatures[-1])), operation="add")


def test_read_simd_is_packed_with_more_vector_chains_than_a_plain_reduction():
    """Packed adds only, and at least eight vector accumulators in the hot loop: two halves, each
    interleaved by the compiler (Little's law: latency 3-4 cycles × 2 adds per cycle)."""
    adds = hot_loop_adds(bandwidth.read_simd, values(64), 1)
    assert adds.scalar_float == 0 and sum(adds.packed_float.values()) >= 8, adds


def test_read_strided_stays_scalar():
    adds = hot_loop_adds(bandwidth.read_strided, values(64), 1, 1)
    assert adds.packed_float == {} and adds.scalar_float >= 8, adds


@pytest.mark.parametrize(("n", "stride", "at_least", "expected"),
                         [(2048, 1, 2**18, 16), (2**20, 1, 2**18, 1), (100, 64, 2**18, 2**14), (1, 1, 1, 1)])
def test_passes_for_reads_at_least_the_bytes_asked(n, stride, at_least, expected):
    passes = bandwidth.passes_for(n, stride, at_least)
    assert passes == expected
    assert passes * -(-n // stride) * 8 >= at_least


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_passes_for_refuses_non_positive_arguments(bad):
    with pytest.raises(ValueError, match="positive integer"):
        bandwidth.passes_for(bad)
    with pytest.raises(ValueError, match="positive integer"):
        bandwidth.passes_for(64, stride=bad)
