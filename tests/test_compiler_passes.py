"""book.compiler.passes: each pass keeps the outputs and changes the graph the way it says."""

import numpy as np
import onnx
from onnx import helper

from book import compiler
from book.compiler import ir, passes, reference
from book.compiler.onnx_import import make_model

rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def same_outputs(before, after, inputs):
    want, got = reference.run(before, inputs), reference.run(after, inputs)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_constant_folding_and_dead_code():
    nodes = [helper.make_node("Constant", [], ["two"], value=onnx.numpy_helper.from_array(np.float32(2.0))),
             helper.make_node("Mul", ["w", "two"], ["w2"]),            # constant: folded
             helper.make_node("Gemm", ["x", "w2"], ["y"]),
             helper.make_node("Relu", ["x"], ["unused"])]              # dead
    g = compiler.from_onnx(make_model(nodes, {"x": (2, 3)}, ["y"], {"w": r(3, 3)}))
    folded = passes.eliminate_dead_code(passes.fold_constants(g))
    assert [n.op for n in folded.nodes] == ["Gemm"]
    np.testing.assert_allclose(folded.constants["w2"], 2 * g.constants["w"])
    assert "w" not in folded.constants and len(g.nodes) == 4  # the input graph is unchanged
    same_outputs(g, folded, {"x": r(2, 3)})


def test_batchnorm_folds_into_conv():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], epsilon=1e-3)]
    inits = {"w": r(4, 2, 3, 3), "g": r(4), "b": r(4), "m": r(4), "v": np.abs(r(4)) + 0.1}
    g = compiler.from_onnx(make_model(nodes, {"x": (2, 2, 5, 5)}, ["y"], inits))
    folded = passes.fold_batchnorm(g)
    assert [n.op for n in folded.nodes] == ["Conv"]
    same_outputs(g, folded, {"x": r(2, 2, 5, 5)})


def test_batchnorm_is_not_folded_when_the_conv_output_is_read_elsewhere():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"]),
             helper.make_node("Relu", ["c"], ["z"])]
    inits = {"w": r(2, 2, 1, 1), "g": r(2), "b": r(2), "m": r(2), "v": np.ones(2)}
    g = compiler.from_onnx(make_model(nodes, {"x": (1, 2, 3, 3)}, ["y", "z"], inits))
    assert [n.op for n in passes.fold_batchnorm(g).nodes] == ["Conv", "BatchNormalization", "Relu"]


def test_matmul_bias_relu_fuse_into_one_gemm():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["b", "m"], ["p"]),
             helper.make_node("Relu", ["p"], ["y"])]
    g = compiler.from_onnx(make_model(nodes, {"x": (3, 4)}, ["y"], {"w": r(4, 5), "b": r(5)}))
    fused = passes.fuse_bias_activation(g)
    assert [(n.op, n.attrs.get("activation")) for n in fused.nodes] == [("FusedGemm", "Relu")]
    same_outputs(g, fused, {"x": r(3, 4)})
    assert ir.summary(fused)["bytes_moved"] < ir.summary(g)["bytes_moved"]


def test_bias_that_is_not_a_constant_row_is_not_fused():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "x2"], ["y"])]
    g = compiler.from_onnx(make_model(nodes, {"x": (3, 4), "x2": (3, 5)}, ["y"], {"w": r(4, 5)}))
    assert [n.op for n in passes.fuse_bias_activation(g).nodes] == ["MatMul", "Add"]


def test_elementwise_chain_fuses_and_moves_fewer_bytes():
    nodes = [helper.make_node("Sub", ["x", "mu"], ["a"]), helper.make_node("Div", ["a", "s"], ["b"]),
             helper.make_node("Mul", ["b", "a"], ["c"]), helper.make_node("Sigmoid", ["c"], ["y"])]
    g = compiler.from_onnx(make_model(nodes, {"x": (4, 7)}, ["y"], {"mu": r(7), "s": r(1, 7)}))
    # a has two readers, so the Sub stays outside the first fusion and then joins the chain's end
    fused = passes.fuse_elementwise(g)
    assert [n.op for n in fused.nodes] == ["FusedElementwise"]
    same_outputs(g, fused, {"x": r(4, 7)})
    before, after = ir.summary(g), ir.summary(fused)
    assert (before["kernels"], after["kernels"]) == (4, 1)
    x_bytes = 4 * 7 * 4
    assert after["bytes_moved"] == 2 * x_bytes + 7 * 4 * 2  # read x, mu, s once, write y once
    assert before["bytes_moved"] > 3 * after["bytes_moved"]


def test_broadcast_intermediate_is_not_fused():
    nodes = [helper.make_node("Exp", ["s"], ["e"]), helper.make_node("Add", ["x", "e"], ["y"])]
    g = compiler.from_onnx(make_model(nodes, {"x": (4, 3), "s": (3,)}, ["y"]))
    assert [n.op for n in passes.fuse_elementwise(g).nodes] == ["Exp", "Add"]


def test_graph_output_is_never_fused_away():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Exp", ["a"], ["y"])]
    g = compiler.from_onnx(make_model(nodes, {"x": (2,)}, ["a", "y"]))
    assert len(compiler.optimize(g).nodes) == 2


def test_optimize_steps_name_every_pass():
    g = compiler.from_onnx(make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (2,)}, ["y"]))
    names = [name for name, _ in passes.optimize_steps(g)]
    assert names[0] == "import" and "fuse_elementwise" in names and "fold_batchnorm" in names
