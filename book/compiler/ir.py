"""The book's graph IR (chapter 5): nodes in topological order over named, typed tensors.

A :class:`Graph` is what every pass takes and returns. Tensors are named;
``types`` maps each name to its (shape, dtype), ``constants`` holds the
initialisers (weights, folded values). Passes never mutate a graph: they
return a new one (:meth:`Graph.copy`), so a page can set a graph beside its
optimised version.
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Node:
    """One operation: an ONNX op type (or a fused op of the book), its tensors and attributes."""

    op: str
    inputs: list  # tensor names; "" for an optional input left out
    outputs: list
    attrs: dict = field(default_factory=dict)
    name: str = ""

    def __repr__(self):
        return f"{self.name or self.op}: {self.op}({', '.join(self.inputs)}) -> {', '.join(self.outputs)}"


@dataclass
class TensorType:
    """A static shape and a NumPy dtype."""

    shape: tuple
    dtype: np.dtype

    @property
    def nbytes(self):
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Graph:
    """A computational graph (계산 그래프) with static shapes.

    Attributes
    ----------
    nodes : list of Node
        In topological order: a node's inputs are graph inputs, constants or
        outputs of earlier nodes.
    inputs, outputs : list of str
        The graph's input and output tensor names (inputs exclude constants).
    types : dict
        Tensor name -> :class:`TensorType`, for every tensor (after shape inference).
    constants : dict
        Tensor name -> ``numpy.ndarray``: the initialisers.
    """

    nodes: list
    inputs: list
    outputs: list
    types: dict
    constants: dict = field(default_factory=dict)

    def copy(self):
        """A new graph with copied node lists and attribute dicts (arrays are shared, never mutated)."""
        nodes = [Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.name) for n in self.nodes]
        return Graph(nodes, list(self.inputs), list(self.outputs), dict(self.types), dict(self.constants))

    def producers(self):
        """Tensor name -> index of the node that writes it."""
        return {out: i for i, node in enumerate(self.nodes) for out in node.outputs}

    def consumers(self):
        """Tensor name -> indices of the nodes that read it."""
        readers = {}
        for i, node in enumerate(self.nodes):
            for name in node.inputs:
                if name:
                    readers.setdefault(name, []).append(i)
        return readers

    def nbytes(self, name):
        """Bytes of one tensor."""
        return self.types[name].nbytes

    def op_counts(self):
        """Op type -> number of nodes."""
        counts = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def __repr__(self):
        lines = [f"graph({', '.join(self.inputs)}) -> {', '.join(self.outputs)}"]
        for node in self.nodes:
            shape = self.types[node.outputs[0]].shape if node.outputs[0] in self.types else "?"
            lines.append(f"  {node!r}  {shape}")
        return "\n".join(lines)


def unsupported(node, attribute=None, detail=""):
    """The error for an op or attribute the compiler does not handle: names the op, attribute and node."""
    what = f"attribute {attribute!r} of " if attribute else ""
    return NotImplementedError(f"{what}op {node.op} (node {node.name or node.outputs[0]!r}) is not supported"
                               + (f": {detail}" if detail else ""))


def traffic(graph):
    """Bytes each node reads and writes, counting every tensor it touches once (chapter 5's fusion count).

    Returns
    -------
    list of dict
        One per node: ``node``, ``op``, ``read_bytes``, ``written_bytes``. A
        fused node reads its inputs and writes its output once, so the
        intermediates it keeps in registers are not counted: that is the
        round trip to memory that fusion saves.
    """
    rows = []
    for node in graph.nodes:
        if node.op == "Constant":
            continue
        read = sum(graph.nbytes(t) for t in dict.fromkeys(node.inputs) if t)
        written = sum(graph.nbytes(t) for t in node.outputs)
        rows.append({"node": node.name, "op": node.op, "read_bytes": read, "written_bytes": written})
    return rows


def summary(graph):
    """Kernels launched (nodes other than Constant) and total bytes moved, for a graph."""
    rows = traffic(graph)
    return {"kernels": len(rows), "bytes_moved": sum(r["read_bytes"] + r["written_bytes"] for r in rows)}
