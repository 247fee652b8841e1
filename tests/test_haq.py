"""book.compress.haq: the two targets' costs, the greedy search and the Pareto front (chapter 7)."""

import math

import numpy as np
import pytest

from book.compress import haq
from book.compress.haq import BitSerial, Layer

LAYERS = [Layer("fc1", 64, 1024), Layer("fc2", 1024, 512), Layer("fc3", 512, 10)]


def test_bit_serial_cycles_grow_with_weight_bits_times_activation_bits():
    target = BitSerial(bytes_per_cycle=1e9)  # so fast a memory that every layer is compute-bound
    layer = Layer("big", 1024, 1024)
    base = target.cycles(256, layer, 2, 2)
    assert target.cycles(256, layer, 4, 2) == 2 * base
    assert target.cycles(256, layer, 4, 8) == 8 * base
    assert base == math.ceil(256 / 8) * math.ceil(1024 / 8) * math.ceil(1024 / 256) * 4


def test_bit_serial_partial_tiles_cost_a_whole_tile_and_memory_can_bind():
    target = BitSerial(bytes_per_cycle=1e9)
    assert target.cycles(1, Layer("tiny", 1, 1), 2, 2) == 4  # one tile of the array, 2 × 2 bit planes
    slow = BitSerial(bytes_per_cycle=1.0)
    layer = Layer("fc", 512, 512)
    assert slow.cycles(1, layer, 8, 8) == math.ceil((512 * 512 * 8 + 512 * 8 + 512 * 32) / 8)
    assert slow.seconds(1, layer, 8) == slow.cycles(1, layer, 8, 8) / slow.clock_hz


def test_bit_serial_peak_is_bismos_reported_peak():
    assert BitSerial().peak_binary_ops() == pytest.approx(6.5e12, rel=0.01)


@pytest.mark.parametrize("bits", [1, 17, 0, 31, 64])
def test_bad_bit_widths_are_refused(bits):
    with pytest.raises(ValueError, match="bit width"):
        haq.cpu_kernel(bits)
    with pytest.raises(ValueError, match="bit width"):
        haq.size_bytes(LAYERS[0], bits)


def test_cpu_kernel_is_a_step_function():
    assert [haq.cpu_kernel(b) for b in (2, 5, 8, 9, 16, 32)] == ["int8"] * 3 + ["float32"] * 3


def test_size_and_policy_cost():
    assert haq.size_bytes(LAYERS[2], 4) == 512 * 10 / 2
    assert haq.policy_cost(haq.size_bytes, LAYERS, (32, 32, 32)) == 4 * sum(layer.k * layer.n for layer in LAYERS)
    with pytest.raises(ValueError, match="one bit width per layer"):
        haq.policy_cost(haq.size_bytes, LAYERS, (8, 8))
    with pytest.raises(ValueError, match="positive"):
        Layer("empty", 0, 3)


def test_greedy_meets_the_budget_and_lowers_the_insensitive_layer_first():
    sensitivity = {"fc1": 1.0, "fc2": 0.01, "fc3": 1.0}  # accuracy lost per bit below 32

    def accuracy(policy):
        return 1.0 - sum(sensitivity[layer.name] * (32 - b) for layer, b in zip(LAYERS, policy)) / 1000

    budget = 0.6 * haq.policy_cost(haq.size_bytes, LAYERS, (32, 32, 32))
    found = haq.greedy_search(LAYERS, haq.size_bytes, accuracy, budget)
    assert found["cost"] <= budget
    assert found["policy"][1] < 32 and found["policy"][0] == 32 == found["policy"][2]
    assert found["path"][0]["policy"] == (32, 32, 32)
    assert found["accuracy"] == pytest.approx(accuracy(found["policy"]))
    costs = [step["cost"] for step in found["path"]]
    assert costs == sorted(costs, reverse=True) and len(set(costs)) == len(costs)


def test_greedy_skips_widths_that_save_nothing():
    step = {"int8": 1.0, "float32": 2.0}  # a CPU-like table: 16 bits costs what float32 costs

    def cost(layer, bits):
        return step[haq.cpu_kernel(bits)]

    found = haq.greedy_search(LAYERS[:1], cost, lambda policy: policy[0], budget=1.0)
    assert found["policy"] == (8,) and [s["policy"] for s in found["path"]] == [(32,), (8,)]


def test_greedy_refuses_an_impossible_budget():
    with pytest.raises(ValueError, match="no policy meets the budget"):
        haq.greedy_search(LAYERS, haq.size_bytes, lambda policy: 0.0, budget=1.0)


def test_pareto_front():
    costs = [3.0, 1.0, 2.0, 2.0, 4.0, 1.0]
    scores = [0.9, 0.5, 0.8, 0.7, 0.85, 0.4]
    assert haq.pareto_front(costs, scores) == [1, 2, 0]
    assert haq.pareto_front([], []) == []
    with pytest.raises(ValueError, match="1-D of one length"):
        haq.pareto_front([1.0], [1.0, 2.0])


def test_policies_enumerates_or_samples_keeping_the_uniform_ones():
    every = haq.policies(2, bits=(4, 8, 32))
    assert len(every) == 9 and len(set(every)) == 9
    some = haq.policies(3, bits=(4, 8, 32), limit=10, seed=1)
    assert len(some) == 10 == len(set(some))
    assert {(4, 4, 4), (8, 8, 8), (32, 32, 32)} <= set(some)


@pytest.mark.parametrize("batch", [1, 3])
def test_cpu_latency_measures_both_kernels_on_every_layer(batch):
    def int8_reference(a, b):
        return a.astype(np.int32) @ b.astype(np.int32)

    layers = [Layer("a", 1, 1), Layer("b", 17, 5)]
    table = haq.cpu_latency(layers, batch, int8_reference)
    assert set(table["seconds"]) == {"a", "b"}
    assert all(s > 0 for row in table["seconds"].values() for s in row.values())
    assert {r["layer"] for result in table["results"] for r in result.records} == {"a", "b"}


def test_cpu_latency_refuses_a_wrong_int8_kernel():
    with pytest.raises(ValueError, match="disagrees"):
        haq.cpu_latency([Layer("a", 8, 4)], 2, lambda a, b: (a @ b))  # int8 arithmetic wraps around


def test_layers_of_and_quantized_logits_of_a_model():
    from book import models

    x_train, x_test, _, _ = models.digits()
    model = models.mlp(hidden=(16, 8), seed=1)
    layers = haq.layers_of(model)
    assert [(layer.name, layer.k, layer.n) for layer in layers] == [("W1", 64, 16), ("W2", 16, 8), ("W3", 8, 10)]
    x, calib = x_test[:7], x_train[:50]
    full = haq.quantized_logits(model, (32, 32, 32), x, calib)
    probs = np.exp(full - full.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(axis=1, keepdims=True), models.predict(model, x), rtol=1e-5)
    fine = haq.quantized_logits(model, (16, 16, 16), x, calib)
    coarse = haq.quantized_logits(model, (2, 2, 2), x, calib)
    assert np.abs(fine - full).max() < 1e-3 * np.abs(full).max() < np.abs(coarse - full).max()
    with pytest.raises(ValueError, match="one bit width per layer"):
        haq.quantized_logits(model, (8, 8), x, calib)
