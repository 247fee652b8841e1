"""Kernels that turn a compressed layer into less work (chapter 7, "Hardware-aware compression").

A pruned or quantized matrix is only faster when a kernel exploits its format:

- :func:`csr_spmv` / :func:`csr_spmm`: compressed sparse rows (CSR), ``A @ x`` and ``A @ B`` over
  the stored nonzeros only; each value carries a 4-byte column index and every read of ``x`` is a
  gather, so unstructured sparsity pays only when most weights are gone.
- :func:`bsr_matmul`: block-sparse rows (BSR), one index per dense ``R x C`` block, whose inner
  loops are dense again.
- :func:`nm_matmul`: n:m sparsity (2:4), ``n`` values per group of ``m`` with a position inside
  the group (2 bits for 2:4), no row pointers.
- :func:`int8_matmul`: the exact int32 product of int8 matrices (int8 in, int32 accumulate), packed
  and register-blocked like chapter 6's matmul, its micro-kernel written in LLVM IR so that it
  multiplies pairs of 16-bit values into 32-bit sums (``vpmaddwd`` on x86);
  :func:`int8_matmul_naive` is the unblocked first step.

The ``to_*`` helpers build each format from a dense (pruned) matrix. Every kernel runs on one
thread. Tests: ``tests/test_compress_kernels.py``.
"""

from collections import Counter

import numba
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from book import asm

__all__ = ["INT8_MAX_K", "KC", "MC", "MR", "NC", "NR", "bsr_matmul", "csr_spmm", "csr_spmv", "has_vnni",
           "int8_kernel_instructions", "int8_matmul", "int8_matmul_naive", "int8_via_unsigned", "nm_matmul",
           "to_bsr", "to_csr", "to_nm"]

INT8_MAX_K = 131072
"""The longest reduction :func:`int8_matmul` accepts: ``k * 128 * 128 = 2**31``, past which int32 can overflow.

At exactly this ``k`` one product still does not fit, a row of -128 times a column of -128
(``2**31``, one more than int32's maximum); every other one does."""


def _vector(name, value, kinds):
    value = np.asarray(value)
    if value.ndim == 1 and value.size == 0:  # [] reads as float64; an empty index array is fine
        value = value.astype(np.int64 if kinds == "iu" else np.float64)
    if value.ndim != 1 or value.dtype.kind not in kinds:
        raise ValueError(f"{name} must be a 1-D array of {'integers' if kinds == 'iu' else 'numbers'}, "
                         f"got shape {value.shape} and dtype {value.dtype}")
    return value


def _index(name, value):
    """An index array as the kernels read it: int32 or int64 (scipy's and :func:`to_csr`'s int32 are
    used in place, so a call copies nothing), anything else converted to int64."""
    value = _vector(name, value, "iu")
    return np.ascontiguousarray(value, value.dtype if value.dtype in (np.int32, np.int64) else np.int64)


def _check_csr_shape(indptr, indices, data):
    """The checks that cost nothing: lengths, and that ``indptr`` runs from 0 to the nonzero count."""
    indptr, indices, data = _index("indptr", indptr), _index("indices", indices), _vector("data", data, "fiu")
    if len(indptr) == 0:
        raise ValueError("indptr must have nrows + 1 entries, so at least one; got none")
    if len(indices) != len(data):
        raise ValueError(f"indices and data must have one entry per nonzero: got {len(indices)} and {len(data)}")
    if indptr[0] != 0 or indptr[-1] != len(indices):
        raise ValueError(f"indptr must run from 0 to the number of nonzeros ({len(indices)}); "
                         f"got {indptr[0]} to {indptr[-1]}")
    return indptr, indices, np.ascontiguousarray(data)


def _check_csr(indptr, indices, data, ncols):
    """The CSR arrays, validated: ``indptr`` starts at 0, never decreases and ends at ``len(indices)``;
    every column index lies in ``[0, ncols)``."""
    indptr, indices, data = _check_csr_shape(indptr, indices, data)
    falls = np.flatnonzero(np.diff(indptr.astype(np.int64)) < 0)
    if len(falls):
        raise ValueError(f"indptr must never decrease; it falls after row {falls[0]}")
    if len(indices) and (indices.min() < 0 or indices.max() >= ncols):
        raise ValueError(f"column indices must lie in [0, {ncols}) to index x; got {indices.min()} to {indices.max()}")
    return indptr, indices, data


