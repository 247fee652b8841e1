"""LLVM through llvmlite: numba's IR before and after optimisation, the optimiser's switches, many targets.

Chapter 4 ("From code to silicon: compilers") uses these helpers to stand at
each level of the compiler: the IR numba hands to LLVM, the same IR after
LLVM's optimisation pipeline with one switch turned off at a time, the
assembly LLVM emits for several instruction sets from one module, and a dot
product written directly in LLVM IR with ``llvmlite.ir`` and run through MCJIT.

llvmlite 0.50 drives LLVM's new pass manager: a pipeline is chosen by a speed
level (0-3) and tuned by :data:`SWITCHES`, which are what
``PipelineTuningOptions`` exposes; single passes such as LICM are not switches.
"""

import contextlib
import ctypes
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

__all__ = ["CANDIDATE_TRIPLES", "SWITCHES", "Jitted", "available_targets", "capture_numba_ir", "compile_to_asm",
           "definition", "dot_module", "host_target_machine", "jit", "optimise"]

# The tuning options of llvmlite's PipelineTuningOptions that a page may switch, with LLVM's defaults at -O3.
SWITCHES = ("loop_vectorization", "slp_vectorization", "loop_unrolling", "loop_interleaving", "inlining_threshold")

# llvmlite has no call that lists the back ends it was built with, so we ask for each of LLVM's
# architectures by a triple and keep those that answer (see available_targets).
CANDIDATE_TRIPLES = {
    "x86-64": "x86_64-unknown-linux-gnu",
    "AArch64": "aarch64-unknown-linux-gnu",
    "ARM (32-bit)": "armv7-unknown-linux-gnueabihf",
    "RISC-V (64-bit)": "riscv64-unknown-linux-gnu",
    "PowerPC (64-bit LE)": "powerpc64le-unknown-linux-gnu",
    "WebAssembly": "wasm32-unknown-unknown",
    "NVPTX (NVIDIA GPUs)": "nvptx64-nvidia-cuda",
    "AMDGPU": "amdgcn-amd-amdhsa",
    "SystemZ": "s390x-unknown-linux-gnu",
    "MIPS (64-bit)": "mips64el-unknown-linux-gnuabi64",
    "SPARC (64-bit)": "sparcv9-unknown-linux-gnu",
    "LoongArch": "loongarch64-unknown-linux-gnu",
    "Hexagon": "hexagon-unknown-linux-musl",
}


def _initialise():
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


def host_target_machine(opt=3):
    """A target machine for this CPU (its name and features from LLVM's host detection).

    Parameters
    ----------
    opt : int
        Code generation level, 0-3.

    Returns
    -------
    llvmlite.binding.TargetMachine
    """
    _initialise()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                        opt=opt)


@contextlib.contextmanager
def capture_numba_ir():
    """Record the LLVM IR modules numba produces, before LLVM optimises them.

    numba's code library receives each module it generated through
    ``add_ir_module`` and optimises it there; while this context is open
    that method first keeps a copy of the text. Only compilations that happen
    inside the block are seen (numba caches compiled signatures).

    Yields
    ------
    list of str
        Filled with one IR text per module, in the order numba added them.

    Examples
    --------
    >>> import numba
    >>> with capture_numba_ir() as raw:
    ...     numba.njit("float64(float64)")(lambda x: x + 1.0)  # doctest: +ELLIPSIS
    CPUDispatcher(...)
    >>> any("fadd double" in text for text in raw)
    True
    """
    from numba.core import codegen

    original = codegen.CPUCodeLibrary.add_ir_module
    seen = []

    def recording(library, module):
        seen.append(str(module))
        return original(library, module)

    codegen.CPUCodeLibrary.add_ir_module = recording
    try:
        yield seen
    finally:
        codegen.CPUCodeLibrary.add_ir_module = original


def definition(ir_text, name_contains):
    """The ``define ... { ... }`` block of the first function whose name contains ``name_contains``.

    numba's modules hold the compiled function beside wrappers and helpers;
    a page shows only the function it discusses.

    Raises
    ------
    KeyError
        When no function defined in the text has such a name.
    """
    lines = str(ir_text).splitlines()
    for start, line in enumerate(lines):
        if line.startswith("define ") and name_contains in line.split("(", 1)[0]:
            end = next(i for i in range(start, len(lines)) if lines[i] == "}")
            return "\n".join(lines[start:end + 1])
    defined = [line.split("(", 1)[0].split()[-1] for line in lines if line.startswith("define ")]
    raise KeyError(f"no function defined here has {name_contains!r} in its name; defined: {defined}")


def optimise(ir_text, speed_level=3, target_machine=None, **switches):
    """Run LLVM's optimisation pipeline over IR text, with some of its switches changed.

    Parameters
    ----------
    ir_text : str
        LLVM IR (from :func:`dot_module`, numba, or any front end of this LLVM version).
    speed_level : int
        0-3, the ``-O`` level.
    target_machine : llvmlite.binding.TargetMachine, optional
        The machine whose costs guide the vectoriser; this CPU by default.
    **switches
        Any of :data:`SWITCHES`: booleans, and an int for ``inlining_threshold``.

    Returns
    -------
    llvmlite.binding.ModuleRef
        The optimised module.

    Raises
    ------
    ValueError
        For an unknown switch or a speed level outside 0-3.
    """
    unknown = sorted(set(switches) - set(SWITCHES))
    if unknown:
        raise ValueError(f"unknown switch(es) {unknown}; llvmlite's pipeline offers {list(SWITCHES)}")
    if speed_level not in (0, 1, 2, 3):
        raise ValueError(f"speed_level must be 0, 1, 2 or 3; got {speed_level!r}")
    target_machine = target_machine or host_target_machine()
    module = llvm.parse_assembly(str(ir_text))
    module.verify()
    options = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    for name, value in switches.items():
        setattr(options, name, value)
    builder = llvm.create_pass_builder(target_machine, options)
    builder.getModulePassManager().run(module, builder)
    return module


