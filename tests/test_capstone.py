"""book.capstone: the wide MLP trained once, its float32 forward, one-thread timing, random block sparsity."""

import numpy as np
import pytest

from book import capstone, models


@pytest.mark.parametrize("shape, block", [((0, 8), (1, 4)), ((1, 1), (1, 1)), ((6, 15), (3, 5)), ((8, 8), (8, 8))])
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_block_sparse_keeps_whole_blocks_at_the_density(shape, block, density):
    w = np.random.default_rng(1).uniform(1, 2, shape).astype(np.float32)  # no zeros of its own
    out = capstone.block_sparse(w, density, block, seed=3)
    assert out.shape == w.shape and out.dtype == w.dtype
    r, c = block
    blocks = (out.reshape(shape[0] // r, r, shape[1] // c, c) != 0)
    kept = blocks.any(axis=(1, 3))
    np.testing.assert_array_equal(blocks.all(axis=(1, 3)), kept)  # a block is kept whole or not at all
    assert kept.sum() == round(density * kept.size)
    np.testing.assert_array_equal(out[out != 0], w[out != 0])
    np.testing.assert_array_equal(capstone.block_sparse(w, density, block, seed=3), out)


def test_block_sparse_reads_non_contiguous_input_and_leaves_it_alone():
    w = np.arange(1, 1 + 8 * 12, dtype=np.float64).reshape(8, 12)[:, ::2]  # 8 x 6, strided
    before = w.copy()
    out = capstone.block_sparse(w, 0.5, (2, 3), seed=0)
    np.testing.assert_array_equal(w, before)
    assert np.count_nonzero(out) == 4 * 6  # 4 of the 8 blocks of 2 x 3 values
    assert capstone.block_sparse(w, 0.5, (2, 3), seed=1).tolist() != out.tolist()


@pytest.mark.parametrize("args, match", [((np.ones(4), 0.5, (1, 1)), "2-D"),
                                         ((np.ones((4, 4)), 1.5, (2, 2)), "density"),
                                         ((np.ones((4, 4)), 0.5, (3, 2)), "divide"),
                                         ((np.ones((4, 4)), 0.5, (0, 2)), "positive"),
                                         ((np.ones((4, 4)), 0.5, [2, 2]), "pair")])
def test_block_sparse_refuses_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        capstone.block_sparse(*args)


def test_float32_forward_is_the_models_forward():
    model = models.mlp(hidden=(16, 8), seed=2)
    x = models.digits()[1][:7]
    forward = capstone.float32_forward(model)
    expected = models._forward(model, x)[1][-1]
    np.testing.assert_allclose(forward(x), expected, rtol=1e-5, atol=1e-6)
    assert forward(x).dtype == np.float32
    model.params["W1"][:] = 0  # the forward pass took copies
    np.testing.assert_allclose(forward(x), expected, rtol=1e-5, atol=1e-6)
    assert forward(x[:0]).shape == (0, 10)
    with pytest.raises(ValueError, match="MLP"):
        capstone.float32_forward(models.cnn())


def test_one_thread_holds_blas_and_numba_to_one_thread_and_restores_them():
    import numba
    from threadpoolctl import threadpool_info

    before = (numba.get_num_threads(), [p["num_threads"] for p in threadpool_info()])
    with capstone.one_thread():
        assert numba.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert (numba.get_num_threads(), [p["num_threads"] for p in threadpool_info()]) == before


def test_trained_mlp_is_trained_once_and_copied(monkeypatch):
    calls = []
    real_train = models.train

    def counting_train(model, x, y, **kwargs):
        calls.append(kwargs)
        return real_train(model, x[:64], y[:64], **kwargs)  # a small training run: this tests the caching

    monkeypatch.setattr(models, "train", counting_train)
    capstone._trained.cache_clear()
    try:
        first, second = capstone.trained_mlp(epochs=1, seed=5), capstone.trained_mlp(epochs=1, seed=5)
        assert len(calls) == 1 and calls[0] == {"epochs": 1, "seed": 5}
        assert first is not second and first.params["W1"] is not second.params["W1"]
        np.testing.assert_array_equal(first.params["W2"], second.params["W2"])
        assert [first.params[f"W{i}"].shape for i in (1, 2, 3)] == [(64, 1024), (1024, 512), (512, 10)]
        first.params["W1"][:] = 0
        assert np.any(capstone.trained_mlp(epochs=1, seed=5).params["W1"])
    finally:
        capstone._trained.cache_clear()
    with pytest.raises(ValueError, match="epochs"):
        capstone.trained_mlp(epochs=0)


def test_the_trained_mlp_passes_the_capstone_s_accuracy_bar():
    model = capstone.trained_mlp()
    _, x_test, _, y_test = models.digits()
    assert models.accuracy(model, x_test, y_test) >= 0.95
