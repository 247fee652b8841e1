"""Hardware-aware compression (chapter 7): pruning, quantization, and kernels that exploit them.

``prune``: magnitude, structured and n:m pruning (:mod:`book.compress.prune`).
``quantize``/``dequantize``: affine integer quantization, per tensor or per channel
(:mod:`book.compress.quantize`).
"""

from book.compress.prune import prune
from book.compress.quantize import dequantize, quantize

__all__ = ["dequantize", "prune", "quantize"]