def available_targets(candidates=None):
    """The back ends this llvmlite was built with, found by asking for each candidate triple.

    Parameters
    ----------
    candidates : dict of str to str, optional
        Display name to target triple; :data:`CANDIDATE_TRIPLES` by default.

    Returns
    -------
    dict of str to str
        The candidates LLVM knows, in the same order.
    """
    _initialise()
    found = {}
    for name, triple in (candidates or CANDIDATE_TRIPLES).items():
        try:
            llvm.Target.from_triple(triple)
        except RuntimeError:  # "No available targets are compatible with triple ..."
            continue
        found[name] = triple
    return found


def compile_to_asm(ir_text, triple, cpu="", features="", opt=3, speed_level=3):
    """Optimise and compile IR for any target llvmlite ships, and return its assembly.

    The module's own triple and data layout are replaced by the target's, so
    one target-independent module can be compiled for all of them; the
    optimiser then runs with that target's costs (its vector width, say),
    as a compiler for that machine would run it.

    Parameters
    ----------
    ir_text : str
        LLVM IR with no target-specific intrinsics.
    triple : str
        E.g. ``"aarch64-unknown-linux-gnu"`` (see :func:`available_targets`).
    cpu, features : str
        LLVM's CPU name (``"neoverse-v1"``) and feature string; the target's
        baseline when empty.
    opt : int
        Code generation level, 0-3.
    speed_level : int or None
        The optimiser's level (see :func:`optimise`); None compiles the IR as it is.

    Returns
    -------
    str
    """
    _initialise()
    machine = llvm.Target.from_triple(triple).create_target_machine(cpu=cpu, features=features, opt=opt)
    module = llvm.parse_assembly(str(ir_text))
    module.triple = triple
    module.data_layout = str(machine.target_data)
    if speed_level is not None:
        module = optimise(str(module), speed_level, target_machine=machine)
    module.verify()
    return machine.emit_assembly(module)


def dot_module(fastmath=()):
    """A dot product written in LLVM IR with ``llvmlite.ir``: ``double dot(double* x, double* y, i64 n)``.

    Chapter 4's hand-written front end: one loop with a phi node for the index
    and one for the running sum.

    Parameters
    ----------
    fastmath : iterable of str
        LLVM fast-math flags for the multiply and add, e.g. ``("reassoc",)``
        so the vectoriser may reorder the sum, or ``("fast",)`` for all.

    Returns
    -------
    llvmlite.ir.Module
    """
    double, i64 = ir.DoubleType(), ir.IntType(64)
    module = ir.Module(name="handwritten_dot")
    function = ir.Function(module, ir.FunctionType(double, [double.as_pointer(), double.as_pointer(), i64]),
                           name="dot")
    x, y, n = function.args
    x.name, y.name, n.name = "x", "y", "n"
    entry, loop, done = (function.append_basic_block(name) for name in ("entry", "loop", "done"))

    builder = ir.IRBuilder(entry)
    builder.cbranch(builder.icmp_signed(">", n, i64(0)), loop, done)

    builder.position_at_end(loop)
    i = builder.phi(i64, name="i")
    total = builder.phi(double, name="total")
    product = builder.fmul(builder.load(builder.gep(x, [i])), builder.load(builder.gep(y, [i])),
                           name="product", flags=fastmath)
    new_total = builder.fadd(total, product, name="new_total", flags=fastmath)
    next_i = builder.add(i, i64(1), name="next_i")
    i.add_incoming(i64(0), entry)
    i.add_incoming(next_i, loop)
    total.add_incoming(double(0.0), entry)
    total.add_incoming(new_total, loop)
    builder.cbranch(builder.icmp_signed("<", next_i, n), loop, done)

    builder.position_at_end(done)
    result = builder.phi(double, name="result")
    result.add_incoming(double(0.0), entry)
    result.add_incoming(new_total, loop)
    builder.ret(result)
    return module


@dataclass
class Jitted:
    """A function compiled by MCJIT, callable like the ctypes function it wraps.

    The execution engine owns the machine code, so it is kept alive here for
    as long as the function is.
    """

    function: object
    engine: object
    name: str

    def __call__(self, *args):
        return self.function(*args)


def jit(module, name, restype, argtypes):
    """JIT-compile a module for this CPU with MCJIT and return one of its functions.

    Parameters
    ----------
    module : str, llvmlite.ir.Module or llvmlite.binding.ModuleRef
        The IR; a ModuleRef is optimised already (see :func:`optimise`) and is
        consumed (the engine owns it afterwards).
    name : str
        The function's symbol.
    restype, argtypes
        ctypes types of the result and the arguments.

    Returns
    -------
    Jitted

    Raises
    ------
    KeyError
        When the module defines no function of that name.
    """
    if not isinstance(module, llvm.ModuleRef):
        module = llvm.parse_assembly(str(module))
    module.verify()
    defined = [f.name for f in module.functions if not f.is_declaration]
    if name not in defined:
        raise KeyError(f"the module defines no function {name!r}; it defines {defined}")
    engine = llvm.create_mcjit_compiler(module, host_target_machine())
    engine.finalize_object()
    address = engine.get_function_address(name)
    return Jitted(ctypes.CFUNCTYPE(restype, *argtypes)(address), engine, name)