@numba.njit
def _spmv(indptr, indices, data, x, out):
    """``out = A @ x`` for CSR ``A``: one dot product per row over its stored values.

    Two partial sums per row (even and odd entries) halve the chain of dependent additions that
    bounds a serial sum once ``x`` sits in cache; so float results differ from a serial sum's by
    rounding. It validates as it goes, at a compare per value (a branch always predicted the same
    way): a row whose ``indptr`` falls or whose column lies outside ``x`` stops it and its number
    is returned (-1: all good), where a separate pass would read the indices twice more.
    """
    ncols = np.uint64(len(x))
    for i in range(len(out)):
        start, stop = np.int64(indptr[i]), np.int64(indptr[i + 1])
        # start >= 0 also tells LLVM that no index below needs Python's negative wrap-around.
        if start < 0 or stop < start:
            return i
        even = out.dtype.type(0)
        odd = even
        z = start
        while z + 1 < stop:
            # As unsigned numbers, negative indices are huge: one compare checks both ends.
            c0, c1 = np.uint64(indices[z]), np.uint64(indices[z + 1])
            if max(c0, c1) >= ncols:
                return i
            even += data[z] * x[c0]
            odd += data[z + 1] * x[c1]
            z += 2
        if z < stop:
            c0 = np.uint64(indices[z])
            if c0 >= ncols:
                return i
            even += data[z] * x[c0]
        out[i] = even + odd
    return -1


def csr_spmv(indptr, indices, data, x):
    """``A @ x`` for a CSR matrix ``A`` given by its three arrays (chapter 7).

    Parameters
    ----------
    indptr : 1-D integer array, ``nrows + 1`` entries
        Row ``i``'s values are ``data[indptr[i]:indptr[i + 1]]``.
    indices : 1-D integer array
        The column of each value.
    data : 1-D array of numbers
        The stored values.
    x : 1-D array
        Its length must exceed every column index.

    Returns
    -------
    ndarray of shape ``(nrows,)``, dtype ``result_type(data, x)`` (float64 for integers).

    Raises
    ------
    ValueError
        ``indptr`` empty, not starting at 0, decreasing or not ending at ``len(indices)``;
        ``indices``/``data`` of different lengths; an index outside ``x``; arrays not 1-D.
    """
    x = _vector("x", x, "fiu")
    indptr, indices, data = _check_csr_shape(indptr, indices, data)
    dtype = np.result_type(data.dtype, x.dtype, np.float32)
    out = np.empty(len(indptr) - 1, dtype)
    if _spmv(indptr, indices, data.astype(dtype, copy=False), np.ascontiguousarray(x, dtype), out) >= 0:
        _check_csr(indptr, indices, data, len(x))  # raises, saying what is wrong
    return out


@numba.njit
def _spmm(indptr, indices, data, b, out):
    """``out = A @ B``: each stored ``A[i, c]`` adds ``A[i, c] * B[c, :]`` to row ``i``,
    a unit-stride loop over the columns of ``B`` that vectorizes. It validates as :func:`_spmv`
    does (the row number of the first bad row, -1 if all good), so no NumPy pass reads the indices
    first: at a batch of one those passes cost more than the product."""
    nrows_b = np.uint64(b.shape[0])
    for i in range(out.shape[0]):
        start, stop = np.int64(indptr[i]), np.int64(indptr[i + 1])
        if start < 0 or stop < start:
            return i
        out[i, :] = 0
        for z in range(start, stop):
            c = np.uint64(indices[z])
            if c >= nrows_b:
                return i
            v = data[z]
            for j in range(b.shape[1]):
                out[i, j] += v * b[c, j]
    return -1


