"""Graph passes (chapter 5): each takes a graph and returns a new one that computes the same outputs.

:func:`optimize` runs the default pipeline; :func:`optimize_steps` keeps the
graph after every pass so a page can show what each one changed.
"""

import numpy as np

from book.compiler.ir import Node
from book.compiler.reference import evaluate
from book.compiler.shapes import ACTIVATIONS, ELEMENTWISE_BINARY, ELEMENTWISE_UNARY, infer_shapes, program_of

ELEMENTWISE = (*ELEMENTWISE_BINARY, *ELEMENTWISE_UNARY, "FusedElementwise")


def fold_constants(graph):
    """Evaluate, once, every node whose inputs are all constants; its outputs become constants."""
    graph = graph.copy()
    kept = []
    for node in graph.nodes:
        if all(not t or t in graph.constants for t in node.inputs):
            values = evaluate(node, [graph.constants[t] if t else None for t in node.inputs])
            graph.constants.update(zip(node.outputs, values))
        else:
            kept.append(node)
    graph.nodes = kept
    return graph


def eliminate_dead_code(graph):
    """Drop nodes and constants that no graph output depends on."""
    graph = graph.copy()
    needed, kept = set(graph.outputs), []
    for node in reversed(graph.nodes):
        if any(t in needed for t in node.outputs):
            kept.append(node)
            needed.update(t for t in node.inputs if t)
    graph.nodes = kept[::-1]
    graph.constants = {k: v for k, v in graph.constants.items() if k in needed}
    graph.types = {k: v for k, v in graph.types.items() if k in needed or k in graph.inputs
                   or any(k in n.outputs for n in graph.nodes)}
    return graph


def _single_reader(graph, tensor, consumers):
    return tensor not in graph.outputs and len(consumers.get(tensor, [])) == 1


def fold_batchnorm(graph):
    """Conv followed by an inference BatchNormalization -> one Conv with rescaled weights and bias.

    BN computes ``(y - mean) * k + beta`` per channel with ``k = scale / sqrt(var + eps)``;
    on ``y = W * x + b`` that is ``(k W) * x + (b - mean) k + beta``.
    """
    graph = graph.copy()
    consumers, producers = graph.consumers(), graph.producers()
    drop = set()
    for i, bn in enumerate(graph.nodes):
        if bn.op != "BatchNormalization" or not all(t in graph.constants for t in bn.inputs[1:5]):
            continue
        j = producers.get(bn.inputs[0])
        conv = graph.nodes[j] if j is not None else None
        if (conv is None or conv.op != "Conv" or conv.inputs[1] not in graph.constants
                or not _single_reader(graph, bn.inputs[0], consumers)):
            continue
        has_bias = len(conv.inputs) > 2 and conv.inputs[2]
        if has_bias and conv.inputs[2] not in graph.constants:
            continue
        scale, beta, mean, var = (graph.constants[t] for t in bn.inputs[1:5])
        k = scale / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
        w = graph.constants[conv.inputs[1]]
        b = graph.constants[conv.inputs[2]] if has_bias else np.zeros(w.shape[0], w.dtype)
        w_name, b_name = f"{conv.name}_W_bn", f"{conv.name}_B_bn"
        graph.constants[w_name] = (w * k.reshape(-1, 1, 1, 1)).astype(w.dtype)
        graph.constants[b_name] = ((b - mean) * k + beta).astype(w.dtype)
        graph.nodes[j] = Node("Conv", [conv.inputs[0], w_name, b_name], list(bn.outputs), dict(conv.attrs), conv.name)
        drop.add(i)
    graph.nodes = [n for i, n in enumerate(graph.nodes) if i not in drop]
    return eliminate_dead_code(infer_shapes(graph))


def _fuse_pairs(graph, rule):
    """Merge a node into its only reader wherever ``rule(first, second, graph)`` returns the fused node."""
    graph = graph.copy()
    changed = True
    while changed:
        changed = False
        consumers, producers = graph.consumers(), graph.producers()
        for i, second in enumerate(graph.nodes):
            for t in second.inputs:
                j = producers.get(t)
                if j is None or not _single_reader(graph, t, consumers):
                    continue
                fused = rule(graph.nodes[j], second, graph)
                if fused is not None:
                    graph.nodes[i] = fused
                    del graph.nodes[j]  # j < i: the fused node sits where its last part was
                    changed = True
                    break
            if changed:
                break
    return eliminate_dead_code(infer_shapes(graph))


