"""book.asm: reading emitted code. Hand-written and LLVM-printed snippets, then numba's real output."""

import doctest

import llvmlite.binding as llvm
import numba
import numpy as np
import pytest

from book import asm

# One instruction each: (text, mnemonic, bits, operation, domain, packed). The lines marked "LLVM"
# are as llvmlite prints them for sapphirerapids/alderlake (AT&T by default, Intel with
# --x86-asm-syntax=intel); "objdump" lines as GNU objdump -d prints them (-M intel for Intel).
CASES = {
    "att packed": ("vaddpd %zmm1, %zmm2, %zmm3", "vaddpd", 512, "add", "float", True),
    "intel packed": ("vaddpd zmm3, zmm2, zmm1", "vaddpd", 512, "add", "float", True),
    "att masked broadcast (LLVM)": ("\tvaddpd\t(%rdi){1to8}, %zmm0, %zmm0 {%k1} {z}",
                                    "vaddpd", 512, "add", "float", True),
    "intel masked broadcast (LLVM)": ("\tvaddpd\tzmm0 {k1} {z}, zmm0, qword ptr [rdi]{1to8}",
                                      "vaddpd", 512, "add", "float", True),
    "att memory operand": ("\tvaddpd\t32(%rax,%rsi,8), %ymm1, %ymm1", "vaddpd", 256, "add", "float", True),
    "intel memory operand": ("vmulpd ymm1, ymm1, ymmword ptr [rax + 8*rsi]", "vmulpd", 256, "mul", "float", True),
    "avx scalar": ("vaddsd %xmm1, %xmm0, %xmm0", "vaddsd", 128, "add", "float", False),
    "sse scalar": ("addss %xmm1, %xmm0", "addss", 128, "add", "float", False),
    "sse packed": ("addps %xmm1, %xmm0", "addps", 128, "add", "float", True),
    "float32 multiply": ("vmulps %ymm1, %ymm2, %ymm3", "vmulps", 256, "mul", "float", True),
    "fma 132": ("vfmadd132pd %zmm1, %zmm2, %zmm3", "vfmadd132pd", 512, "fma", "float", True),
    "scalar fma (LLVM)": ("\tvfmadd213sd\t(%rdx,%rax,8), %xmm0, %xmm1", "vfmadd213sd", 128, "fma", "float", False),
    "negated fma": ("vfnmadd231ps zmm0, zmm1, zmm2", "vfnmadd231ps", 512, "fma", "float", True),
    "fused multiply-subtract": ("vfmsub231pd %ymm2, %ymm1, %ymm0", "vfmsub231pd", 256, "fma", "float", True),
    "vex vnni att (LLVM)": ("\t{vex}\tvpdpbusd\t%ymm2, %ymm1, %ymm0", "vpdpbusd", 256, "dot", "int", True),
    "vex vnni intel (LLVM)": ("\t{vex}\tvpdpbusd\tymm0, ymm1, ymm2", "vpdpbusd", 256, "dot", "int", True),
    "evex vnni": ("{evex} vpdpwssd %zmm2, %zmm1, %zmm0", "vpdpwssd", 512, "dot", "int", True),
    "amx tile dot": ("tdpbssd %tmm2, %tmm1, %tmm0", "tdpbssd", 0, "dot", "int", True),
    "sse4.1 dot": ("vdpps $0xff, %xmm1, %xmm0, %xmm0", "vdpps", 128, "dot", "float", True),
    "bf16 dot": ("vdpbf16ps zmm0, zmm1, zmm2", "vdpbf16ps", 512, "dot", "float", True),
    "integer add": ("vpaddd %ymm1, %ymm2, %ymm3", "vpaddd", 256, "add", "int", True),
    "integer multiply": ("vpmulld xmm0, xmm1, xmm2", "vpmulld", 128, "mul", "int", True),
    "pre-vnni multiply-add": ("vpmaddwd %zmm1, %zmm2, %zmm3", "vpmaddwd", 512, "madd", "int", True),
    "objdump att": ("  401126:\tc5 fd 58 04 f0       \tvaddpd (%rax,%rsi,8),%ymm0,%ymm0",
                    "vaddpd", 256, "add", "float", True),
    "objdump intel": ("  401126:\tc5 fd 58 04 f0       \tvaddpd ymm0,ymm0,YMMWORD PTR [rax+rsi*8]",
                      "vaddpd", 256, "add", "float", True),
    "objdump vex prefix": ("  40113a:\tc4 e2 75 50 c2       \t{vex} vpdpbusd %ymm2,%ymm1,%ymm0",
                           "vpdpbusd", 256, "dot", "int", True),
    "objdump aarch64": ("  4005d0:\t4e61d400 \tfadd\tv0.2d, v0.2d, v1.2d", "fadd", 128, "add", "float", True),
    "aarch64 packed": ("\tfadd\tv0.2d, v0.2d, v1.2d", "fadd", 128, "add", "float", True),
    "aarch64 64-bit vector": ("fmul v0.2s, v1.2s, v2.2s", "fmul", 64, "mul", "float", True),
    "aarch64 scalar": ("\tfadd\td0, d0, d1", "fadd", 0, "add", "float", False),
    "aarch64 fma by element": ("fmla v0.2d, v1.2d, v2.d[1]", "fmla", 128, "fma", "float", True),
    "apple aarch64 fma (LLVM)": ("\tfmla.2d\tv2, v0, v1", "fmla", 128, "fma", "float", True),
    "aarch64 dot (LLVM)": ("\tsdot\tv0.4s, v1.16b, v2.16b", "sdot", 128, "dot", "int", True),
    "vector move": ("\tvmovups\t%ymm0, 48(%rsp)", "vmovups", 256, None, None, False),
    "zeroing xor": ("vxorpd %xmm0, %xmm0, %xmm0", "vxorpd", 128, None, None, False),
    "loop counter": ("\taddq\t$16, %rsi", "addq", 0, None, None, False),
    "aarch64 integer add": ("add x0, x0, #16", "add", 0, None, None, False),
    "lock prefix (numba)": ("\tlock\t\tdecq\t(%rdi)", "decq", 0, None, None, False),
}


