"""What makes computation fast: the reference data tells the chapter's story, and the page runs.

The reference files are one full-size run of the page (``make data``), so the
ratios checked here are measured within one run; the quick build's values
are checked too, with slack for a noisy CI machine.
"""

import json
import re

import pytest

from book import data, plots

from conftest import QUICK_BUILD, ROOT

PAGE = "chapters/what_makes_computation_fast.md"
FILES = ("memory_mountain.json", "stream.json", "blas.json", "roofline.json")


def load(name):
    return data.load(data.path("ch02", name))


def gbs_of(result):
    """GB/s of each kernel (median) of a STREAM or mountain file, from its bytes_per_call."""
    return {(r["kernel"], r["n"]): r["bytes_per_call"] / result.median(r["kernel"], r["n"]) / 1e9
            for r in result.records}


@pytest.mark.parametrize("name", FILES)
def test_reference_was_published_by_the_page_at_full_size(name):
    dataset = load(name)
    assert dataset.provenance["source"] == PAGE
    assert dataset.meta["quick"] is False
    assert f'"ch02/{name}"' in (ROOT / PAGE).read_text()


def test_memory_mountain_spans_the_hierarchy():
    mountain = load("memory_mountain.json")
    frame = mountain.to_frame()
    assert set(frame.stride) == {1, 2, 4, 8, 16, 32, 64}
    assert frame.working_set_bytes.min() == 16 * 1024
    assert frame.working_set_bytes.max() >= 256 * 2**20  # far beyond the last-level cache
    assert (frame.bytes_per_call >= 2**18).all()  # each call reads at least 256 KiB (overhead negligible)
    gbs = gbs_of(mountain)
    smallest, largest = frame.n.min(), frame.n.max()
    simd = "stride 1, SIMD"
    assert gbs[(simd, smallest)] > 2 * gbs[(simd, largest)], "L1 should be far faster than DRAM"
    assert gbs[("stride 1", largest)] > 4 * gbs[("stride 64", largest)], "spatial locality: stride 64 wastes lines"


def test_cache_ceilings_are_cache_bandwidths():
    """L1 >= L2 >= L3 >= DRAM for one thread, each allowed 10% of noise over the level above it.
    Passes on the data made before the read kernel was made memory-bound (its L3 came out 5% above its L2)
    and on data regenerated with it; the DRAM level is the one-thread STREAM ceiling, or, in the older
    files that lack it, the mountain's SIMD read of its largest working set."""
    memory = plots.roofline_inputs(load("roofline.json").records)["memory"]
    mountain = load("memory_mountain.json")
    largest = max(r["n"] for r in mountain.records)
    dram = memory.get("DRAM (1 thread)", gbs_of(mountain)[("stride 1, SIMD", largest)])
    levels = [memory["L1 (read, 1 thread)"], memory["L2 (read, 1 thread)"], memory["L3 (read, 1 thread)"], dram]
    for upper, lower in zip(levels, levels[1:]):
        assert lower <= 1.1 * upper, levels
    assert levels[0] > 3 * levels[-1], "a read from L1 should be far faster than one from DRAM"


def test_matmul_matrices_fit_in_the_l3_so_dram_does_not_explain_i_j_k():
    """The page says i-j-k is slow for reasons in the core and caches: its three matrices fit the card's L3."""
    reference = load("roofline.json")
    kernels = {k["name"]: k for k in reference.records if k["kind"] == "kernel"}
    assert kernels["matmul i-j-k"]["bytes"] <= 0.75 * reference.meta["cache_bytes"]["L3"]


