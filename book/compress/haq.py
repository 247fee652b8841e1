"""HAQ-style mixed precision (chapter 7): choose a bit width per layer for a target's own costs.

HAQ (Wang et al., CVPR 2019) searches per-layer bit widths with the target
hardware in the loop: a policy is judged by the latency the target really
has, not by a proxy such as the model size. This module holds the pieces the
chapter and its lab share:

- two **targets**: a table of per-layer latencies measured on this CPU
  (:func:`cpu_latency`, a step function, because a CPU only has fast
  kernels for a few widths) and a **bit-serial accelerator** cost model in the
  style of BISMO (:class:`BitSerial`, whose cycles grow with weight bits ×
  activation bits);
- a **search** over per-layer widths under a budget (:func:`greedy_search`,
  sensitivity-greedy, not HAQ's reinforcement learning);
- the **Pareto front** of a set of policies (:func:`pareto_front`).

A *policy* is a tuple of bit widths, one per layer; 32 means float32 (no
quantization). Costs are additive over layers, as a sequential model's
latency is.
"""

import math
from dataclasses import dataclass
from itertools import product

import numpy as np

from book.compress.quantize import dequantize, qrange, quantize
from book.timing import bench

__all__ = ["BITS", "FLOAT_BITS", "BitSerial", "Layer", "cpu_kernel", "cpu_latency", "greedy_search", "layers_of",
           "pareto_front", "policies", "policy_cost", "quantized_logits", "size_bytes"]

FLOAT_BITS = 32
BITS = (2, 3, 4, 5, 6, 8, 16, FLOAT_BITS)
"""Candidate widths per layer: integer widths 2–16 and float32."""


@dataclass(frozen=True)
class Layer:
    """One fully connected layer as a matrix product: ``(batch, k) @ (k, n)``."""

    name: str
    k: int
    n: int

    def __post_init__(self):
        if self.k < 1 or self.n < 1:
            raise ValueError(f"layer {self.name!r} needs positive k and n, got {self.k} and {self.n}")


def layers_of(model):
    """The :class:`Layer` of every weight matrix of a ``book.models`` MLP, in order."""
    count = sum(name.startswith("W") for name in model.params)
    return [Layer(f"W{i}", *model.params[f"W{i}"].shape) for i in range(1, count + 1)]


def quantized_logits(model, policy, x, x_calib):
    """Logits of a ``book.models`` MLP with layer i's weights and inputs rounded to ``policy[i]`` bits.

    Weights: symmetric, one scale per output channel. Inputs: asymmetric, scale and zero point
    calibrated (min/max) on the float model's inputs of that layer for ``x_calib``; values outside
    the calibrated range are clipped. 32 keeps a layer in float32. Rounding both operands and
    computing in float gives what an integer layer computes (int32 sums, then rescaling), up to
    float rounding.
    """
    layers = layers_of(model)
    _check_policy(policy, layers)
    h, h_calib = ((np.asarray(v, np.float32) - model.buffers["mean"]) / model.buffers["std"] for v in (x, x_calib))
    for i, bits in enumerate(policy, start=1):
        w, b = model.params[f"W{i}"], model.params[f"b{i}"]
        if bits != FLOAT_BITS:
            _, scale, zero = quantize(h_calib, bits, symmetric=False)
            qmin, qmax = qrange(bits, symmetric=False)
            h = ((np.clip(np.rint(h / scale) + zero, qmin, qmax) - zero) * scale).astype(np.float32)
            q, w_scale, w_zero = quantize(w, bits, axis=1)
            w = dequantize(q, w_scale, w_zero, axis=1)
        h, h_calib = h @ w + b, h_calib @ model.params[f"W{i}"] + b
        if i < len(policy):
            h, h_calib = np.maximum(h, 0), np.maximum(h_calib, 0)
    return h


def _check_bits(bits):
    if bits != FLOAT_BITS and not 2 <= bits <= 16:
        raise ValueError(f"bit width must be 2-16 or {FLOAT_BITS} (float32), got {bits}")


def _check_policy(policy, layers):
    if len(policy) != len(layers):
        raise ValueError(f"a policy needs one bit width per layer: {len(layers)} layers, got {len(policy)}")
    for bits in policy:
        _check_bits(bits)


