"""book.kernels.matmul: every step of the ladder against NumPy over edge shapes, dtypes and layouts."""

import numba
import numpy as np
import pytest

from book import asm
from book.kernels import matmul as mm

SHAPES = [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 1, 1), (7, 13, 5), (13, 31, 29)]  # (m, k, n)


def _inputs(m, k, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


def assert_matmul(c, a, b):
    """``c`` equals ``a @ b`` within a k-epsilon bound scaled by ``|a| @ |b|``, with the same dtype, C order."""
    assert c.dtype == a.dtype and c.flags.c_contiguous and c.shape == (a.shape[0], b.shape[1])
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = 2 * max(a.shape[1], 1) * np.finfo(a.dtype).eps * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert np.all(np.abs(c - exact) <= bound + np.finfo(a.dtype).tiny), np.abs(c - exact).max()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(mm.LADDER))
def test_every_step_matches_numpy(name, dtype):
    kernel = mm.LADDER[name]
    for m, k, n in SHAPES:
        a, b = _inputs(m, k, n, dtype)
        assert_matmul(kernel(a, b), a, b)


@pytest.mark.parametrize("step", [mm.matmul_packed, mm.matmul_parallel])
def test_blocks_that_do_not_divide_the_sizes(step):
    a, b = _inputs(23, 17, 41, np.float64, seed=1)
    for mc, kc, nc in [(1, 1, 1), (7, 5, 9), (5, 17, 40), (100, 100, 100)]:
        assert_matmul(step(a, b, mc=mc, kc=kc, nc=nc), a, b)
    with pytest.raises(ValueError, match="block sizes"):
        step(a, b, mc=0)