def test_numba_triad_reaches_the_best_bandwidth_of_the_chapter():
    """The performance bar: the book's triad gets >= 90% of the best main-memory bandwidth any method
    measured in the same run (asserted with slack; the reference run's value is in the message)."""
    stream = gbs_of(load("stream.json"))
    mountain = load("memory_mountain.json")
    largest = max(r["n"] for r in mountain.records)
    candidates = {kernel: value for (kernel, _), value in stream.items()}
    candidates |= {f"mountain {kernel}": value for (kernel, n), value in gbs_of(mountain).items() if n == largest}
    triad = max(value for kernel, value in candidates.items() if kernel.startswith("triad (numba"))
    best = max(candidates, key=candidates.get)
    fraction = triad / candidates[best]
    assert fraction >= 0.85, f"numba triad {triad:.1f} GB/s is {fraction:.0%} of {best} ({candidates[best]:.1f} GB/s)"


def test_blas_float32_doubles_float64():
    blas = load("blas.json")
    n = blas.sizes[0]
    ratio = blas.median("float64, 1 thread", n) / blas.median("float32, 1 thread", n)
    assert 1.4 < ratio < 2.6, f"float32 BLAS should be about twice as fast as float64 (SIMD lanes); got {ratio:.2f}"


def test_roofline_places_kernels_on_the_right_side_of_the_ridge():
    reference = load("roofline.json")
    parts = plots.roofline_inputs(reference.records)
    peak, bandwidth = next(iter(parts["compute"].values())), next(iter(parts["memory"].values()))
    ridge = plots.ridge_intensity(peak, bandwidth)
    kernels = {k["name"]: k for k in parts["kernels"]}
    assert set(kernels) == {"STREAM triad", "dot product", "5-point stencil", "matmul i-j-k", "matmul i-k-j",
                            "matmul (BLAS)"}
    for name in ("STREAM triad", "dot product", "5-point stencil"):
        assert kernels[name]["intensity"] < ridge, name
    for name in ("matmul i-j-k", "matmul i-k-j", "matmul (BLAS)"):
        assert kernels[name]["intensity"] > ridge, name
    for name, kernel in kernels.items():  # nothing beats its roof by more than noise
        assert kernel["gflops"] < 1.2 * plots.attainable_gflops(kernel["intensity"], peak, bandwidth), name
    assert (kernels["matmul (BLAS)"]["gflops"] > kernels["matmul i-k-j"]["gflops"]
            > 2 * kernels["matmul i-j-k"]["gflops"]), "loop order and BLAS should each win"
    fig = plots.roofline(**parts, meta=reference.meta)
    assert len([t for t in fig.data if t.meta and t.meta.get("roofline") == "kernel"]) == 6


def test_data_folder_has_a_readme_naming_every_file():
    readme = (data.path("ch02") / "README.md").read_text()
    for name in FILES:
        assert name in readme
    assert "make data" in readme


def test_page_shows_the_assembly_and_the_roofline_helper():
    page = (ROOT / PAGE).read_text()
    assert "inspect_asm" in page and "fastmath=False" in page and 'fastmath={"reassoc"}' in page
    assert ":pyobject: attainable_gflops" in page
    assert "$" not in re.sub(r"```\{code-cell\}.*?```", "", page, flags=re.S), \
        "no LaTeX math: MathJax would load from a CDN and the site must work offline"


def test_page_shows_the_latency_kernels_of_book_instead_of_redefining_them():
    """One source: the code readers study is book.kernels (memory, bandwidth), which Lab 2 and the tests use."""
    page = (ROOT / PAGE).read_text()
    for name in ("sum_chain", "accumulator_source", "sum_with_accumulators", "random_cycle", "chase",
                 "read_strided", "read_simd"):
        assert f":pyobject: {name}\n" in page, name
        assert f"def {name}(" not in page, f"{name} is defined in the page; import it from book.kernels.memory"


# --- the quick build (the `site` fixture builds the whole book once per session) --------------

def glued(site):
    path = QUICK_BUILD / "_build" / "jupyter_execute" / "chapters" / "what_makes_computation_fast.glue.json"
    assert site.returncode == 0, "the site did not build; see test_build"
    values = {}
    for name, output in json.loads(path.read_text()).items():
        text = next(iter(output["data"].values()))
        try:
            values[name] = float(text)
        except ValueError:
            values[name] = text.strip("'")
    return values


