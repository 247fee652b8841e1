"""The book's small deep-learning compiler (chapter 5): ONNX in, numba kernels out.

``from_onnx`` (front end) -> ``optimize`` (passes) -> ``compile`` (lowering and
code generation), with ``plan_memory`` laying tensors out in one arena.
"""

from book.compiler.codegen import compile
from book.compiler.memory import plan_memory
from book.compiler.onnx_import import from_onnx
from book.compiler.passes import optimize

__all__ = ["from_onnx", "optimize", "compile", "plan_memory"]
