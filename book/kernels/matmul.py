"""The matrix-multiply ladder: from three nested loops to a packed, register-blocked, parallel kernel.

The chapter "Loop optimizations" climbs it one step at a time and times every
step against NumPy's BLAS in the same run; Lab 6 and later chapters use
:func:`matmul`, the last step behind a checked front door. Every step computes
``c = a @ b`` for 2-D float arrays and returns a new C-ordered array.

1. :func:`matmul_ijk`: the textbook order; the inner loop walks down a column of ``b``.
2. :func:`matmul_ikj`: loop interchange; the inner loop walks along rows, so it vectorizes.
3. :func:`matmul_tiled`: cache tiling; the loops walk tile by tile so a tile of ``b`` is reused from cache.
4. :func:`matmul_register_blocked`: a micro-kernel keeps an ``MR x NR`` block of ``c`` in registers
   (its inputs packed once into panels, so it reads them with unit stride).
5. :func:`matmul_packed`: cache blocking around the micro-kernel: panels of ``a`` and ``b`` packed
   block by block, each block sized for a cache level.
6. :func:`matmul_parallel`: step 5 with its blocks of rows spread over threads (``prange``).

Steps 4 to 6 run the micro-kernel through one generated macro-kernel (:func:`macrokernel_source`):
the loops over the blocks of ``c``, the micro-kernel inline, a prefetch of each block's rows of ``c``
and the update of ``c``; :func:`ladder_top` builds the three steps around it.

:func:`conv2d_im2col` lowers a 2-D convolution to one call of :func:`matmul` through
:func:`im2col`; :func:`conv2d_direct` is the loop nest it is checked against.

Tests: ``tests/test_kernels_matmul.py``.
"""

import functools

import numba
import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import cgutils, types
from numba.extending import intrinsic

from book import hardware

__all__ = ["KC", "MC", "MR", "NC", "NR", "LADDER", "block_sizes", "compile_macrokernel", "compile_microkernel",
           "conv2d_direct", "conv2d_im2col", "im2col", "ladder_top", "macrokernel_source", "matmul", "matmul_ijk",
           "matmul_ikj", "matmul_packed", "matmul_parallel", "matmul_register_blocked", "matmul_tiled",
           "microkernel_source", "prefetch"]

@numba.njit
def matmul_ijk(a, b):
    """Step 1: ``c[i, j] = sum over p of a[i, p] * b[p, j]``, in the order the formula is written.

    The inner loop reads ``b`` down a column, one cache line per value for a
    C-ordered ``b``, and adds into one scalar: a chain the core cannot overlap.
    """
    m, k = a.shape
    n = b.shape[1]
    c = np.zeros((m, n), a.dtype)
    for i in range(m):
        for j in range(n):
            total = c[i, j]
            for p in range(k):
                total += a[i, p] * b[p, j]
            c[i, j] = total
    return c


@numba.njit(fastmath={"contract"})
def matmul_ikj(a, b):
    """Step 2, loop interchange: for each ``a[i, p]``, add ``a[i, p] * b[p, :]`` to the row ``c[i, :]``.

    The inner loop now walks rows of ``b`` and ``c`` with unit stride and its
    iterations are independent, so LLVM vectorizes it (and fuses the multiply
    and add into an FMA, which ``contract`` allows).
    """
    m, k = a.shape
    n = b.shape[1]
    c = np.zeros((m, n), a.dtype)
    for i in range(m):
        for p in range(k):
            aip = a[i, p]
            for j in range(n):
                c[i, j] += aip * b[p, j]
    return c


