"""MLIR's progressive lowering, run: xDSL in pure Python, and upstream MLIR to machine code.

Chapter 4 ("From code to silicon: compilers") lowers one small ``linalg``
program a level at a time. With xDSL (a Python reimplementation of MLIR's
core) each stage is printed and run by xDSL's interpreter, so every stage can
be checked against NumPy; :class:`MulByTwoToAdd` is a pass of our own. xDSL
0.74 does not lower ``func``/``arith``/``cf`` to the ``llvm`` dialect, so the
last step down uses upstream MLIR's Python bindings as the ``torch-mlir``
wheel bundles them (Linux x86-64, Python 3.11 only; :func:`upstream_available`
says whether they import here), whose ExecutionEngine JIT-compiles the
``llvm`` dialect to machine code.
"""

import ctypes
import importlib.util
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import arith, get_all_dialects
from xdsl.dialects.builtin import FloatAttr, ModuleOp
from xdsl.interpreter import Interpreter
from xdsl.interpreters import register_implementations
from xdsl.interpreters.shaped_array import ShapedArray
from xdsl.interpreters.utils.ptr import TypedPtr
from xdsl.parser import Parser
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.transforms import get_all_passes

__all__ = ["XDSL_LOWERING", "UPSTREAM_LOWERING", "MulByTwoToAdd", "Stage", "apply_passes", "dialects", "lower",
           "lower_upstream", "op_names", "parse", "run", "run_upstream", "upstream_available"]

# linalg (whole-array ops) -> scf (structured loops) -> cf (branches between blocks), in xDSL.
XDSL_LOWERING = ("linalg-generalize-named-ops", "convert-linalg-to-loops", "convert-scf-to-cf")
# The same idea in upstream MLIR, through affine loops and on to the llvm dialect.
UPSTREAM_LOWERING = ("convert-linalg-to-affine-loops", "lower-affine", "convert-scf-to-cf",
                     "finalize-memref-to-llvm,convert-arith-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,"
                     "reconcile-unrealized-casts")


def _context():
    context = Context()
    for name, dialect in get_all_dialects().items():
        context.register_dialect(name, dialect)
    return context


def parse(text):
    """Parse MLIR text with xDSL (every dialect xDSL knows is registered)."""
    if not isinstance(text, str):
        raise TypeError(f"MLIR source must be text (str), got {type(text).__name__}")
    return Parser(_context(), text).parse_module()


class _MulByTwo(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: arith.MulfOp, rewriter: PatternRewriter):
        for value, other in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            constant = value.owner
            if isinstance(constant, arith.ConstantOp) and isinstance(constant.value, FloatAttr) \
                    and constant.value.value.data == 2.0:
                rewriter.replace(op, arith.AddfOp(other, other))
                return


class MulByTwoToAdd(ModulePass):
    """A pass of our own (chapter 4): ``x * 2.0`` becomes ``x + x``, an exact rewrite in floating point.

    A ``RewritePattern`` matches one op type and rewrites it in place; the
    pass walks the module applying it until nothing matches.
    """

    name = "mul-by-two-to-add"

    def apply(self, ctx, op: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([_MulByTwo()])).rewrite_module(op)


def apply_passes(module, passes):
    """Apply xDSL passes, by name or as ``ModulePass`` instances, to a module in place; returns the module."""
    registry, context = get_all_passes(), _context()
    for one in passes:
        if isinstance(one, str):
            if one not in registry:
                raise ValueError(f"xDSL has no pass named {one!r}")
            one = registry[one]()()
        one.apply(context, module)
    return module


def op_names(module):
    """Every operation's name in the module, e.g. ``{"func.func", "scf.for", ...}`` (the module itself left out)."""
    return {op.name for op in module.walk()} - {"builtin.module"}


def dialects(module):
    """The dialects the module's operations come from, e.g. ``{"func", "arith", "scf", "memref"}``."""
    return {name.split(".", 1)[0] for name in op_names(module)}


