"""The polyhedral model with isl (chapter 6, "Loop optimizations").

A loop nest is described the way a polyhedral compiler sees it: its **iteration domain** is an
integer set (one point per execution of the statement), its **accesses** are affine maps from
iterations to array elements, and its **schedule** is an affine map from iterations to
time stamps compared in lexicographic order. isl (through islpy) computes the dependences from
those maps, checks whether a new schedule respects them, and generates loops that scan the
domain in the new order; :func:`python_source` turns isl's loop AST into a numba kernel.
"""

from dataclasses import dataclass

import islpy as isl
import numba
import numpy as np

__all__ = ["LoopNest", "recurrence", "stencil", "dependences", "distances", "is_legal", "parallel_dims",
           "tiled", "wavefront", "isl_schedule", "band_flags", "ast", "python_source", "compile_nest", "points",
           "dependence_pairs", "recurrence_reference", "stencil_reference"]


@dataclass(frozen=True)
class LoopNest:
    """One statement in a loop nest, as isl sees it.

    Attributes
    ----------
    domain : islpy.UnionSet
        The iteration domain: every instance ``S[i, j]`` the loops execute.
    writes, reads : islpy.UnionMap
        Access relations: which array element each instance writes and reads.
    schedule : islpy.UnionMap
        The original loops' order: instance -> time stamp, compared lexicographically.
    iterators : tuple of str
        The statement's loop variables, in the order of ``S[...]``.
    body : str
        The statement in Python, in those variables (the generated kernel inlines it).
    arrays : tuple of str
        The arrays the statement touches, the generated kernel's first arguments.
    """

    domain: isl.UnionSet
    writes: isl.UnionMap
    reads: isl.UnionMap
    schedule: isl.UnionMap
    iterators: tuple
    body: str
    arrays: tuple

    @property
    def params(self):
        """The symbolic sizes (``N``, ``M``, ...), in isl's order: the kernel's last arguments."""
        space = self.domain.get_space()
        return tuple(space.get_dim_name(isl.dim_type.param, k) for k in range(space.dim(isl.dim_type.param)))


def recurrence():
    """``a[i, j] = 0.5 * (a[i - 1, j] + a[i, j - 1])`` for ``1 <= i < N``, ``1 <= j < M``.

    Each element needs its upper and its left neighbour, computed in the same sweep: the
    chapter's 2-D recurrence (the halving keeps values bounded; the dependences are those of
    ``a[i - 1, j] + a[i, j - 1]``).
    """
    domain = isl.UnionSet("[N, M] -> { S[i, j] : 1 <= i < N and 1 <= j < M }")
    return LoopNest(domain=domain,
                    writes=isl.UnionMap("{ S[i, j] -> a[i, j] }").intersect_domain(domain),
                    reads=isl.UnionMap("{ S[i, j] -> a[i - 1, j]; S[i, j] -> a[i, j - 1] }").intersect_domain(domain),
                    schedule=isl.UnionMap("{ S[i, j] -> [i, j] }").intersect_domain(domain),
                    iterators=("i", "j"), body="a[i, j] = 0.5 * (a[i - 1, j] + a[i, j - 1])", arrays=("a",))


def stencil():
    """A three-point stencil iterated in time: ``A[t, i] = (A[t-1, i-1] + A[t-1, i] + A[t-1, i+1]) / 3``.

    ``1 <= t <= T`` and ``1 <= i <= N - 2``; row ``t`` of ``A`` holds time step ``t`` (each value is
    written once, so every dependence is a flow of a value).
    """
    domain = isl.UnionSet("[T, N] -> { S[t, i] : 1 <= t <= T and 1 <= i <= N - 2 }")
    reads = "{ S[t, i] -> A[t - 1, i - 1]; S[t, i] -> A[t - 1, i]; S[t, i] -> A[t - 1, i + 1] }"
    return LoopNest(domain=domain,
                    writes=isl.UnionMap("{ S[t, i] -> A[t, i] }").intersect_domain(domain),
                    reads=isl.UnionMap(reads).intersect_domain(domain),
                    schedule=isl.UnionMap("{ S[t, i] -> [t, i] }").intersect_domain(domain),
                    iterators=("t", "i"), body="A[t, i] = (A[t - 1, i - 1] + A[t - 1, i] + A[t - 1, i + 1]) / 3.0",
                    arrays=("A",))


def _flow(sinks, sources, schedule, must):
    info = isl.UnionAccessInfo.from_sink(sinks)
    info = info.set_must_source(sources) if must else info.set_may_source(sources)
    flow = info.set_schedule_map(schedule).compute_flow()
    return flow.get_must_dependence() if must else flow.get_may_dependence()