def csr_spmm(indptr, indices, data, b):
    """``A @ B`` for a CSR matrix ``A`` and a dense 2-D ``B`` (a batch of columns; chapter 7).

    Validates ``A`` as :func:`csr_spmv` does, with ``B.shape[0]`` as its column count.
    Returns a C-ordered ``(nrows, B.shape[1])`` array of dtype ``result_type(data, B)``.
    """
    b = np.asarray(b)
    if b.ndim != 2 or b.dtype.kind not in "fiu":
        raise ValueError(f"b must be a 2-D numeric array, got shape {b.shape} and dtype {b.dtype}")
    indptr, indices, data = _check_csr_shape(indptr, indices, data)
    dtype = np.result_type(data.dtype, b.dtype, np.float32)
    out = np.empty((len(indptr) - 1, b.shape[1]), dtype)
    data, b = data.astype(dtype, copy=False), np.ascontiguousarray(b, dtype)
    # A batch of one is a matrix-vector product: _spmm's loop over one column of b would pay the
    # vectorizer's set-up (alias checks, remainder) for each stored value.
    bad = _spmv(indptr, indices, data, b[:, 0], out[:, 0]) if b.shape[1] == 1 else _spmm(indptr, indices, data, b, out)
    if bad >= 0:
        _check_csr(indptr, indices, data, b.shape[0])  # raises, saying what is wrong
    return out


def to_csr(a):
    """CSR arrays ``(indptr, indices, data)`` of the nonzeros of a dense 2-D array, as scipy stores them
    (int32 indices: 4 bytes per stored value)."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"to_csr needs a 2-D array, got shape {a.shape}")
    rows, cols = np.nonzero(a)
    if len(rows) >= 2 ** 31:
        raise ValueError(f"{len(rows)} nonzeros do not fit int32 indices")
    indptr = np.zeros(a.shape[0] + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=indptr[1:])
    return indptr, cols.astype(np.int32), np.ascontiguousarray(a[rows, cols])


def to_bsr(a, block=(4, 8)):
    """Block-sparse rows of a dense 2-D array: ``(indptr, indices, blocks, shape)``.

    ``a`` is cut into ``R x C`` blocks (padded with zeros to whole blocks); the blocks with any
    nonzero are stored, ``blocks[z]`` of block row ``i`` and block column ``indices[z]``.
    ``shape`` is ``a``'s (unpadded) shape.
    """
    a = np.asarray(a)
    r, c = _check_block(block)
    if a.ndim != 2:
        raise ValueError(f"to_bsr needs a 2-D array, got shape {a.shape}")
    rows, cols = -(-a.shape[0] // r), -(-a.shape[1] // c)
    padded = np.zeros((rows * r, cols * c), a.dtype)
    padded[:a.shape[0], :a.shape[1]] = a
    tiles = padded.reshape(rows, r, cols, c).transpose(0, 2, 1, 3)
    brow, bcol = np.nonzero(np.any(tiles != 0, axis=(2, 3)))
    indptr = np.zeros(rows + 1, np.int32)
    np.cumsum(np.bincount(brow, minlength=rows), out=indptr[1:])
    return indptr, bcol.astype(np.int32), np.ascontiguousarray(tiles[brow, bcol]), a.shape


def _check_block(block):
    if (not isinstance(block, tuple) or len(block) != 2
            or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in block)):
        raise ValueError(f"block must be a pair of positive ints (rows, columns), got {block!r}")
    return int(block[0]), int(block[1])


@numba.njit
def _bsr(indptr, indices, blocks, b, out):
    """``out = A @ B`` block by block: each stored ``R x C`` block is a small dense product.

    A batch of one gets a dot product per block row instead: a loop over one column of ``B``
    would pay the vectorizer's set-up (alias checks, remainder) for one iteration."""
    out[:] = 0
    r, c = blocks.shape[1], blocks.shape[2]
    width = b.shape[1]
    for bi in range(len(indptr) - 1):
        for z in range(indptr[bi], indptr[bi + 1]):
            col0 = indices[z] * c
            for u in range(r):
                if width == 1:
                    total = out[bi * r + u, 0]
                    for v in range(c):
                        total += blocks[z, u, v] * b[col0 + v, 0]
                    out[bi * r + u, 0] = total
                    continue
                for v in range(c):
                    value = blocks[z, u, v]
                    for j in range(width):
                        out[bi * r + u, j] += value * b[col0 + v, j]
    return out


