"""book.models: the split, training with masks held, and the ONNX export against ONNX Runtime."""

import numpy as np
import pytest

from book import compiler, models
from book.compiler import runtime


def test_split_is_fixed_and_stratified():
    a, b = models.digits(), models.digits()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    x_train, x_test, y_train, y_test = a
    assert x_train.dtype == np.float32 and x_train.shape[1] == 64 and len(x_train) + len(x_test) == 1797
    assert set(np.unique(y_test)) == set(range(10)) and x_train.max() == 16


@pytest.fixture(scope="module")
def trained():
    x_train, x_test, y_train, y_test = models.digits()
    out = {}
    for make in (lambda: models.mlp(hidden=(128, 64)), lambda: models.cnn(channels=8)):
        m = make()
        losses = models.train(m, x_train, y_train, epochs=3, batch=128)
        out[m.kind] = (m, losses)
    return out


def test_training_learns(trained):
    x_train, x_test, y_train, y_test = models.digits()
    for kind, (m, losses) in trained.items():
        assert losses[-1] < losses[0], kind
        assert models.accuracy(m, x_test, y_test) > 0.8, kind


def test_masked_weights_stay_zero_through_training():
    x_train, _, y_train, _ = models.digits()
    for m in (models.mlp(hidden=(32,)), models.cnn(channels=2)):
        name = next(iter(m.masks))
        m.masks[name] = (np.random.default_rng(0).random(m.params[name].shape) > 0.5).astype(np.float32)
        m.params[name] *= m.masks[name]
        before = m.params[name].copy()
        models.train(m, x_train[:200], y_train[:200], epochs=1)
        assert np.all(m.params[name][m.masks[name] == 0] == 0), m.kind
        assert not np.allclose(m.params[name], before), m.kind  # the kept weights did train


def test_train_is_deterministic_and_refuses_bad_input():
    x_train, _, y_train, _ = models.digits()
    a, b = models.mlp(hidden=(16,)), models.mlp(hidden=(16,))
    models.train(a, x_train[:100], y_train[:100], epochs=1)
    models.train(b, x_train[:100], y_train[:100], epochs=1)
    np.testing.assert_array_equal(a.params["W1"], b.params["W1"])
    with pytest.raises(ValueError, match="labels"):
        models.train(a, x_train[:10], y_train[:9])
    with pytest.raises(ValueError, match="batch"):
        models.to_onnx(a, batch=0)


@pytest.mark.parametrize("batch", [1, 3])
def test_export_matches_numpy_ort_and_the_book_compiler(trained, batch):
    _, x_test, _, _ = models.digits()
    for kind, (m, _) in trained.items():
        proto = models.to_onnx(m, batch=batch)
        inputs = {models.input_name(m): models.as_input(m, x_test[:batch])}
        want = models.predict(m, x_test[:batch])
        for level in ("off", "all"):
            np.testing.assert_allclose(runtime.run(proto, inputs, optimization=level)["probs"], want,
                                       rtol=1e-4, atol=1e-6, err_msg=f"{kind} ORT {level}")
        graph = compiler.from_onnx(proto)
        for g in (graph, compiler.optimize(graph)):
            np.testing.assert_allclose(compiler.compile(g)(inputs)["probs"], want, rtol=1e-4, atol=1e-6, err_msg=kind)


@pytest.mark.parametrize("make", [lambda: models.cnn(channels=3), lambda: models.mlp(hidden=(8, 5))],
                         ids=["cnn", "mlp"])
def test_gradients_match_finite_differences(make):
    x, _, y, _ = models.digits()
    x, y, m = x[:20].astype(np.float64), y[:20], make()
    m.params = {k: v.astype(np.float64) for k, v in m.params.items()}

    def loss():
        buffers = dict(m.buffers)  # training mode updates the running statistics; keep them
        probs, _ = models._forward(m, x, training=True)
        m.buffers = buffers
        return -np.log(probs[np.arange(len(y)), y]).mean()

    buffers = dict(m.buffers)
    probs, cache = models._forward(m, x, training=True)
    m.buffers = buffers
    grads = models._gradients(m, x, probs, cache, y)
    assert set(grads) == set(m.params)
    g = np.random.default_rng(1)
    for name, grad in grads.items():
        for _ in range(3):
            idx = tuple(int(g.integers(s)) for s in grad.shape)
            old = m.params[name][idx]
            m.params[name][idx] = old + 1e-5
            up = loss()
            m.params[name][idx] = old - 1e-5
            down = loss()
            m.params[name][idx] = old
            np.testing.assert_allclose(grad[idx], (up - down) / 2e-5, rtol=1e-4, atol=1e-8, err_msg=name)
