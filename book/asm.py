"""Read the machine code a compiler emitted: which arithmetic, on how wide registers.

Chapter 2 ("What makes computation fast") and chapter 1 ("Lists vs arrays")
use it to say what numba's loops actually do, so that no sentence infers the
vector width from the CPU's feature list: a CPU with AVX-512 may still run a
loop on 256-bit ``ymm`` registers, because the compiler chose to.

The input is assembly text, as numba's ``dispatcher.inspect_asm(signature)``
returns it, or a disassembly from ``objdump -d`` / ``llvm-objdump -d``. Both
x86 syntaxes are read (AT&T ``vaddpd %ymm1, %ymm2, %ymm3`` and Intel
``vaddpd ymm3, ymm2, ymm1``), with ``{vex}``/``{evex}`` pseudo-prefixes,
masks (``{%k1} {z}``) and broadcasts (``(%rax){1to8}``), as is AArch64 NEON
(``fadd v0.2d, ...`` and Apple's ``fadd.2d v0, ...``). SVE's scalable ``z``
registers have no width in the code, so SVE arithmetic is not classified.
"""

import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["OPERATIONS", "Instruction", "Summary", "functions", "hottest_loop", "instructions", "summary",
           "vector_bits"]

# x86 floating-point arithmetic: <op><p|s><s|d|h>, e.g. vaddpd, addss, vfmadd231ps, vdpbf16ps.
_X86_FLOAT = re.compile(
    r"v?(?P<op>addsub|add|sub|mul|div|sqrt|min|max|rcp(?:14|28)?|rsqrt(?:14|28)?|hadd|hsub"
    r"|f(?:n?madd|n?msub|maddsub|msubadd)(?:132|213|231)?|dp(?:bf16)?)(?P<form>[ps])[sdh]")
# x86 integer SIMD arithmetic (always packed): vpaddd, vpmulld, pmaddwd, VNNI's vpdpbusd.
_X86_INT = re.compile(
    r"v?p(?P<op>(?:add|sub)(?:u?s)?[bwdq]|mul(?:l[wdq]|hu?w|hrsw|u?dq)|madd(?:wd|ubsw|52[lh]uq)"
    r"|dp[bw][su][su]ds?|(?:min|max)[su][bwdq]|abs[bwdq])")
# AMX tile dot products; tiles are not vector registers, so they have no vector width.
_AMX_DOT = re.compile(r"tdp(?P<type>b[su][su]d|bf16ps|fp16ps)")
_A64_FLOAT = {"fadd": "add", "faddp": "add", "fsub": "sub", "fmul": "mul", "fmulx": "mul", "fnmul": "mul",
              "fdiv": "div", "fsqrt": "sqrt", "fmin": "min", "fminnm": "min", "fmax": "max", "fmaxnm": "max",
              "fmla": "fma", "fmls": "fma", "fmadd": "fma", "fmsub": "fma", "fnmadd": "fma", "fnmsub": "fma",
              "bfdot": "dot", "fdot": "dot", "bfmmla": "dot"}
_A64_INT = {"add": "add", "addp": "add", "sub": "sub", "mul": "mul", "mla": "madd", "mls": "madd",
            "sdot": "dot", "udot": "dot", "usdot": "dot", "sudot": "dot",
            "smmla": "dot", "ummla": "dot", "usmmla": "dot"}
OPERATIONS = ("add", "sub", "mul", "div", "sqrt", "min", "max", "abs", "rcp", "rsqrt", "addsub", "hadd", "hsub",
              "fma", "madd", "dot")

_REGISTER = re.compile(r"(?<![\w.$])%?(?P<name>[xyz]mm\d+|tmm\d|mm\d|k[0-7]|[vq]\d+|[bhsdz]\d+)"
                       r"(?P<arrangement>\.\d*[bhsdq](?:\[\d+\])?)?(?![\w$])", re.IGNORECASE)
_X86_BITS = {"xmm": 128, "ymm": 256, "zmm": 512, "mm": 64}
_ELEMENT_BITS = {"b": 8, "h": 16, "s": 32, "d": 64, "q": 128}
# Prefixes written before the mnemonic: assembler hints such as {vex}, and x86 legacy prefixes.
_PREFIXES = {"lock", "rep", "repe", "repz", "repne", "repnz", "notrack", "bnd", "data16", "data32",
             "addr16", "addr32", "xacquire", "xrelease", "cs", "ds", "es", "fs", "gs", "ss", "rex", "rex.w"}
