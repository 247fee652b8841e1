"""GPU kernels in ``numba.cuda`` (chapter 3): vector add, a shared-memory reduction, naive and tiled matmul.

Chapter 3 runs them in numba's CUDA simulator (call
:func:`book.gpu.use_simulator` before importing this module); on a machine
with an NVIDIA GPU and the CUDA driver the same source compiles for the device.
Each launcher picks the grid from the data so every element gets a thread,
and each kernel checks its bounds because the last block usually overhangs.
"""

import math

import numpy as np
from numba import cuda

THREADS = 128  # threads per block of the 1-D kernels (a multiple of the warp size)
TILE = 8  # side of a matmul tile; a real GPU would use 16 or 32, the simulator pays for every thread


@cuda.jit
def vector_add_kernel(a, b, out):
    i = cuda.grid(1)  # blockIdx.x * blockDim.x + threadIdx.x
    if i < out.size:  # the last block overhangs the array
        out[i] = a[i] + b[i]


@cuda.jit
def block_sum_kernel(x, partial):
    # The simulator keys shared arrays by source line: one declaration per line.
    cache = cuda.shared.array(THREADS, dtype=np.float64)
    tid = cuda.threadIdx.x
    i = cuda.grid(1)
    cache[tid] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    half = THREADS // 2
    while half > 0:  # a tree: each round halves the number of active threads
        if tid < half:
            cache[tid] += cache[tid + half]
        cuda.syncthreads()  # every thread must see this round's sums before the next round reads them
        half //= 2
    if tid == 0:
        partial[cuda.blockIdx.x] = cache[0]


@cuda.jit
def matmul_naive_kernel(a, b, c):
    col, row = cuda.grid(2)  # x varies fastest across a warp: neighbouring threads, neighbouring columns
    if row < c.shape[0] and col < c.shape[1]:
        total = 0.0
        for s in range(a.shape[1]):  # every thread reads a whole row of a and column of b from memory
            total += a[row, s] * b[s, col]
        c[row, col] = total


@cuda.jit
def matmul_tiled_kernel(a, b, c):
    a_tile = cuda.shared.array((TILE, TILE), dtype=np.float64)
    b_tile = cuda.shared.array((TILE, TILE), dtype=np.float64)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    col, row = cuda.grid(2)
    total = 0.0
    for start in range(0, a.shape[1], TILE):
        # Each thread loads one element of each tile; the block then reuses each one TILE times.
        a_tile[ty, tx] = a[row, start + tx] if row < a.shape[0] and start + tx < a.shape[1] else 0.0
        b_tile[ty, tx] = b[start + ty, col] if start + ty < b.shape[0] and col < b.shape[1] else 0.0
        cuda.syncthreads()
        for s in range(TILE):
            total += a_tile[ty, s] * b_tile[s, tx]
        cuda.syncthreads()  # nobody overwrites a tile while another thread still reads it
    if row < c.shape[0] and col < c.shape[1]:
        c[row, col] = total


def vector_add(a, b):
    """``a + b`` for 1-D float arrays, one GPU thread per element."""
    a, b = np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"vector_add needs two 1-D arrays of one shape, got {a.shape} and {b.shape}")
    out = np.zeros_like(a)
    if a.size:
        vector_add_kernel[math.ceil(a.size / THREADS), THREADS](a, b, out)
    return out


def total(x):
    """The sum of a 1-D array: one shared-memory tree reduction per block, then the blocks' sums on the host."""
    x = np.ascontiguousarray(x, np.float64)
    if x.ndim != 1:
        raise ValueError(f"total needs a 1-D array, got shape {x.shape}")
    if not x.size:
        return 0.0
    blocks = math.ceil(x.size / THREADS)
    partial = np.zeros(blocks)
    block_sum_kernel[blocks, THREADS](x, partial)
    return float(partial.sum())


def matmul(a, b, tiled=True):
    """``a @ b`` for 2-D float arrays, one GPU thread per element of the result."""
    a, b = np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul needs an m×k and a k×n matrix, got {a.shape} and {b.shape}")
    c = np.zeros((a.shape[0], b.shape[1]))
    if c.size:
        grid = (math.ceil(c.shape[1] / TILE), math.ceil(c.shape[0] / TILE))  # (x: columns, y: rows)
        (matmul_tiled_kernel if tiled else matmul_naive_kernel)[grid, (TILE, TILE)](a, b, c)
    return c
