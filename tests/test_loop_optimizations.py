"""Loop optimizations: the reference data tells the chapter's story, and the quick build shows it.

Ratios are measured within one run (one data file, or one quick build); tests over the reference
files skip until ``make data`` has written them.
"""


import pytest

from book import data
from book.data import summarize

from conftest import ROOT, glued_text

PAGE = "chapters/loop_optimizations.md"
FILES = ("ladder.json", "tiles.json")


def load(name):
    path = data.path("ch06", name)
    if not path.exists():
        pytest.skip(f"data/ch06/{name} is not published yet (make data)")
    return data.load(path)


def test_readme_names_every_file_and_the_page_publishes_them():
    readme = (ROOT / "data" / "ch06" / "README.md").read_text()
    page = (ROOT / PAGE).read_text()
    for name in FILES:
        assert name in readme and f'"ch06/{name}"' in page


@pytest.mark.parametrize("name", FILES)
def test_reference_was_published_by_the_page_at_full_size(name):
    dataset = load(name)
    assert dataset.provenance["source"] == PAGE and dataset.meta["quick"] is False


def _by_dtype(result, dtype, threads=1):
    """GFLOP/s of each (n, kernel) of one dtype and thread count; ``BenchResult.median`` keys on (kernel, n) only."""
    return {(r["n"], r["kernel"]): 2 * r["n"] ** 3 / summarize(r["times_s"])[0] / 1e9
            for r in result.records if r["dtype"] == dtype and r["threads"] == threads}


def test_ladder_climbs_and_covers_sizes_that_are_not_multiples_of_a_tile():
    ladder = load("ladder.json")
    sizes = {r["n"] for r in ladder.records}
    assert {1000, 1023, 1024} <= sizes
    # One thread, and all of the reference machine's threads where it had more than one.
    threads = {r["threads"] for r in ladder.records}
    assert threads == {1, ladder.meta["numba_threads"]}
    # Beyond one thread, the run times only the parallel step and BLAS, on the same sizes.
    many = [r for r in ladder.records if r["threads"] != 1]
    assert {r["kernel"] for r in many} <= {"6 parallel (prange)", "np.dot (BLAS)"}
    assert {r["n"] for r in many} == (sizes if many else set())
    speeds = _by_dtype(ladder, "float64")
    for n in (256, 512):
        # Every rung that the chapter explains as a gain is one: interchange, register blocking, packing.
        assert speeds[(n, "2 interchange i-k-j")] > 2 * speeds[(n, "1 naive i-j-k")]
        assert speeds[(n, "5 packed")] > 2 * speeds[(n, "2 interchange i-k-j")]
    # The packed step is within reach of BLAS on one thread (the page reports the exact fraction).
    assert speeds[(1024, "5 packed")] > 0.5 * speeds[(1024, "np.dot (BLAS)")]


def test_tile_sweep_spans_the_caches():
    tiles = load("tiles.json")
    sets = {8 * (r["ti"] * r["tk"] + r["tk"] * r["tj"] + r["ti"] * r["tj"]) for r in tiles.records}
    caches = tiles.meta["cache_bytes"]
    assert min(sets) < caches["L1d"] and max(sets) > caches["L2"]


def test_page_shows_the_book_kernels_instead_of_redefining_them():
    page = (ROOT / PAGE).read_text()
    for name in ("matmul_ijk", "matmul_ikj", "matmul_tiled", "microkernel_source", "compile_microkernel",
                 "macrokernel_source", "ladder_top", "im2col", "conv2d_im2col", "reuse_distances", "sum_prange",
                 "histogram_per_thread", "scan_two_pass"):
        assert f":pyobject: {name}" in page
    assert "def matmul_ijk" not in page


# --- the quick build (the `site` fixture builds the whole book once per session) --------------

@pytest.mark.build
def test_quick_run_vectorizes_the_micro_kernel_and_beats_the_textbook_loop(site):
    values = glued_text(site, "loop_optimizations")
    assert values["micro_scalar"] == "none of them scalar"
    assert int(values["micro_fma"]) > 0 and values["micro_width"].endswith("-bit")
    assert float(values["naive_to_packed"]) > 3


@pytest.mark.build
def test_quick_run_counts_locality_and_the_cost_of_im2col(site):
    values = glued_text(site, "loop_optimizations")
    assert float(values["sim_tiled_ratio"]) > 2  # tiles sized from the card cut the predicted L1d misses
    assert float(values["conv_blowup"]) > 3  # a 3 x 3 lowering copies most values several times
    assert float(values["micro_stores"]) < float(values["ikj_stores"])  # the block of c stays in registers