def run(module, function, *arrays):
    """Run a function of the module with xDSL's interpreter on float64 memrefs.

    Parameters
    ----------
    module : ModuleOp
    function : str
        The ``func.func`` symbol.
    *arrays : numpy.ndarray
        One per memref argument; outputs are written back, as MLIR writes a memref in place.

    Returns
    -------
    tuple of numpy.ndarray
        Copies of every argument after the call, in order.
    """
    shaped = []
    for array in arrays:
        array = np.asarray(array)
        if array.dtype != np.float64:
            raise TypeError(f"the interpreter is fed float64 memrefs; got dtype {array.dtype}")
        shaped.append(ShapedArray(TypedPtr.new_float64(array.ravel().tolist()), list(array.shape)))
    interpreter = Interpreter(module)
    register_implementations(interpreter, _context())
    interpreter.call_op(function, tuple(shaped))
    return tuple(np.array(s.data, dtype=np.float64).reshape(a.shape) for s, a in zip(shaped, arrays))


@dataclass(frozen=True)
class Stage:
    """One level of a lowering: the pass that produced it, the IR text and the dialects in it."""

    after: str
    text: str
    dialects: frozenset


def lower(text, passes=XDSL_LOWERING):
    """Lower an MLIR program with xDSL one pass at a time, keeping every stage.

    Returns
    -------
    list of Stage
        The input first (``after="input"``), then one stage per pass.
    """
    module = parse(text)
    stages = [Stage("input", str(module), frozenset(dialects(module)))]
    for one in passes:
        apply_passes(module, [one])
        stages.append(Stage(one if isinstance(one, str) else one.name, str(module), frozenset(dialects(module))))
    return stages


def upstream_available():
    """True when upstream MLIR's Python bindings (from the torch-mlir wheel) can be imported here."""
    return importlib.util.find_spec("torch_mlir") is not None


def lower_upstream(text, passes=UPSTREAM_LOWERING):
    """Lower MLIR text with upstream MLIR, one pipeline step at a time.

    Returns
    -------
    list of Stage
        As :func:`lower`; the last stage is the ``llvm`` dialect when the
        default passes are used.
    """
    from torch_mlir import ir, passmanager

    with ir.Context():
        module = ir.Module.parse(text)
        stages = [Stage("input", str(module), frozenset(_upstream_dialects(module)))]
        for one in passes:
            passmanager.PassManager.parse(f"builtin.module({one})").run(module.operation)
            stages.append(Stage(one, str(module), frozenset(_upstream_dialects(module))))
    return stages


def _upstream_dialects(module):
    names = set()

    def visit(op):
        names.add(op.name.split(".", 1)[0])
        for region in op.regions:
            for block in region.blocks:
                for inner in block.operations:
                    visit(inner.operation)

    for op in module.body.operations:
        visit(op.operation)
    return names


def run_upstream(llvm_dialect_text, function, *arrays, opt_level=2):
    """JIT-compile an ``llvm``-dialect module with MLIR's ExecutionEngine and call one function.

    The function must carry ``attributes {llvm.emit_c_interface}`` (so MLIR
    emits a C entry point taking memref descriptors).

    Parameters
    ----------
    llvm_dialect_text : str
        The last stage of :func:`lower_upstream`.
    function : str
    *arrays : numpy.ndarray
        float64 arrays, one per memref argument, written in place.

    Returns
    -------
    tuple of numpy.ndarray
        The arrays after the call (the inputs themselves when they are contiguous float64).
    """
    from torch_mlir import execution_engine, ir
    from torch_mlir.runtime import get_ranked_memref_descriptor

    arrays = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in arrays)
    with ir.Context():
        engine = execution_engine.ExecutionEngine(ir.Module.parse(llvm_dialect_text), opt_level=opt_level)
        descriptors = [ctypes.pointer(ctypes.pointer(get_ranked_memref_descriptor(a))) for a in arrays]
        engine.invoke(function, *descriptors)
    return arrays