def dependences(nest):
    """Every dependence of the original order, as a map from source to sink instances.

    The union of flow (read after write, the last write of each value), anti (write after any
    earlier read of the element) and output (write after write) dependences, computed by isl's
    dataflow analysis against ``nest.schedule``: a new order is legal when it keeps every pair.
    """
    flow = _flow(nest.reads, nest.writes, nest.schedule, must=True)
    anti = _flow(nest.writes, nest.reads, nest.schedule, must=False)
    output = _flow(nest.writes, nest.writes, nest.schedule, must=False)
    return flow.union(anti).union(output).coalesce()


def _sets(union):
    """The sets of a union set (one per statement)."""
    found = []
    union.foreach_set(found.append)
    return found


def _lattice_points(s):
    """The integer points of a bounded set, as sorted tuples."""
    found = []
    s.foreach_point(lambda p: found.append(tuple(int(p.get_coordinate_val(isl.dim_type.set, k).to_python())
                                                 for k in range(s.dim(isl.dim_type.set)))))
    return sorted(found)


def distances(deps):
    """The dependence distance vectors (sink minus source), for any values of the sizes.

    Parameters
    ----------
    deps : islpy.UnionMap
        Dependences of one statement onto itself (:func:`dependences`).

    Returns
    -------
    list of tuple of int
        Sorted; a uniform dependence has one vector per read.
    """
    result = set()
    for delta in _sets(deps.deltas()):
        bounded = delta.project_out(isl.dim_type.param, 0, delta.dim(isl.dim_type.param))
        if not bounded.is_bounded():
            raise ValueError(f"the dependences {deps} have no constant distance vectors")
        result.update(_lattice_points(bounded))
    return sorted(result)


def _in_schedule_space(deps, schedule):
    """Each dependence as a pair of time stamps: (schedule of source, schedule of sink)."""
    return isl.Map.from_union_map(deps.apply_domain(schedule).apply_range(schedule))


def is_legal(deps, schedule):
    """True when ``schedule`` runs the source of every dependence before its sink.

    isl checks that each pair of time stamps is lexicographically increasing, for every value of
    the sizes: a proof over the whole (parametric) domain, not a test on examples.
    """
    if deps.is_empty():
        return True
    pairs = _in_schedule_space(deps, schedule)
    forward = isl.Map.lex_lt(pairs.get_space().range())
    return pairs.is_subset(forward)


def parallel_dims(deps, schedule):
    """For each dimension of ``schedule``: True when its loop can run its iterations in parallel.

    A dimension is parallel when no dependence is carried by it: every dependence whose source and
    sink agree on the outer dimensions also agrees on this one.
    """
    n = isl.Map.from_union_map(schedule).dim(isl.dim_type.out)
    if deps.is_empty():
        return [True] * n
    delta = _in_schedule_space(deps, schedule).deltas()
    flags = []
    for d in range(n):
        same_outer = delta
        for outer in range(d):
            same_outer = same_outer.fix_val(isl.dim_type.set, outer, 0)
        flags.append(same_outer.fix_val(isl.dim_type.set, d, 0).is_equal(same_outer))
    return flags


def tiled(schedule, sizes):
    """``schedule`` with its dimensions strip-mined into tiles: ``[x, y] -> [x // T, y // T, x, y]``.

    Parameters
    ----------
    schedule : islpy.UnionMap
        A schedule of ``len(sizes)`` dimensions.
    sizes : sequence of int
        The tile side along each dimension (positive).
    """
    if any(int(s) < 1 for s in sizes):
        raise ValueError(f"tile sizes must be positive, got {list(sizes)}")
    names = [f"x{k}" for k in range(len(sizes))]
    tiles = ", ".join(f"floor({x}/{int(s)})" for x, s in zip(names, sizes))
    strip = isl.UnionMap(f"{{ [{', '.join(names)}] -> [{tiles}, {', '.join(names)}] }}")
    return schedule.apply_range(strip)


def wavefront(tile=None):
    """The book's schedule for :func:`recurrence`: anti-diagonals ``i + j`` in order, each one in parallel.

    ``[i, j] -> [i + j, i]``: every dependence moves one step along ``i + j``, so none is carried
    by the second dimension. With ``tile``, the same over ``tile × tile`` tiles (tile anti-diagonals
    outer, the tiles of one anti-diagonal in parallel, each tile in the original order inside),
    which gives each thread a tile's work per synchronisation instead of one element's.
    """
    if tile is None:
        return isl.UnionMap("{ S[i, j] -> [i + j, i] }")
    if int(tile) < 1:
        raise ValueError(f"the tile side must be positive, got {tile}")
    t = int(tile)
    return isl.UnionMap(f"{{ S[i, j] -> [floor(i/{t}) + floor(j/{t}), floor(i/{t}), i, j] }}")


