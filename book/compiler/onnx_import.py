"""ONNX -> the book's graph IR (chapter 5's front end)."""

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from book.compiler.ir import Graph, Node, TensorType
from book.compiler.shapes import infer_shapes

MIN_OPSET = 13


def _attribute(attr):
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return tuple(v.decode() if isinstance(v, bytes) else v for v in value)
    return value


def _input_type(value_info):
    tensor = value_info.type.tensor_type
    dims = tensor.shape.dim
    if not tensor.HasField("shape") or any(not d.HasField("dim_value") for d in dims):
        raise ValueError(f"input {value_info.name!r} has no static shape ({[d.dim_param or '?' for d in dims]}); "
                         "export the model with fixed sizes (e.g. book.models.to_onnx(model, batch=...))")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    return TensorType(tuple(d.dim_value for d in dims), np.dtype(dtype))


def from_onnx(model):
    """Import an ONNX model into the book's graph IR, with every tensor's shape inferred.

    Parameters
    ----------
    model : onnx.ModelProto or str or pathlib.Path
        Opset 13 or later, static input shapes.

    Returns
    -------
    book.compiler.ir.Graph
        Nodes in topological order (as ONNX requires), initialisers as
        ``constants``. Raises ``NotImplementedError`` for an op or attribute
        the compiler does not support and ``ValueError`` for a model it cannot read.

    Examples
    --------
    >>> from book import models, compiler
    >>> graph = compiler.from_onnx(models.to_onnx(models.mlp(), batch=4))  # doctest: +SKIP
    """
    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    if not isinstance(model, onnx.ModelProto):
        raise ValueError(f"from_onnx takes an onnx.ModelProto or a path, got {type(model).__name__}")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ValueError(f"the model uses opset {opset}; the book's compiler reads opset {MIN_OPSET} or later")
    g = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in g.initializer}
    inputs = [v.name for v in g.input if v.name not in constants]
    types = {v.name: _input_type(v) for v in g.input if v.name not in constants}
    nodes = [Node(n.op_type, list(n.input), list(n.output), {a.name: _attribute(a) for a in n.attribute},
                  n.name or f"{n.op_type}_{i}") for i, n in enumerate(g.node)]
    for node in nodes:
        if node.op in ("Gemm", "FusedGemm"):
            node.attrs = {k: (float(v) if k in ("alpha", "beta") else v) for k, v in node.attrs.items()}
    return infer_shapes(Graph(nodes, inputs, [v.name for v in g.output], types, constants))


def make_model(nodes, inputs, outputs, initializers=None, dtype=np.float32):
    """A small ONNX model (opset 13) from ``onnx.helper`` nodes, for tests, the page and the lab.

    Parameters
    ----------
    nodes : list of onnx.NodeProto
        ``onnx.helper.make_node(...)`` results, in topological order.
    inputs : dict
        Input name -> shape.
    outputs : list of str
        Output names (their shapes are left to the consumer's shape inference).
    initializers : dict, optional
        Name -> array (cast to ``dtype``, except integer arrays such as Reshape shapes).
    """
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [numpy_helper.from_array(v if np.asarray(v).dtype.kind == "i" else np.asarray(v, dtype), k)
             for k, v in (initializers or {}).items()]
    graph = onnx.helper.make_graph(
        nodes, "graph", [onnx.helper.make_tensor_value_info(k, elem, list(s)) for k, s in inputs.items()],
        [onnx.helper.make_tensor_value_info(k, elem, None) for k in outputs], inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", MIN_OPSET)])
    model.ir_version = 8
    return model
