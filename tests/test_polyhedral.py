"""book.polyhedral: isl's dependences, legality and parallelism, and the kernels generated from its AST."""

import islpy as isl
import numpy as np
import pytest

from book import polyhedral as P


@pytest.fixture(scope="module")
def rec():
    nest = P.recurrence()
    return nest, P.dependences(nest)


@pytest.fixture(scope="module")
def sten():
    nest = P.stencil()
    return nest, P.dependences(nest)


def test_distance_vectors_are_one_per_read(rec, sten):
    assert P.distances(rec[1]) == [(0, 1), (1, 0)]
    assert P.distances(sten[1]) == [(1, -1), (1, 0), (1, 1)]


def test_dependence_pairs_at_fixed_sizes_follow_the_original_order(rec):
    nest, deps = rec
    pairs = P.dependence_pairs(deps, N=3, M=4)
    # a 2 x 3 domain: 2 rows of 2 left-to-right pairs, and 3 top-to-bottom pairs
    assert len(pairs) == 2 * 2 + 3
    assert all(source < sink for source, sink in pairs)
    assert set(P.points(nest, N=3, M=4)) == {(i, j) for i in (1, 2) for j in (1, 2, 3)}
    assert P.points(nest, N=1, M=9) == []
    assert P.points(nest, P.wavefront(), N=3, M=4) == sorted((i + j, i) for i in (1, 2) for j in (1, 2, 3))
    with pytest.raises(ValueError, match="every size"):
        P.points(nest, N=3)


def test_legality_of_interchange_reversal_and_tiling(rec, sten):
    nest, deps = rec
    assert P.is_legal(deps, nest.schedule)
    assert P.is_legal(deps, isl.UnionMap("{ S[i, j] -> [j, i] }"))        # interchange
    assert not P.is_legal(deps, isl.UnionMap("{ S[i, j] -> [-i, j] }"))   # reversing i
    assert P.is_legal(deps, P.tiled(nest.schedule, (4, 3)))
    snest, sdeps = sten
    assert not P.is_legal(sdeps, isl.UnionMap("{ S[t, i] -> [i, t] }"))   # distance (1, -1) turns backwards
    assert not P.is_legal(sdeps, P.tiled(snest.schedule, (4, 4)))
    assert P.is_legal(sdeps, P.tiled(isl.UnionMap("{ S[t, i] -> [t, t + i] }"), (4, 4)))
    with pytest.raises(ValueError, match="positive"):
        P.tiled(nest.schedule, (4, 0))


def test_parallel_dimensions(rec, sten):
    nest, deps = rec
    assert P.parallel_dims(deps, nest.schedule) == [False, False]
    assert P.parallel_dims(deps, P.wavefront()) == [False, True]
    assert P.parallel_dims(deps, P.wavefront(8)) == [False, True, False, False]
    assert P.is_legal(deps, P.wavefront()) and P.is_legal(deps, P.wavefront(8))
    snest, sdeps = sten
    assert P.parallel_dims(sdeps, snest.schedule) == [False, True]
    skew = isl.UnionMap("{ S[t, i] -> [t, t + i] }")
    assert P.parallel_dims(sdeps, skew) == [False, True]  # every dependence still crosses t
    # tiled, a tile's band of t + i is no longer free: its neighbour tile on the same t-strip depends on it
    assert P.parallel_dims(sdeps, P.tiled(skew, (4, 4))) == [False, False, False, True]
    with pytest.raises(ValueError, match="positive"):
        P.wavefront(0)


def test_isl_scheduler_returns_a_legal_tilable_band(rec, sten):
    for nest, deps in (rec, sten):
        schedule = P.isl_schedule(nest, deps)
        permutable, coincident = P.band_flags(schedule)
        assert P.is_legal(deps, schedule.get_map())
        assert permutable and len(coincident) == 2
        assert P.is_legal(deps, P.tiled(schedule.get_map(), (4, 4)))


def test_source_marks_only_the_parallel_depth(rec):
    nest, _ = rec
    source = P.python_source(nest, P.wavefront(16), "w", parallel=(1,))
    loops = [line.strip() for line in source.splitlines() if line.strip().startswith("for ")]
    assert len(loops) == 4 and [("prange(" in line) for line in loops] == [False, True, False, False]
    assert source.startswith("def w(a, N, M):")


@pytest.fixture(scope="module")
def wave_kernel(rec):
    nest, _ = rec
    kernel, _ = P.compile_nest(nest, P.wavefront(16), "wave", parallel=(1,))
    return kernel


@pytest.mark.parametrize("shape", [(0, 0), (1, 1), (1, 7), (2, 3), (16, 16), (67, 131)])
def test_wavefront_kernel_equals_the_original_loops(wave_kernel, shape):
    a = np.random.default_rng(sum(shape)).random(shape)
    expected = P.recurrence_reference(a.copy())
    wave_kernel(a, *shape)
    np.testing.assert_array_equal(a, expected)


def test_wavefront_kernel_on_a_strided_view(wave_kernel):
    base = np.random.default_rng(1).random((90, 120))
    view, expected = base[::2, ::3], base[::2, ::3].copy()
    wave_kernel(view, *view.shape)
    np.testing.assert_array_equal(view, P.recurrence_reference(expected))


@pytest.fixture(scope="module")
def stencil_kernel(sten):
    nest, deps = sten
    kernel, _ = P.compile_nest(nest, P.tiled(P.isl_schedule(nest, deps).get_map(), (8, 8)), "stencil")
    return kernel


@pytest.mark.parametrize("steps, n", [(0, 5), (1, 2), (1, 3), (5, 4), (23, 37)])
def test_skewed_tiled_stencil_kernel_equals_numpy(stencil_kernel, steps, n):
    first = np.random.default_rng(n).random(n)
    out = np.zeros((steps + 1, n))
    out[0] = first
    stencil_kernel(out, steps, n)
    np.testing.assert_allclose(out, P.stencil_reference(first, steps), rtol=1e-14)


def test_stencil_reference_is_one_numpy_step_at_a_time():
    first = np.array([3.0, 0.0, 0.0, 6.0])
    np.testing.assert_array_equal(P.stencil_reference(first, 1)[1], [0.0, 1.0, 2.0, 0.0])


def test_reference_wavefront_run_has_every_kernel_at_full_size():
    from book import data

    path = data.path("ch06", "wavefront.json")
    if not path.exists():
        pytest.skip("data/ch06/wavefront.json is not published yet (make data)")
    run = data.load(path)
    assert run.provenance["source"] == "chapters/loop_optimizations.md" and run.meta["quick"] is False
    assert {r["kernel"] for r in run.records} == {"original loops", "wavefront, points, all threads",
                                                  "tiled wavefront, 1 thread", "tiled wavefront, all threads"}
