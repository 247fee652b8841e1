"""Tests of book.mlir (chapter 4): xDSL's lowering checked by its interpreter, our pass, upstream MLIR."""

import numpy as np
import pytest

from book import mlir

SCALE_ADD = """
func.func @scale_add(%x: memref<{n}xf64>, %b: memref<{n}xf64>, %y: memref<{n}xf64>)
    attributes {{llvm.emit_c_interface}} {{
  %two = arith.constant 2.0 : f64
  linalg.generic {{indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>, affine_map<(i) -> (i)>],
                  iterator_types = ["parallel"]}}
      ins(%x, %b : memref<{n}xf64>, memref<{n}xf64>) outs(%y : memref<{n}xf64>) {{
  ^bb0(%xi: f64, %bi: f64, %yi: f64):
    %t = arith.mulf %xi, %two : f64
    %s = arith.addf %t, %bi : f64
    linalg.yield %s : f64
  }}
  func.return
}}
"""
MATMUL = """
func.func @matmul(%A: memref<{m}x{k}xf64>, %B: memref<{k}x{n}xf64>, %C: memref<{m}x{n}xf64>)
    attributes {{llvm.emit_c_interface}} {{
  linalg.matmul ins(%A, %B : memref<{m}x{k}xf64>, memref<{k}x{n}xf64>) outs(%C : memref<{m}x{n}xf64>)
  func.return
}}
"""


@pytest.mark.parametrize("n", [1, 7])
def test_every_xdsl_stage_computes_2x_plus_b(n):
    x, b = np.arange(n, dtype=np.float64) - 3.5, np.linspace(-1, 1, n)
    stages = mlir.lower(SCALE_ADD.format(n=n), mlir.XDSL_LOWERING + (mlir.MulByTwoToAdd(),))
    for stage in stages:
        y = mlir.run(mlir.parse(stage.text), "scale_add", x, b, np.zeros(n))[2]
        np.testing.assert_allclose(y, 2 * x + b, rtol=0, atol=0, err_msg=stage.after)


def test_matmul_lowers_through_loops_to_branches_and_still_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.random((3, 2)), rng.random((2, 5))
    stages = mlir.lower(MATMUL.format(m=3, k=2, n=5))
    assert "linalg" in stages[0].dialects
    loops, branches = stages[2], stages[3]
    assert "scf" in loops.dialects and "linalg" not in loops.dialects
    assert "cf" in branches.dialects and "scf" not in branches.dialects
    for stage in stages:
        c = mlir.run(mlir.parse(stage.text), "matmul", a, b, np.zeros((3, 5)))[2]
        np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=0, err_msg=stage.after)


def test_our_pass_removes_the_multiply_by_two_only():
    module = mlir.apply_passes(mlir.parse(SCALE_ADD.format(n=4)), ["convert-linalg-to-loops"])
    assert "arith.mulf" in mlir.op_names(module)
    mlir.apply_passes(module, [mlir.MulByTwoToAdd()])
    assert "arith.mulf" not in mlir.op_names(module)
    other = mlir.parse(SCALE_ADD.format(n=4).replace("2.0 : f64", "3.0 : f64"))
    mlir.apply_passes(other, [mlir.MulByTwoToAdd()])
    assert "arith.mulf" in mlir.op_names(other)


def test_bad_input_gets_clear_errors():
    with pytest.raises(TypeError, match="text"):
        mlir.parse(b"func.func @f() { func.return }")
    with pytest.raises(ValueError, match="no pass named"):
        mlir.apply_passes(mlir.parse(SCALE_ADD.format(n=1)), ["not-a-pass"])
    with pytest.raises(TypeError, match="float64"):
        mlir.run(mlir.parse(SCALE_ADD.format(n=2)), "scale_add", *(np.zeros(2, np.float32),) * 3)


@pytest.mark.skipif(not mlir.upstream_available(), reason="upstream MLIR bindings (torch-mlir wheel) not installed")
def test_upstream_mlir_lowers_matmul_to_the_llvm_dialect_and_runs_it():
    rng = np.random.default_rng(2)
    a, b = rng.random((4, 3)), rng.random((3, 5))
    a_view = np.asfortranarray(a)  # a non-contiguous layout is copied to the row-major memref MLIR expects
    stages = mlir.lower_upstream(MATMUL.format(m=4, k=3, n=5).replace("func.return", "return"))
    assert [s.dialects for s in stages][-1] == {"llvm"}
    assert "affine" in stages[1].dialects
    c = mlir.run_upstream(stages[-1].text, "matmul", a_view, b, np.zeros((4, 5)))[2]
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=0)
