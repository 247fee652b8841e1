"""Shape inference and the ops the book's compiler supports (chapter 5).

:func:`infer_shapes` walks the nodes in order and gives every tensor a static
shape and dtype from its inputs' and its node's attributes. It is also where
an op or attribute the compiler cannot handle is refused, with an error naming
the op, the attribute and the node.
"""

import numpy as np

from book.compiler.ir import TensorType, unsupported

ELEMENTWISE_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}
ELEMENTWISE_UNARY = ("Relu", "Sigmoid", "Tanh", "Exp", "Identity")
ACTIVATIONS = ("Relu", "Sigmoid", "Tanh")
# Attributes each op accepts, with the values the compiler handles (None: any value).
ATTRIBUTES = {
    "Gemm": {"alpha": None, "beta": None, "transA": None, "transB": None},
    "MatMul": {}, "Softmax": {"axis": None}, "Flatten": {"axis": None},
    "Reshape": {"allowzero": (0,)}, "Transpose": {"perm": None}, "Constant": {"value": None},
    "Conv": {"kernel_shape": None, "strides": None, "pads": None, "group": (1,), "dilations": ((1, 1),),
             "auto_pad": ("NOTSET",)},
    "BatchNormalization": {"epsilon": None, "momentum": None, "training_mode": (0,)},
    "MaxPool": {"kernel_shape": None, "strides": None, "pads": None, "ceil_mode": (0,), "dilations": ((1, 1),),
                "storage_order": (0,), "auto_pad": ("NOTSET",)},
    "AveragePool": {"kernel_shape": None, "strides": None, "pads": None, "ceil_mode": (0,),
                    "count_include_pad": (0, 1), "auto_pad": ("NOTSET",)},
    # The book's fused ops (made by book.compiler.passes, never read from a file).
    "FusedGemm": {"alpha": None, "beta": None, "transA": None, "transB": None, "activation": None},
    "FusedConv": {"kernel_shape": None, "strides": None, "pads": None, "activation": None},
    "FusedElementwise": {"program": None},
}
ATTRIBUTES.update({op: {} for op in (*ELEMENTWISE_BINARY, *ELEMENTWISE_UNARY)})
SUPPORTED_OPS = tuple(ATTRIBUTES)
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def program_of(node):
    """An elementwise node as a program: (op, operand indices) steps; operands are its inputs, then earlier steps."""
    if node.op == "FusedElementwise":
        return tuple(node.attrs["program"])
    return ((node.op, tuple(range(len(node.inputs)))),)


def check_node(node):
    """Raise ``NotImplementedError`` for an op or attribute value the compiler does not handle."""
    if node.op not in ATTRIBUTES:
        raise unsupported(node, detail=f"supported ops: {', '.join(sorted(SUPPORTED_OPS))}")
    allowed = ATTRIBUTES[node.op]
    for key, value in node.attrs.items():
        if key not in allowed:
            raise unsupported(node, key)
        choices = allowed[key]
        value = tuple(value) if isinstance(value, (list, tuple)) else value
        if choices is not None and value not in choices:
            raise unsupported(node, key, f"value {value!r}, supported: {choices}")


def broadcast(node, *shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"node {node.name!r} ({node.op}): shapes {shapes} do not broadcast") from None