@numba.njit(fastmath={"contract"})
def matmul_tiled(a, b, tile_i=64, tile_k=128, tile_j=256):
    """Step 3, cache tiling: step 2's loops run inside tiles; the outer loops walk between tiles.

    A ``tile_k x tile_j`` tile of ``b`` is read ``tile_i`` times while it sits
    in cache, instead of once per row of ``a`` from further away. The tile
    sizes need not divide the matrix sizes.
    """
    m, k = a.shape
    n = b.shape[1]
    if tile_i < 1 or tile_k < 1 or tile_j < 1:
        raise ValueError("tile sizes must be positive")
    c = np.zeros((m, n), a.dtype)
    for i0 in range(0, m, tile_i):
        for p0 in range(0, k, tile_k):
            for j0 in range(0, n, tile_j):
                width = min(tile_j, n - j0)
                for i in range(i0, min(i0 + tile_i, m)):
                    crow = c[i, j0:j0 + width]
                    for p in range(p0, min(p0 + tile_k, k)):
                        aip = a[i, p]
                        brow = b[p, j0:j0 + width]
                        # Counting from 0 over row views keeps the index provably
                        # non-negative, so the loop vectorizes as step 2's does.
                        for j in range(width):
                            crow[j] += aip * brow[j]
    return c


def _micro_lines(mr, nr, a_panel, b_panel):
    """The micro-kernel's body: zeroed accumulators, then the loop over ``p`` that updates them.

    ``a_panel`` and ``b_panel`` open the indexing of the packed panels (``"ap["`` for a 1-D
    panel, ``"ap[qa, "`` for a row of a 2-D array of panels)."""
    lines = [f"{', '.join(f'c{i}_{j}' for j in range(nr))} = {', '.join(['zero'] * nr)}" for i in range(mr)]
    lines.append("for p in range(kc):")
    lines += [f"    b{j} = {b_panel}p * {nr} + {j}]" for j in range(nr)]
    for i in range(mr):
        lines.append(f"    a = {a_panel}p * {mr} + {i}]")
        lines += [f"    c{i}_{j} += a * b{j}" for j in range(nr)]
    return lines


def microkernel_source(mr, nr):
    """Python source of the ``mr x nr`` micro-kernel ``micro_<mr>x<nr>(ap, bp, kc, out)``.

    ``ap`` holds ``kc`` columns of ``mr`` values of ``a`` one after the other
    (``ap[p * mr + i] = a[i, p]``), ``bp`` holds ``kc`` rows of ``nr`` values
    of ``b`` (``bp[p * nr + j] = b[p, j]``); the kernel adds ``kc`` outer
    products of a column and a row and writes the ``mr x nr`` block row by row
    into ``out``.

    Why it is written out instead of looped: each ``c{i}_{j}`` is a scalar
    that LLVM keeps in a register for the whole loop over ``p``, which a small
    array would not be. The superword-level-parallelism (SLP) vectorizer then
    packs the ``nr`` scalars of a row into vector registers: one step of ``p``
    loads ``nr / width`` vectors of ``b``, broadcasts ``mr`` values of ``a``
    and issues ``mr * nr / width`` vector FMAs.
    """
    if mr < 1 or nr < 1:
        raise ValueError(f"the micro-kernel needs mr, nr >= 1; got {mr}, {nr}")
    lines = [f"def micro_{mr}x{nr}(ap, bp, kc, out):",
             "    out[0] = 0",
             "    zero = out[0]  # a zero of the arrays' dtype"]
    lines += ["    " + line for line in _micro_lines(mr, nr, "ap[", "bp[")]
    lines += [f"    out[{i * nr + j}] = c{i}_{j}" for i in range(mr) for j in range(nr)]
    return "\n".join(lines) + "\n"