@pytest.mark.parametrize("text, mnemonic, bits, operation, domain, packed", CASES.values(), ids=CASES)
def test_one_instruction_is_classified(text, mnemonic, bits, operation, domain, packed):
    (found,) = asm.instructions(text)
    assert (found.mnemonic, found.bits, found.operation, found.domain, found.packed) == (
        mnemonic, bits, operation, domain, packed)


def test_operands_keep_masks_and_addresses_whole():
    (att,) = asm.instructions("vaddpd (%rax,%rsi,8){1to8}, %zmm2, %zmm3 {%k1} {z}")
    assert att.operands == ("(%rax,%rsi,8){1to8}", "%zmm2", "%zmm3 {%k1} {z}")
    assert att.registers == ("zmm2", "zmm3", "k1")
    (intel,) = asm.instructions("vmulpd zmm1, zmm1, zmmword ptr [rax]")
    assert intel.registers == ("zmm1", "zmm1")  # "zmmword" names a size, not a register
    (neon,) = asm.instructions("add x0, x0, #16")
    assert neon.operands == ("x0", "x0", "#16")  # an AArch64 immediate is not a comment


NUMBA_LIKE = """\
\t.text
\t.globl\tkernel
\t.type\tkernel,@function
kernel:
\ttestq\t%rcx, %rcx                     # %bb.0:
\tjle\t.LBB0_4
.LBB0_1:                                # =>This Loop Header: Depth=1
\tvmulpd\t(%rdi), %ymm1, %ymm1
.LBB0_2:                                # =>This Inner Loop Header: Depth=2
\tvaddpd\t(%rsi,%rax,8), %ymm0, %ymm0
\tvaddpd\t32(%rsi,%rax,8), %ymm2, %ymm2
\taddq\t$8, %rax
\tjne\t.LBB0_2
\tdecq\t%rcx
\tjne\t.LBB0_1
.LBB0_3:
\tvaddsd\t(%rsi,%rax,8), %xmm0, %xmm0
\tincq\t%rax
\tjne\t.LBB0_3
.LBB0_4:
\tvzeroupper
\tretq
.Lfunc_end0:
\t.size\tkernel, .Lfunc_end0-kernel
#MEMBARRIER
wrapper:
\tvmovups\t%zmm0, 48(%rsp)
\tcallq\t*%rax
\tretq
.const.name:
\t.asciz\t"kernel"
".const.a quoted label: with a colon":
\t.asciz\t"x"
"""


