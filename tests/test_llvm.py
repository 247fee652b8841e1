"""Tests of book.llvm (chapter 4): IR capture, the optimiser's switches, targets, the hand-written dot product."""

import ctypes

import numpy as np
import pytest

from book import asm
from book import llvm as L

DOT_ARGS = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]


def call_dot(function, x, y):
    return function(x.ctypes.data, y.ctypes.data, x.size)


@pytest.fixture(scope="module")
def dot():
    return L.jit(L.optimise(str(L.dot_module(("reassoc",)))), "dot", ctypes.c_double, DOT_ARGS)


@pytest.mark.parametrize("n", [0, 1, 7, 1001])
def test_handwritten_dot_matches_numpy(dot, n):
    rng = np.random.default_rng(n)
    x, y = rng.random(n), rng.random(n)
    np.testing.assert_allclose(call_dot(dot, x, y), x @ y, rtol=1e-12, atol=0)


def test_handwritten_dot_on_a_strided_view_needs_a_contiguous_copy(dot):
    x = np.random.default_rng(0).random(21)[::2]  # the IR walks 8-byte steps: give it contiguous data
    xc = np.ascontiguousarray(x)
    np.testing.assert_allclose(call_dot(dot, xc, xc), x @ x, rtol=1e-12, atol=0)


def test_dot_module_carries_the_flags_asked_for():
    assert "fadd reassoc double" in str(L.dot_module(("reassoc",)))
    assert "fadd double" in str(L.dot_module())


def test_the_vectoriser_is_what_turns_the_sum_into_packed_code():
    text = str(L.dot_module(("reassoc",)))
    on = L.host_target_machine().emit_assembly(L.optimise(text))
    off = L.host_target_machine().emit_assembly(L.optimise(text, loop_vectorization=False, slp_vectorization=False))
    assert asm.vector_bits(on) >= 128
    assert asm.vector_bits(off) == 0


def test_without_reassoc_the_sum_stays_scalar():
    code = L.host_target_machine().emit_assembly(L.optimise(str(L.dot_module())))
    assert asm.summary(code, "add").packed_float == {}


def test_optimise_refuses_unknown_switches_and_levels():
    with pytest.raises(ValueError, match="licm"):
        L.optimise(str(L.dot_module()), licm=False)
    with pytest.raises(ValueError, match="speed_level"):
        L.optimise(str(L.dot_module()), speed_level=4)


def test_available_targets_include_this_machine_and_skip_unknown_triples():
    found = L.available_targets({"host": L.CANDIDATE_TRIPLES["x86-64"], "nonsense": "nonsense-unknown-none"})
    assert "nonsense" not in found
    import platform
    if platform.machine() == "x86_64":
        assert "host" in found


def test_one_module_compiles_for_aarch64_with_neon_vectors():
    if "AArch64" not in L.available_targets():
        pytest.skip("this llvmlite has no AArch64 back end")
    code = L.compile_to_asm(str(L.dot_module(("reassoc",))), L.CANDIDATE_TRIPLES["AArch64"])
    assert asm.vector_bits(code) == 128  # NEON's registers are 128 bits wide
    assert any(i.mnemonic == "fadd" and i.packed for i in asm.instructions(code))


def test_jit_names_the_functions_a_module_defines():
    with pytest.raises(KeyError, match="dot"):
        L.jit(L.dot_module(), "missing", ctypes.c_double, DOT_ARGS)


def test_capture_sees_numba_ir_before_optimisation():
    import numba

    def running_total(x):
        total = 0.0
        for i in range(x.size):
            total += x[i]
        return total

    with L.capture_numba_ir() as raw:
        compiled = numba.njit("float64(float64[::1])")(running_total)
    before = L.definition("\n".join(raw), "running_total")
    after = L.definition(compiled.inspect_llvm(compiled.signatures[0]), "running_total")
    assert "alloca" in before  # numba's raw IR keeps locals in stack slots; the optimiser removes them
    assert "alloca" not in after
    for n in (0, 1, 7):
        assert compiled(np.arange(n, dtype=np.float64)) == np.arange(n).sum()


def test_definition_picks_one_function_and_names_the_others_when_missing():
    text = str(L.dot_module())
    block = L.definition(text, "dot")
    assert block.startswith("define double @\"dot\"") and block.endswith("}")
    with pytest.raises(KeyError, match="dot"):
        L.definition(text, "saxpy")
