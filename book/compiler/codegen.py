"""Lowering and code generation (chapter 5): each node to a loop nest, emitted as numba source.

:func:`kernel_source` writes the Python source of one node's kernel: explicit
loops over the output, the node's arithmetic in the innermost body, a fused
activation applied before the store. :func:`compile` compiles every kernel
with numba and returns a callable that runs the nodes in order, optionally
inside one preallocated arena laid out by :func:`book.compiler.memory.plan_memory`.
"""

import builtins
import math

import numba
import numpy as np

from book.compiler.ir import unsupported
from book.compiler.memory import plan_memory
from book.compiler.shapes import ELEMENTWISE_BINARY, ELEMENTWISE_UNARY, program_of

# Scalar code of each elementwise op on its operands' source text.
SCALAR = {
    "Relu": "max({0}, 0.0)", "Sigmoid": "1.0 / (1.0 + math.exp(-{0}))", "Tanh": "math.tanh({0})",
    "Exp": "math.exp({0})", "Identity": "{0}",
    **{op: f"({{0}} {sign} {{1}})" for op, sign in ELEMENTWISE_BINARY.items()},
}
_KERNELS = {}  # source -> compiled kernel: one compilation per distinct loop nest in a process


def _activation(attrs, value):
    act = attrs.get("activation")
    return SCALAR[act].format(value) if act else value


def _elementwise_source(node, rank):
    rank = max(rank, 1)
    idx = ", ".join(f"i{d}" for d in range(rank))
    k = len(node.inputs)
    lines = [f"def kernel(out, {', '.join(f'a{j}' for j in range(k))}):"]
    for d in range(rank):
        lines.append("    " * (d + 1) + f"for i{d} in range(out.shape[{d}]):")
    body = "    " * (rank + 1)
    program = program_of(node)
    names = [f"a{j}[{idx}]" for j in range(k)]
    for step, (op, refs) in enumerate(program):
        text = SCALAR[op].format(*(names[r] for r in refs))
        if step == len(program) - 1:
            lines.append(f"{body}out[{idx}] = {text}")
        else:
            lines.append(f"{body}t{step} = {text}")
            names.append(f"t{step}")
    return "\n".join(lines) + "\n"


def _gemm_source(node, has_bias):
    store = _activation(node.attrs, "acc + beta * c[i, j]" if has_bias else "acc")
    return f"""def kernel(out, a, b, c, alpha, beta):
    # i-k-j order: the innermost loop walks a row of b and a row of out, both contiguous
    m, n = out.shape
    for i in range(m):
        row = np.zeros(n, dtype=out.dtype)
        for k in range(a.shape[1]):
            aik = a[i, k]
            for j in range(n):
                row[j] += aik * b[k, j]
        for j in range(n):
            acc = alpha * row[j]
            out[i, j] = {store}
"""


def _conv_source(node):
    store = _activation(node.attrs, "acc")
    return f"""def kernel(out, x, w, bias, sh, sw, ph, pw):
    n_, oc, oh_, ow_ = out.shape
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    kh_, kw_ = w.shape[2], w.shape[3]
    for p in range(n_ * oc):
        n, o = p // oc, p % oc
        for oh in range(oh_):
            for ow in range(ow_):
                acc = bias[o]
                for c in range(c_):
                    for kh in range(kh_):
                        ih = oh * sh - ph + kh
                        if ih < 0 or ih >= h_:
                            continue
                        for kw in range(kw_):
                            iw = ow * sw - pw + kw
                            if iw >= 0 and iw < w_:
                                acc += x[n, c, ih, iw] * w[o, c, kh, kw]
                out[n, o, oh, ow] = {store}
"""


def _pool_source(node):
    is_max = node.op == "MaxPool"
    init, update = ("-np.inf", "acc = max(acc, v)") if is_max else ("0.0", "acc += v")
    if is_max:
        finish = "acc"
    elif node.attrs.get("count_include_pad", 0):
        finish = "acc / (kh_ * kw_)"
    else:
        finish = "acc / count"
    return f"""def kernel(out, x, kh_, kw_, sh, sw, ph, pw):
    n_, c_, oh_, ow_ = out.shape
    h_, w_ = x.shape[2], x.shape[3]
    for n in range(n_):
        for c in range(c_):
            for oh in range(oh_):
                for ow in range(ow_):
                    acc = {init}
                    count = 0
                    for kh in range(kh_):
                        ih = oh * sh - ph + kh
                        for kw in range(kw_):
                            iw = ow * sw - pw + kw
                            if ih >= 0 and ih < h_ and iw >= 0 and iw < w_:
                                v = x[n, c, ih, iw]
                                {update}
                                count += 1
                    out[n, c, oh, ow] = {finish}
"""


