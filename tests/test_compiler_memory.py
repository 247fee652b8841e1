"""book.compiler.memory: liveness, the three plans and the lower bound; the arena run."""

import numpy as np
import pytest
from onnx import helper

from book import compiler
from book.compiler import memory
from book.compiler.onnx_import import make_model


def chain_graph():
    """x -> a (big) -> b -> c (big) -> y, plus a skip a -> y: a lives long."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Gemm", ["a", "w1"], ["b"]),
             helper.make_node("Gemm", ["b", "w2"], ["c"]),
             helper.make_node("Sigmoid", ["c"], ["d"]),
             helper.make_node("Gemm", ["d", "w3"], ["e"]),
             helper.make_node("Add", ["e", "a"], ["y"])]
    inits = {"w1": np.ones((64, 16)), "w2": np.ones((16, 256)), "w3": np.ones((256, 64))}
    return compiler.from_onnx(make_model(nodes, {"x": (8, 64)}, ["y"], inits))


def test_liveness_steps_are_node_indices():
    plan = compiler.plan_memory(chain_graph(), strategy="naive")
    assert plan.live == {"a": (0, 5), "b": (1, 2), "c": (2, 3), "d": (3, 4), "e": (4, 5), "y": (5, 5)}
    assert "x" not in plan.offsets and "w1" not in plan.offsets


@pytest.mark.parametrize("strategy", memory.STRATEGIES)
def test_plans_never_overlap_live_tensors_and_respect_the_bound(strategy):
    g = chain_graph()
    plan = compiler.plan_memory(g, strategy=strategy)
    memory.check_plan(plan)
    assert all(size == g.nbytes(t) for t, (_, size) in plan.offsets.items())
    assert memory.lower_bound(g) <= plan.peak_bytes <= compiler.plan_memory(g, strategy="naive").peak_bytes


def test_reuse_beats_one_buffer_per_tensor():
    g = chain_graph()
    peaks = {s: compiler.plan_memory(g, strategy=s).peak_bytes for s in memory.STRATEGIES}
    assert peaks["naive"] == sum(-(-g.nbytes(t) // 64) * 64 for t in "abcdey")
    assert peaks["sliding-window"] < peaks["naive"] and peaks["greedy-by-size"] < peaks["naive"]
    assert peaks["greedy-by-size"] <= peaks["sliding-window"]


def test_check_plan_catches_an_overlap():
    plan = compiler.plan_memory(chain_graph(), strategy="naive")
    plan.offsets["b"] = plan.offsets["a"]
    with pytest.raises(ValueError, match="'a' and 'b'"):
        memory.check_plan(plan)


def test_unknown_strategy_and_empty_graph():
    with pytest.raises(ValueError, match="unknown strategy"):
        compiler.plan_memory(chain_graph(), strategy="best")
    g = compiler.from_onnx(make_model([helper.make_node("Identity", ["x"], ["y"])], {"x": (0,)}, ["y"]))
    assert compiler.plan_memory(g, "greedy-by-size").peak_bytes == 0


def test_arena_run_matches_fresh_buffers():
    g = chain_graph()
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    want = compiler.compile(g)(x=x)["y"]
    fn = compiler.compile(g, memory="greedy-by-size")
    assert fn.arena.nbytes == fn.plan.peak_bytes
    first = fn(x=x)["y"]
    fn(x=2 * x)  # the arena is reused; returned outputs are copies
    np.testing.assert_allclose(first, want, rtol=1e-5)
