"""book.compress kernels (CSR SpMV/SpMM, BSR, n:m, int8 GEMM) against NumPy and scipy over edge sizes."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from book import asm
from book.compress import bsr_matmul, csr_spmm, csr_spmv, int8_matmul, kernels, nm_matmul, prune, to_bsr, to_csr, to_nm

SHAPES = [(0, 5), (5, 0), (1, 1), (7, 13), (16, 24), (33, 17)]


def _sparse(shape, density, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(dtype)
    a[rng.random(shape) >= density] = 0
    if shape[0] > 2:
        a[1] = 0  # an empty row
    return a


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.1, 0.6, 1.0])
def test_csr_spmv_and_spmm_match_scipy(shape, density):
    a = _sparse(shape, density)
    x = np.random.default_rng(1).standard_normal(shape[1])
    indptr, indices, data = to_csr(a)
    ref = sp.csr_matrix(a)
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_allclose(csr_spmv(indptr, indices, data, x), ref @ x, rtol=1e-12, atol=1e-12)
    b = np.random.default_rng(2).standard_normal((shape[1], 5))
    out = csr_spmm(indptr, indices, data, b)
    assert out.shape == (shape[0], 5) and out.flags.c_contiguous
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)
    # a batch of one takes the matrix-vector path
    np.testing.assert_allclose(csr_spmm(indptr, indices, data, b[:, :1]), a @ b[:, :1], rtol=1e-12, atol=1e-12)
    # scipy's own arrays (int32 indices), a strided x and a Fortran-ordered b
    wide = np.zeros(2 * shape[1])
    wide[::2] = x
    np.testing.assert_allclose(csr_spmv(ref.indptr, ref.indices, ref.data, wide[::2]), ref @ x, atol=1e-12)
    np.testing.assert_allclose(csr_spmm(ref.indptr, ref.indices, ref.data, np.asfortranarray(b)), a @ b,
                               atol=1e-12)


def test_csr_float32_stays_float32_and_unsorted_indices_work():
    a = _sparse((9, 11), 0.5, dtype=np.float32)
    x = np.arange(11, dtype=np.float32)
    indptr, indices, data = to_csr(a)
    y = csr_spmv(indptr, indices, data, x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, a @ x, rtol=1e-5, atol=1e-4)
    for i in range(9):  # reverse each row's entries: CSR does not require sorted columns
        lo, hi = indptr[i], indptr[i + 1]
        indices[lo:hi], data[lo:hi] = indices[lo:hi][::-1].copy(), data[lo:hi][::-1].copy()
    np.testing.assert_allclose(csr_spmv(indptr, indices, data, x), a @ x, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("call, message", [
    (lambda: csr_spmv([0, 1, 3], [0, 1], [1.0, 2.0], np.ones(2)), "from 0 to the number of nonzeros"),
    (lambda: csr_spmv([1, 2], [0], [1.0], np.ones(2)), "from 0"),
    (lambda: csr_spmv([0, 2, 1, 2], [0, 1], [1.0, 2.0], np.ones(2)), "never decrease; it falls after row 1"),
    (lambda: csr_spmv([], [], [], np.ones(2)), "at least one"),
    (lambda: csr_spmv([0, 2], [0, 2], [1.0, 2.0], np.ones(2)), r"\[0, 2\)"),
    (lambda: csr_spmv([0, 2], [0, -1], [1.0, 2.0], np.ones(2)), r"\[0, 2\)"),
    (lambda: csr_spmv([0, 2], [0, 1], [1.0], np.ones(2)), "one entry per nonzero"),
    (lambda: csr_spmv([0.0, 1.0], [0], [1.0], np.ones(2)), "indptr must be a 1-D array of integers"),
    (lambda: csr_spmv([0, 1], [0], [1.0], np.ones((2, 1))), "x must be a 1-D"),
    (lambda: csr_spmm([0, 1], [3], [1.0], np.ones((2, 3))), r"\[0, 2\)"),
    (lambda: csr_spmm([0, 1], [0], [1.0], np.ones(2)), "2-D"),
    (lambda: csr_spmm([0, 1], [3], [1.0], np.ones((2, 1))), r"\[0, 2\)"),
    (lambda: csr_spmm([0, 2, 1, 2], [0, 1], [1.0, 2.0], np.ones((2, 1))), "never decrease"),
    (lambda: csr_spmm([0, 2, 1, 2], [0, 1], [1.0, 2.0], np.ones((2, 3))), "never decrease"),
])
def test_csr_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block", [(4, 8), (1, 1), (3, 2)])
def test_bsr_matches_dense(shape, block):
    a = prune(_sparse(shape, 0.9), 0.0)
    # zero whole blocks so that some are skipped, some stored
    a[: shape[0] // 2, : shape[1] // 2] = 0
    indptr, indices, blocks, full = to_bsr(a, block)
    assert full == a.shape and blocks.shape[1:] == block
    assert len(blocks) <= -(-shape[0] // block[0]) * -(-shape[1] // block[1])
    b = np.random.default_rng(3).standard_normal((shape[1], 6))
    out = bsr_matmul(indptr, indices, blocks, full, b)
    assert out.shape == (shape[0], 6)
    np.testing.assert_allclose(out, a @ b, atol=1e-12)
    np.testing.assert_allclose(bsr_matmul(indptr, indices, blocks, full, b[:, :1]), a @ b[:, :1], atol=1e-12)
    if shape == (16, 24) and block == (4, 8):
        ref = sp.bsr_matrix(a, blocksize=block)
        assert ref.nnz // 32 == len(blocks)  # scipy stores the same blocks


def test_bsr_bad_input():
    with pytest.raises(ValueError, match="pair of positive ints"):
        to_bsr(np.ones((4, 4)), (0, 2))
    indptr, indices, blocks, shape = to_bsr(np.ones((4, 8)))
    with pytest.raises(ValueError, match="8 rows"):
        bsr_matmul(indptr, indices, blocks, shape, np.ones((7, 2)))


@pytest.mark.parametrize("shape", [(0, 8), (1, 4), (5, 12), (9, 32)])
def test_nm_matches_dense(shape):
    w = np.random.default_rng(4).standard_normal(shape)
    a = prune(w, None, kind="n:m")
    if shape[0] > 2:
        a[1, :4] = 0  # a group with fewer than n nonzeros
    values, positions = to_nm(a)
    assert values.shape == positions.shape == (shape[0], shape[1] // 2) and positions.dtype == np.uint8
    b = np.random.default_rng(5).standard_normal((shape[1], 3))
    np.testing.assert_allclose(nm_matmul(values, positions, b), a @ b, atol=1e-12)
    one_of_four = prune(w, None, kind="n:m", n=1, m=4)
    v1, p1 = to_nm(one_of_four, n=1, m=4)
    np.testing.assert_allclose(nm_matmul(v1, p1, b, n=1, m=4), one_of_four @ b, atol=1e-12)


def test_nm_bad_input():
    with pytest.raises(ValueError, match="more than n=2"):
        to_nm(np.ones((2, 8)))
    values, positions = to_nm(prune(np.ones((2, 8)), None, kind="n:m"))
    with pytest.raises(ValueError, match="8 rows"):
        nm_matmul(values, positions, np.ones((6, 2)))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        nm_matmul(values, positions + 4, np.ones((8, 2)))


def _int64_product(a, b):
    return a.astype(np.int64) @ b.astype(np.int64)


@pytest.mark.parametrize("m, k, n", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 1, 1), (7, 13, 5), (17, 33, 19)])
def test_int8_matmul_is_exact(m, k, n):
    rng = np.random.default_rng(m * 100 + k)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    c = int8_matmul(a, b)
    assert c.dtype == np.int32 and c.shape == (m, n) and c.flags.c_contiguous
    np.testing.assert_array_equal(c, _int64_product(a, b))
    np.testing.assert_array_equal(kernels.int8_matmul_naive(a, b), _int64_product(a, b))
    np.testing.assert_array_equal(int8_matmul(np.asfortranarray(a), b[:, ::-1]), _int64_product(a, b[:, ::-1]))


def test_int8_blocks_and_edges_of_every_size():
    """Blocks smaller than the matrix in every dimension, with partial blocks and panels at each edge."""
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (kernels.MR * 3 + 1, 37), dtype=np.int8)
    b = rng.integers(-128, 128, (37, kernels.NR * 2 + 5), dtype=np.int8)
    for mc, kc, nc in [(kernels.MR, 2, kernels.NR), (2 * kernels.MR, 7, 3 * kernels.NR), (100, 1000, 1000)]:
        np.testing.assert_array_equal(kernels._int8_blocked(a, b, mc, kc, nc), _int64_product(a, b))


def test_int8_kernel_instructions_are_read_from_its_code():
    found = kernels.int8_kernel_instructions(vnni=False)
    assert found and all(isinstance(name, str) and count > 0 for name, count in found.items())
    if platform.machine() in ("x86_64", "AMD64"):  # the pair multiply-add, or VNNI's fused form of it
        assert {"vpmaddwd", "vpdpwssd"} & set(found), found


def test_the_unsigned_bias_of_vnni_is_exact_in_numpy():
    """vpdpbusd's arithmetic: (a + 128) as unsigned bytes times signed b, minus 128 * column sums."""
    rng = np.random.default_rng(8)
    for m, k, n in [(3, 5, 2), (4, 64, 3), (0, 4, 2), (2, 0, 2)]:
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        np.testing.assert_array_equal(kernels.int8_via_unsigned(a, b), _int64_product(a, b))
    k = 70000  # 255 * 127 * k passes 2**31: the biased sums wrap, the result is still exact
    low, high = np.full((2, k), -128, np.int8), np.full((k, 2), 127, np.int8)
    a = np.full((2, k), 127, np.int8)
    np.testing.assert_array_equal(kernels.int8_via_unsigned(a, high), _int64_product(a, high))
    np.testing.assert_array_equal(kernels.int8_via_unsigned(low, high), _int64_product(low, high))


