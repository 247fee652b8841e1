"""Hardware-aware compression (chapter 7): pruning, quantization, and kernels that exploit them.

``prune``: magnitude, structured and n:m pruning (:mod:`book.compress.prune`).
``quantize``/``dequantize``: affine integer quantization, per tensor or per channel
(:mod:`book.compress.quantize`).
Kernels that exploit the formats (:mod:`book.compress.kernels`): ``csr_spmv``, ``csr_spmm``,
``bsr_matmul``, ``nm_matmul`` and ``int8_matmul``, with ``to_csr``/``to_bsr``/``to_nm`` to build them.
"""

from book.compress.kernels import bsr_matmul, csr_spmm, csr_spmv, int8_matmul, nm_matmul, to_bsr, to_csr, to_nm
from book.compress.prune import prune
from book.compress.quantize import dequantize, quantize

__all__ = ["bsr_matmul", "csr_spmm", "csr_spmv", "dequantize", "int8_matmul", "nm_matmul", "prune", "quantize",
           "to_bsr", "to_csr", "to_nm"]