def isl_schedule(nest, deps):
    """What isl's own scheduler (a Pluto-style algorithm) chooses for the nest, as a schedule tree.

    Dependences are validity constraints (to keep), proximity constraints (to shorten) and
    coincidence constraints (to run in parallel where possible).
    """
    constraints = (isl.ScheduleConstraints.on_domain(nest.domain).set_validity(deps)
                   .set_proximity(deps).set_coincidence(deps))
    return constraints.compute_schedule()


def band_flags(schedule):
    """The outer band of an isl schedule tree: ``(permutable, [coincident per member])``.

    A permutable band can be tiled; a coincident member is a parallel loop.
    """
    band = schedule.get_root().child(0)
    if band.get_type() != isl.schedule_node_type.band:
        raise ValueError("the schedule has no band at its root")
    return bool(band.band_get_permutable()), [bool(band.band_member_get_coincident(k))
                                               for k in range(band.band_n_member())]


def ast(nest, schedule):
    """isl's loop AST scanning ``nest.domain`` in the order of ``schedule`` (print: ``.to_C_str()``)."""
    context = isl.Set(f"[{', '.join(nest.params)}] -> {{ : }}")
    return isl.AstBuild.from_context(context).node_from_schedule_map(schedule.intersect_domain(nest.domain))


_OPS = {isl.ast_expr_op_type.add: "+", isl.ast_expr_op_type.sub: "-", isl.ast_expr_op_type.mul: "*",
        # isl divides exactly (div), or rounds down (fdiv_q, pdiv_q): Python's // rounds down.
        isl.ast_expr_op_type.div: "//", isl.ast_expr_op_type.fdiv_q: "//", isl.ast_expr_op_type.pdiv_q: "//",
        isl.ast_expr_op_type.pdiv_r: "%", isl.ast_expr_op_type.zdiv_r: "%",
        isl.ast_expr_op_type.and_: "and", isl.ast_expr_op_type.and_then: "and",
        isl.ast_expr_op_type.or_: "or", isl.ast_expr_op_type.or_else: "or",
        isl.ast_expr_op_type.eq: "==", isl.ast_expr_op_type.le: "<=", isl.ast_expr_op_type.lt: "<",
        isl.ast_expr_op_type.ge: ">=", isl.ast_expr_op_type.gt: ">"}


def _expr(e):
    kind = e.get_type()
    if kind == isl.ast_expr_type.id:
        return e.get_id().get_name()
    if kind == isl.ast_expr_type.int:
        return str(e.get_val().to_python())
    op = e.get_op_type()
    args = [_expr(e.get_op_arg(k)) for k in range(e.get_op_n_arg())]
    if op in (isl.ast_expr_op_type.max, isl.ast_expr_op_type.min):
        return f"{op.name}({', '.join(args)})"
    if op == isl.ast_expr_op_type.minus:
        return f"(-{args[0]})"
    if op in (isl.ast_expr_op_type.cond, isl.ast_expr_op_type.select):
        return f"({args[1]} if {args[0]} else {args[2]})"
    if op in _OPS:
        return f"({args[0]} {_OPS[op]} {args[1]})"
    raise ValueError(f"isl expression {e.to_C_str()!r} has no Python translation")


def _upper_bound(cond, iterator):
    """``range``'s stop from a for-loop condition ``c < e`` or ``c <= e``."""
    op = cond.get_op_type()
    if op not in (isl.ast_expr_op_type.lt, isl.ast_expr_op_type.le) or _expr(cond.get_op_arg(0)) != iterator:
        raise ValueError(f"loop condition {cond.to_C_str()!r} is not an upper bound on {iterator}")
    bound = _expr(cond.get_op_arg(1))
    return bound if op == isl.ast_expr_op_type.lt else f"{bound} + 1"


def _statement(nest, call, indent):
    values = [_expr(call.get_op_arg(k)) for k in range(1, call.get_op_n_arg())]
    lines = [f"{name} = {value}" for name, value in zip(nest.iterators, values)] + [nest.body]
    return [indent + line for line in lines]