def cpu_kernel(bits):
    """The kernel a CPU runs a layer of ``bits`` with: ``"int8"`` up to 8 bits, else ``"float32"``.

    Widths below 8 are stored in int8 (a CPU has no 3-bit arithmetic); 9-16
    bits have no integer kernel here, so such a layer runs in float32 on
    values dequantized ahead of time (smaller to store, not faster to run).
    """
    _check_bits(bits)
    return "int8" if bits <= 8 else "float32"


def _layer_kernels(xq, wq, int8_kernel):
    """The two ways a CPU runs one layer, on the same integer values."""
    x, w = xq.astype(np.float32), wq.astype(np.float32)
    return {"float32": lambda _: x @ w, "int8": lambda _: int8_kernel(xq, wq)}


def _agree(expected, actual):
    """float32 sums of integers are exact up to 2**24 and round a little beyond."""
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=1e-6)


def cpu_latency(layers, batch, int8_kernel, *, seed=0, meta=None):
    """Measure every layer with both real kernels on this machine: the CPU target's latency table.

    Each layer is timed as float32 BLAS (``x @ w``) and as ``int8_kernel(xq,
    wq)`` (int8 inputs, exact int32 result) on the same integer values, which
    must agree before anything is timed.

    Parameters
    ----------
    layers : list of Layer
    batch : int
        Rows of the activations (the number of inputs per call).
    int8_kernel : callable
        ``int8_kernel(a, b)`` -> int32 product of int8 matrices
        (chapter 7 passes ``book.compress.int8_matmul``).
    seed : int
    meta : dict, optional
        Hardware card for :func:`book.timing.bench`.

    Returns
    -------
    dict
        ``{"seconds": {layer name: {"float32": s, "int8": s}}, "results": [BenchResult, ...]}``;
        look a policy up with :func:`policy_cost`.
    """
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    rng = np.random.default_rng(seed)
    seconds, results = {}, []
    for layer in layers:
        xq = rng.integers(-127, 128, (batch, layer.k), dtype=np.int8)
        wq = rng.integers(-127, 128, (layer.k, layer.n), dtype=np.int8)
        result = bench(_layer_kernels(xq, wq, int8_kernel), [batch], check=_agree, meta=meta)
        medians = result.to_frame().set_index("kernel").median_s
        seconds[layer.name] = {kind: float(medians[kind]) for kind in ("float32", "int8")}
        for record in result.records:
            record["layer"] = layer.name
        results.append(result)
    return {"seconds": seconds, "results": results}


@dataclass(frozen=True)
class BitSerial:
    """A bit-serial matrix-multiply accelerator's cost model (BISMO-style; chapter 7).

    The array has ``rows × cols`` binary dot-product units, each ANDing and
    popcounting ``depth`` bits per cycle. A ``w``-bit by ``a``-bit product is
    ``w × a`` binary products (one per pair of bit planes), so its compute
    cycles grow with ``w × a`` (Umuroglu et al., FPL 2018; BitFusion, Sharma
    et al., ISCA 2018, fuses 2-bit bricks to the same effect). Operands
    stream from memory at ``bytes_per_cycle``; a layer takes the larger of
    its compute and memory cycles. The defaults (8 × 8 units of 256 bits at
    200 MHz) give BISMO's reported peak of 6.5 binary TOPS on a PYNQ-Z1; the
    bandwidth is our assumption.
    """

    rows: int = 8
    cols: int = 8
    depth: int = 256
    clock_hz: float = 200e6
    bytes_per_cycle: float = 8.0

    def cycles(self, batch, layer, w_bits, a_bits):
        """Cycles of one layer: max(compute, memory); float32 (32) counts as 32-bit integers."""
        for bits in (w_bits, a_bits):
            _check_bits(bits)
        compute = (math.ceil(batch / self.rows) * math.ceil(layer.n / self.cols)
                   * math.ceil(layer.k / self.depth) * w_bits * a_bits)
        moved_bits = layer.k * layer.n * w_bits + batch * layer.k * a_bits + batch * layer.n * 32
        return max(compute, math.ceil(moved_bits / 8 / self.bytes_per_cycle))

    def seconds(self, batch, layer, bits):
        """Latency of a layer whose weights and activations both have ``bits``."""
        return self.cycles(batch, layer, bits, bits) / self.clock_hz

    def peak_binary_ops(self):
        """Binary operations per second at full use (an AND and an add per bit pair)."""
        return 2 * self.rows * self.cols * self.depth * self.clock_hz


