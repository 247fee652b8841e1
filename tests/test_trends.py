"""Chapter 8: the systolic array's structured-sparse mode, book.trends, and what the page's data must show."""

import math

import numpy as np
import pytest

from book import data, systolic, trends

from conftest import ROOT

ARRAYS = [(1, 1), (3, 5), (4, 4), (8, 2)]


def tiled_sparse(k, n, rows, cols, keep, seed):
    """A k × n integer matrix whose rows × cols tiles are zero where ``keep`` (one draw per tile) is False."""
    rng = np.random.default_rng(seed)
    b = rng.integers(-50, 50, size=(k, n))
    b[b == 0] = 1
    occupancy = rng.random((-(-k // rows), -(-n // cols))) < keep
    for i, j in zip(*np.nonzero(~occupancy)):
        b[i * rows:(i + 1) * rows, j * cols:(j + 1) * cols] = 0
    return b, occupancy


@pytest.mark.parametrize("rows, cols", ARRAYS)
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (5, 7, 3), (9, 12, 13), (2, 17, 6)])
@pytest.mark.parametrize("keep", [0.0, 0.4, 1.0])
def test_skipping_zero_tiles_is_exact_and_costs_only_the_kept_tiles(m, k, n, rows, cols, keep):
    rng = np.random.default_rng(m + k + n)
    a = rng.integers(-50, 50, size=(m, k))
    b, occupancy = tiled_sparse(k, n, rows, cols, keep, seed=rows * 10 + cols)
    np.testing.assert_array_equal(systolic.tile_occupancy(b, rows, cols), occupancy)
    sparse = systolic.matmul(a, b, rows=rows, cols=cols, skip_zero_tiles=True, trace=True)
    dense = systolic.matmul(a, b, rows=rows, cols=cols)
    np.testing.assert_array_equal(sparse.c, a @ b)
    assert sparse.cycles == trends.systolic_cycles(m, k, n, rows, cols, occupancy)
    assert dense.cycles == trends.systolic_cycles(m, k, n, rows, cols)
    assert sparse.skipped_tiles == int((~occupancy).sum()) and dense.skipped_tiles == 0
    kept_macs = sum(m * min(rows, k - i * rows) * min(cols, n - j * cols) for i, j in zip(*np.nonzero(occupancy)))
    assert int(sparse.trace.sum()) == kept_macs
    assert sparse.trace.shape == (sparse.cycles, rows, cols)
    if sparse.cycles:
        assert sparse.utilization == pytest.approx(sparse.trace.mean())
    else:
        assert sparse.utilization == 0.0


def test_sparse_mode_changes_nothing_for_a_dense_matrix_and_keeps_zeros_inside_kept_tiles():
    a, b = np.ones((4, 6)), np.eye(6)  # the diagonal 3 × 3 tiles hold zeros and ones: they still run
    r = systolic.matmul(a, b, rows=3, cols=3, skip_zero_tiles=True, trace=True)
    assert r.skipped_tiles == 2  # the two off-diagonal tiles
    np.testing.assert_array_equal(r.c, a @ b)
    full = np.ones((6, 6))
    assert (systolic.matmul(a, full, rows=3, cols=3, skip_zero_tiles=True).cycles
            == systolic.matmul(a, full, rows=3, cols=3).cycles)


def test_sparse_mode_refuses_the_output_stationary_dataflow_and_bad_tiles():
    with pytest.raises(ValueError, match="weight-stationary"):
        systolic.matmul(np.ones((2, 2)), np.ones((2, 2)), rows=2, cols=2, dataflow="output", skip_zero_tiles=True)
    with pytest.raises(ValueError, match="rows"):
        systolic.tile_occupancy(np.ones((2, 2)), 0, 2)
    with pytest.raises(ValueError, match="2-D"):
        systolic.tile_occupancy(np.ones(3), 1, 1)
    with pytest.raises(ValueError, match="occupancy"):
        trends.systolic_cycles(2, 4, 4, 2, 2, np.ones((3, 2), bool))


def test_systolic_cycles_matches_the_simulator_on_non_contiguous_floats():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((10, 22))[:, ::2]
    b = rng.standard_normal((22, 9))[::2]
    b[:4, :3] = 0
    r = systolic.matmul(a, b, rows=4, cols=3, skip_zero_tiles=True)
    np.testing.assert_allclose(r.c, a @ b, rtol=1e-12, atol=1e-12)
    assert r.skipped_tiles == 1
    assert r.cycles == trends.systolic_cycles(10, 11, 9, 4, 3, systolic.tile_occupancy(b, 4, 3))


def test_prune_tiles_zeroes_whole_tiles_with_the_smallest_norms():
    w = np.arange(1, 1 + 6 * 5, dtype=float).reshape(6, 5)
    pruned = trends.prune_tiles(w, 0.5, 3, 2)  # 2 × 3 tiles, 3 of them zeroed
    occupancy = systolic.tile_occupancy(pruned, 3, 2)
    assert occupancy.shape == (2, 3) and int((~occupancy).sum()) == 3
    # The smallest tiles hold the smallest values: the top row of tiles.
    assert not occupancy[0].any() and occupancy[1].all()
    np.testing.assert_array_equal(pruned[3:], w[3:])
    assert trends.prune_tiles(w, 0.0, 3, 2).tolist() == w.tolist()
    assert not trends.prune_tiles(w, 1.0, 3, 2).any()
    with pytest.raises(ValueError, match="sparsity"):
        trends.prune_tiles(w, 1.5, 3, 2)


def test_mlp_cycles_and_array_shapes():
    assert trends.array_shapes(8) == [(1, 8), (2, 4), (4, 2), (8, 1)]
    with pytest.raises(ValueError, match="power of two"):
        trends.array_shapes(12)
    expected = trends.systolic_cycles(4, 64, 32, 8, 8) + trends.systolic_cycles(4, 32, 10, 8, 8)
    assert trends.mlp_cycles([64, 32, 10], 8, 8, 4) == expected
    with pytest.raises(ValueError, match="at least"):
        trends.mlp_cycles([64], 8, 8, 4)


def test_codesign_finds_a_joint_choice_at_least_as_fast_as_the_separate_one():
    models = [{"name": "wide", "widths": [64, 96, 10], "accuracy": 0.97},
              {"name": "narrow", "widths": [64, 48, 10], "accuracy": 0.95},
              {"name": "tiny", "widths": [64, 8, 10], "accuracy": 0.5}]
    shapes = trends.array_shapes(64)
    result = trends.codesign(models, shapes, 8, "wide", (8, 8), 0.9)
    assert len(result["table"]) == len(models) * len(shapes)
    assert result["joint"]["accuracy"] >= 0.9 and result["model_alone"]["accuracy"] >= 0.9
    assert result["joint"]["cycles"] == min(t["cycles"] for t in result["table"] if t["accuracy"] >= 0.9)
    assert result["joint"]["cycles"] <= result["separate"]["cycles"]
    assert result["hardware_alone"]["model"] == "wide"
    assert (result["model_alone"]["rows"], result["model_alone"]["cols"]) == (8, 8)
    with pytest.raises(ValueError, match="min_accuracy"):
        trends.codesign(models, shapes, 8, "wide", (8, 8), 0.99)
    with pytest.raises(ValueError, match="reference_shape"):
        trends.codesign(models, shapes, 8, "wide", (3, 3), 0.9)


@pytest.mark.parametrize("shape", [(0,), (1,), (7, 3), (40, 33)])
def test_kmeans_share_uses_at_most_two_to_the_bits_values_and_keeps_zeros(shape):
    rng = np.random.default_rng(sum(shape))
    w = rng.standard_normal(shape).astype(np.float32)
    if w.size > 2:
        w.flat[::3] = 0
    shared, centroids, labels = trends.kmeans_share(w, 3)
    assert shared.dtype == w.dtype and shared.shape == w.shape
    assert np.all(shared[w == 0] == 0) and np.all(labels[w == 0] == -1)
    assert len(np.unique(shared[w != 0])) <= 8 and len(centroids) <= 8
    if (w != 0).any():
        np.testing.assert_array_equal(shared[w != 0], centroids[labels[w != 0]])
        # k-means puts every weight at its nearest centroid.
        nearest = np.abs(w[w != 0][:, None] - centroids[None, :]).argmin(axis=1)
        np.testing.assert_allclose(np.abs(w[w != 0] - centroids[nearest]), np.abs(w[w != 0] - shared[w != 0]),
                                   atol=1e-6)


def test_kmeans_share_error_falls_with_more_bits_and_is_exact_for_few_values():
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    errors = [float(np.abs(trends.kmeans_share(w, b)[0] - w).mean()) for b in (1, 2, 4, 6)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.1 * errors[0]
    few = np.array([[0.5, -1.0], [0.5, 2.0]], np.float32)
    np.testing.assert_array_equal(trends.kmeans_share(few, 2)[0], few)
    with pytest.raises(ValueError, match="floating"):
        trends.kmeans_share(np.ones((2, 2), int), 2)
    with pytest.raises(ValueError, match="bits"):
        trends.kmeans_share(w, 0)
    assert trends.shared_nbytes(w, 4) == 64 * 64 // 2 + 16 * 4


def test_storage_bytes_counts_every_format_by_hand():
    w = np.zeros((4, 8), np.float32)
    w[0, 0], w[0, 5], w[3, 2] = 1, 2, 3
    assert trends.storage_bytes(w, "dense") == 4 * 8 * 4
    assert trends.storage_bytes(w, "coo") == 3 * 12
    assert trends.storage_bytes(w, "csr") == 3 * 8 + 5 * 4
    assert trends.storage_bytes(w, "csc") == 3 * 8 + 9 * 4
    assert trends.storage_bytes(w, "bsr", block=(2, 4)) == 3 * (8 * 4 + 4) + 3 * 4
    assert trends.storage_bytes(w, "n:m", n=2, m=4) == 4 * 2 * 2 * 4 + math.ceil(16 * 2 / 8)
    assert trends.storage_bytes(w, "coo", value_bytes=1, index_bytes=2) == 3 * 5
    with pytest.raises(ValueError, match="not 1:4"):
        trends.storage_bytes(np.ones((1, 4)), "n:m", n=1, m=4)
    with pytest.raises(ValueError, match="multiple"):
        trends.storage_bytes(np.ones((1, 6)), "n:m")
    with pytest.raises(ValueError, match="divide"):
        trends.storage_bytes(np.ones((3, 4)), "bsr", block=(2, 2))
    with pytest.raises(ValueError, match="fmt"):
        trends.storage_bytes(w, "ell")
    assert trends.storage_bytes(np.zeros((0, 4)), "csr") == 4


def test_storage_bytes_agrees_with_scipy():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(2)
    w = (rng.random((16, 24)) < 0.2) * rng.standard_normal((16, 24)).astype(np.float32)
    w = w.astype(np.float32)
    csr = scipy_sparse.csr_array(w)
    csr.indices, csr.indptr = csr.indices.astype(np.int32), csr.indptr.astype(np.int32)
    assert trends.storage_bytes(w, "csr") == csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes
    bsr = scipy_sparse.bsr_array(w, blocksize=(4, 4))
    assert trends.storage_bytes(w, "bsr", block=(4, 4)) == (bsr.data.nbytes + 4 * len(bsr.indices)
                                                             + 4 * len(bsr.indptr))


def test_pareto_mask():
    points = [[0.9, 1.0], [0.95, 2.0], [0.9, 2.0], [0.8, 0.5], [0.95, 2.0]]
    mask = trends.pareto_mask(points, minimize=[False, True])
    assert mask.tolist() == [True, True, False, True, True]
    assert trends.pareto_mask(np.zeros((0, 3)), [True] * 3).tolist() == []
    with pytest.raises(ValueError, match="objective"):
        trends.pareto_mask(points, [True])


def reference(name):
    path = data.path("ch08", name)
    if not path.exists():
        pytest.skip(f"data/ch08/{name} is written by make data")
    return data.load(path)


def test_reference_search_holds_real_accuracies_and_a_usable_latency_table():
    nas = reference("nas.json")
    frame = nas.to_frame()
    assert len(frame) >= 5 and frame.accuracy.between(0.5, 1).all()
    assert frame.accuracy.max() > 0.9  # the digits are easy for an MLP of a few dozen units
    # The layer table ranks candidates as their measured forward passes do (it leaves out softmax and scaling).
    assert frame.predicted_s.corr(frame.median_s, method="spearman") > 0.3
    assert (frame.predicted_s < 1.5 * frame.median_s).mean() > 0.5
    front = trends.pareto_mask(frame[["accuracy", "median_s"]], minimize=[False, True])
    assert front[frame.median_s.idxmin()] and front[frame.accuracy.idxmax()]


def test_reference_joint_search_covers_every_policy_and_counts_bytes():
    joint = reference("joint.json")
    records = joint.records
    assert len(records) == 12 ** 3  # 3 sparsities × 2 precisions × 2 sharing choices, per layer of 3
    uniform = {tuple(map(tuple, r["policy"]))[0]: r for r in records if r["uniform"]}
    fp32, int8 = uniform[(0.0, 32, None)], uniform[(0.0, 8, None)]
    assert 3.5 < fp32["bytes"] / int8["bytes"] < 4.1  # int8 values plus one scale per output channel
    assert fp32["accuracy"] > 0.9 and abs(int8["accuracy"] - fp32["accuracy"]) < 0.02
    mask = trends.pareto_mask([[r["accuracy"], r["latency_s"], r["bytes"]] for r in records], [False, True, True])
    assert 1 <= mask.sum() < len(records)


def test_reference_formats_show_csr_beating_dense_only_when_sparse():
    formats = reference("formats.json")
    pivot = formats.to_frame().pivot(index="density", columns="kernel", values="median_s")
    sparsest, densest = pivot.index.min(), pivot.index.max()
    assert pivot.loc[sparsest, "CSR"] < pivot.loc[sparsest, "dense BLAS"]
    assert pivot.loc[densest, "CSR"] > pivot.loc[densest, "dense BLAS"]
    assert (pivot["COO"] > 0.8 * pivot["CSR"]).all()  # two indices per value never make COO much faster


def test_reference_block_sweep_measures_every_block_side_at_one_density():
    blocks = reference("blocks.json")
    frame = blocks.to_frame()
    assert frame.density.nunique() == 1 and sorted(frame.block.unique())[0] == 1
    assert {"SciPy CSR", "book CSR (ch. 7)", "dense BLAS"} <= set(frame.kernel)


def test_page_has_a_widget_that_reruns_the_format_sweep_over_the_reference():
    page = (ROOT / "chapters" / "trends.md").read_text()
    widget = page[page.index("import ipywidgets"):]
    widget = widget[:widget.index("```")]
    assert "format_sweep(" in widget, "the widget must rerun the chapter's main sweep"
    assert "format_figure(mine.to_frame(), reference)" in widget, "and draw it over the book's reference curve"
    assert "does nothing there" in page[:page.index("import ipywidgets")], "the page says the widget needs a kernel"