_MNEMONIC = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9]+)?")
_A64_ARRANGEMENT = re.compile(r"(?P<mnemonic>[a-z0-9]+)\.(?P<arrangement>\d+[bhsdq])")
_BRANCH = re.compile(r"j[a-z]+|loop[a-z]*|b|b\.[a-z]+|b[a-z]{2}|cbn?z|tbn?z")
# objdump: "  401126:\tc5 fd 58 04 f0 \tvaddpd ..." (x86 bytes) or "  4005d0:\t1e602820 \tfadd ..." (AArch64).
_OBJDUMP_LINE = re.compile(r"\s*(?P<address>(?=[0-9a-f]*\d)[0-9a-f]+):\s+"
                           r"(?:(?:[0-9a-f]{2} )+|[0-9a-f]{8}\s)?\s*(?P<rest>.*)")
_OBJDUMP_FUNCTION = re.compile(r"[0-9a-f]+ <(?P<name>[^>]+)>:\s*")
_LABEL = re.compile(r"\s*(?P<name>\"[^\"]+\"|[\w.$@]+):\s*")
# Assembler-local labels: ELF's .L*, Mach-O's L*/ltmp*, numba's .const.* data, quoted names.
_LOCAL_LABEL = re.compile(r"\.|\"|[Ll](?:BB|tmp|func_end|CPI|JTI|loh)")


@dataclass(frozen=True)
class Instruction:
    """One instruction of assembly text, as :func:`instructions` reads it.

    Attributes
    ----------
    mnemonic : str
        Lower case, without prefixes such as ``{vex}`` or ``lock`` and without
        Apple's arrangement suffix (``fmla.2d`` is ``fmla``).
    operands : tuple of str
        As written, split at the commas between operands.
    registers : tuple of str
        The SIMD and floating-point registers named (``ymm0``, ``k1``, ``v0.2d``,
        ``d1``), lower case; general-purpose registers are left out.
    bits : int
        Width of the widest vector register named (64, 128, 256 or 512), 0 if none.
    operation : str or None
        The arithmetic done, one of ``OPERATIONS`` (``"fma"`` for fused
        multiply-adds, ``"dot"`` for dot-product instructions, ``"madd"`` for
        integer multiply-and-add-pairs such as ``pmaddwd``); None for
        anything else (moves, logic, shuffles, branches, scalar integer code).
    domain : str or None
        ``"float"`` or ``"int"`` for arithmetic, None otherwise.
    packed : bool
        True for arithmetic on several values at once (``vaddpd``), False for
        scalar (``vaddsd``) and for non-arithmetic.
    line : int
        Index of the instruction's line in ``asm.splitlines()``.
    address : str or None
        The address a disassembly printed before the instruction, else None.
    """

    mnemonic: str
    operands: tuple
    registers: tuple
    bits: int
    operation: str | None
    domain: str | None
    packed: bool
    line: int
    address: str | None = None


@dataclass(frozen=True)
class Summary:
    """Counts of arithmetic instructions in assembly text (see :func:`summary`).

    Attributes
    ----------
    scalar_float : int
        Floating-point instructions on one value (``vaddsd``, ``fadd d0, ...``).
    packed_float : dict of int to int
        Packed floating-point instructions by register width in bits.
    packed_int : dict of int to int
        Integer SIMD instructions by register width in bits.
    fma : int
        Fused multiply-adds, packed or scalar (``vfmadd231pd``, ``fmla``).
    dot : int
        Dot-product instructions: VNNI (``vpdpbusd``), AMX (``tdpbssd``),
        ``vdpps``, ``vdpbf16ps``, AArch64 ``sdot``/``udot``/``bfdot``/``smmla``.
    """

    scalar_float: int
    packed_float: dict
    packed_int: dict
    fma: int
    dot: int


def _require_text(asm):
    if isinstance(asm, dict):
        raise TypeError("asm must be assembly text (str), got a dict: numba's inspect_asm() without a signature "
                        "returns one text per signature, so pass one of its values or inspect_asm(signature)")
    if not isinstance(asm, str):
        raise TypeError(f"asm must be assembly text (str), got {type(asm).__name__}")


def _strip_comment(text):
    text = re.split(r"//|;", text, maxsplit=1)[0]  # AArch64 ELF and Mach-O comments
    if text.lstrip().startswith("#"):  # "# %bb.0:", "#APP", "#MEMBARRIER"
        return ""
    # x86's "# comment" after an instruction; AArch64 immediates (#16) have no space after the '#'.
    return re.sub(r"\s#(?:\s.*)?$", "", text).strip()


def _split_operands(text):
    """Split at commas outside (), [] and {}: AT&T addresses like (%rax,%rsi,8) hold commas."""
    operands, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            operands.append(text[start:i].strip())
            start = i + 1
    last = text[start:].strip()
    return tuple(operands + [last] if last or operands else operands)


def _register_bits(name, arrangement):
    for prefix, bits in _X86_BITS.items():
        if name.startswith(prefix):
            return bits
    if name.startswith("q"):
        return 128
    if name.startswith("v") and arrangement and arrangement[0].isdigit():
        lanes = int(re.match(r"\d+", arrangement).group())
        return lanes * _ELEMENT_BITS[arrangement.lstrip("0123456789")[0]]
    return 0