def size_bytes(layer, bits):
    """Bytes of a layer's weights stored at ``bits`` (packed; float32 is 4 bytes)."""
    _check_bits(bits)
    return layer.k * layer.n * bits / 8


def policy_cost(layer_cost, layers, policy):
    """Sum of ``layer_cost(layer, bits)`` over the layers: a policy's latency or size."""
    _check_policy(policy, layers)
    return float(sum(layer_cost(layer, bits) for layer, bits in zip(layers, policy)))


def greedy_search(layers, layer_cost, accuracy, budget, bits=BITS):
    """Lower one layer's width at a time, where it costs the least accuracy per unit saved, until within budget.

    Starts from the widest policy. Each step tries, for every layer, the
    widest narrower width that is strictly cheaper on the target (on a CPU
    32 → 16 saves nothing, so the step goes straight to 8), and takes the
    move with the smallest accuracy loss per unit of cost saved. HAQ instead
    trains a reinforcement-learning agent that proposes a whole policy per
    episode; greedy needs no training, but it cannot undo a step and sees one
    layer at a time.

    Parameters
    ----------
    layers : list of Layer
    layer_cost : callable
        ``layer_cost(layer, bits)`` -> the target's cost (seconds, bytes ...).
    accuracy : callable
        ``accuracy(policy)`` -> a score to keep high (judge on validation data, not the test set).
    budget : float
        The policy's total cost must not exceed it.
    bits : sequence of int
        Candidate widths.

    Returns
    -------
    dict
        ``policy`` (tuple), ``cost``, ``accuracy`` and ``path`` (every step's policy, cost and accuracy).

    Raises
    ------
    ValueError
        When even the cheapest width for every layer exceeds the budget.
    """
    widths = sorted(set(bits))
    if not widths:
        raise ValueError("greedy_search needs at least one candidate width")
    for b in widths:
        _check_bits(b)
    cheapest = policy_cost(layer_cost, layers, [min(widths, key=lambda b: layer_cost(layer, b)) for layer in layers])
    if cheapest > budget:
        raise ValueError(f"no policy meets the budget {budget:.4g}: the cheapest costs {cheapest:.4g}")
    policy = tuple(widths[-1] for _ in layers)
    cost, score = policy_cost(layer_cost, layers, policy), accuracy(policy)
    path = [{"policy": policy, "cost": cost, "accuracy": score}]
    while cost > budget:
        moves = []
        for i, layer in enumerate(layers):
            now = layer_cost(layer, policy[i])
            cheaper = [b for b in widths if b < policy[i] and layer_cost(layer, b) < now]
            if cheaper:
                candidate = policy[:i] + (max(cheaper),) + policy[i + 1:]
                saved = now - layer_cost(layer, max(cheaper))
                new_score = accuracy(candidate)
                moves.append(((score - new_score) / saved, -saved, candidate, new_score))
        _, _, policy, score = min(moves, key=lambda move: move[:2])
        cost = policy_cost(layer_cost, layers, policy)
        path.append({"policy": policy, "cost": cost, "accuracy": score})
    return {"policy": policy, "cost": cost, "accuracy": score, "path": path}


def policies(n_layers, bits=BITS, limit=None, seed=0):
    """Every policy of ``n_layers`` over ``bits``, or ``limit`` of them drawn without repeats (uniform ones kept)."""
    everything = list(product(sorted(set(bits)), repeat=n_layers))
    if limit is None or limit >= len(everything):
        return everything
    uniform = [tuple([b] * n_layers) for b in sorted(set(bits))]
    rest = [p for p in everything if p not in set(uniform)]
    picks = np.random.default_rng(seed).choice(len(rest), size=max(0, limit - len(uniform)), replace=False)
    return uniform + [rest[i] for i in sorted(picks)]


def pareto_front(costs, scores):
    """Indices of the points no other point beats: cheaper-or-equal and at least as accurate, one strictly.

    Returned in order of increasing cost.
    """
    costs, scores = np.asarray(costs, float), np.asarray(scores, float)
    if costs.shape != scores.shape or costs.ndim != 1:
        raise ValueError(f"costs and scores must be 1-D of one length, got {costs.shape} and {scores.shape}")
    order = np.lexsort((-scores, costs))  # by cost, the best score first among equal costs
    front, best = [], -np.inf
    for i in order:
        if scores[i] > best:
            front.append(int(i))
            best = scores[i]
    return front