SOFTMAX_SOURCE = """def kernel(out, x):
    # x and out viewed as (outer, axis, inner): one softmax per (outer, inner) pair
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            top = -np.inf
            for i in range(x.shape[1]):
                top = max(top, x[a, i, b])
            total = 0.0
            for i in range(x.shape[1]):
                e = math.exp(x[a, i, b] - top)
                out[a, i, b] = e
                total += e
            for i in range(x.shape[1]):
                out[a, i, b] = out[a, i, b] / total
"""

BATCHNORM_SOURCE = """def kernel(out, x, scale, bias, mean, var, eps):
    # x and out viewed as (N, C, rest)
    for c in range(x.shape[1]):
        k = scale[c] / math.sqrt(var[c] + eps)
        for n in range(x.shape[0]):
            for r in range(x.shape[2]):
                out[n, c, r] = (x[n, c, r] - mean[c]) * k + bias[c]
"""

COPY_SOURCE = """def kernel(out, x):
    # Flatten, Reshape and Identity keep the bytes in order: a flat copy
    for i in range(out.shape[0]):
        out[i] = x[i]
"""


def _transpose_source(perm):
    rank = len(perm)
    lines = ["def kernel(out, x):"]
    for d in range(rank):
        lines.append("    " * (d + 1) + f"for i{d} in range(out.shape[{d}]):")
    source_index = [""] * rank
    for d, p in enumerate(perm):
        source_index[p] = f"i{d}"
    lines.append("    " * (rank + 1) + f"out[{', '.join(f'i{d}' for d in range(rank))}] = x[{', '.join(source_index)}]")
    return "\n".join(lines) + "\n"


def kernel_source(graph, node):
    """The numba source of one node's kernel (``def kernel(out, ...)``), or ``None`` for a Constant.

    Parameters
    ----------
    graph : book.compiler.ir.Graph
        With shapes inferred.
    node : book.compiler.ir.Node

    Returns
    -------
    str
    """
    op = node.op
    if op == "Constant":
        return None
    if op in ELEMENTWISE_BINARY or op in ELEMENTWISE_UNARY or op == "FusedElementwise":
        if op == "Identity":
            return COPY_SOURCE
        return _elementwise_source(node, len(graph.types[node.outputs[0]].shape))
    if op in ("Gemm", "FusedGemm", "MatMul"):
        return _gemm_source(node, len(node.inputs) > 2 and bool(node.inputs[2]))
    if op in ("Conv", "FusedConv"):
        return _conv_source(node)
    if op in ("MaxPool", "AveragePool"):
        return _pool_source(node)
    if op == "Softmax":
        return SOFTMAX_SOURCE
    if op == "BatchNormalization":
        return BATCHNORM_SOURCE
    if op in ("Flatten", "Reshape"):
        return COPY_SOURCE
    if op == "Transpose":
        return _transpose_source(node.attrs.get("perm", tuple(reversed(range(len(graph.types[node.inputs[0]].shape))))))
    raise unsupported(node)


def _compiled(source):
    if source not in _KERNELS:
        namespace = {"np": np, "math": math}
        exec(builtins.compile(source, "<book.compiler kernel>", "exec"), namespace)
        # Serial loops: parallelising them is chapter 6's subject.
        _KERNELS[source] = numba.njit(cache=False)(namespace["kernel"])
    return _KERNELS[source]


def _arguments(graph, node, constants):
    """A function of (out, values) giving the kernel's arguments: views shaped as its loops expect."""
    op, a = node.op, node.attrs
    out_shape = graph.types[node.outputs[0]].shape
    if op in ("Identity", "Flatten", "Reshape"):
        return lambda out, v: (out.reshape(-1), v[0].reshape(-1))
    if op in ELEMENTWISE_BINARY or op in ELEMENTWISE_UNARY or op == "FusedElementwise":
        if not out_shape:
            return lambda out, v: (out.reshape(1), *(np.broadcast_to(x, ()).reshape(1) for x in v))
        return lambda out, v: (out, *(np.broadcast_to(x, out_shape) for x in v))
    if op in ("Gemm", "FusedGemm", "MatMul"):
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        dtype = graph.types[node.outputs[0]].dtype
        trans_a, trans_b = a.get("transA", 0), a.get("transB", 0)
        weight = constants.get(node.inputs[1])
        if weight is not None and trans_b:
            # A layout transformation at compile time: store a constant B^T row-major once,
            # so the kernel's inner loop reads contiguous rows instead of striding.
            weight, trans_b = np.ascontiguousarray(weight.T), 0
        no_bias = np.zeros((1, 1), dtype)
        has_bias = len(node.inputs) > 2 and bool(node.inputs[2])

        def arguments(out, v):
            x = v[0].T if trans_a else v[0]
            w = weight if weight is not None else (v[1].T if trans_b else v[1])
            c = np.broadcast_to(v[2], out_shape) if has_bias else no_bias
            return out, x, w, c, alpha, beta
        return arguments
    if op in ("Conv", "FusedConv"):
        strides, pads = a.get("strides", (1, 1)), a.get("pads", (0, 0, 0, 0))
        zeros = np.zeros(out_shape[1], graph.types[node.outputs[0]].dtype)
        has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
        return lambda out, v: (out, v[0], v[1], v[2] if has_bias else zeros, strides[0], strides[1], pads[0], pads[1])
    if op in ("MaxPool", "AveragePool"):
        k, strides, pads = a["kernel_shape"], a.get("strides", (1, 1)), a.get("pads", (0, 0, 0, 0))
        return lambda out, v: (out, v[0], k[0], k[1], strides[0], strides[1], pads[0], pads[1])
    if op == "Softmax":
        shape = graph.types[node.inputs[0]].shape
        axis = a.get("axis", -1) % max(len(shape), 1)
        view = (int(np.prod(shape[:axis], dtype=np.int64)), shape[axis], int(np.prod(shape[axis + 1:], dtype=np.int64)))
        return lambda out, v: (out.reshape(view), v[0].reshape(view))
    if op == "BatchNormalization":
        shape = graph.types[node.inputs[0]].shape
        view = (shape[0], shape[1], int(np.prod(shape[2:], dtype=np.int64)))
        eps = float(a.get("epsilon", 1e-5))
        return lambda out, v: (out.reshape(view), v[0].reshape(view), *v[1:5], eps)
    if op == "Transpose":
        return lambda out, v: (out, v[0])
    raise unsupported(node)