@pytest.mark.build
def test_quick_run_measures_latency_and_throughput(site):
    values = glued(site)
    # Independent accumulators hide the add latency: at least 3x on a core whose add takes 3 or more cycles
    # and that starts at least one add per cycle (every x86 and Arm core the book has met), less slack for a
    # busy 2-vCPU machine (a CI run measured 2.98 in quick mode).
    assert values["accumulator_speedup"] >= 2.5, values["accumulator_speedup"]
    assert 2 <= values["in_flight"] <= 16, values["in_flight"]  # Little's law: latency x throughput
    # SIMD appears in the assembly only when fastmath allows reassociation.
    assert values["packed_adds_chain"] == 0 and values["packed_adds_fastmath"] > 0
    assert values["simd_over_chain"] > values["accumulator_speedup"] / 2


@pytest.mark.build
def test_quick_run_reads_memory_with_a_memory_bound_kernel(site):
    """The mountain's SIMD read is packed with enough vector chains (read from the code, so exact), and
    L1 is far faster than DRAM. The order of L2 and L3 is left to the full-size reference test above:
    on a busy 2-vCPU machine one working set per level can come out of order, and the page says so."""
    values = glued(site)
    assert values["simd_read_scalar"] == 0 and values["simd_read_chains"] >= 8, values
    assert values["simd_read_bits"] >= 128
    # "far faster", with slack: on a busy 2-vCPU machine a CI run measured 2.95 in quick mode
    assert values["bw_l1_over_dram"] > 2, values["bw_l1_over_dram"]
    assert values["bw_L1"] > values["scalar_cap_gbs"], "the SIMD read should outrun the scalar adds in L1"


@pytest.mark.build
def test_quick_run_compares_like_with_like(site):
    """One-thread kernels are scored against one-thread ceilings, and i-j-k against its add chain."""
    values = glued(site)
    blas_share = 100 * values["roof_blasmm_gflops"] / values["blas64_1"]  # compute-bound: the compute ceiling
    assert values["roof_blasmm_pct"] == pytest.approx(blas_share, rel=1e-6)
    dot_share = 100 * values["roof_dot_gflops"] / (values["roof_dot_i"] * values["roof_bw_1"])  # memory-bound
    assert values["roof_dot_pct"] == pytest.approx(dot_share, rel=1e-6)
    assert values["roof_bw_1"] <= values["roof_bw"]
    assert values["ijk_chain_cap"] == pytest.approx(2 / values["latency_ns"], rel=1e-6)
    assert values["ijk_of_cap"] == pytest.approx(100 * values["roof_ijk_gflops"] / values["ijk_chain_cap"], rel=1e-6)
    assert values["ijk_padding_gain"] > 0


@pytest.mark.build
def test_quick_run_reports_bandwidth_and_peak(site):
    values = glued(site)
    # Reported, not asserted: on a loaded 2-vCPU CI machine a parallel kernel waits for its descheduled
    # thread; the performance bar is asserted on the full-size reference run above.
    print({k: values[k] for k in ("triad_gbs", "best_any_gbs", "triad_fraction_pct", "blas64_1", "blas32_1")})
    assert values["triad_gbs"] > 0 and values["best_any_gbs"] >= values["triad_gbs"]
    assert values["blas32_1"] > values["blas64_1"]  # float32 and float64 are interleaved in one run
    assert values["roof_ijk_gflops"] < values["roof_ikj_gflops"]


@pytest.mark.build
def test_built_page_has_its_figures(site):
    """Each figure's card or source line is checked on every page (test_chapter_pages.py)."""
    html = (site.html / "chapters" / "what_makes_computation_fast.html").read_text()
    assert html.count('class="plotly-graph-div"') >= 9


# --- the sections on the core and the memory system (book/kernels/cpu.py) ------------------------