def test_directives_labels_and_comments_are_not_instructions():
    mnemonics = [i.mnemonic for i in asm.instructions(NUMBA_LIKE)]
    assert mnemonics == ["testq", "jle", "vmulpd", "vaddpd", "vaddpd", "addq", "jne", "decq", "jne",
                         "vaddsd", "incq", "jne", "vzeroupper", "retq", "vmovups", "callq", "retq"]


def test_functions_split_at_global_labels():
    found = asm.functions(NUMBA_LIKE)
    assert list(found) == ["kernel", "wrapper"]
    assert asm.summary(found["kernel"]).packed_float == {256: 3}
    assert "vmovups" in found["wrapper"] and "vaddpd" not in found["wrapper"]


def test_summary_counts_by_width_and_kind():
    text = "\n".join(["vaddpd %ymm1, %ymm0, %ymm0", "vaddpd %xmm1, %xmm0, %xmm0", "vaddsd %xmm1, %xmm0, %xmm0",
                      "vfmadd231pd %zmm1, %zmm2, %zmm3", "vfmadd231sd %xmm1, %xmm2, %xmm3",
                      "{vex} vpdpbusd %ymm2, %ymm1, %ymm0", "vpaddd %xmm1, %xmm2, %xmm3", "tdpbssd %tmm2, %tmm1, %tmm0",
                      "vmovapd %zmm0, %zmm1"])
    assert asm.summary(text) == asm.Summary(scalar_float=2, packed_float={128: 1, 256: 1, 512: 1},
                                            packed_int={128: 1, 256: 1}, fma=2, dot=2)
    assert asm.summary(text, operation="add") == asm.Summary(scalar_float=1, packed_float={128: 1, 256: 1},
                                                             packed_int={128: 1}, fma=0, dot=0)


def test_vector_bits_reads_arithmetic_not_moves():
    text = "vmovups %zmm0, (%rdi)\nvaddpd %ymm1, %ymm0, %ymm0\nvpaddq %zmm1, %zmm2, %zmm3"
    assert asm.vector_bits(text) == 256
    assert asm.vector_bits(text, kind="int") == 512
    assert asm.vector_bits(text, kind="any") == 512
    assert asm.vector_bits("vaddsd %xmm1, %xmm0, %xmm0\nvmovupd %ymm0, (%rdi)") == 0


def test_hottest_loop_is_the_innermost_loop_with_most_arithmetic():
    loop = asm.hottest_loop(NUMBA_LIKE).splitlines()
    assert loop[0].startswith(".LBB0_2:") and loop[-1] == "\tjne\t.LBB0_2"
    assert asm.summary("\n".join(loop)) == asm.Summary(0, {256: 2}, {}, 0, 0)