class CompiledGraph:
    """A graph compiled to numba kernels; call it with the inputs, get {output name: array}.

    Attributes
    ----------
    graph : Graph
    sources : dict
        Node name -> the numba source of its kernel.
    plan : MemoryPlan or None
        The arena layout when compiled with ``memory=``.
    """

    def __init__(self, graph, memory=None):
        self.graph = graph
        self.constants = dict(graph.constants)
        for node in graph.nodes:  # a Constant node's value is known now
            if node.op == "Constant":
                self.constants[node.outputs[0]] = np.array(node.attrs["value"])
        self.sources, self.steps = {}, []
        last_use = {}
        for i, node in enumerate(graph.nodes):
            for t in node.inputs:
                last_use[t] = i
        for i, node in enumerate(graph.nodes):
            if node.op == "Constant":
                continue
            source = kernel_source(graph, node)
            self.sources[node.name] = source
            dead = [t for t in dict.fromkeys(node.inputs) if t and last_use.get(t) == i
                    and t not in graph.outputs and t not in self.constants]
            self.steps.append((node, _compiled(source), _arguments(graph, node, self.constants), dead))
        self.plan = plan_memory(graph, strategy=memory) if memory else None
        self.arena = np.zeros(self.plan.peak_bytes, np.uint8) if memory else None

    def _buffer(self, name):
        t = self.graph.types[name]
        if self.arena is None:
            return np.empty(t.shape, t.dtype)
        offset, size = self.plan.offsets[name]
        return self.arena[offset:offset + size].view(t.dtype).reshape(t.shape)

    def _inputs(self, args, kwargs):
        if len(args) == 1 and isinstance(args[0], dict) and not kwargs:
            given = dict(args[0])
        elif args:
            raise ValueError("pass the inputs by name: fn(x=...) or fn({'input.1': ...})")
        else:
            given = kwargs
        unknown = sorted(set(given) - set(self.graph.inputs))
        missing = [name for name in self.graph.inputs if name not in given]
        if unknown or missing:
            raise ValueError(f"inputs: missing {missing}, unknown {unknown}; the graph takes {self.graph.inputs}")
        values = {}
        for name in self.graph.inputs:
            x, want = np.asarray(given[name]), self.graph.types[name]
            if x.shape != want.shape:
                raise ValueError(f"input {name!r}: shape {x.shape}, expected {want.shape}")
            if x.dtype != want.dtype:
                raise ValueError(f"input {name!r}: dtype {x.dtype}, expected {want.dtype}")
            values[name] = np.ascontiguousarray(x)
        return values

    def __call__(self, *args, **kwargs):
        env = dict(self.constants)
        env.update(self._inputs(args, kwargs))
        for node, kernel, arguments, dead in self.steps:
            out = self._buffer(node.outputs[0])
            kernel(*arguments(out, [env[t] for t in node.inputs if t]))
            env[node.outputs[0]] = out
            for name in dead:  # free what no later node reads, as the liveness analysis says
                del env[name]
        copy = self.arena is not None  # arena views are overwritten by the next call
        return {name: env[name].copy() if copy else env[name] for name in self.graph.outputs}


def compile(graph, memory=None):
    """Compile a graph to numba kernels.

    Parameters
    ----------
    graph : book.compiler.ir.Graph
    memory : str, optional
        A :func:`book.compiler.memory.plan_memory` strategy: run inside one
        preallocated arena laid out by that plan. Default: one fresh array per
        tensor per call, freed after its last reader.

    Returns
    -------
    CompiledGraph
        ``fn(x=...)`` or ``fn({"input.1": ...})`` returns {output name: array}.
    """
    return CompiledGraph(graph, memory)
