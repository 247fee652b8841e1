"""book.compiler: every supported op, whole models and random graphs against ONNX Runtime; the errors."""

import numpy as np
import onnx
import pytest
from onnx import helper

from book import compiler
from book.compiler import reference, runtime
from book.compiler.onnx_import import make_model

RTOL, ATOL = 2e-5, 2e-6


def ours(model, inputs, optimize=False, memory=None):
    graph = compiler.from_onnx(model)
    graph = compiler.optimize(graph) if optimize else graph
    return compiler.compile(graph, memory=memory)(inputs)


def agree(model, inputs):
    """The book's compiler, unfused and fused, in an arena and not, equals ORT (and the NumPy reference)."""
    want = runtime.run(model, inputs, optimization="off")
    for optimize, memory in ((False, None), (True, None), (True, "greedy-by-size"), (False, "sliding-window")):
        got = ours(model, inputs, optimize, memory)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL,
                                       err_msg=f"{name} {optimize} {memory}")
    eager = reference.run(compiler.from_onnx(model), inputs)
    for name in want:
        np.testing.assert_allclose(eager[name], want[name], rtol=RTOL, atol=ATOL)


rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


CASES = {
    "gemm_transA_transB_alpha_beta": ([helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0,
                                                        transA=1, transB=1)],
                                      {"a": (5, 3), "b": (4, 5)}, {"c": r(1, 4)}),
    "gemm_no_bias_odd": ([helper.make_node("Gemm", ["a", "b"], ["y"])], {"a": (1, 7), "b": (7, 3)}, {}),
    "matmul_weights_broadcast_ops": ([helper.make_node("MatMul", ["a", "w"], ["m"]),
                                      helper.make_node("Sub", ["m", "s"], ["d"]),
                                      helper.make_node("Mul", ["d", "s"], ["e"]),
                                      helper.make_node("Div", ["e", "k"], ["y"])],
                                     {"a": (3, 6)}, {"w": r(6, 5), "s": r(5), "k": np.full((3, 1), 4.0)}),
    "unary": ([helper.make_node("Sigmoid", ["a"], ["s"]), helper.make_node("Tanh", ["s"], ["t"]),
               helper.make_node("Exp", ["t"], ["e"]), helper.make_node("Relu", ["a"], ["q"]),
               helper.make_node("Identity", ["q"], ["i"]), helper.make_node("Add", ["e", "i"], ["y"])],
              {"a": (2, 3, 5)}, {}),
    "softmax_axes": ([helper.make_node("Softmax", ["a"], ["y"], axis=1), helper.make_node("Softmax", ["a"], ["z"])],
                     {"a": (2, 5, 3)}, {}),
    "conv_strides_pads_bn_pools": ([
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 0, 2, 1], strides=[2, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "v"], ["n"], epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["a"]),
        helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[1, 2], pads=[0, 1, 1, 0]),
        helper.make_node("AveragePool", ["p"], ["q"], kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["p"], ["z"], kernel_shape=[3, 2], pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("Flatten", ["q"], ["y"], axis=1)],
        {"x": (2, 3, 9, 7)},
        {"w": r(4, 3, 3, 3), "b": r(4), "g": r(4), "be": r(4), "mu": r(4), "v": np.abs(r(4)) + 0.5}),
    "conv_no_bias": ([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])], {"x": (1, 2, 3, 3)},
                     {"w": r(3, 2, 1, 1)}),
    "reshape_transpose_constant": ([
        helper.make_node("Constant", [], ["k"], value=onnx.numpy_helper.from_array(np.float32(3.0))),
        helper.make_node("Reshape", ["a", "shape"], ["b"]),
        helper.make_node("Transpose", ["b"], ["t"], perm=[2, 0, 1]),
        helper.make_node("Mul", ["t", "k"], ["y"]),
        helper.make_node("Transpose", ["a"], ["z"])],
        {"a": (4, 6)}, {"shape": np.array([2, 0, -1], np.int64)}),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_op_matches_onnx_runtime(case):
    nodes, inputs, inits = CASES[case]
    outputs = [o for node in nodes for o in node.output if o in ("y", "z")]
    model = make_model(nodes, inputs, outputs, inits)
    agree(model, {k: r(*s) for k, s in inputs.items()})


def test_empty_batch_and_non_contiguous_input():
    model = make_model([helper.make_node("Gemm", ["a", "w", "b"], ["h"], transB=1),
                        helper.make_node("Relu", ["h"], ["y"])], {"a": (0, 4)}, ["y"], {"w": r(3, 4), "b": r(3)})
    assert ours(model, {"a": np.zeros((0, 4), np.float32)}, optimize=True)["y"].shape == (0, 3)
    model = make_model([helper.make_node("Relu", ["a"], ["y"])], {"a": (3, 5)}, ["y"])
    x = r(5, 3).T  # a transposed view
    np.testing.assert_array_equal(ours(model, {"a": x})["y"], np.maximum(x, 0))