def _window(node, x, kernel):
    """Output spatial size of a convolution or pooling window (2-D, ceil_mode 0)."""
    if len(x) != 4 or len(kernel) != 2:
        raise unsupported(node, "kernel_shape", f"only 2-D windows on (N, C, H, W) inputs, got input {x}")
    strides = tuple(node.attrs.get("strides", (1, 1)))
    pads = tuple(node.attrs.get("pads", (0, 0, 0, 0)))
    h = (x[2] + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    w = (x[3] + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    return h, w


def output_shapes(node, shapes, constants):
    """The output shapes of one node from its input shapes (``None`` for an absent optional input)."""
    op, a = node.op, node.attrs
    s = shapes
    if op in ELEMENTWISE_BINARY:
        return [broadcast(node, s[0], s[1])]
    if op in ELEMENTWISE_UNARY or op in ("Softmax", "BatchNormalization"):
        return [s[0]]
    if op == "FusedElementwise":
        return [broadcast(node, *s)]
    if op == "Constant":
        return [np.shape(a["value"])]
    if op == "MatMul":
        if len(s[0]) != 2 or len(s[1]) != 2:
            raise unsupported(node, detail=f"MatMul of 2-D matrices only, got shapes {s[0]} and {s[1]}")
        if s[0][1] != s[1][0]:
            raise ValueError(f"node {node.name!r} (MatMul): inner sizes differ, {s[0]} @ {s[1]}")
        return [(s[0][0], s[1][1])]
    if op in ("Gemm", "FusedGemm"):
        if len(s[0]) != 2 or len(s[1]) != 2:
            raise ValueError(f"node {node.name!r} ({op}): A and B must be 2-D, got {s[0]} and {s[1]}")
        m, k = s[0][::-1] if a.get("transA", 0) else s[0]
        k2, n = s[1][::-1] if a.get("transB", 0) else s[1]
        if k != k2:
            raise ValueError(f"node {node.name!r} ({op}): inner sizes differ, {k} vs {k2}")
        if len(s) > 2 and s[2] is not None and broadcast(node, s[2], (m, n)) != (m, n):
            raise ValueError(f"node {node.name!r} ({op}): C of shape {s[2]} does not broadcast to {(m, n)}")
        return [(m, n)]
    if op in ("Conv", "FusedConv"):
        w = s[1]
        if len(w) != 4 or s[0][1] != w[1]:
            raise ValueError(f"node {node.name!r} ({op}): weights {w} do not match input {s[0]}")
        kernel = tuple(a.get("kernel_shape", w[2:]))
        return [(s[0][0], w[0], *_window(node, s[0], kernel))]
    if op in ("MaxPool", "AveragePool"):
        return [(*s[0][:2], *_window(node, s[0], tuple(a["kernel_shape"])))]
    if op == "Flatten":
        axis = a.get("axis", 1) + (len(s[0]) if a.get("axis", 1) < 0 else 0)
        return [(int(np.prod(s[0][:axis], dtype=np.int64)), int(np.prod(s[0][axis:], dtype=np.int64)))]
    if op == "Reshape":
        if node.inputs[1] not in constants:
            raise unsupported(node, "shape", "the target shape must be a constant (static shapes)")
        target = [int(v) for v in constants[node.inputs[1]]]
        target = [s[0][i] if v == 0 else v for i, v in enumerate(target)]
        if -1 in target:
            known = int(np.prod([v for v in target if v != -1], dtype=np.int64))
            target[target.index(-1)] = int(np.prod(s[0], dtype=np.int64)) // max(known, 1)
        if np.prod(target, dtype=np.int64) != np.prod(s[0], dtype=np.int64):
            raise ValueError(f"node {node.name!r} (Reshape): cannot reshape {s[0]} to {tuple(target)}")
        return [tuple(target)]
    if op == "Transpose":
        perm = a.get("perm", tuple(reversed(range(len(s[0])))))
        return [tuple(s[0][p] for p in perm)]
    raise unsupported(node)


def infer_shapes(graph):
    """Give every tensor of a graph its static shape and dtype; a new graph.

    Parameters
    ----------
    graph : book.compiler.ir.Graph
        Its ``types`` must hold the graph inputs; constants carry their own.

    Returns
    -------
    Graph
        With ``types`` for every tensor. Raises ``NotImplementedError`` for an
        unsupported op or attribute and ``ValueError`` for shapes that do not fit.
    """
    graph = graph.copy()
    for name, value in graph.constants.items():
        graph.types[name] = TensorType(tuple(value.shape), value.dtype)
    for node in graph.nodes:
        check_node(node)
        missing = [t for t in node.inputs if t and t not in graph.types]
        if missing:
            raise ValueError(f"node {node.name!r} ({node.op}) reads {missing}, which no earlier node "
                             "or input defines (the nodes must be in topological order)")
        shapes = [graph.types[t].shape if t else None for t in node.inputs]
        first = node.inputs[0] if node.inputs else None
        dtype = (np.asarray(node.attrs["value"]).dtype if node.op == "Constant" else graph.types[first].dtype)
        if node.op != "Constant" and np.dtype(dtype) not in FLOATS:
            raise unsupported(node, detail=f"input dtype {np.dtype(dtype)}; the compiler handles float32 and float64")
        for out, shape in zip(node.outputs, output_shapes(node, shapes, graph.constants)):
            graph.types[out] = TensorType(tuple(int(d) for d in shape), np.dtype(dtype))
    return graph
