"""book.kernels.cuda in numba's CUDA simulator, against NumPy, over edge sizes (chapter 3)."""

import numpy as np
import pytest

from book import gpu

gpu.use_simulator()
from book.kernels import cuda as kernels  # noqa: E402  (after the simulator is switched on)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 129, 300])
def test_vector_add(n):
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal(n), rng.standard_normal(2 * n)[::2]  # b is strided
    np.testing.assert_allclose(kernels.vector_add(a, b), a + b, rtol=0, atol=0)


@pytest.mark.parametrize("n", [0, 1, 5, 128, 257])
def test_total_is_the_sum(n):
    x = np.random.default_rng(n).standard_normal(n)
    assert kernels.total(x) == pytest.approx(x.sum(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 5, 2), (9, 7, 11), (8, 8, 8)])
def test_matmul(tiled, m, k, n):
    rng = np.random.default_rng(m + k + n)
    a, b = rng.standard_normal((m, k)), np.asfortranarray(rng.standard_normal((k, n)))
    np.testing.assert_allclose(kernels.matmul(a, b, tiled=tiled), a @ b, rtol=1e-12, atol=1e-12)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        kernels.vector_add(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        kernels.matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        kernels.total(np.ones((2, 2)))