def macrokernel_source(mr, nr, prefetch_c=True):
    """Python source of ``macro_<mr>x<nr>(ap, bp, kc, c, i0, j0, mc, nc, out)``: the micro-kernel run
    over every ``mr x nr`` block of ``c[i0:i0+mc, j0:j0+nc]``, adding ``ap``'s panels times ``bp``'s.

    ``ap[q]`` is the ``q``-th panel of ``mr`` rows of ``a`` and ``bp[q]`` the ``q``-th panel of
    ``nr`` columns of ``b``, each packed as :func:`microkernel_source` reads them. For each block
    the kernel

    - prefetches the block's ``mr`` rows of ``c`` (unless ``prefetch_c`` is false), so that they
      arrive while the loop over ``p`` runs: these rows are ``n`` values apart, a stride the
      hardware prefetcher does not follow from one block to the next. Both ends of each row are
      prefetched because a row of ``nr`` values can straddle two cache lines;
    - runs the micro-kernel's loop inline (no call, no array views made per block);
    - adds the accumulators into ``c``: straight from registers, row by row, for a whole block
      (the SLP vectorizer turns each row into vector adds); through ``out`` and a loop clipped to
      ``c`` for a block on the right or bottom edge.
    """
    if mr < 1 or nr < 1:
        raise ValueError(f"the macro-kernel needs mr, nr >= 1; got {mr}, {nr}")
    body = "            "
    lines = [f"def macro_{mr}x{nr}(ap, bp, kc, c, i0, j0, mc, nc, out):",
             "    out[0] = 0",
             "    zero = out[0]  # a zero of the arrays' dtype",
             "    last_row, last_col = c.shape[0] - 1, c.shape[1] - 1",
             f"    for jr in range(0, nc, {nr}):",
             f"        for ir in range(0, mc, {mr}):",
             body + f"qa, qb = ir // {mr}, jr // {nr}"]
    if prefetch_c:
        lines += [body + f"prefetch(c, min(i0 + ir + {i}, last_row), {col})" for i in range(mr)
                  for col in ("j0 + jr", f"min(j0 + jr + {nr - 1}, last_col)")]
    lines += [body + line for line in _micro_lines(mr, nr, "ap[qa, ", "bp[qb, ")]
    lines.append(body + f"if i0 + ir + {mr} <= c.shape[0] and j0 + jr + {nr} <= c.shape[1]:")
    for i in range(mr):
        lines.append(body + f"    row = c[i0 + ir + {i}, j0 + jr:j0 + jr + {nr}]")
        lines += [body + f"    row[{j}] += c{i}_{j}" for j in range(nr)]
    lines.append(body + "else:")
    lines += [body + f"    out[{i * nr + j}] = c{i}_{j}" for i in range(mr) for j in range(nr)]
    lines += [body + f"    for i in range(min({mr}, c.shape[0] - i0 - ir)):",
              body + "        row = c[i0 + ir + i]",
              body + f"        for j in range(min({nr}, c.shape[1] - j0 - jr)):",
              body + f"            row[j0 + jr + j] += out[i * {nr} + j]"]
    return "\n".join(lines) + "\n"