CPU_FILES = ("branches.json", "memory_parallelism.json", "conflicts.json", "prefetch.json", "tlb.json")


def load_or_skip(name):
    """A reference file of these sections, or a skip until `make data` has published it."""
    if not data.path("ch02", name).exists():
        pytest.skip(f"data/ch02/{name} is not published yet (make data)")
    return load(name)


def test_page_shows_the_cpu_kernels_of_book_instead_of_redefining_them():
    page = (ROOT / PAGE).read_text()
    for name in ("chase_with_adds", "sum_above", "keep_above", "keep_above_branchless", "chase_chains"):
        assert f":pyobject: {name}\n" in page, name
        assert f"def {name}(" not in page, f"{name} is defined in the page; import it from book.kernels.cpu"
    for name in CPU_FILES:
        assert f'"ch02/{name}"' in page and name in (data.path("ch02") / "README.md").read_text(), name


@pytest.mark.parametrize("name", CPU_FILES)
def test_cpu_reference_was_published_by_the_page_at_full_size(name):
    dataset = load_or_skip(name)
    assert dataset.provenance["source"] == PAGE and dataset.meta["quick"] is False


def test_reference_branch_costs_only_where_the_code_jumps():
    branches = load_or_skip("branches.json")
    n = branches.sizes[0]
    ratio = {name: branches.median(f"{name}, shuffled", n) / branches.median(f"{name}, sorted", n)
             for name in ("sum_above", "keep_above (branch)", "keep_above_branchless")}
    assert ratio["keep_above (branch)"] > 2, ratio  # mispredictions on shuffled data
    assert 0.7 < ratio["sum_above"] < 1.3 and 0.7 < ratio["keep_above_branchless"] < 1.3, ratio


def test_reference_chains_overlap_their_misses():
    mlp = load_or_skip("memory_parallelism.json")
    n = mlp.sizes[0]
    one = mlp.median("1 chains", n)
    speedups = {r["kernel"]: one / mlp.median(r["kernel"], n) for r in mlp.records}  # same loads per call
    assert speedups["8 chains"] > 3, speedups
    assert max(speedups.values()) < 64, speedups  # bounded by the core's miss buffers


def test_reference_same_set_strides_conflict_and_one_line_more_does_not():
    conflicts = load_or_skip("conflicts.json")
    widest = max(conflicts.sizes)
    l1 = next(k for k in conflicts.kernels if k.startswith("L1d size ("))
    assert conflicts.median(l1, widest) > 2 * conflicts.median("L1d size + 64 B", widest)
    assert conflicts.median(l1, 1) < 1.5 * conflicts.median("L1d size + 64 B", 1)


def test_reference_prefetcher_and_tlb():
    prefetch = load_or_skip("prefetch.json")
    largest = max(prefetch.sizes)
    assert (prefetch.median("packed lines, random order", largest)
            > 3 * prefetch.median("packed lines, address order", largest)), "the prefetcher should hide DRAM latency"
    tlb = load_or_skip("tlb.json")
    widest = max(tlb.sizes)
    base, packed = tlb.median("one line per page, base pages", widest), tlb.median("packed lines, random order", widest)
    assert base > 1.3 * packed, "one line per page should miss the TLB"


@pytest.mark.build
def test_quick_run_shows_the_core_and_memory_effects(site):
    values = glued(site)
    assert values["branch_keep_ratio"] > 1.5, values["branch_keep_ratio"]  # a real branch on shuffled data
    print({"branch_free_ratio": values["branch_free_ratio"]})  # reported: it varies with the arrays' placement
    assert values["mlp_best"] > 2, values["mlp_best"]
    assert values["prefetch_gain"] > 2, values["prefetch_gain"]
    assert values["conflict_same_ns"] > values["conflict_near_ns"]
    assert values["ooo_last_ns"] < values["ooo_last_serial_ns"]  # overlapped, not one chain after the other
    assert values["layer_b1_i"] < values["ridge32"] < values["layer_conv_i"]
