"""Chapter 4, From code to silicon: every claim the page makes about what the compiler did, checked
against the compiler's output in this process; the reference data's story; the quick build's values.
"""

import json

import numba
import numpy as np
import pytest

from book import asm, data, hardware, mlir
from book import llvm as L

from conftest import QUICK_BUILD, ROOT

PAGE = "chapters/compilers.md"


def dot_py(x, y):  # the page's function, as written there
    total = 0.0
    for i in range(x.size):
        total += x[i] * y[i]
    return total


def test_the_page_defines_the_function_these_tests_compile():
    source = (ROOT / PAGE).read_text()
    assert "def dot_py(x, y):\n    total = 0.0\n    for i in range(x.size):\n        total += x[i] * y[i]" in source


@pytest.fixture(scope="module")
def compiled():
    x = np.random.default_rng(0).random(1001)
    kernels = {}
    for label, option in {"strict": False, "reassoc": {"reassoc"}, "fast": True}.items():
        with L.capture_numba_ir() as raw:
            kernel = numba.njit(fastmath=option)(dot_py)
            np.testing.assert_allclose(kernel(x, x), x @ x, rtol=1e-12)
        sig = kernel.signatures[0]
        kernels[label] = {"raw": L.definition("\n".join(raw), "dot_py"),
                          "ir": L.definition(kernel.inspect_llvm(sig), "dot_py"),
                          "loop": asm.hottest_loop(kernel.inspect_asm(sig))}
    return kernels


FLAGS = {"fast", "reassoc", "nnan", "ninf", "nsz", "arcp", "contract", "afn"}


def fadd_flags(ir_text):
    """The fast-math flags on the fadd instructions, "" for an fadd without one."""
    return {" ".join(w for w in line.split("fadd", 1)[1].split() if w in FLAGS)
            for line in ir_text.splitlines() if " fadd " in line}


def test_optimiser_moves_stack_slots_to_registers_and_vectorises(compiled):
    reassoc = compiled["reassoc"]
    assert "alloca" in reassoc["raw"] and "alloca" not in reassoc["ir"]
    assert "x double>" in reassoc["ir"]
    assert asm.vector_bits(reassoc["loop"]) >= 128


def test_without_fastmath_the_sum_stays_scalar_in_order(compiled):
    assert fadd_flags(compiled["strict"]["ir"]) <= {""}
    assert asm.summary(compiled["strict"]["loop"], "add").packed_float == {}


def test_reassoc_sets_one_flag_and_fastmath_true_sets_them_all(compiled):
    assert fadd_flags(compiled["reassoc"]["ir"]) == {"reassoc"}
    assert fadd_flags(compiled["fast"]["ir"]) == {"fast"}
    assert asm.summary(compiled["reassoc"]["loop"]).fma == 0  # no contract flag: no fused multiply-add
    meta = hardware.collect_metadata()
    if "fma" in meta.get("isa", []) or meta.get("machine") in ("aarch64", "arm64"):
        assert asm.summary(compiled["fast"]["loop"]).fma > 0


def test_ablation_claims_hold_for_the_handwritten_ir():
    text = str(L.dot_module(fastmath=("reassoc",)))
    machine = L.host_target_machine()

    def loop(**switches):
        return asm.hottest_loop(machine.emit_assembly(L.optimise(text, target_machine=machine, **switches)))

    assert asm.vector_bits(loop()) >= 128
    assert asm.vector_bits(loop(loop_vectorization=False, slp_vectorization=False)) == 0
    assert asm.vector_bits(loop(speed_level=0)) == 0


def test_llvmlite_ships_the_back_ends_the_page_compares():
    targets = L.available_targets()
    assert {"x86-64", "AArch64"} <= set(targets)
    text = str(L.dot_module(fastmath=("reassoc",)))
    assert asm.vector_bits(L.compile_to_asm(text, targets["x86-64"])) == 128  # baseline x86-64 is SSE2
    assert asm.vector_bits(L.compile_to_asm(text, targets["AArch64"])) == 128  # NEON


