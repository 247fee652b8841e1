"""book.compress prune/quantize/dequantize against NumPy references over edge cases (chapter 7)."""

import numpy as np
import pytest

from book.compress import dequantize, prune, quantize


def _reference_magnitude(w, sparsity):
    """Zero the round(s * size) smallest |w|, ties by C-order position, with a plain Python sort."""
    flat = w.reshape(-1).tolist()
    order = sorted(range(len(flat)), key=lambda i: (abs(flat[i]), i))
    out = list(flat)
    for i in order[:round(sparsity * len(flat))]:
        out[i] = 0
    return np.array(out, w.dtype).reshape(w.shape)


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (5, 3), (4, 3, 2)])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_magnitude_matches_a_plain_sort(shape, sparsity):
    w = np.random.default_rng(1).integers(-3, 4, size=shape).astype(np.float32)  # many ties
    out = prune(w, sparsity)
    np.testing.assert_array_equal(out, _reference_magnitude(w, sparsity))
    assert out.dtype == w.dtype and out.shape == w.shape
    assert np.count_nonzero(out == 0) >= round(sparsity * w.size)


def test_magnitude_exact_count_ties_by_position_and_non_contiguous():
    w = np.array([[1.0, -1.0, 1.0, 2.0], [-1.0, 3.0, 1.0, 4.0]])
    out = prune(w, 0.5)  # four of the five ±1 go, the first four in C order
    np.testing.assert_array_equal(out, [[0, 0, 0, 2], [0, 3, 1, 4]])
    view = np.arange(1.0, 25.0).reshape(4, 6)[:, ::2]
    np.testing.assert_array_equal(prune(view, 0.25), _reference_magnitude(np.ascontiguousarray(view), 0.25))
    assert np.count_nonzero(prune(np.arange(1.0, 11.0), 0.25) == 0) == round(2.5)  # half to even: 2
    w_int = np.array([5, -2, 7], np.int8)
    assert prune(w_int, 1 / 3).dtype == np.int8 and w_int[1] == -2  # a copy


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_structured_removes_slices_by_l2_norm(axis):
    w = np.random.default_rng(2).standard_normal((6, 5))
    out = prune(w, 0.5, axis=axis, kind="structured")
    norms = np.linalg.norm(np.moveaxis(w, axis, 0), axis=1)
    gone = np.sort(np.argsort(norms, kind="stable")[:round(0.5 * w.shape[axis])])
    zero = np.flatnonzero(np.all(np.moveaxis(out, axis, 0) == 0, axis=1))
    np.testing.assert_array_equal(zero, gone)
    kept = np.moveaxis(out, axis, 0)[np.setdiff1d(np.arange(w.shape[axis]), gone)]
    np.testing.assert_array_equal(kept, np.moveaxis(w, axis, 0)[np.setdiff1d(np.arange(w.shape[axis]), gone)])


def test_structured_ties_and_extremes():
    w = np.ones((4, 3))
    np.testing.assert_array_equal(prune(w, 0.5, kind="structured").any(axis=1), [False, False, True, True])
    np.testing.assert_array_equal(prune(w, 0.0, kind="structured"), w)
    assert not prune(w, 1.0, kind="structured").any()
    assert prune(np.zeros((0, 3)), 0.5, kind="structured").shape == (0, 3)


def test_n_m_keeps_the_largest_of_each_group():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 16)).astype(np.float32)
    out = prune(w, None, kind="n:m")
    groups = out.reshape(-1, 4)
    assert np.all(np.count_nonzero(groups, axis=1) == 2)
    kept_min = np.where(groups != 0, np.abs(groups), np.inf).min(axis=1)
    dropped_max = np.where(groups == 0, np.abs(w.reshape(-1, 4)), -np.inf).max(axis=1)
    assert np.all(kept_min >= dropped_max)
    np.testing.assert_array_equal(out, prune(w, 0.5, kind="n:m"))
    np.testing.assert_array_equal(prune(np.array([1.0, 1.0, 1.0, 1.0]), None, kind="n:m"), [0, 0, 1, 1])
    one_of_eight = prune(w, None, kind="n:m", n=1, m=8)
    assert np.all(np.count_nonzero(one_of_eight.reshape(-1, 8), axis=1) == 1)