def _classify(mnemonic, registers):
    """(operation, domain, packed) of one instruction; (None, None, False) if it is not arithmetic."""
    x86_float = _X86_FLOAT.fullmatch(mnemonic)
    if x86_float:
        op = x86_float["op"]
        op = "fma" if op.startswith("f") else "dot" if op.startswith("dp") else op.rstrip("0123456789")
        return op, "float", x86_float["form"] == "p"
    x86_int = _X86_INT.fullmatch(mnemonic)
    if x86_int:
        op = x86_int["op"]
        return (next(name for name in ("add", "sub", "mul", "madd", "min", "max", "abs") if op.startswith(name))
                if not op.startswith("dp") else "dot"), "int", True
    amx = _AMX_DOT.fullmatch(mnemonic)
    if amx:
        return "dot", "int" if amx["type"].startswith("b") else "float", True
    vector = any(re.fullmatch(r"v\d+\.\d+[bhsdq]|q\d+", r) for r in registers)
    if mnemonic in _A64_FLOAT:
        if vector:
            return _A64_FLOAT[mnemonic], "float", True
        if registers and re.fullmatch(r"[hsd]\d+", registers[0]):
            return _A64_FLOAT[mnemonic], "float", False
    if mnemonic in _A64_INT and vector:
        return _A64_INT[mnemonic], "int", True
    return None, None, False


def _parse_instruction(text, line, address):
    words = text.split(None, 1)
    while words and (words[0].startswith("{") or words[0].lower() in _PREFIXES):
        words = words[1].split(None, 1) if len(words) > 1 else []
    if not words or not _MNEMONIC.fullmatch(words[0].lower()):
        return None
    mnemonic, arrangement = words[0].lower(), None
    apple = _A64_ARRANGEMENT.fullmatch(mnemonic)
    if apple:  # Apple's AArch64 syntax: fmla.2d v2, v0, v1
        mnemonic, arrangement = apple["mnemonic"], apple["arrangement"]
    operands = _split_operands(words[1]) if len(words) > 1 else ()
    found = [(m["name"].lower(), (m["arrangement"] or "").lower().lstrip(".") or arrangement)
             for operand in operands for m in _REGISTER.finditer(operand)]
    registers = tuple(f"{name}.{arr}" if arr and name.startswith("v") else name for name, arr in found)
    bits = max((_register_bits(name, arr) for name, arr in found), default=0)
    operation, domain, packed = _classify(mnemonic, registers)
    return Instruction(mnemonic, operands, registers, bits, operation, domain, packed, line, address)


def _parse(asm):
    """Labels {name: line}, the lines that start functions, and the instructions of assembly text."""
    _require_text(asm)
    labels, function_lines, found = {}, set(), []
    for line, raw in enumerate(asm.splitlines()):
        header = _OBJDUMP_FUNCTION.fullmatch(raw)
        if header:  # a disassembly's "0000000000401120 <main>:" always starts a function
            labels[header["name"]] = line
            function_lines.add(line)
            continue
        address = None
        dumped = _OBJDUMP_LINE.fullmatch(raw)
        if dumped:
            address, raw = dumped["address"], dumped["rest"]
        text = _strip_comment(raw)
        label = _LABEL.fullmatch(text)
        if label:
            labels[label["name"]] = line
            if not _LOCAL_LABEL.match(label["name"]):
                function_lines.add(line)
        elif text and not text.startswith((".", '"')):
            instruction = _parse_instruction(text, line, address)
            if instruction:
                found.append(instruction)
    return labels, function_lines, found


def instructions(asm):
    """The instructions of assembly text, classified.

    Parameters
    ----------
    asm : str
        Assembly text: numba's ``dispatcher.inspect_asm(signature)``, or an
        ``objdump -d`` / ``llvm-objdump -d`` disassembly; x86 (AT&T or Intel
        syntax) or AArch64.

    Returns
    -------
    list of Instruction
        In the order of the text; directives, labels and comments are left out.

    Examples
    --------
    >>> [(i.mnemonic, i.bits, i.packed) for i in instructions("{vex} vpdpbusd %ymm2, %ymm1, %ymm0")]
    [('vpdpbusd', 256, True)]
    """
    return _parse(asm)[2]


