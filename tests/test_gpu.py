"""book.gpu: the simulator switch and the warp memory-transaction model of chapter 3."""

import subprocess
import sys

import numpy as np
import pytest

from book import gpu


@pytest.mark.parametrize("stride, sectors", [(0, 1), (1, 4), (2, 8), (4, 16), (8, 32), (32, 32), (1000, 32)])
def test_float32_warp_sectors_against_stride(stride, sectors):
    access = gpu.strided_access(stride)
    assert access.sectors == sectors
    assert access.bytes_moved == 32 * sectors


def test_efficiency_is_bytes_used_over_bytes_moved():
    assert gpu.strided_access(1).efficiency == 1.0
    assert gpu.strided_access(2).efficiency == 0.5
    assert gpu.strided_access(32).efficiency == pytest.approx(4 / 32)
    # Every thread reading one element is a broadcast: one sector, 4 useful bytes.
    assert gpu.strided_access(0).efficiency == pytest.approx(4 / 32)
    assert gpu.strided_access(1, itemsize=8).sectors == 8


def test_misaligned_accesses_touch_one_more_sector():
    assert gpu.strided_access(1, offset=1).sectors == 5
    # An 8-byte element starting 4 bytes before a boundary straddles it.
    np.testing.assert_array_equal(gpu.warp_sectors([28], itemsize=8), [0, 1])


def test_warp_sectors_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    for _ in range(20):
        addresses = rng.integers(0, 4096, size=rng.integers(1, 40))
        expected = {byte // 32 for a in addresses for byte in range(a, a + 4)}
        np.testing.assert_array_equal(gpu.warp_sectors(addresses, itemsize=4), sorted(expected))
    assert gpu.warp_sectors([], itemsize=4).size == 0


@pytest.mark.parametrize("call", [lambda: gpu.strided_access(-1), lambda: gpu.strided_access(1.5),
                                  lambda: gpu.warp_sectors([-4], 4), lambda: gpu.warp_sectors([0], 0),
                                  lambda: gpu.strided_access(1, warp_size=0)])
def test_bad_input_is_refused(call):
    with pytest.raises(ValueError):
        call()


def test_use_simulator_refuses_after_a_real_import():
    code = ("import numba.cuda, book.gpu\n"
            "try:\n    book.gpu.use_simulator()\nexcept RuntimeError as e:\n    print('refused', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "NUMBA_ENABLE_CUDASIM": "0"})
    assert out.stdout.startswith("refused")


def test_use_simulator_leaves_the_cpu_compiler_alone():
    code = ("import numba, numpy as np, book.gpu\n"
            "threads = numba.config.NUMBA_NUM_THREADS\n"
            "cuda = book.gpu.use_simulator()\n"
            "assert numba.config.ENABLE_CUDASIM and numba.config.NUMBA_NUM_THREADS == threads\n"
            "assert numba.njit(lambda x: x.sum())(np.ones(3)) == 3.0\n"
            "from book.kernels.cuda import vector_add\n"
            "print(vector_add(np.ones(3), np.ones(3)).tolist())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[2.0, 2.0, 2.0]"