def test_xdsl_stages_have_the_dialects_the_page_names():
    source = (ROOT / PAGE).read_text()
    program = source.split('scale_add = f"""', 1)[1].split('"""', 1)[0].replace("{n_mlir}", "6")
    program = program.replace("{{", "{").replace("}}", "}")
    stages = mlir.lower(program)
    assert [sorted(s.dialects) for s in stages[2:]] == [["arith", "func", "memref", "scf"],
                                                       ["arith", "cf", "func", "memref"]]


# --- the reference data (make data) --------------------------------------------------------

@pytest.mark.parametrize("name", ["opt_levels.json", "ablation.json"])
def test_reference_data_tells_the_story(name):
    path = data.path("ch04", name)
    if not path.exists():
        pytest.skip(f"data/ch04/{name} not published yet (make data)")
    result = data.load(path)
    assert result.provenance["source"] == PAGE and result.meta["quick"] is False
    medians = {k: result.median(k, result.sizes[0]) for k in result.kernels}
    if name == "opt_levels.json":
        assert medians["-O0"] > 3 * medians["-O3"]
    else:
        assert medians["-O0"] > 3 * medians["-O3, every switch on"]
        assert medians["no vectoriser at all"] > 1.3 * medians["-O3, every switch on"]


# --- the quick build -----------------------------------------------------------------------

@pytest.mark.build
def test_quick_build_shows_the_optimiser_at_work(site):
    path = QUICK_BUILD / "_build" / "jupyter_execute" / "chapters" / "compilers.glue.json"
    assert site.returncode == 0, "the site did not build; see test_build"
    values = {name: next(iter(out["data"].values())).strip("'") for name, out in json.loads(path.read_text()).items()}
    assert float(values["o0_over_o3"]) > 2, values["o0_over_o3"]
    assert int(values["raw_allocas"]) > 0 and int(values["optimised_allocas"]) == 0


def test_m_times_n_count_is_a_slider_that_works_offline():
    """A plotly slider (restyled in the browser, no kernel): one step per N, each the page's own arithmetic."""
    page = (ROOT / PAGE).read_text()
    section = page[page.index("## M + N"):page.index("## Write LLVM IR yourself")]
    assert "sliders=" in section and '"method": "update"' in section
    assert "def compiler_counts(n):\n    return [languages * n, languages + n]" in section
    assert "ipywidgets" not in section, "a kernel-only control would be inert on the static site"


@pytest.mark.build
def test_quick_build_counts_compilers_from_the_targets_it_found(site):
    path = QUICK_BUILD / "_build" / "jupyter_execute" / "chapters" / "compilers.glue.json"
    assert site.returncode == 0, "the site did not build; see test_build"
    values = {name: next(iter(out["data"].values())).strip("'") for name, out in json.loads(path.read_text()).items()}
    targets = int(values["target_count"])
    numbers = [int(word) for word in values["mn_example"].split() if word.isdigit()]
    m = numbers[0]
    assert numbers == [m, targets, m * targets, m + targets]


def test_ablation_ir_diff_claim_holds():
    """The page says the full pipeline's dot has vector types and the no-vectoriser variant none."""
    machine = L.host_target_machine()
    dot = str(L.dot_module(fastmath=("reassoc",)))
    full = L.definition(str(L.optimise(dot, target_machine=machine)), "dot")
    scalar = L.definition(str(L.optimise(dot, target_machine=machine, loop_vectorization=False,
                                         slp_vectorization=False)), "dot")
    assert "x double>" in full
    assert "x double>" not in scalar and "fadd reassoc double" in scalar


def test_baseline_x86_64_back_end_gives_sse2_width():
    """The page says baseline x86-64 is SSE2: 128-bit vectors, whatever this CPU has."""
    if "x86-64" not in L.available_targets():
        pytest.skip("this llvmlite has no x86-64 back end")
    code = L.compile_to_asm(str(L.dot_module(("reassoc",))), L.CANDIDATE_TRIPLES["x86-64"])
    assert asm.vector_bits(code) == 128