def random_graph(seed):
    """A random chain of supported ops (with side branches) over (batch, width) tensors, weights as initialisers."""
    g = np.random.default_rng(seed)
    batch, width = int(g.integers(1, 6)), int(g.integers(1, 9))
    nodes, inits, live, count = [], {}, ["x"], 0
    for _ in range(int(g.integers(3, 9))):
        count += 1
        a = live[int(g.integers(len(live)))]
        out = f"t{count}"
        kind = g.choice(["gemm", "matmul_add", "binary", "unary", "softmax"])
        if kind == "gemm":
            inits[f"w{count}"] = g.standard_normal((width, width)) / np.sqrt(width)
            inits[f"c{count}"] = g.standard_normal(width)
            nodes.append(helper.make_node("Gemm", [a, f"w{count}", f"c{count}"], [out], transB=int(g.integers(2)),
                                          alpha=float(g.uniform(0.5, 2))))
        elif kind == "matmul_add":
            inits[f"w{count}"] = g.standard_normal((width, width)) / np.sqrt(width)
            inits[f"c{count}"] = g.standard_normal(width)
            nodes += [helper.make_node("MatMul", [a, f"w{count}"], [out + "m"]),
                      helper.make_node("Add", [out + "m", f"c{count}"], [out])]
        elif kind == "binary":
            b = live[int(g.integers(len(live)))]
            nodes.append(helper.make_node(str(g.choice(["Add", "Sub", "Mul"])), [a, b], [out]))
        elif kind == "unary":
            nodes.append(helper.make_node(str(g.choice(["Relu", "Sigmoid", "Tanh"])), [a], [out]))
        else:
            nodes.append(helper.make_node("Softmax", [a], [out]))
        live.append(out)
    return make_model(nodes, {"x": (batch, width)}, [live[-1], live[len(live) // 2]], inits), (batch, width)


@pytest.mark.parametrize("seed", range(8))
def test_random_graphs_match_onnx_runtime(seed):
    model, shape = random_graph(seed)
    agree(model, {"x": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)})


def test_float64_graph():
    model = make_model([helper.make_node("Gemm", ["a", "b"], ["y"], transA=1)], {"a": (3, 2), "b": (3, 4)}, ["y"],
                       dtype=np.float64)
    a, b = np.random.default_rng(1).standard_normal((2, 3, 4))[0, :, :2], np.ones((3, 4))
    out = ours(model, {"a": a, "b": b})["y"]
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, a.T @ b, rtol=1e-12)


def test_inputs_by_keyword_or_dict_and_errors_name_the_input():
    model = make_model([helper.make_node("Relu", ["input.1"], ["y"])], {"input.1": (2,)}, ["y"])
    fn = compiler.compile(compiler.from_onnx(model))
    np.testing.assert_array_equal(fn({"input.1": np.array([-1, 2], np.float32)})["y"], [0, 2])
    model = make_model([helper.make_node("Add", ["x", "z"], ["y"])], {"x": (2,), "z": (2,)}, ["y"])
    fn = compiler.compile(compiler.from_onnx(model))
    np.testing.assert_array_equal(fn(x=np.ones(2, np.float32), z=np.ones(2, np.float32))["y"], [2, 2])
    with pytest.raises(ValueError, match="missing \\['z'\\]"):
        fn(x=np.ones(2, np.float32))
    with pytest.raises(ValueError, match="'z': shape \\(3,\\)"):
        fn(x=np.ones(2, np.float32), z=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="'x': dtype float64"):
        fn(x=np.ones(2), z=np.ones(2, np.float32))


@pytest.mark.parametrize("node, what", [
    (helper.make_node("Conv", ["x", "w"], ["y"], group=2), "group"),
    (helper.make_node("Conv", ["x", "w"], ["y"], dilations=[2, 2]), "dilations"),
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], ceil_mode=1), "ceil_mode"),
    (helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky"), "LeakyRelu"),
])
def test_unsupported_op_or_attribute_is_named(node, what):
    model = make_model([node], {"x": (1, 2, 4, 4)}, ["y"], {"w": np.ones((2, 1, 1, 1))})
    with pytest.raises(NotImplementedError, match=what) as error:
        compiler.from_onnx(model)
    assert node.op_type in str(error.value)


def test_bad_models_are_refused():
    with pytest.raises(ValueError, match="opset"):
        m = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (1,)}, ["y"])
        m.opset_import[0].version = 11
        compiler.from_onnx(m)
    with pytest.raises(ValueError, match="static shape"):
        compiler.from_onnx(make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": ("n", 2)}, ["y"]))
    with pytest.raises(ValueError, match="broadcast"):
        compiler.from_onnx(make_model([helper.make_node("Add", ["x", "z"], ["y"])], {"x": (2,), "z": (3,)}, ["y"]))


def test_from_onnx_reads_a_path(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (3,)}, ["y"])
    onnx.save(model, tmp_path / "m.onnx")
    graph = compiler.from_onnx(tmp_path / "m.onnx")
    assert [n.op for n in graph.nodes] == ["Relu"] and graph.types["y"].shape == (3,)
