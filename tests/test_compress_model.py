"""book.compress.model: a chapter-5 MLP run compressed per layer against book.models (chapter 7)."""

import numpy as np
import pytest

from book import models
from book.compress import model as cm
from book.compress.model import CompressedMLP, LayerChoice, compress, finetune


@pytest.fixture(scope="module")
def trained():
    x_train, x_test, y_train, y_test = models.digits()
    m = models.mlp(hidden=(128, 64))
    models.train(m, x_train, y_train, epochs=4, batch=128)
    return m, x_train, x_test, y_train, y_test


def test_float32_dense_policy_is_book_models_predict(trained):
    m, x_train, x_test, *_ = trained
    c = compress(m, [LayerChoice()] * 3, x_train[:200])
    assert isinstance(c, CompressedMLP)
    np.testing.assert_allclose(c.predict(x_test), models.predict(m, x_test), rtol=1e-5, atol=1e-6)
    assert [layer["kernel"] for layer in c.layers] == ["BLAS sgemm"] * 3
    params = sum(v.size for v in m.params.values())
    assert c.nbytes == 4 * params


def test_int8_keeps_the_accuracy_and_shrinks_the_model(trained):
    m, x_train, x_test, _, y_test = trained
    base = models.accuracy(m, x_test, y_test)
    dense = compress(m, [LayerChoice()] * 3, x_train[:300])
    c = compress(m, [LayerChoice(bits=8)] * 3, x_train[:300])
    assert [layer["kernel"] for layer in c.layers] == ["int8_matmul"] * 3
    assert abs(c.accuracy(x_test, y_test) - base) <= 0.02
    weights = sum(v.size for k, v in m.params.items() if k.startswith("W"))
    assert weights < c.nbytes < dense.nbytes / 3  # one byte per weight, plus biases and scales
    # The int8 layers compute what their dequantized weights and inputs would, up to float32 rounding.
    probs = c.predict(x_test)
    assert np.mean(probs.argmax(1) == models.predict(m, x_test).argmax(1)) >= 0.97


@pytest.mark.parametrize("bits", [32, 8])
@pytest.mark.parametrize("choice, kernel", [
    (LayerChoice(sparsity=0.8), "csr_spmm"),
    (LayerChoice(sparsity=0.5, structure="structured"), {32: "BLAS sgemm", 8: "int8_matmul"}),
    (LayerChoice(structure="2:4"), "nm_matmul (2:4)"),
    (LayerChoice(sparsity=0.6, structure="block", block=(4, 8)), "bsr_matmul"),
])
def test_each_structure_runs_on_its_kernel_and_matches_the_pruned_model(trained, bits, choice, kernel):
    m, x_train, x_test, *_ = trained
    policy = [LayerChoice(bits, choice.sparsity, choice.structure, choice.block)] * 2 + [LayerChoice(bits)]
    c = compress(m, policy, x_train[:300])
    want = kernel[bits] if isinstance(kernel, dict) else kernel
    assert [layer["kernel"] for layer in c.layers[:2]] == [want] * 2
    for layer, w in zip(c.layers[:2], (m.params["W1"], m.params["W2"])):
        assert layer["shape"] == w.shape and layer["bits"] == bits
        assert layer["sparsity"] == pytest.approx(policy[0].removed, abs=0.02)
    pruned = cm.prune_model(m, policy)
    if bits == 32:  # float32: exactly the pruned model, whatever kernel runs it
        np.testing.assert_allclose(c.predict(x_test), models.predict(pruned, x_test), rtol=1e-4, atol=1e-5)
    else:
        agree = np.mean(c.predict(x_test).argmax(1) == models.predict(pruned, x_test).argmax(1))
        assert agree >= 0.95
    dense = compress(m, [LayerChoice(bits)] * 3, x_train[:300])
    if want == "csr_spmm" and bits == 8:  # a 4-byte index per 1-byte value: 80 % zeros save nothing
        assert c.nbytes > dense.nbytes
    else:
        assert c.nbytes < dense.nbytes


def _logits(model, x):
    return np.log(models.predict(model, x)) - np.log(models.predict(model, x))[:, :1]


def test_logits_differences_match(trained):
    m, x_train, x_test, *_ = trained
    c = compress(m, [LayerChoice(sparsity=0.9)] * 3, x_train[:100])
    z = c.logits(x_test[:20])
    np.testing.assert_allclose(z - z[:, :1], _logits(cm.prune_model(m, [LayerChoice(sparsity=0.9)] * 3),
                                                     x_test[:20]), rtol=1e-3, atol=1e-3)


def test_nbytes_counts_values_indices_and_scales(trained):
    m, x_train, *_ = trained
    (k1, n1), (k2, n2), (k3, n3) = (m.params[f"W{i}"].shape for i in (1, 2, 3))
    bias = 4 * (n1 + n2 + n3)
    csr = compress(m, [LayerChoice(sparsity=0.75)] * 3, x_train[:50])
    nnz = sum(round(0.25 * k * n) for k, n in ((k1, n1), (k2, n2), (k3, n3)))
    assert csr.nbytes == nnz * 8 + 4 * (n1 + 1 + n2 + 1 + n3 + 1) + bias  # value + int32 index, row pointers
    nm = compress(m, [LayerChoice(bits=8, structure="2:4")] * 3, x_train[:50])
    half = (k1 * n1 + k2 * n2 + k3 * n3) // 2
    assert nm.nbytes == half + half // 4 + bias + 4 * (n1 + n2 + n3) + 3 * 8  # 2-bit positions, scales
    assert sum(layer["nbytes"] for layer in nm.layers) == nm.nbytes


def test_finetune_holds_the_masks(trained):
    m, x_train, x_test, y_train, y_test = trained
    policy = [LayerChoice(sparsity=0.9)] * 2 + [LayerChoice()]
    tuned = finetune(m, policy, x_train, y_train, epochs=1)
    assert tuned is not m and np.count_nonzero(m.params["W1"]) == m.params["W1"].size
    for name in ("W1", "W2"):
        assert np.mean(tuned.params[name] == 0) == pytest.approx(0.9, abs=1e-3)
        np.testing.assert_array_equal(tuned.masks[name], tuned.params[name] != 0)
    assert models.accuracy(tuned, x_test, y_test) >= models.accuracy(cm.prune_model(m, policy), x_test, y_test) - 0.02


@pytest.mark.parametrize("make, message", [
    (lambda: LayerChoice(bits=4), "bits"),
    (lambda: LayerChoice(sparsity=1.5), r"\[0, 1\]"),
    (lambda: LayerChoice(structure="random"), "structure"),
    (lambda: LayerChoice(sparsity=0.7, structure="2:4"), "one half"),
    (lambda: LayerChoice(structure="block", block=(0, 8)), "pair of positive"),
])
def test_bad_choices(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_policy_and_inputs(trained):
    m, x_train, *_ = trained
    with pytest.raises(ValueError, match="one LayerChoice per weight layer"):
        compress(m, [LayerChoice()] * 2, x_train)
    with pytest.raises(ValueError, match="MLP"):
        compress(models.cnn(), [LayerChoice()], x_train)
    with pytest.raises(ValueError, match="x_calib"):
        compress(m, [LayerChoice()] * 3, x_train[:0])
    with pytest.raises(ValueError, match="raw pixels"):
        compress(m, [LayerChoice()] * 3, x_train[:10]).logits(np.ones((2, 5)))
