"""The graph run op by op with NumPy (chapter 5's "eager" baseline, and what constant folding evaluates).

Each op is one NumPy expression that allocates its result, as a framework's
eager mode does: every intermediate makes a round trip through memory.
"""

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


UNARY = {"Relu": lambda x: np.maximum(x, 0), "Sigmoid": _sigmoid, "Tanh": np.tanh, "Exp": np.exp,
         "Identity": lambda x: x.copy()}
BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}


def run_program(program, args):
    """Evaluate a FusedElementwise program: each step applies an op to earlier values (inputs first)."""
    values = list(args)
    for op, refs in program:
        operands = [values[r] for r in refs]
        values.append(UNARY[op](*operands) if op in UNARY else BINARY[op](*operands))
    return values[-1]


def _window_view(x, kernel, strides, pads, fill):
    """(N, C, OH, OW, KH, KW) view of every window of a padded (N, C, H, W) array."""
    padded = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=fill)
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=(2, 3))
    return windows[:, :, ::strides[0], ::strides[1]]


def conv2d(x, w, b, strides=(1, 1), pads=(0, 0, 0, 0)):
    """Direct 2-D convolution (ONNX Conv, group 1) through a window view and einsum."""
    windows = _window_view(x, w.shape[2:], strides, pads, 0)
    y = np.einsum("nchwij,ocij->nohw", windows, w, optimize=True).astype(x.dtype)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def evaluate(node, args):
    """The outputs (a list) of one node on NumPy arrays; ``None`` stands for an absent optional input."""
    op, a = node.op, node.attrs
    if op in UNARY:
        return [UNARY[op](args[0])]
    if op in BINARY:
        return [BINARY[op](args[0], args[1])]
    if op == "Constant":
        return [np.array(a["value"])]
    if op == "FusedElementwise":
        return [run_program(a["program"], args)]
    if op == "MatMul":
        return [args[0] @ args[1]]
    if op in ("Gemm", "FusedGemm"):
        x = args[0].T if a.get("transA", 0) else args[0]
        w = args[1].T if a.get("transB", 0) else args[1]
        y = a.get("alpha", 1.0) * (x @ w)
        if len(args) > 2 and args[2] is not None:
            y = y + a.get("beta", 1.0) * args[2]
        y = y.astype(args[0].dtype)
        return [UNARY[a["activation"]](y) if a.get("activation") else y]
    if op in ("Conv", "FusedConv"):
        y = conv2d(args[0], args[1], args[2] if len(args) > 2 else None,
                   tuple(a.get("strides", (1, 1))), tuple(a.get("pads", (0, 0, 0, 0))))
        return [UNARY[a["activation"]](y) if a.get("activation") else y]
    if op == "BatchNormalization":
        x, scale, bias, mean, var = args[:5]
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv = scale / np.sqrt(var + a.get("epsilon", 1e-5))
        return [((x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)).astype(x.dtype)]
    if op in ("MaxPool", "AveragePool"):
        strides, pads = tuple(a.get("strides", (1, 1))), tuple(a.get("pads", (0, 0, 0, 0)))
        if op == "MaxPool":
            return [_window_view(args[0], a["kernel_shape"], strides, pads, -np.inf).max(axis=(4, 5))]
        total = _window_view(args[0], a["kernel_shape"], strides, pads, 0).sum(axis=(4, 5))
        if a.get("count_include_pad", 0):
            count = np.prod(a["kernel_shape"])
        else:
            ones = np.ones((1, 1) + args[0].shape[2:], args[0].dtype)
            count = _window_view(ones, a["kernel_shape"], strides, pads, 0).sum(axis=(4, 5))
        return [(total / count).astype(args[0].dtype)]
    if op == "Softmax":
        axis = a.get("axis", -1)
        e = np.exp(args[0] - args[0].max(axis=axis, keepdims=True))
        return [e / e.sum(axis=axis, keepdims=True)]
    if op == "Flatten":
        axis = a.get("axis", 1) + (args[0].ndim if a.get("axis", 1) < 0 else 0)
        return [args[0].reshape(int(np.prod(args[0].shape[:axis])), -1)]
    if op == "Reshape":
        shape = [args[0].shape[i] if v == 0 else int(v) for i, v in enumerate(args[1])]
        return [args[0].reshape(shape)]
    if op == "Transpose":
        return [np.ascontiguousarray(np.transpose(args[0], a.get("perm")))]
    raise NotImplementedError(f"op {op} (node {node.name!r}) has no NumPy reference")


def run(graph, inputs):
    """Run a graph op by op with NumPy (eager execution); returns {output name: array}.

    Parameters
    ----------
    graph : book.compiler.ir.Graph
    inputs : dict
        Graph input name -> array.
    """
    env = dict(graph.constants)
    env.update(inputs)
    for node in graph.nodes:
        outputs = evaluate(node, [env[t] if t else None for t in node.inputs])
        env.update(zip(node.outputs, outputs))
    return {name: env[name] for name in graph.outputs}