def _lines(nest, node, depth, parallel, indent):
    kind = node.get_type()
    if kind == isl.ast_node_type.block:
        children = node.block_get_children()
        return [line for k in range(children.n_ast_node())
                for line in _lines(nest, children.get_at(k), depth, parallel, indent)]
    if kind == isl.ast_node_type.for_:
        iterator = _expr(node.for_get_iterator())
        if _expr(node.for_get_inc()) != "1":
            raise ValueError(f"loop over {iterator} has a step other than 1")
        loop = "prange" if depth in parallel else "range"
        head = (f"{indent}for {iterator} in {loop}({_expr(node.for_get_init())}, "
                f"{_upper_bound(node.for_get_cond(), iterator)}):")
        return [head] + _lines(nest, node.for_get_body(), depth + 1, parallel, indent + "    ")
    if kind == isl.ast_node_type.if_:
        lines = [f"{indent}if {_expr(node.if_get_cond())}:"]
        lines += _lines(nest, node.if_get_then_node(), depth, parallel, indent + "    ")
        if node.if_has_else_node():
            lines += [f"{indent}else:"] + _lines(nest, node.if_get_else_node(), depth, parallel, indent + "    ")
        return lines
    if kind == isl.ast_node_type.user:
        return _statement(nest, node.user_get_expr(), indent)
    raise ValueError(f"isl AST node of type {kind} has no Python translation")


def python_source(nest, schedule, name="kernel", parallel=()):
    """Python source of a function that runs ``nest`` in the order of ``schedule``.

    The loops are isl's AST (:func:`ast`) written in Python; the loop at each depth in
    ``parallel`` becomes numba's ``prange``. The function's arguments are the arrays, then the
    sizes (``nest.arrays + nest.params``).
    """
    lines = _lines(nest, ast(nest, schedule), 0, set(parallel), "    ")
    return "\n".join([f"def {name}({', '.join(nest.arrays + nest.params)}):", *lines, ""])


def compile_nest(nest, schedule, name="kernel", parallel=()):
    """:func:`python_source` compiled with ``numba.njit`` (``parallel=True`` when a loop is ``prange``).

    Returns
    -------
    (numba dispatcher, str)
        The kernel and its source.
    """
    source = python_source(nest, schedule, name, parallel)
    namespace = {"prange": numba.prange}
    exec(compile(source, f"<isl: {name}>", "exec"), namespace)  # noqa: S102 - our own generated code
    return numba.njit(parallel=bool(parallel))(namespace[name]), source


def points(nest, schedule=None, **sizes):
    """The iteration domain's points at fixed sizes, e.g. ``points(recurrence(), N=5, M=5)``.

    With ``schedule``, their time stamps instead (the domain mapped through the schedule).
    """
    domain = nest.domain if schedule is None else nest.domain.apply(schedule)
    fixed = _fix(domain, sizes)
    return [p for s in _sets(fixed) for p in _lattice_points(s)]


def dependence_pairs(deps, schedule=None, **sizes):
    """Each dependence at fixed sizes as ``(source, sink)``, in iteration or (given) schedule coordinates."""
    pairs = deps if schedule is None else deps.apply_domain(schedule).apply_range(schedule)
    found = []
    maps = []
    _fix(pairs, sizes).foreach_map(maps.append)
    for m in maps:
        n_in = m.dim(isl.dim_type.in_)
        for point in _lattice_points(m.wrap()):
            found.append((point[:n_in], point[n_in:]))
    return sorted(found)


def _fix(obj, sizes):
    """``obj`` with its parameters set to ``sizes`` (every one of them must be given)."""
    space = obj.get_space()
    names = [space.get_dim_name(isl.dim_type.param, k) for k in range(space.dim(isl.dim_type.param))]
    if set(names) != set(sizes):
        raise ValueError(f"give every size {names}, got {sorted(sizes)}")
    context = isl.Set(f"[{', '.join(names)}] -> {{ : {' and '.join(f'{n} = {int(sizes[n])}' for n in names)} }}")
    return obj.intersect_params(context)


@numba.njit
def recurrence_reference(a):
    """The recurrence in its original loop order, in place (the kernels' reference)."""
    for i in range(1, a.shape[0]):
        for j in range(1, a.shape[1]):
            a[i, j] = 0.5 * (a[i - 1, j] + a[i, j - 1])
    return a


def stencil_reference(first, steps):
    """The stencil's ``steps + 1`` rows from row 0 ``first``, one NumPy time step at a time."""
    out = np.zeros((steps + 1, np.size(first)))
    out[0] = first
    for t in range(1, steps + 1):
        out[t, 1:-1] = (out[t - 1, :-2] + out[t - 1, 1:-1] + out[t - 1, 2:]) / 3.0
    return out