def test_hottest_loop_weighs_packed_work_above_an_unrolled_scalar_copy():
    # LLVM keeps a scalar copy of a vectorized loop for arrays that overlap, often unrolled further.
    vector = "\n".join([".LBB0_5:"] + ["\tvmulpd\t(%rdx,%rbx,8), %ymm0, %ymm0"] * 2 + ["\tjne\t.LBB0_5"])
    scalar = "\n".join([".LBB0_14:"] + ["\tvmulsd\t(%rdx,%rbx,8), %xmm0, %xmm0"] * 6 + ["\tjne\t.LBB0_14"])
    assert asm.hottest_loop(scalar + "\n" + vector) == vector
    assert asm.hottest_loop(vector + "\n" + scalar) == vector


def test_hottest_loop_of_a_disassembly_follows_addresses():
    dump = """\
0000000000401120 <sum>:
  401120:\tc5 f9 57 c0          \tvxorpd %xmm0,%xmm0,%xmm0
  401124:\tc5 fd 58 04 c7       \tvaddpd (%rdi,%rax,8),%ymm0,%ymm0
  401129:\t48 83 c0 04          \tadd    $0x4,%rax
  40112d:\t75 f5                \tjne    401124 <sum+0x4>
  40112f:\tc3                   \tret
"""
    assert list(asm.functions(dump)) == ["sum"]
    assert asm.hottest_loop(dump).splitlines()[0].endswith("vaddpd (%rdi,%rax,8),%ymm0,%ymm0")
    assert asm.vector_bits(asm.hottest_loop(dump)) == 256


def test_code_without_a_loop_is_refused():
    with pytest.raises(ValueError):
        asm.hottest_loop("vaddpd %ymm1, %ymm0, %ymm0\nretq")


@pytest.mark.parametrize("call", [asm.instructions, asm.summary, asm.vector_bits, asm.functions, asm.hottest_loop])
@pytest.mark.parametrize("value", [None, b"vaddpd %ymm0, %ymm0, %ymm0", {("float64[::1]",): "retq"}])
def test_text_is_required(call, value):
    with pytest.raises(TypeError):
        call(value)


def test_unknown_kind_and_operation_are_refused():
    with pytest.raises(ValueError):
        asm.vector_bits("retq", kind="double")
    with pytest.raises(ValueError):
        asm.summary("retq", operation="plus")


def test_docstring_examples():
    assert doctest.testmod(asm).failed == 0


@pytest.fixture(scope="module")
def numba_sums():
    """numba's assembly of the float64 sum, without and with fastmath (two compilations)."""
    def total(x):
        acc = 0.0
        for i in range(x.size):
            acc += x[i]
        return acc

    sample = np.ones(64)
    chain, fast = numba.njit(fastmath=False)(total), numba.njit(fastmath=True)(total)
    chain(sample), fast(sample)
    return chain.inspect_asm(chain.signatures[0]), fast.inspect_asm(fast.signatures[0])


def widest_vector_offered():
    """The widest vector registers LLVM may use on this CPU, from its feature list."""
    features = llvm.get_host_cpu_features()
    return 512 if features.get("avx512f") else 256 if features.get("avx") else 128


def test_numba_fastmath_sum_runs_on_packed_adds(numba_sums):
    _, fast = numba_sums
    loop = asm.hottest_loop(fast)
    adds = [i for i in asm.instructions(loop) if i.operation == "add"]
    assert adds and all(i.packed and i.domain == "float" for i in adds)
    bits = asm.vector_bits(loop)
    assert bits == max(i.bits for i in adds) and 128 <= bits <= widest_vector_offered()
    assert asm.vector_bits(fast) == bits  # the widest packed add of the function is in its hot loop
    assert asm.summary(next(iter(asm.functions(fast).values()))).packed_float.get(bits, 0) >= len(adds)


def test_numba_chain_sum_is_scalar(numba_sums):
    chain, _ = numba_sums
    assert asm.vector_bits(chain) == 0
    loop = asm.summary(asm.hottest_loop(chain))
    assert loop.scalar_float >= 1 and loop.packed_float == {}
    assert len(asm.functions(chain)) >= 2  # the compiled function and numba's wrappers