def test_tiled_with_tiles_that_do_not_divide():
    a, b = _inputs(19, 23, 17, np.float64, seed=2)
    for tiles in [(1, 1, 1), (4, 5, 6), (64, 64, 64)]:
        assert_matmul(mm.matmul_tiled(a, b, *tiles), a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_layouts(dtype):
    a, b = _inputs(37, 29, 45, dtype, seed=3)
    big_a, big_b = _inputs(74, 58, 90, dtype, seed=4)
    cases = [(a, b), (np.asfortranarray(a), np.asfortranarray(b)), (big_a[::2, ::2], big_b[1::2, ::2]),
             (a.T.copy().T, b[:, ::-1])]
    for x, y in cases:
        assert_matmul(mm.matmul(x, y), x, y)
    for m, k, n in SHAPES:
        x, y = _inputs(m, k, n, dtype)
        assert_matmul(mm.matmul(x, y), x, y)


def test_matmul_uses_numba_threads():
    a, b = _inputs(300, 40, 50, np.float64, seed=5)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = mm.matmul(a, b)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(one, mm.matmul(a, b))  # the same sums, whichever thread runs a block


@pytest.mark.parametrize("a, b, match", [
    (np.ones(3), np.ones((3, 2)), "2-D"),
    (np.ones((2, 3)), np.ones((2, 3)), "do not chain"),
    (np.ones((2, 3)), np.ones((3, 2), np.float32), "one dtype"),
    (np.ones((2, 3), np.int64), np.ones((3, 2), np.int64), "float32 and float64"),
    (np.ones((2, 3), np.complex128), np.ones((3, 2), np.complex128), "float32 and float64"),
])
def test_matmul_refuses_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        mm.matmul(a, b)


def test_all_lists_the_steps():
    for kernel in mm.LADDER.values():
        assert kernel.__name__ in mm.__all__
    assert "matmul" in mm.__all__


def test_microkernel_source_is_register_blocked():
    source = mm.microkernel_source(2, 3)
    assert source.count("+= a * b") == 6 and "for p in range(kc):" in source
    with pytest.raises(ValueError):
        mm.microkernel_source(0, 4)


def test_microkernel_is_vectorized():
    """The SLP vectorizer packs each row of accumulators: the loop holds packed FMAs, no scalar ones."""
    kernel = mm.compile_microkernel(2, 8, np.float64)
    code = kernel.inspect_asm(kernel.signatures[0])
    loop = asm.summary(asm.hottest_loop(code))
    assert loop.scalar_float == 0 and sum(loop.packed_float.values()) > 0 and loop.fma > 0
    ap, bp, out = np.arange(10.0), np.arange(40.0), np.empty(16)
    kernel(ap, bp, 5, out)
    np.testing.assert_allclose(out.reshape(2, 8), ap.reshape(5, 2).T @ bp.reshape(5, 8))
    assert numba.config.SLP_VECTORIZE == 0  # restored after the compilation


def test_macrokernel_source_prefetches_both_ends_of_each_row():
    assert mm.macrokernel_source(3, 4).count("prefetch(c, ") == 2 * 3
    assert "prefetch(" not in mm.macrokernel_source(3, 4, prefetch_c=False)
    assert mm.macrokernel_source(3, 4).count("+= a * b") == 12
    with pytest.raises(ValueError):
        mm.macrokernel_source(2, 0)


@pytest.mark.parametrize("prefetch_c", [True, False])
def test_macrokernel_is_vectorized_and_its_steps_agree(prefetch_c):
    macro = mm.compile_macrokernel(mm.MR, 8, np.float64, prefetch_c=prefetch_c)
    code = macro.inspect_asm(macro.signatures[0])
    loop = asm.summary(asm.hottest_loop(code))
    assert loop.scalar_float == 0 and loop.fma > 0
    assert any(op in code for op in ("prefetch", "prfm")) == prefetch_c  # x86 prefetch*, AArch64 prfm
    assert numba.config.SLP_VECTORIZE == 0
    steps = mm.ladder_top(macro, mm.MR, 8)
    a, b = _inputs(23, 17, 41, np.float64, seed=6)
    assert_matmul(steps["register_blocked"](a, b), a, b)
    for blocks in [(1, 1, 1), (7, 5, 9), (12, 17, 16)]:
        assert_matmul(steps["packed"](a, b, *blocks), a, b)
        assert_matmul(steps["parallel"](a, b, *blocks), a, b)


def test_prefetch_takes_a_2d_array_and_two_indices():
    @numba.njit
    def touch(x):
        mm.prefetch(x, 0, 1)
        return x[0, 1]

    assert touch(np.arange(6.0).reshape(2, 3)) == 1.0
    with pytest.raises(numba.core.errors.TypingError):
        touch(np.arange(6.0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("c, h, w, f, kh, kw", [(1, 1, 1, 1, 1, 1), (3, 7, 9, 4, 3, 2), (2, 5, 5, 3, 5, 5),
                                                (0, 4, 4, 2, 3, 3), (2, 6, 4, 0, 1, 3)])
def test_im2col_convolution_equals_the_direct_loops(dtype, c, h, w, f, kh, kw):
    rng = np.random.default_rng(c * 100 + h)
    x = rng.standard_normal((c, h, 2 * w)).astype(dtype)[:, :, ::2]  # non-contiguous input
    filters = rng.standard_normal((f, c, kh, kw)).astype(dtype)
    direct = mm.conv2d_direct(x, filters)
    lowered = mm.conv2d_im2col(x, filters)
    assert lowered.shape == direct.shape == (f, h - kh + 1, w - kw + 1) and lowered.dtype == dtype
    tolerance = 10 * max(c * kh * kw, 1) * np.finfo(dtype).eps
    np.testing.assert_allclose(lowered, direct, rtol=tolerance, atol=tolerance * max(c * kh * kw, 1))
    # The direct loops against an independent NumPy sum over the windows.
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    np.testing.assert_allclose(direct, np.einsum("chwij,fcij->fhw", windows, filters), rtol=tolerance,
                               atol=tolerance * max(c * kh * kw, 1))


def test_im2col_layout_and_size():
    x = np.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    cols = mm.im2col(x, 2, 3)
    assert cols.shape == (2 * 2 * 3, 2 * 2) and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols[:, 1 * 2 + 1], x[:, 1:3, 1:4].ravel())  # output pixel (1, 1)
    with pytest.raises(ValueError, match="does not fit"):
        mm.im2col(x, 4, 1)


@pytest.mark.parametrize("x, w, match", [
    (np.ones((3, 3)), np.ones((1, 1, 1, 1)), "ndim"),
    (np.ones((2, 4, 4)), np.ones((1, 3, 2, 2)), "channels"),
    (np.ones((1, 4, 4)), np.ones((1, 1, 5, 2)), "does not fit"),
    (np.ones((1, 4, 4)), np.ones((1, 1, 2, 2), np.float32), "one dtype"),
])
def test_convolution_refuses_bad_input(x, w, match):
    with pytest.raises(ValueError, match=match):
        mm.conv2d_direct(x, w)
    if match != "one dtype":
        with pytest.raises(ValueError, match=match):
            mm.conv2d_im2col(x, w)


def test_block_sizes_come_from_the_card():
    card = {"L1d": 32768, "L2": 524288, "L3": 33554432}
    mc, kc, nc = mm.block_sizes(np.float64, card)
    sliver = kc * mm.NR[np.dtype(np.float64)] * 8
    assert sliver <= card["L1d"] and sliver + mc * kc * 8 <= card["L2"] < sliver + (mc + mm.MR) * kc * 8
    assert mc % mm.MR == 0 and nc % mm.NR[np.dtype(np.float64)] == 0 and kc * nc * 8 <= card["L3"] // 2
    bigger = mm.block_sizes(np.float64, {"L1d": 2 * 32768, "L2": 2 * 524288, "L3": 33554432})
    assert bigger[1] == 2 * kc  # twice the L1d, twice the depth of a sliver
    assert mm.block_sizes(np.float32, {}) == (mm.MC, mm.KC, mm.NC)  # a card without caches: the fallbacks
    with pytest.raises(ValueError):
        mm.block_sizes(np.int32, card)