@pytest.mark.parametrize("call, message", [
    (lambda: prune(np.ones(4), 1.5), r"\[0, 1\]"),
    (lambda: prune(np.ones(4), -0.1), r"\[0, 1\]"),
    (lambda: prune(np.ones(4), float("nan")), r"\[0, 1\]"),
    (lambda: prune(np.ones(4), "half"), "number"),
    (lambda: prune(np.ones(4), 0.5, kind="random"), "kind"),
    (lambda: prune(np.ones((2, 6)), None, kind="n:m"), "multiple of m=4"),
    (lambda: prune(np.ones((2, 8)), 0.25, kind="n:m"), "None or"),
    (lambda: prune(np.ones((2, 8)), None, kind="n:m", n=5, m=4), "n <= m"),
    (lambda: prune(np.ones((2, 3)), 0.5, kind="structured", axis=2), "axis"),
    (lambda: prune(np.array([1.0, np.nan]), 0.5), "finite"),
    (lambda: prune(np.array(["a"]), 0.5), "numeric"),
    (lambda: prune(np.float64(3.0), 0.5, kind="structured"), "at least one axis"),
])
def test_prune_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _reference_quantize(x, bits, symmetric):
    """Per-tensor quantization written out from the formulas, in float64 with a float32 scale."""
    qmax = 2 ** (bits - 1) - 1
    qmin = -qmax if symmetric else -qmax - 1
    lo, hi = (-np.abs(x).max(), np.abs(x).max()) if symmetric else (min(x.min(), 0), max(x.max(), 0))
    scale = np.float32(hi / qmax if symmetric else (hi - lo) / (qmax - qmin))
    scale = scale if scale > 0 else np.float32(1)
    zero = 0 if symmetric else int(np.clip(np.rint(qmin - lo / np.float64(scale)), qmin, qmax))
    return np.clip(np.rint(x / np.float64(scale)) + zero, qmin, qmax), scale, zero


@pytest.mark.parametrize("bits", [2, 3, 8, 9, 16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_per_tensor_matches_the_formulas(bits, symmetric):
    x = np.random.default_rng(bits).standard_normal(301) * 3 + (0 if symmetric else 1)
    q, scale, zero = quantize(x, bits, symmetric=symmetric)
    want_q, want_scale, want_zero = _reference_quantize(x, bits, symmetric)
    assert q.dtype == (np.int8 if bits <= 8 else np.int16) and q.shape == x.shape
    np.testing.assert_array_equal(q, want_q)
    assert scale == want_scale and zero == want_zero
    qmax = 2 ** (bits - 1) - 1
    assert q.min() >= (-qmax if symmetric else -qmax - 1) and q.max() <= qmax
    back = dequantize(q, scale, zero)
    assert back.dtype == np.float32
    assert np.all(np.abs(back - x) <= scale * 0.5 * (1 + 1e-5) + 1e-6)  # within half a step


def test_quantize_rounds_half_to_even_and_hits_the_extremes():
    q, scale, zero = quantize(np.array([-127.0, 127.0, 0.5, 1.5, 2.5, -0.5, 0.75]), 8)  # scale 1
    assert scale == 1 and zero == 0
    np.testing.assert_array_equal(q, [-127, 127, 0, 2, 2, 0, 1])  # halves go to the even code
    assert quantize(np.array([-1000.0, 1.0]), 8)[0].tolist() == [-127, 0]
    q, scale, zero = quantize(np.array([0.0, 10.0]), 8, symmetric=False)
    assert int(zero) == -128 and q.tolist() == [-128, 127]
    q, scale, zero = quantize(np.array([-10.0, 0.0]), 8, symmetric=False)
    assert int(zero) == 127 and q.tolist() == [-128, 127]
    q16, s16, _ = quantize(np.array([-1.0, 1.0]), 16)
    assert q16.dtype == np.int16 and q16.tolist() == [-32767, 32767]


@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_per_channel_with_a_zero_channel(symmetric):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 5, 4))
    w[:, 2] *= 100  # one large channel must not swamp the others
    w[:, 3] = 0
    q, scale, zero = quantize(w, 8, axis=1, symmetric=symmetric)
    assert scale.shape == zero.shape == (5,) and scale.dtype == np.float32 and zero.dtype == np.int32
    assert scale[3] == 1
    for c in range(5):
        qc, sc, zc = _reference_quantize(w[:, c], 8, symmetric)
        np.testing.assert_array_equal(q[:, c], qc)
        assert scale[c] == sc and zero[c] == zc
    back = dequantize(q, scale, zero, axis=1)
    assert np.all(back[:, 3] == 0)
    assert np.all(np.abs(back - w) <= scale[None, :, None] * 0.5 * (1 + 1e-5) + 1e-6)
    q_last, s_last, _ = quantize(w, 8, axis=-1, symmetric=symmetric)
    assert s_last.shape == (4,)
    assert np.all(np.abs(dequantize(q_last, s_last, _, axis=-1) - w) <= s_last * 0.5 * (1 + 1e-5) + 1e-6)