def bsr_matmul(indptr, indices, blocks, shape, b):
    """``A @ B`` for a block-sparse ``A`` as :func:`to_bsr` returns it and a dense 2-D ``B``.

    Returns a C-ordered ``(shape[0], B.shape[1])`` array of dtype ``result_type(blocks, B)``.
    """
    b = np.asarray(b)
    blocks = np.asarray(blocks)
    if blocks.ndim != 3 or blocks.dtype.kind not in "fiu":
        raise ValueError(f"blocks must be a numeric array (nnz blocks, R, C), got shape {blocks.shape}")
    if b.ndim != 2 or b.shape[0] != shape[1]:
        raise ValueError(f"b must be 2-D with {shape[1]} rows (A's columns), got shape {b.shape}")
    r, c = blocks.shape[1:]
    rows = -(-shape[0] // r)
    if len(np.asarray(indptr)) != rows + 1:
        raise ValueError(f"indptr must have one entry per block row plus one ({rows + 1}), got {len(indptr)}")
    indptr, indices, _ = _check_csr(indptr, indices, np.zeros(len(blocks)), -(-shape[1] // c))
    dtype = np.result_type(blocks.dtype, b.dtype, np.float32)
    padded = np.zeros((-(-shape[1] // c) * c, b.shape[1]), dtype)
    padded[:shape[1]] = b
    out = _bsr(indptr, indices, np.ascontiguousarray(blocks, dtype), padded, np.empty((rows * r, b.shape[1]), dtype))
    return np.ascontiguousarray(out[:shape[0]])


def to_nm(a, n=2, m=4):
    """n:m compressed form of a 2-D array pruned n:m along its last axis: ``(values, positions)``.

    ``values[i, g * n + t]`` is the ``t``-th kept value of group ``g`` of row ``i`` and
    ``positions`` (uint8) its place in the group, ``0 .. m - 1``; a group with fewer than ``n``
    nonzeros stores zeros. Raises ValueError if a group holds more than ``n`` nonzeros.
    """
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] % m:
        raise ValueError(f"to_nm needs a 2-D array whose rows are a multiple of m={m} long, got shape {a.shape}")
    groups = a.reshape(a.shape[0], a.shape[1] // m, m)
    if np.any(np.count_nonzero(groups, axis=2) > n):
        raise ValueError(f"a group of {m} holds more than n={n} nonzeros: prune the array {n}:{m} first")
    # The n kept places of each group, nonzeros first, in order (a stable sort on "is zero").
    positions = np.argsort(groups == 0, axis=2, kind="stable")[:, :, :n]
    positions = np.sort(positions, axis=2)
    values = np.take_along_axis(groups, positions, axis=2)
    half = (a.shape[0], a.shape[1] // m * n)
    return values.reshape(half), positions.reshape(half).astype(np.uint8)


@numba.njit
def _nm(values, positions, n, m, b, out):
    """``out = A @ B`` for n:m ``A``: the column of each value is its group's start plus its position."""
    out[:] = 0
    width = b.shape[1]
    for i in range(out.shape[0]):
        row = out[i]
        for z in range(values.shape[1]):
            v = values[i, z]
            brow = b[(z // n) * m + positions[i, z]]
            for j in range(width):
                row[j] += v * brow[j]
    return out


def nm_matmul(values, positions, b, n=2, m=4):
    """``A @ B`` for an n:m sparse ``A`` in :func:`to_nm`'s form and a dense 2-D ``B`` (chapter 7).

    ``A`` has ``values.shape[0]`` rows and ``values.shape[1] * m / n`` columns, which must equal
    ``B.shape[0]``; positions must lie in ``[0, m)``.
    """
    values, positions, b = np.asarray(values), np.asarray(positions), np.asarray(b)
    if values.ndim != 2 or values.shape != positions.shape or values.shape[1] % n:
        raise ValueError(f"values and positions must be 2-D of one shape with rows a multiple of n={n} long; "
                         f"got {values.shape} and {positions.shape}")
    k = values.shape[1] // n * m
    if b.ndim != 2 or b.shape[0] != k:
        raise ValueError(f"b must be 2-D with {k} rows (A's columns), got shape {b.shape}")
    if positions.size and (positions.min() < 0 or positions.max() >= m):
        raise ValueError(f"positions must lie in [0, {m})")
    dtype = np.result_type(values.dtype, b.dtype, np.float32)
    return _nm(np.ascontiguousarray(values, dtype), np.ascontiguousarray(positions, np.uint8), n, m,
               np.ascontiguousarray(b, dtype), np.empty((values.shape[0], b.shape[1]), dtype))


@numba.njit
def _int8_dot(a, bt, out):
    """The first int8 kernel: ``out[i, j] = sum_p a[i, p] * bt[j, p]``, both operands read along rows.

    The ``int32`` casts keep numba from widening the products to int64, so LLVM vectorizes the
    reduction with 16-bit multiply-adds; but every dot product reloads its two rows from memory.
    """
    k = a.shape[1]
    for i in range(a.shape[0]):
        for j in range(bt.shape[0]):
            total = np.int32(0)
            for p in range(k):
                total += np.int32(a[i, p]) * np.int32(bt[j, p])
            out[i, j] = total
    return out


def _check_int8(a, b):
    a, b = np.asarray(a), np.asarray(b)
    for name, value in (("a", a), ("b", b)):
        if value.dtype != np.int8 or value.ndim != 2:
            raise ValueError(f"int8_matmul needs 2-D int8 arrays; {name} has dtype {value.dtype}, "
                             f"shape {value.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"shapes {a.shape} and {b.shape} do not chain: a has {a.shape[1]} columns, "
                         f"b has {b.shape[0]} rows")
    if a.shape[1] > INT8_MAX_K:
        raise ValueError(f"k = {a.shape[1]} exceeds {INT8_MAX_K}: the int32 sums could overflow")
    return a, b


def int8_matmul_naive(a, b):
    """:func:`int8_matmul` by :func:`_int8_dot`'s dot products: the unblocked first step."""
    a, b = _check_int8(a, b)
    return _int8_dot(a, np.ascontiguousarray(b.T), np.empty((a.shape[0], b.shape[1]), np.int32))


# The blocked kernel. Its micro-kernel keeps an MR x NR block of int32 sums in registers (12 vectors
# of 8) while it walks k two values at a time: a pair of a's row, broadcast, times pairs of NR
# columns of b, the products summed pairwise into 32 bits. That is x86's vpmaddwd (AVX2), written
# here in portable LLVM IR (sign-extend, multiply, add even and odd lanes), which LLVM's x86 back
# end selects as one instruction; int8 values widened to int16 make it exact (a pair of products
# is at most 2 * 128 * 128 = 2**15 in size). Panels are packed as book.kernels.matmul packs them.
MR, NR = 6, 16
"""Rows and columns of the block of sums the int8 micro-kernel holds in registers."""

MC, KC, NC = 48, 512, 1024
"""Block sizes of :func:`int8_matmul`: rows of ``a``, the shared dimension, columns of ``b``."""

_VEC = NR // 8


def _micro_sums(context, builder, ap, bp, kp, ap_type, bp_type, vnni=False):
    """LLVM IR of the micro-kernel's loop over ``kp`` steps; returns its MR * NR / 8 sum vectors.

    A step is a pair of k (int16 values; ``vnni=False``) or a quad of k (bytes, ``a`` biased to
    unsigned; ``vnni=True``, one ``vpdpbusd`` per 8 columns). Either way, 32 bits of ``a``'s row
    are broadcast and multiplied by 8 columns' worth of ``b`` per vector.
    """
    i32, i64 = ir.IntType(32), ir.IntType(64)
    v8, wide = ir.VectorType(i32, 8), ir.VectorType(i32, 16)
    b_vec = ir.VectorType(ir.IntType(8), 32) if vnni else ir.VectorType(ir.IntType(16), 16)
    pa = builder.bitcast(context.make_array(ap_type)(context, builder, ap).data, i32.as_pointer())
    pb = builder.bitcast(context.make_array(bp_type)(context, builder, bp).data, b_vec.as_pointer())
    zero = ir.Constant(v8, None)
    even, odd = (ir.Constant(v8, [2 * j + t for j in range(8)]) for t in (0, 1))
    if vnni:
        dot = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8, [v8, v8, v8]), _VPDPBUSD)

    def step(acc, spread, b_values):
        if vnni:  # four unsigned x signed byte products summed into each 32-bit lane, added to acc
            return builder.call(dot, [acc, spread, builder.bitcast(b_values, v8)])
        # 16 products of 16-bit values, summed pairwise into 8 lanes of 32 bits
        prod = builder.mul(builder.sext(builder.bitcast(spread, b_vec), wide), builder.sext(b_values, wide))
        return builder.add(acc, builder.add(builder.shuffle_vector(prod, prod, even),
                                            builder.shuffle_vector(prod, prod, odd)))

    entry = builder.block
    loop, done = builder.append_basic_block("micro.loop"), builder.append_basic_block("micro.done")
    builder.cbranch(builder.icmp_signed(">", kp, ir.Constant(i64, 0)), loop, done)
    builder.position_at_end(loop)
    p = builder.phi(i64)
    p.add_incoming(ir.Constant(i64, 0), entry)
    sums = [builder.phi(v8) for _ in range(MR * _VEC)]
    for acc in sums:
        acc.add_incoming(zero, entry)
    b_values = [builder.load(builder.gep(pb, [builder.add(builder.mul(p, ir.Constant(i64, _VEC)),
                                                          ir.Constant(i64, v))]), align=1) for v in range(_VEC)]
    updated = []
    for i in range(MR):
        a32 = builder.load(builder.gep(pa, [builder.add(builder.mul(p, ir.Constant(i64, MR)), ir.Constant(i64, i))]),
                           align=1)
        spread = builder.insert_element(ir.Constant(v8, ir.Undefined), a32, ir.Constant(i32, 0))
        spread = builder.shuffle_vector(spread, spread, ir.Constant(v8, [0] * 8))
        updated += [step(sums[i * _VEC + v], spread, b_values[v]) for v in range(_VEC)]
    following = builder.add(p, ir.Constant(i64, 1))
    p.add_incoming(following, loop)
    for acc, value in zip(sums, updated):
        acc.add_incoming(value, loop)
    builder.cbranch(builder.icmp_signed("<", following, kp), loop, done)
    builder.position_at_end(done)
    finals = [builder.phi(v8) for _ in updated]
    for final, value in zip(finals, updated):
        final.add_incoming(zero, entry)
        final.add_incoming(value, loop)
    return finals


def _micro_kernels(vnni):
    """The micro-kernel as two numba intrinsics: one adds a whole block into ``c``, one stores it."""

    @intrinsic
    def micro_add(typingctx, ap, bp, kp, c, i0, j0):
        """``c[i0:i0+MR, j0:j0+NR] += `` the block (it lies inside C-ordered int32 ``c``)."""
        def codegen(context, builder, sig, args):
            sums = _micro_sums(context, builder, args[0], args[1], args[2], sig.args[0], sig.args[1], vnni)
            i64, v8 = ir.IntType(64), ir.VectorType(ir.IntType(32), 8)
            carr = context.make_array(sig.args[3])(context, builder, args[3])
            base = builder.bitcast(carr.data, ir.IntType(8).as_pointer())
            row_bytes = cgutils.unpack_tuple(builder, carr.strides)[0]
            for i in range(MR):
                row = builder.mul(builder.add(args[4], ir.Constant(i64, i)), row_bytes)
                for v in range(_VEC):
                    col = builder.mul(builder.add(args[5], ir.Constant(i64, 8 * v)), ir.Constant(i64, 4))
                    ptr = builder.bitcast(builder.gep(base, [builder.add(row, col)]), v8.as_pointer())
                    builder.store(builder.add(builder.load(ptr, align=4), sums[i * _VEC + v]), ptr, align=4)
        return types.void(ap, bp, kp, c, i0, j0), codegen

    @intrinsic
    def micro_store(typingctx, ap, bp, kp, out):
        """``out[:] = `` the block, row by row (for blocks that overhang ``c``)."""
        def codegen(context, builder, sig, args):
            sums = _micro_sums(context, builder, args[0], args[1], args[2], sig.args[0], sig.args[1], vnni)
            v8 = ir.VectorType(ir.IntType(32), 8)
            po = builder.bitcast(context.make_array(sig.args[3])(context, builder, args[3]).data, v8.as_pointer())
            for j, value in enumerate(sums):
                builder.store(value, builder.gep(po, [ir.Constant(ir.IntType(64), j)]), align=4)
        return types.void(ap, bp, kp, out), codegen

    return micro_add, micro_store


def _blocked(vnni):
    """The blocked int8 matmul around one micro-kernel: pairs of int16 (AVX2 and anywhere) or,
    with ``vnni``, quads of bytes with ``a`` biased by +128 and the bias's share subtracted."""
    micro_add, micro_store = _micro_kernels(vnni)
    group, bias = (4, 128) if vnni else (2, 0)
    a_type, b_type = (np.uint8, np.int8) if vnni else (np.int16, np.int16)

    # The packing loops see group and bias as constants (closure variables are frozen at compile
    # time), so q // group is a shift. Panels come zeroed: the padding needs no test per element.
    @numba.njit
    def pack_a(a, i0, mc, p0, kc, ap):
        """``ap[r, (p * MR + i) * group + t] = a[i0 + r*MR + i, p0 + group*p + t] + bias``."""
        for r in range(ap.shape[0]):
            for i in range(min(MR, mc - r * MR)):
                src = a[i0 + r * MR + i, p0:p0 + kc]
                for q in range(kc):
                    ap[r, ((q // group) * MR + i) * group + q % group] = src[q] + bias

    @numba.njit
    def pack_b(b, p0, kc, j0, nc, bp):
        """``bp[r, (p * NR + j) * group + t] = b[p0 + group*p + t, j0 + r*NR + j]``."""
        for r in range(bp.shape[0]):
            col = j0 + r * NR
            width = min(NR, j0 + nc - col)
            for q in range(kc):
                src = b[p0 + q, col:col + width]
                for j in range(width):
                    bp[r, ((q // group) * NR + j) * group + q % group] = src[j]

    @numba.njit
    def blocked(a, b, mc, kc, nc):
        m, k = a.shape
        n = b.shape[1]
        c = np.zeros((m, n), np.int32)
        edge = np.empty(MR * NR, np.int32)
        for j0 in range(0, n, nc):
            ncb = min(nc, n - j0)
            for p0 in range(0, k, kc):
                kcb = min(kc, k - p0)
                steps = (kcb + group - 1) // group
                bp = np.zeros(((ncb + NR - 1) // NR, steps * NR * group), b_type)
                pack_b(b, p0, kcb, j0, ncb, bp)
                for i0 in range(0, m, mc):
                    mcb = min(mc, m - i0)
                    ap = np.zeros(((mcb + MR - 1) // MR, steps * MR * group), a_type)
                    pack_a(a, i0, mcb, p0, kcb, ap)
                    for jr in range(bp.shape[0]):
                        j = j0 + jr * NR
                        for ir_ in range(ap.shape[0]):
                            i = i0 + ir_ * MR
                            if i + MR <= m and j + NR <= n:
                                micro_add(ap[ir_], bp[jr], steps, c, i, j)
                            else:
                                micro_store(ap[ir_], bp[jr], steps, edge)
                                for u in range(min(MR, m - i)):
                                    for v in range(min(NR, n - j)):
                                        c[i + u, j + v] += edge[u * NR + v]
        if bias:
            # (a + 128) @ b = a @ b + 128 * (column sums of b): subtract the second term. The int32
            # sums may wrap on the way; the difference is exact whenever a @ b fits int32.
            for j in range(n):
                total = np.int32(0)
                for p in range(k):
                    total += np.int32(b[p, j])
                for i in range(m):
                    c[i, j] -= np.int32(bias) * total
        return c

    return blocked


_VPDPBUSD = "llvm.x86.avx512.vpdpbusd.256"
"""LLVM's 256-bit ``vpdpbusd``: AVX512-VNNI with AVX512VL, or AVX-VNNI (the ``{vex}`` form)."""


def has_vnni():
    """Whether this CPU has a 256-bit ``vpdpbusd`` (AVX-VNNI, or AVX512-VNNI with AVX512VL).

    Read from LLVM's host features: running the instruction without them kills the process
    with an illegal instruction, so the VNNI kernel is compiled only where this is True.
    """
    features = llvm_binding.get_host_cpu_features()
    return bool(features.get("avxvnni") or (features.get("avx512vnni") and features.get("avx512vl")))


_int8_blocked = _blocked(vnni=False)
_KERNELS = {}


def _kernel(vnni):
    if vnni and not has_vnni():
        raise ValueError("this CPU has no VNNI (vpdpbusd); use vnni=False")
    if vnni not in _KERNELS:
        _KERNELS[vnni] = _blocked(True) if vnni else _int8_blocked
    return _KERNELS[vnni]


def int8_via_unsigned(a, b):
    """NumPy model of the VNNI kernel's arithmetic: ``a @ b`` from unsigned ``a + 128`` (chapter 7).

    ``vpdpbusd`` multiplies unsigned bytes by signed ones, so the kernel stores ``a + 128`` (0 to
    255) and subtracts ``128 * b.sum(axis=0)`` afterwards, in int32 arithmetic that may wrap
    (as the instruction's does) yet ends exact. Returns int32, for int8 inputs.
    """
    a, b = _check_int8(a, b)
    with np.errstate(over="ignore"):
        biased = (a.astype(np.int32) + 128).astype(np.uint8).astype(np.int32)
        sums = np.zeros((a.shape[0], b.shape[1]), np.int32)
        for start in range(0, a.shape[1], 4):  # one vpdpbusd step: four products per lane
            sums += biased[:, start:start + 4] @ b[start:start + 4].astype(np.int32)
        return sums - np.int32(128) * b.astype(np.int32).sum(axis=0, dtype=np.int32)


def int8_matmul(a, b, *, vnni=None):
    """The exact int32 product ``a @ b`` of two 2-D int8 matrices (chapter 7).

    NumPy's ``a @ b`` on int8 wraps around in int8; this accumulates in int32, exact for
    ``k <= INT8_MAX_K``. It packs ``a`` and ``b`` into int16 panels, block by block
    (``MC x KC`` and ``KC x NC``), and runs a register-blocked micro-kernel of 16-bit
    pair multiply-adds on them (:func:`int8_kernel_instructions` says which instructions);
    one thread. ``vnni=None`` uses the ``vpdpbusd`` kernel where :func:`has_vnni` (four byte
    products per 32-bit lane, ``a`` biased by +128, see :func:`int8_via_unsigned`); ``False`` the
    16-bit one everywhere; ``True`` requires VNNI.

    Raises
    ------
    ValueError
        An input that is not a 2-D int8 array, shapes that do not chain, ``k > INT8_MAX_K``.

    Examples
    --------
    >>> a = np.full((2, 3), -128, np.int8)
    >>> int8_matmul(a, np.full((3, 2), 127, np.int8))
    array([[-48768, -48768],
           [-48768, -48768]], dtype=int32)
    """
    a, b = _check_int8(a, b)
    kernel = _kernel(has_vnni() if vnni is None else bool(vnni))
    return kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), MC, KC, NC)


def int8_kernel_instructions(vnni=None):
    """The integer SIMD instructions in the hottest loop of the compiled :func:`int8_matmul`.

    Read from the assembly numba emitted (:mod:`book.asm`), so a page can say what the kernel runs
    on this machine: ``{"vpmaddwd": 12, "vpaddd": 12, ...}`` on AVX2, possibly other instructions
    (such as ``vpdpwssd``) where LLVM fuses the multiply-add. Compiles the kernel if needed.
    """
    kernel = _kernel(has_vnni() if vnni is None else bool(vnni))
    if not kernel.signatures:
        int8_matmul(np.zeros((1, 1), np.int8), np.zeros((1, 1), np.int8), vnni=vnni)
    text = kernel.inspect_asm(kernel.signatures[0])
    loop = asm.hottest_loop(text)
    return dict(Counter(ins.mnemonic for ins in asm.instructions(loop) if ins.domain == "int"))
