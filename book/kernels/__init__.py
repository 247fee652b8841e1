"""Kernels that a chapter explains, its lab uses and the tests check, one module per topic.

``memory``: dependent chains of additions and of loads (latency, the memory hierarchy).
``bandwidth``: the memory mountain's read loops (scalar strided, and packed with enough vector chains
to be limited by the loads).
``cpu``: what the core and the memory system overlap and guess (out-of-order execution, branch
prediction, memory-level parallelism, cache sets, the TLB, prefetching).
``matmul``: the matrix-multiply ladder (loop order, tiling, a register-blocked micro-kernel, packing,
``prange``) and ``matmul``, the book's fastest kernel.
``cuda``: GPU kernels in ``numba.cuda`` (vector add, a shared-memory reduction, naive and tiled matmul), run in
numba's CUDA simulator after :func:`book.gpu.use_simulator`.
"""