def test_quantize_degenerate_inputs():
    q, scale, zero = quantize(np.zeros(4), 8)
    assert q.tolist() == [0, 0, 0, 0] and scale == 1 and zero == 0
    q, scale, zero = quantize(np.zeros((0, 3)), 4, axis=1)
    assert q.shape == (0, 3) and scale.tolist() == [1, 1, 1]
    q, scale, zero = quantize(np.array(2.5), 8)
    assert q == 127 and dequantize(q, scale, zero) == np.float32(2.5)
    q, scale, zero = quantize(np.arange(-5, 6).astype(np.int16), 8)
    np.testing.assert_allclose(dequantize(q, scale, zero), np.arange(-5, 6), atol=float(scale) / 2)


def test_error_falls_with_bits():
    x = np.random.default_rng(5).standard_normal(2000)
    errors = [np.abs(dequantize(*quantize(x, b)) - x).max() for b in range(2, 17)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


@pytest.mark.parametrize("call, message", [
    (lambda: quantize(np.ones(3), 1), "2 to 16"),
    (lambda: quantize(np.ones(3), 17), "2 to 16"),
    (lambda: quantize(np.ones(3), 8.0), "2 to 16"),
    (lambda: quantize(np.ones(3), 8, axis=1), "axis"),
    (lambda: quantize(np.array([1.0, np.inf]), 8), "finite"),
    (lambda: quantize(np.array([True]), 8), "real"),
    (lambda: dequantize(np.ones(3), 1.0, 0), "integer codes"),
    (lambda: dequantize(np.ones((2, 3), np.int8), np.ones(2), np.zeros(2, np.int32), axis=1), "shape"),
    (lambda: dequantize(np.ones((2, 3), np.int8), np.ones(3), np.zeros(3, np.int32)), r"per tensor"),
    (lambda: dequantize(np.ones(3, np.int8), 0.0, 0), "positive"),
    (lambda: dequantize(np.ones(3, np.int8), 1.0, 0.5), "integer"),
])
def test_quantize_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _reference_blocks(w, sparsity, r, c):
    """Block pruning written out: norms of every block (partial at the edges), a plain sort."""
    rows, cols = -(-w.shape[0] // r), -(-w.shape[1] // c)
    norms = [(np.linalg.norm(w[i * r:(i + 1) * r, j * c:(j + 1) * c]), i * cols + j)
             for i in range(rows) for j in range(cols)]
    out = w.copy()
    for _, z in sorted(norms)[:round(sparsity * len(norms))]:
        i, j = divmod(z, cols)
        out[i * r:(i + 1) * r, j * c:(j + 1) * c] = 0
    return out


@pytest.mark.parametrize("shape, block", [((8, 16), (4, 8)), ((10, 13), (4, 8)), ((5, 5), (1, 1)), ((0, 4), (2, 2))])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.75, 1.0])
def test_block_pruning_removes_whole_blocks(shape, block, sparsity):
    w = np.random.default_rng(7).standard_normal(shape)
    np.testing.assert_array_equal(prune(w, sparsity, kind="block", block=block),
                                  _reference_blocks(w, sparsity, *block))
    with pytest.raises(ValueError, match="pair of positive ints"):
        prune(w, sparsity, kind="block", block=(0, 4))
    with pytest.raises(ValueError, match="2-D"):
        prune(np.ones(4), sparsity, kind="block")