def _bias_activation_rule(first, second, graph):
    t = first.outputs[0]
    out_shape = graph.types[t].shape
    no_bias = first.op == "MatMul" or (first.op == "Gemm" and (len(first.inputs) < 3 or not first.inputs[2]))
    if no_bias and second.op == "Add":
        other = second.inputs[1] if second.inputs[0] == t else second.inputs[0]
        if (other == t or other not in graph.constants
                or np.broadcast_shapes(graph.types[other].shape, out_shape) != out_shape):
            return None
        attrs = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0, **first.attrs}
        if first.op == "Gemm":  # Gemm computes alpha A B; the added bias keeps weight 1
            attrs["beta"] = 1.0
        return Node("FusedGemm", [first.inputs[0], first.inputs[1], other], list(second.outputs), attrs,
                    f"{first.name}+{second.name}")
    if second.op in ACTIVATIONS and first.op in ("MatMul", "Gemm", "FusedGemm", "Conv", "FusedConv") \
            and not first.attrs.get("activation"):
        fused_op = "FusedConv" if "Conv" in first.op else "FusedGemm"
        return Node(fused_op, list(first.inputs), list(second.outputs),
                    {**first.attrs, "activation": second.op}, f"{first.name}+{second.name}")
    return None


def fuse_bias_activation(graph):
    """Gemm/MatMul + bias Add + activation, and Conv + activation, into one node (FusedGemm, FusedConv).

    The fused kernel applies the bias and the activation to each output
    element while it is still in a register, instead of writing the product
    to memory and reading it back twice.
    """
    return _fuse_pairs(graph, _bias_activation_rule)


def _elementwise_rule(first, second, graph):
    if first.op not in ELEMENTWISE or second.op not in ELEMENTWISE:
        return None
    t = first.outputs[0]
    if graph.types[t].shape != graph.types[second.outputs[0]].shape:
        return None  # a broadcast intermediate would be recomputed for every output element
    inputs = list(dict.fromkeys(first.inputs + [x for x in second.inputs if x != t]))
    index = {name: k for k, name in enumerate(inputs)}
    n_in, first_program, second_program = len(inputs), program_of(first), program_of(second)

    def first_ref(r):
        return index[first.inputs[r]] if r < len(first.inputs) else n_in + r - len(first.inputs)

    result = n_in + len(first_program) - 1

    def second_ref(r):
        if r < len(second.inputs):
            return result if second.inputs[r] == t else index[second.inputs[r]]
        return n_in + len(first_program) + r - len(second.inputs)

    program = tuple((op, tuple(first_ref(r) for r in refs)) for op, refs in first_program) + \
        tuple((op, tuple(second_ref(r) for r in refs)) for op, refs in second_program)
    return Node("FusedElementwise", inputs, list(second.outputs), {"program": program},
                f"{first.name}+{second.name}")


def fuse_elementwise(graph):
    """Chains of elementwise ops into one FusedElementwise node: one loop, one pass over memory."""
    return _fuse_pairs(graph, _elementwise_rule)


DEFAULT_PASSES = (infer_shapes, fold_constants, eliminate_dead_code, fold_batchnorm,
                  fuse_bias_activation, fuse_elementwise)


def optimize_steps(graph, passes=DEFAULT_PASSES):
    """The graph after each pass, as [(pass name, graph), ...], starting with ("import", graph)."""
    steps = [("import", graph)]
    for step in passes:
        graph = step(graph)
        steps.append((step.__name__, graph))
    return steps


def optimize(graph, passes=DEFAULT_PASSES):
    """Run the default passes (shape inference, constant folding, dead code, Conv+BN folding, fusion).

    Parameters
    ----------
    graph : book.compiler.ir.Graph
    passes : sequence of callables, optional

    Returns
    -------
    Graph
        A new graph; the input graph is unchanged.
    """
    return optimize_steps(graph, passes)[-1][1]
