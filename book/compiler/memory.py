"""Memory planning (chapter 5): liveness, then tensors laid out in one arena.

A tensor is live from the step (node index) that writes it to the last step
that reads it; a graph output stays live to the end. Two tensors whose live
ranges overlap may not share bytes. The strategies differ in how they reuse
the bytes of dead tensors:

``"naive"``
    one buffer per tensor, never reused (what an allocator that never frees sees);
``"sliding-window"``
    the lecture note's scheme: walk the tensors in the order they are
    written; before allocating, look among the buffers whose tensors are dead
    by now for one large enough and reuse it, else open a new buffer;
``"greedy-by-size"``
    the largest tensors first, each at the lowest offset where it overlaps no
    already-placed tensor live at the same time (TensorFlow Lite's arena planner).

:func:`lower_bound` is the most bytes live at any one step: no plan can do better.
"""

from dataclasses import dataclass

STRATEGIES = ("naive", "sliding-window", "greedy-by-size")
ALIGN = 64  # bytes: every tensor starts on a cache line


@dataclass
class MemoryPlan:
    """Where each planned tensor lives in the arena.

    Attributes
    ----------
    strategy : str
    peak_bytes : int
        Arena size the plan needs.
    offsets : dict
        Tensor -> (offset, size) in bytes.
    live : dict
        Tensor -> (first step, last step), inclusive; steps are node indices.
    """

    strategy: str
    peak_bytes: int
    offsets: dict
    live: dict


def _aligned(size):
    return -(-size // ALIGN) * ALIGN


def liveness(graph):
    """Tensor -> (first step, last step) for every tensor a node writes (Constant nodes' outputs excluded)."""
    last_step = len(graph.nodes) - 1
    live = {}
    for i, node in enumerate(graph.nodes):
        if node.op == "Constant":
            continue
        for t in node.outputs:
            live[t] = [i, last_step if t in graph.outputs else i]
    for i, node in enumerate(graph.nodes):
        for t in node.inputs:
            if t in live:
                live[t][1] = max(live[t][1], i)
    return {t: tuple(span) for t, span in live.items()}


def lower_bound(graph, live=None):
    """The most bytes live at any one step (each tensor rounded up to the alignment)."""
    live = live or liveness(graph)
    steps = [0] * len(graph.nodes)
    for t, (first, last) in live.items():
        for s in range(first, last + 1):
            steps[s] += _aligned(graph.nbytes(t))
    return max(steps, default=0)


def _overlap(a, b):
    return a[0] <= b[1] and b[0] <= a[1]


def _sliding_window(sizes, live):
    buffers = []  # [offset, size, step after which it is free]
    offsets, top = {}, 0
    for t in sorted(live, key=lambda t: live[t][0]):
        first, last = live[t]
        free = [b for b in buffers if b[2] < first and b[1] >= sizes[t]]
        if free:
            buffer = min(free, key=lambda b: b[1])  # the smallest that fits wastes the least
            buffer[2] = last
        else:
            buffer = [top, sizes[t], last]
            buffers.append(buffer)
            top += sizes[t]
        offsets[t] = (buffer[0], sizes[t])
    return offsets


def _greedy_by_size(sizes, live):
    placed, offsets = [], {}
    for t in sorted(live, key=lambda t: (-sizes[t], live[t][0])):
        offset = 0
        # Conflicts: tensors live at the same time, in address order; take the first gap that fits.
        for other_offset, other_size in sorted((offsets[o][0], sizes[o]) for o in placed if _overlap(live[o], live[t])):
            if other_offset - offset >= sizes[t]:
                break
            offset = max(offset, other_offset + other_size)
        offsets[t] = (offset, sizes[t])
        placed.append(t)
    return offsets


def plan_memory(graph, strategy="sliding-window"):
    """Lay out a graph's intermediate and output tensors in one arena.

    Parameters
    ----------
    graph : book.compiler.ir.Graph
        Shapes inferred. Graph inputs, initialisers and Constant nodes' values
        are not planned (they live outside the arena).
    strategy : {"naive", "sliding-window", "greedy-by-size"}

    Returns
    -------
    MemoryPlan
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    live = liveness(graph)
    sizes = {t: _aligned(graph.nbytes(t)) for t in live}
    if strategy == "naive":
        offsets, top = {}, 0
        for t in live:
            offsets[t] = (top, sizes[t])
            top += sizes[t]
    elif strategy == "sliding-window":
        offsets = _sliding_window(sizes, live)
    else:
        offsets = _greedy_by_size(sizes, live)
    peak = max((offset + size for offset, size in offsets.values()), default=0)
    # The plan reports each tensor's own size; the layout above used sizes rounded up to the alignment.
    return MemoryPlan(strategy, peak, {t: (offset, graph.nbytes(t)) for t, (offset, _) in offsets.items()}, live)


def check_plan(plan):
    """Raise ``ValueError`` naming two tensors live at the same step whose bytes overlap."""
    names = list(plan.offsets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (oa, sa), (ob, sb) = plan.offsets[a], plan.offsets[b]
            if _overlap(plan.live[a], plan.live[b]) and oa < ob + sb and ob < oa + sa:
                raise ValueError(f"tensors {a!r} and {b!r} are live together but overlap in the arena")