def summary(asm, operation=None):
    """Count the arithmetic instructions in assembly text: packed or scalar, by width, FMA, dot products.

    Parameters
    ----------
    asm : str
        Assembly text (see :func:`instructions`).
    operation : str, optional
        Count only this operation, one of ``OPERATIONS`` (e.g. ``"add"`` or
        ``"mul"``); by default every arithmetic instruction.

    Returns
    -------
    Summary

    Examples
    --------
    >>> summary("vaddpd %ymm1, %ymm0, %ymm0\\nvaddsd %xmm1, %xmm0, %xmm0\\nvfmadd231pd %zmm1, %zmm2, %zmm3")
    Summary(scalar_float=1, packed_float={256: 1, 512: 1}, packed_int={}, fma=1, dot=0)
    """
    if operation is not None and operation not in OPERATIONS:
        raise ValueError(f"operation must be None or one of {', '.join(OPERATIONS)}; got {operation!r}")
    counted = [i for i in instructions(asm) if i.operation and operation in (None, i.operation)]
    packed = {domain: Counter(i.bits for i in counted if i.packed and i.domain == domain and i.bits)
              for domain in ("float", "int")}
    return Summary(scalar_float=sum(i.domain == "float" and not i.packed for i in counted),
                   packed_float=dict(sorted(packed["float"].items())),
                   packed_int=dict(sorted(packed["int"].items())),
                   fma=sum(i.operation == "fma" for i in counted),
                   dot=sum(i.operation == "dot" for i in counted))


def vector_bits(asm, kind="float"):
    """The widest vector register that packed arithmetic in the code uses.

    This is what the compiler chose, which can be narrower than what the CPU
    offers (chapter 2 compares the two).

    Parameters
    ----------
    asm : str
        Assembly text (see :func:`instructions`).
    kind : {"float", "int", "any"}
        Which packed arithmetic to look at: floating-point, integer SIMD, or both.

    Returns
    -------
    int
        128, 256 or 512 on x86 (xmm, ymm, zmm), 64 or 128 on AArch64 NEON;
        0 when the code has no packed arithmetic of that kind.

    Examples
    --------
    >>> vector_bits("vaddpd (%rax){1to8}, %zmm0, %zmm0 {%k1} {z}")
    512
    >>> vector_bits("vaddsd xmm0, xmm0, qword ptr [rax]")
    0
    """
    if kind not in ("float", "int", "any"):
        raise ValueError(f'kind must be "float", "int" or "any"; got {kind!r}')
    counts = summary(asm)
    widths = {"float": counts.packed_float, "int": counts.packed_int,
              "any": {**counts.packed_float, **counts.packed_int}}[kind]
    return max(widths, default=0)


def functions(asm):
    """Split assembly text into its functions.

    numba's ``inspect_asm`` holds the compiled function first, then its
    wrappers (``_ZN7cpython…`` for calls from Python, ``cfunc.…``) and
    runtime helpers such as ``NRT_decref``.

    Parameters
    ----------
    asm : str
        Assembly text (see :func:`instructions`).

    Returns
    -------
    dict of str to str
        Each function's name (as the text spells it, mangled) and its lines,
        in the order of the text. Labels without instructions (data) are left
        out; text with no function label gives an empty dict.
    """
    labels, function_lines, found = _parse(asm)
    lines = asm.splitlines()
    starts = sorted((line, name) for name, line in labels.items() if line in function_lines)
    bounds = [line for line, _ in starts] + [len(lines)]
    return {name: "\n".join(lines[start:end]) for (start, name), end in zip(starts, bounds[1:])
            if any(start < i.line < end for i in found)}


def hottest_loop(asm):
    """The innermost loop that does the most arithmetic per pass: normally the loop that runs most.

    A loop is the span from a label (or, in a disassembly, an address) to a
    later branch back to it; innermost means it holds no other loop. Its
    arithmetic is weighed by register width, a packed 256-bit add counting
    as four scalar ones, so a vectorized loop outweighs the unrolled scalar
    copy that compilers keep for overlapping arrays. Read from the code
    alone, this is a guess at what runs most, and a good one for the
    compiled loops of this book's kernels.

    Parameters
    ----------
    asm : str
        Assembly text (see :func:`instructions`).

    Returns
    -------
    str
        The loop's lines, from its label to the branch back.

    Raises
    ------
    ValueError
        If the code has no loop.
    """
    labels, _, found = _parse(asm)
    targets = {**{i.address: i.line for i in found if i.address}, **labels}
    loops = []
    for branch in found:
        if _BRANCH.fullmatch(branch.mnemonic) and branch.operands:
            target = targets.get(branch.operands[-1].split()[0].removeprefix("0x"))
            if target is not None and target <= branch.line:
                loops.append((target, branch.line))
    innermost = [(start, end) for start, end in loops
                 if not any(start <= s and e <= end and (s, e) != (start, end) for s, e in loops)]
    if not innermost:
        raise ValueError("the assembly has no loop (no branch back to an earlier label or address)")
    def work(span):
        return sum(i.bits if i.packed and i.bits else 64 for i in found
                   if i.operation and span[0] <= i.line <= span[1])

    start, end = max(innermost, key=work)
    return "\n".join(asm.splitlines()[start:end + 1])