@pytest.mark.skipif(not kernels.has_vnni(), reason="this CPU has no AVX-VNNI or AVX512-VNNI (vpdpbusd)")
def test_vnni_kernel_is_exact_and_uses_vpdpbusd():
    rng = np.random.default_rng(9)
    for m, k, n in [(1, 1, 1), (7, 13, 5), (kernels.MR * 9 + 1, 1031, kernels.NR * 3 + 7)]:
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        np.testing.assert_array_equal(int8_matmul(a, b, vnni=True), _int64_product(a, b))
    low, high = np.full((3, 4096), -128, np.int8), np.full((4096, 17), 127, np.int8)
    np.testing.assert_array_equal(int8_matmul(low, high, vnni=True), _int64_product(low, high))
    assert "vpdpbusd" in kernels.int8_kernel_instructions(vnni=True)


CROSS_COMPILE = """
import numba
from book.compress import kernels
kernel = kernels._blocked(True)
kernel.compile((numba.int8[:, ::1], numba.int8[:, ::1], numba.int64, numba.int64, numba.int64))
print(kernels.asm.hottest_loop(kernel.inspect_asm(kernel.signatures[0])))
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="an x86 kernel")
def test_vnni_kernel_compiles_to_vpdpbusd_for_a_vnni_cpu():
    """Compiled (never run) for a CPU with AVX-VNNI, in a child process: the loop is vpdpbusd."""
    env = {**os.environ, "NUMBA_CPU_NAME": "sapphirerapids",
           "NUMBA_CPU_FEATURES": "+avx2,+fma,+avx512f,+avx512bw,+avx512vl,+avx512vnni,+avxvnni"}
    done = subprocess.run([sys.executable, "-c", CROSS_COMPILE], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    mnemonics = {ins.mnemonic for ins in asm.instructions(done.stdout)}
    assert "vpdpbusd" in mnemonics and "vpmaddwd" not in mnemonics


def test_vnni_is_refused_without_the_feature():
    if kernels.has_vnni():
        pytest.skip("this CPU has VNNI")
    with pytest.raises(ValueError, match="no VNNI"):
        int8_matmul(np.zeros((1, 1), np.int8), np.zeros((1, 1), np.int8), vnni=True)


def test_int8_matmul_extremes_and_long_reductions():
    k = 4096
    low = np.full((3, k), -128, np.int8)
    high = np.full((k, 2), 127, np.int8)
    np.testing.assert_array_equal(int8_matmul(low, high), np.full((3, 2), -128 * 127 * k))
    np.testing.assert_array_equal(int8_matmul(low, low.T.copy()), np.full((3, 3), 128 * 128 * k))
    mixed = np.random.default_rng(6).choice(np.array([-128, 127], np.int8), (5, k))
    np.testing.assert_array_equal(int8_matmul(mixed, mixed.T), _int64_product(mixed, mixed.T))
    # NumPy's own int8 product wraps around: the reason for an int32-accumulating kernel
    assert not np.array_equal((low @ high).astype(np.int64), _int64_product(low, high))


@pytest.mark.parametrize("a, b, message", [
    (np.ones((2, 3)), np.ones((3, 2), np.int8), "a has dtype float64"),
    (np.ones((2, 3), np.int8), np.ones((3, 2), np.int16), "b has dtype int16"),
    (np.ones(3, np.int8), np.ones((3, 2), np.int8), "2-D"),
    (np.ones((2, 3), np.int8), np.ones((4, 2), np.int8), "do not chain"),
])
def test_int8_matmul_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        int8_matmul(a, b)


def test_int8_matmul_refuses_reductions_that_could_overflow():
    k = kernels.INT8_MAX_K + 1
    with pytest.raises(ValueError, match="overflow"):
        int8_matmul(np.zeros((1, k), np.int8), np.zeros((k, 1), np.int8))
    assert 128 * 128 * kernels.INT8_MAX_K == 2 ** 31  # the bound: -128 * -128 summed k times