@intrinsic
def prefetch(typingctx, array, i, j):
    """``prefetch(array, i, j)`` inside njit code: ask the CPU to bring the cache line holding
    ``array[i, j]`` (a 2-D array; no bounds check) towards L1, to be written.

    LLVM's ``llvm.prefetch`` intrinsic, which numba does not expose; the back end picks the
    instruction (``prefetchw`` on an x86 CPU that has it, ``prfm`` on AArch64). A prefetch has no
    result and never faults.
    """
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        data = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, data, args[1:], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        hint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                              "llvm.prefetch.p0")
        # write access, high temporal locality (keep it in every level), data cache
        builder.call(hint, [builder.bitcast(pointer, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    if not (isinstance(array, types.Array) and array.ndim == 2 and isinstance(i, types.Integer)
            and isinstance(j, types.Integer)):
        return None
    return types.void(array, i, j), codegen


def _compile_slp(source, name, signature):
    """Compile generated ``source``'s function ``name`` for one signature, with LLVM's SLP vectorizer on.

    numba compiles with the SLP vectorizer off (``numba.config.SLP_VECTORIZE``,
    default 0) and only the loop vectorizer on, which vectorizes innermost
    loops, not straight-line code like the micro-kernel's body. The setting is
    read when a function is compiled, so it is switched on for this one
    compilation (eager, for one signature) and restored.
    """
    namespace = {"prefetch": prefetch}
    exec(source, namespace)
    saved = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        return numba.njit([signature], fastmath={"contract"})(namespace[name])
    finally:
        numba.config.SLP_VECTORIZE = saved


def compile_microkernel(mr, nr, dtype):
    """Compile :func:`microkernel_source` for one dtype (with :func:`_compile_slp`)."""
    vector = numba.from_dtype(np.dtype(dtype))[::1]
    return _compile_slp(microkernel_source(mr, nr), f"micro_{mr}x{nr}",
                        numba.void(vector, vector, numba.int64, vector))


@functools.cache
def _macrokernel(mr, nr, dtype, prefetch_c):
    scalar = numba.from_dtype(dtype)
    panels, i64 = scalar[:, ::1], numba.int64
    return _compile_slp(macrokernel_source(mr, nr, prefetch_c), f"macro_{mr}x{nr}",
                        numba.void(panels, panels, i64, panels, i64, i64, i64, i64, scalar[::1]))


def compile_macrokernel(mr, nr, dtype, prefetch_c=True):
    """Compile :func:`macrokernel_source` for one dtype (with :func:`_compile_slp`), once per arguments."""
    return _macrokernel(mr, nr, np.dtype(dtype), bool(prefetch_c))


@numba.njit
def _pack_a(a, i0, mc, p0, kc, mr, ap):
    """Copy ``a[i0:i0+mc, p0:p0+kc]`` into panels of ``mr`` rows.

    ``ap[r, p * mr + i] = a[i0 + r*mr + i, p0 + p]``; rows past ``mc`` are zeros, so the
    micro-kernel needs no edge case. A whole panel takes the loop without a test per value."""
    for r in range(ap.shape[0]):
        first = i0 + r * mr
        if r * mr + mr <= mc:
            for p in range(kc):
                for i in range(mr):
                    ap[r, p * mr + i] = a[first + i, p0 + p]
        else:
            for p in range(kc):
                for i in range(mr):
                    ap[r, p * mr + i] = a[first + i, p0 + p] if r * mr + i < mc else 0


@numba.njit
def _pack_b(b, p0, kc, j0, nc, nr, bp):
    """Copy ``b[p0:p0+kc, j0:j0+nc]`` into panels of ``nr`` columns.

    ``bp[r, p * nr + j] = b[p0 + p, j0 + r*nr + j]``; columns past ``nc`` are zeros. It copies 8 rows
    of ``b`` at a time, each read along its length, so that a visit to a panel writes 8 * ``nr``
    consecutive values instead of ``nr``: fewer streams of writes open at once."""
    for q in range(0, kc, 8):
        for r in range(bp.shape[0]):
            first = j0 + r * nr
            panel = bp[r]
            for p in range(q, min(q + 8, kc)):
                row = b[p0 + p]
                if r * nr + nr <= nc:
                    for j in range(nr):
                        panel[p * nr + j] = row[first + j]
                else:
                    for j in range(nr):
                        panel[p * nr + j] = row[first + j] if r * nr + j < nc else 0


@numba.njit
def _ceil_div(x, y):
    return (x + y - 1) // y


def ladder_top(macro, mr, nr):
    """Steps 4 to 6 around one compiled macro-kernel of ``mr x nr`` blocks, as a dict of njit functions
    ``register_blocked(a, b)``, ``packed(a, b, mc, kc, nc)`` and ``parallel(a, b, mc, kc, nc)`` (the
    chapter builds them around variants of the macro-kernel to measure what each part is worth)."""

    @numba.njit
    def register_blocked(a, b):
        m, k = a.shape
        n = b.shape[1]
        c = np.zeros((m, n), a.dtype)
        ap = np.empty(((m + mr - 1) // mr, k * mr), a.dtype)
        bp = np.empty(((n + nr - 1) // nr, k * nr), a.dtype)
        _pack_a(a, 0, m, 0, k, mr, ap)
        _pack_b(b, 0, k, 0, n, nr, bp)
        macro(ap, bp, k, c, 0, 0, m, n, np.empty(mr * nr, a.dtype))
        return c

    @numba.njit
    def packed(a, b, mc, kc, nc):
        m, k = a.shape
        n = b.shape[1]
        c = np.zeros((m, n), a.dtype)
        out = np.empty(mr * nr, a.dtype)
        for j0 in range(0, n, nc):
            ncb = min(nc, n - j0)
            for p0 in range(0, k, kc):
                kcb = min(kc, k - p0)
                bp = np.empty(((ncb + nr - 1) // nr, kcb * nr), a.dtype)
                _pack_b(b, p0, kcb, j0, ncb, nr, bp)
                for i0 in range(0, m, mc):
                    mcb = min(mc, m - i0)
                    ap = np.empty(((mcb + mr - 1) // mr, kcb * mr), a.dtype)
                    _pack_a(a, i0, mcb, p0, kcb, mr, ap)
                    macro(ap, bp, kcb, c, i0, j0, mcb, ncb, out)
        return c

    @numba.njit(parallel=True)
    def parallel(a, b, mc, kc, nc):
        m, k = a.shape
        n = b.shape[1]
        c = np.zeros((m, n), a.dtype)
        # Blocks of at most mc rows, as many for every thread: 9 blocks on 2 threads would leave
        # one thread idle for the ninth.
        threads = numba.get_num_threads()
        per_thread = max(1, _ceil_div(m, threads * mc))
        rows = _ceil_div(_ceil_div(m, threads * per_thread), mr) * mr  # rows per block, whole panels
        blocks = _ceil_div(m, rows) if rows else 0
        for j0 in range(0, n, nc):
            ncb = min(nc, n - j0)
            for p0 in range(0, k, kc):
                kcb = min(kc, k - p0)
                bp = np.empty(((ncb + nr - 1) // nr, kcb * nr), a.dtype)
                _pack_b(b, p0, kcb, j0, ncb, nr, bp)
                for block in prange(blocks):  # disjoint rows of c: independent iterations
                    i0 = block * rows
                    mcb = min(rows, m - i0)
                    ap = np.empty(((mcb + mr - 1) // mr, kcb * mr), a.dtype)
                    _pack_a(a, i0, mcb, p0, kcb, mr, ap)
                    macro(ap, bp, kcb, c, i0, j0, mcb, ncb, np.empty(mr * nr, a.dtype))
        return c

    return {"register_blocked": register_blocked, "packed": packed, "parallel": parallel}


MR = 6
"""Rows of the block of ``c`` the micro-kernel holds in registers."""

NR = {np.dtype(np.float64): 8, np.dtype(np.float32): 16}
"""Its columns, by dtype: two 256-bit vectors of either type, so ``MR * NR`` accumulators take 12 registers."""

MC, KC, NC = 96, 256, 2040
"""Fallback block sizes of steps 5 and 6 (rows of ``a``, the shared dimension, columns of ``b``) for
cache levels the hardware card does not report; :func:`block_sizes` derives them from the card."""


def block_sizes(dtype, caches=None):
    """Steps 5 and 6's block sizes ``(mc, kc, nc)`` for one dtype, from the cache sizes on the card.

    ``kc``: the ``kc x NR`` sliver of packed ``b`` that one micro-kernel call streams fills L1d
    (it is reread for every panel of ``a`` rows; the ``MR x kc`` sliver of ``a`` streams past it);
    ``mc``: the ``mc x kc`` panel of packed ``a`` fills the rest of L2 beside one such sliver of
    ``b``, which passes through L2 on its way to L1d; ``nc``: the ``kc x nc`` panel of packed ``b``
    takes half of L3. Each is rounded down to a multiple of the micro-kernel's
    ``MR``/``NR``; a level the card lacks falls back to :data:`MC`, :data:`KC`, :data:`NC`.

    Parameters
    ----------
    dtype : float32 or float64
    caches : dict, optional
        ``{"L1d": bytes, "L2": bytes, "L3": bytes}`` (default: this machine's, read once).
    """
    dtype = np.dtype(dtype)
    if dtype not in NR:
        raise ValueError(f"the ladder's top steps support float32 and float64; got {dtype}")
    if caches is None:
        caches = _card_caches()
    nr, size = NR[dtype], dtype.itemsize
    kc = max(16, min(1024, caches["L1d"] // (nr * size))) if caches.get("L1d") else KC
    sliver = kc * nr * size
    mc = max(MR, (caches["L2"] - sliver) // (kc * size) // MR * MR) if caches.get("L2", 0) > sliver else MC
    nc = max(nr, min(8192, caches["L3"] // 2 // (kc * size)) // nr * nr) if caches.get("L3") else NC
    return mc, kc, nc


_CACHES = {}


def _card_caches():
    if not _CACHES:
        meta = {}
        hardware.collect_caches(meta)
        _CACHES.update(meta.get("cache_bytes") or {})
    return _CACHES

_TOP = {}


def _top(dtype):
    """Steps 4 to 6 for one dtype, compiled on first use (the macro-kernel is compiled eagerly)."""
    dtype = np.dtype(dtype)
    if dtype not in NR:
        raise ValueError(f"the ladder's top steps support float32 and float64; got {dtype}")
    if dtype not in _TOP:
        _TOP[dtype] = ladder_top(compile_macrokernel(MR, NR[dtype], dtype), MR, NR[dtype])
    return _TOP[dtype]


def matmul_register_blocked(a, b):
    """Step 4, register blocking: :func:`microkernel_source`'s kernel computes each ``MR x NR`` block
    of ``c`` over all of ``k``.

    Its inputs are packed once, whole (``a`` in panels of ``MR`` rows, ``b`` in
    panels of ``NR`` columns). No cache blocking yet: for large ``k`` a panel
    of ``b`` (``NR * k`` values) is read again for every panel of ``a`` from
    wherever it fell to.
    """
    return _top(a.dtype)["register_blocked"](a, b)


def matmul_packed(a, b, mc=None, kc=None, nc=None):
    """Step 5, cache blocking with packing: ``kc``-deep panels of ``a`` (``mc`` rows) and of ``b``
    (``nc`` columns) are packed and multiplied by step 4's micro-kernel.

    The ``kc x NR`` sliver of ``b`` one micro-kernel call streams is meant to
    stay in L1, the ``mc x kc`` panel of ``a`` in L2 and the ``kc x nc``
    panel of ``b`` in L3; each is reused many times while it sits there. Sizes left as ``None``
    come from :func:`block_sizes`.
    """
    mc, kc, nc = _blocks(a.dtype, mc, kc, nc)
    return _top(a.dtype)["packed"](a, b, mc, kc, nc)


def matmul_parallel(a, b, mc=None, kc=None, nc=None):
    """Step 6: step 5 with its ``mc``-row blocks spread over numba's threads (``prange``).

    The blocks write disjoint rows of ``c``, so the iterations are
    independent; each thread packs its own panel of ``a`` and all share the
    packed panel of ``b``. It uses ``numba.get_num_threads()`` threads; sizes left as ``None``
    come from :func:`block_sizes`.
    """
    mc, kc, nc = _blocks(a.dtype, mc, kc, nc)
    return _top(a.dtype)["parallel"](a, b, mc, kc, nc)


def _blocks(dtype, mc, kc, nc):
    card = block_sizes(dtype)
    mc, kc, nc = (card[i] if size is None else size for i, size in enumerate((mc, kc, nc)))
    if min(mc, kc, nc) < 1:
        raise ValueError(f"block sizes must be positive; got mc={mc}, kc={kc}, nc={nc}")
    return mc, kc, nc


LADDER = {"1 naive i-j-k": matmul_ijk, "2 interchange i-k-j": matmul_ikj, "3 cache tiled": matmul_tiled,
          "4 register blocked": matmul_register_blocked, "5 packed": matmul_packed,
          "6 parallel (prange)": matmul_parallel}
"""The steps in the chapter's order, by the names its plots use."""


def matmul(a, b):
    """The book's fastest matrix multiply: ``a @ b`` for float32 or float64 matrices.

    Parameters
    ----------
    a, b : ndarray, 2-D, the same dtype (float32 or float64)
        Shapes ``(m, k)`` and ``(k, n)``; any layout (C, Fortran, strided
        views) and any sizes, zero included.

    Returns
    -------
    ndarray
        A new C-ordered ``(m, n)`` array of the inputs' dtype, equal to
        ``a @ b`` up to rounding (the sums run in another order). It runs
        :func:`matmul_parallel` on numba's current thread count.

    Raises
    ------
    ValueError
        When an input is not 2-D, the shapes do not chain, the dtypes differ
        or are not float32/float64.

    Examples
    --------
    >>> a = np.arange(6.0).reshape(2, 3)
    >>> matmul(a, np.ones((3, 2)))
    array([[ 3.,  3.],
           [12., 12.]])
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul needs two 2-D arrays; got ndim {a.ndim} and {b.ndim}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"shapes {a.shape} and {b.shape} do not chain: a has {a.shape[1]} columns, "
                         f"b has {b.shape[0]} rows")
    if a.dtype != b.dtype:
        raise ValueError(f"matmul needs inputs of one dtype; got {a.dtype} and {b.dtype}")
    if a.dtype not in (np.float32, np.float64):
        raise ValueError(f"matmul supports float32 and float64; got {a.dtype}")
    # Packing copies any layout into unit-stride panels anyway; passing C-ordered
    # arrays keeps numba to one compiled version per dtype.
    return matmul_parallel(np.ascontiguousarray(a), np.ascontiguousarray(b))


# --- Convolution as a matrix multiply (im2col) ---------------------------------------------------

def _check_conv(x, w):
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 3 or w.ndim != 4:
        raise ValueError(f"conv2d needs x of shape (C, H, W) and w of shape (F, C, KH, KW); got ndim {x.ndim} "
                         f"and {w.ndim}")
    if w.shape[1] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} channels but w expects {w.shape[1]}")
    if w.shape[2] > x.shape[1] or w.shape[3] > x.shape[2] or min(w.shape[2:]) < 1:
        raise ValueError(f"a {w.shape[2]}x{w.shape[3]} kernel does not fit a {x.shape[1]}x{x.shape[2]} image")
    return x, w


def im2col(x, kh, kw):
    """The columns of a valid, stride-1 convolution: one column per output pixel.

    Parameters
    ----------
    x : ndarray, shape (C, H, W)
    kh, kw : int
        Kernel height and width.

    Returns
    -------
    ndarray, shape (C * kh * kw, OH * OW), C-ordered, a copy
        With ``OH = H - kh + 1`` and ``OW = W - kw + 1``, column ``oh * OW + ow`` holds the
        ``C x kh x kw`` window whose top-left corner is ``x[:, oh, ow]``, in the order of ``w``'s
        last three axes. Every input value is copied into up to ``kh * kw`` columns: this buffer is
        the memory the lowering costs (chapter 6, "Convolution as matrix multiply").
    """
    c, h, w = x.shape
    if not 1 <= kh <= h or not 1 <= kw <= w:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a {h}x{w} image")
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (C, OH, OW, kh, kw), a view
    return np.ascontiguousarray(windows.transpose(0, 3, 4, 1, 2)).reshape(c * kh * kw, (h - kh + 1) * (w - kw + 1))


def conv2d_im2col(x, w):
    """Valid, stride-1 2-D convolution (cross-correlation, as deep-learning layers compute it) of
    ``x`` (C, H, W) with filters ``w`` (F, C, KH, KW), lowered to one GEMM: the ``F x (C KH KW)``
    filter matrix times :func:`im2col`'s ``(C KH KW) x (OH OW)`` columns, with :func:`matmul`.

    Returns an ``(F, OH, OW)`` array of the inputs' dtype (float32 or float64, as :func:`matmul`).
    """
    x, w = _check_conv(x, w)
    f, c, kh, kw = w.shape
    out = matmul(np.ascontiguousarray(w).reshape(f, c * kh * kw), im2col(x, kh, kw))
    return out.reshape(f, x.shape[1] - kh + 1, x.shape[2] - kw + 1)


@numba.njit(fastmath={"contract"})
def _conv2d_loops(x, w, out):
    for f in range(w.shape[0]):
        for oh in range(out.shape[1]):
            for ow in range(out.shape[2]):
                total = out[f, oh, ow]
                for c in range(w.shape[1]):
                    for i in range(w.shape[2]):
                        for j in range(w.shape[3]):
                            total += w[f, c, i, j] * x[c, oh + i, ow + j]
                out[f, oh, ow] = total


def conv2d_direct(x, w):
    """The same convolution as :func:`conv2d_im2col` as six nested loops (the reference it is tested
    against): no extra memory, but an inner loop over a small kernel window."""
    x, w = _check_conv(x, w)
    if x.dtype != w.dtype:
        raise ValueError(f"conv2d needs inputs of one dtype; got {x.dtype} and {w.dtype}")
    out = np.zeros((w.shape[0], x.shape[1] - w.shape[2] + 1, x.shape[2] - w.shape[3] + 1), x.dtype)
    _conv2d_loops(x, w, out)
    return out
