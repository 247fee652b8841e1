"""Chapter 5's MLP run compressed, layer by layer, on the kernel each layer's format needs (chapter 7).

A policy gives every weight layer a :class:`LayerChoice`: its bit width (32: float32; 8: int8
weights per output channel and int8 activations per tensor, int32 accumulation) and its sparsity
with a structure. :func:`compress` prunes and quantizes the model's weights and picks, per layer,
the kernel that turns that format into less work:

================  ==========================  ===========================================
structure         float32 (bits 32)           int8 (bits 8)
================  ==========================  ===========================================
sparsity 0        BLAS (``x @ W``)            :func:`~book.compress.kernels.int8_matmul`
"unstructured"    CSR SpMM                    CSR SpMM on int8 values, int32 sums
"structured"      BLAS on the kept neurons    int8 matmul on the kept neurons
"block"           BSR matmul                  BSR matmul on int8 values
"2:4"             n:m matmul                  n:m matmul on int8 values
================  ==========================  ===========================================

The sparse kernels compute ``W.T @ h.T`` (a row of ``W.T`` per output neuron; 2:4 groups and blocks
run along the inputs, as sparse tensor cores group them) so their inner loop runs over the batch.
Tests: ``tests/test_compress_model.py``.
"""

import copy
from dataclasses import dataclass

import numpy as np

from book import models
from book.compress import kernels
from book.compress.prune import prune
from book.compress.quantize import qrange, quantize

__all__ = ["BITS", "STRUCTURES", "CompressedMLP", "LayerChoice", "compress", "finetune", "prune_model"]

BITS = (32, 8)
"""The bit widths with a real kernel on a CPU: float32 (BLAS or the sparse kernels) and int8."""

STRUCTURES = ("unstructured", "structured", "2:4", "block")


@dataclass(frozen=True)
class LayerChoice:
    """How one weight layer is compressed.

    Attributes
    ----------
    bits : 32 or 8
    sparsity : float in [0, 1]
        Fraction of the weights removed. For ``"2:4"`` it is fixed at one half: give 0.0 or 0.5.
    structure : {"unstructured", "structured", "2:4", "block"}
        Which weights go: the smallest anywhere; whole output neurons (columns of ``W``);
        two of every four consecutive inputs of each neuron; whole ``block`` blocks of ``W.T``
        (output neurons x inputs).
    block : (int, int)
        The block of ``"block"`` sparsity: output neurons x inputs.
    """

    bits: int = 32
    sparsity: float = 0.0
    structure: str = "unstructured"
    block: tuple = (4, 8)

    def __post_init__(self):
        if self.bits not in BITS:
            raise ValueError(f"bits must be one of {BITS} (the widths with a real kernel), got {self.bits!r}")
        if self.structure not in STRUCTURES:
            raise ValueError(f"structure must be one of {STRUCTURES}, got {self.structure!r}")
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) \
                or not 0 <= self.sparsity <= 1:
            raise ValueError(f"sparsity must be a number in [0, 1], got {self.sparsity!r}")
        if self.structure == "2:4" and self.sparsity not in (0, 0.5):
            raise ValueError(f"2:4 sparsity removes one half of the weights; give sparsity 0 or 0.5, "
                             f"got {self.sparsity!r}")
        kernels._check_block(tuple(self.block))

    @property
    def removed(self):
        """The fraction of weights this choice removes (one half for 2:4)."""
        return 0.5 if self.structure == "2:4" else float(self.sparsity)


def _check(model, policy):
    if not isinstance(model, models.Model) or model.kind != "mlp":
        raise ValueError("compress needs an MLP from book.models.mlp()")
    layers = len(model.params) // 2
    policy = list(policy)
    if len(policy) != layers or not all(isinstance(c, LayerChoice) for c in policy):
        raise ValueError(f"the policy needs one LayerChoice per weight layer ({layers}), got {policy!r}")
    return policy


def _pruned(w, choice):
    """``w`` (inputs x outputs) pruned as ``choice`` says."""
    if choice.removed == 0:
        return w.copy()
    if choice.structure == "unstructured":
        return prune(w, choice.sparsity)
    if choice.structure == "structured":
        return prune(w, choice.sparsity, kind="structured", axis=1)
    if choice.structure == "2:4":
        return prune(w.T, None, kind="n:m").T.copy()
    return prune(w.T, choice.sparsity, kind="block", block=tuple(choice.block)).T.copy()


def prune_model(model, policy):
    """A copy of the MLP with each layer pruned per the policy and its masks set to ``W != 0``."""
    policy = _check(model, policy)
    pruned = copy.deepcopy(model)
    for i, choice in enumerate(policy, start=1):
        w = _pruned(model.params[f"W{i}"], choice)
        pruned.params[f"W{i}"] = w
        pruned.masks[f"W{i}"] = (w != 0).astype(np.float32)
    return pruned


def finetune(model, policy, x, y, epochs=5, **train_options):
    """Prune per the policy, then train with the masks held (``book.models.train``); a new Model.

    The pruned weights stay zero through training, so :func:`compress` of the result finds the
    same zeros. Quantization is not trained here: :func:`compress` applies it afterwards.
    """
    tuned = prune_model(model, policy)
    models.train(tuned, x, y, epochs=epochs, **train_options)
    return tuned


def _quantize_with(h, scale, zero):
    """``h`` quantized to int8 with a calibrated scale and zero point (asymmetric range)."""
    qmin, qmax = qrange(8, symmetric=False)
    return np.clip(np.rint(h / scale) + zero, qmin, qmax).astype(np.int8)


class _Layer:
    """One compressed layer: its stored arrays, its kernel, its size, and ``forward(h) -> float32``."""

    def __init__(self, name, w, b, choice, calib):
        self.name, self.choice, self.b = name, choice, b.astype(np.float32)
        self.shape = w.shape
        self.sparsity = float(np.mean(w == 0)) if w.size else 0.0
        k, n = w.shape
        value_bytes = 4 if choice.bits == 32 else 1
        extra = 4 * n  # the float32 bias
        if choice.bits == 8:
            # weights per output channel, symmetric: no weight zero point to correct for
            q, self.w_scale, _ = quantize(w, 8, axis=1)
            self.x_scale, self.x_zero = (float(v) for v in quantize(calib, 8, symmetric=False)[1:])
            w = q
            extra += 4 * n + 8  # a float32 scale per output channel; the input's scale and zero point
        self.structured = choice.structure == "structured" and choice.removed > 0
        self.dense = choice.removed == 0 or self.structured
        if self.structured:
            self.kept = np.flatnonzero(np.any(w != 0, axis=0)).astype(np.int32)
            w = w[:, self.kept]
            extra += 4 * len(self.kept)  # which neurons are kept
        if self.dense:
            self.kernel = "BLAS sgemm" if choice.bits == 32 else "int8_matmul"
            self.w = np.ascontiguousarray(w)
            stored = w.size * value_bytes
        elif choice.structure == "unstructured":
            self.kernel = "csr_spmm"
            self.csr = kernels.to_csr(w.T)
            stored = len(self.csr[1]) * (value_bytes + 4) + 4 * len(self.csr[0])
        elif choice.structure == "block":
            self.kernel = "bsr_matmul"
            indptr, indices, blocks, _ = kernels.to_bsr(w.T, tuple(choice.block))
            self.bsr = (indptr, indices, blocks)
            stored = blocks.size * value_bytes + 4 * (len(indices) + len(indptr))
        else:
            self.kernel = "nm_matmul (2:4)"
            self.nm = kernels.to_nm(w.T)
            stored = self.nm[0].size * value_bytes + -(-self.nm[0].size * 2 // 8)  # 2-bit positions, as shipped
        # (of the stored, kept columns)
        self.colsum = w.astype(np.int64).sum(axis=0).astype(np.int32) if choice.bits == 8 else None
        self.nbytes = int(stored + extra)

    def _sparse(self, ht, dtype):
        """``W.T @ ht`` on this layer's sparse kernel; ``ht`` is the transposed input (inputs x batch)."""
        out = np.empty((self.shape[1], ht.shape[1]), dtype)
        if self.kernel == "csr_spmm":
            kernels._spmm(*self.csr, ht, out)  # arrays built by to_csr: nothing to report
            return out
        if self.kernel == "bsr_matmul":
            rows = len(self.bsr[0]) - 1
            r, c = self.bsr[2].shape[1:]
            padded = np.zeros((-(-self.shape[0] // c) * c, ht.shape[1]), ht.dtype)
            padded[:self.shape[0]] = ht
            full = kernels._bsr(*self.bsr, padded, np.empty((rows * r, ht.shape[1]), dtype))
            return full[:self.shape[1]]
        return kernels._nm(*self.nm, 2, 4, ht, out)

    def forward(self, h):
        """This layer's pre-activation ``h @ W + b`` (float32), computed on its kernel."""
        if self.choice.bits == 32:
            if self.dense and not self.structured:
                return h @ self.w + self.b
            if self.structured:
                y = np.broadcast_to(self.b, (len(h), self.shape[1])).copy()
                y[:, self.kept] += h @ self.w
                return y
            return self._sparse(np.ascontiguousarray(h.T), np.float32).T + self.b
        qh = _quantize_with(h, self.x_scale, self.x_zero)
        if self.dense:
            acc = kernels.int8_matmul(qh, self.w)
        else:
            acc = self._sparse(np.ascontiguousarray(qh.T), np.int32).T
        w_scale = self.w_scale[self.kept] if self.structured else self.w_scale
        # h ≈ x_scale * (qh - x_zero), W ≈ w_scale * qW: the zero point's share is x_zero * column sums.
        y = (acc - np.int64(self.x_zero) * self.colsum).astype(np.float32) * (np.float32(self.x_scale) * w_scale)
        if self.structured:
            full = np.broadcast_to(self.b, (len(h), self.shape[1])).copy()
            full[:, self.kept] += y
            return full
        return y + self.b

    def describe(self):
        return {"layer": self.name, "shape": tuple(int(v) for v in self.shape), "kernel": self.kernel,
                "bits": self.choice.bits, "structure": self.choice.structure, "sparsity": self.sparsity,
                "nbytes": self.nbytes}


class CompressedMLP:
    """An MLP compressed by :func:`compress`: ``logits``, ``predict``, ``nbytes`` and ``layers``."""

    def __init__(self, mean, std, layers):
        self._mean, self._std, self._layers = mean, std, layers

    def logits(self, x):
        """The last layer's outputs (n, 10) for raw pixels ``x`` (n, 64), float32."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self._layers[0].shape[0]:
            raise ValueError(f"x must be (n, {self._layers[0].shape[0]}) raw pixels, got shape {x.shape}")
        h = ((x - self._mean) / self._std).astype(np.float32)
        for i, layer in enumerate(self._layers):
            h = layer.forward(h)
            if i < len(self._layers) - 1:
                h = np.maximum(h, np.float32(0))
        return h

    def predict(self, x):
        """Class probabilities (n, 10), like ``book.models.predict``."""
        return models._softmax(self.logits(x))

    def accuracy(self, x, y):
        """Fraction of ``x`` whose most probable class is ``y``."""
        return float(np.mean(self.logits(x).argmax(axis=1) == np.asarray(y)))

    @property
    def nbytes(self):
        """Bytes a deployment ships: stored weight values at their width, sparse indices, scales,
        zero points and biases (the input standardisation's two vectors are left out)."""
        return sum(layer.nbytes for layer in self._layers)

    @property
    def layers(self):
        """One dict per layer: ``layer``, ``shape``, ``kernel``, ``bits``, ``structure``,
        ``sparsity`` (the fraction of zero weights) and ``nbytes``."""
        return [layer.describe() for layer in self._layers]


def compress(model, policy, x_calib):
    """Prune and quantize a chapter-5 MLP per ``policy``, one :class:`LayerChoice` per weight layer.

    Weights are pruned (:func:`~book.compress.prune.prune`) and, for 8 bits, quantized per output
    channel (symmetric); each int8 layer's input is quantized per tensor (asymmetric, so a ReLU's
    output uses every code) with the min/max seen on ``x_calib`` run through the pruned float
    model. Returns a :class:`CompressedMLP`.
    """
    policy = _check(model, policy)
    pruned = prune_model(model, policy)
    x_calib = np.asarray(x_calib, np.float32)
    if x_calib.ndim != 2 or len(x_calib) == 0:
        raise ValueError(f"x_calib must be a non-empty (n, 64) array of raw pixels, got shape {x_calib.shape}")
    acts = models._forward(pruned, x_calib)[1]
    layers = []
    for i, choice in enumerate(policy, start=1):
        h = acts[i - 1] if i == 1 else np.maximum(acts[i - 1], 0)
        layers.append(_Layer(f"W{i}", pruned.params[f"W{i}"], pruned.params[f"b{i}"], choice, h))
    return CompressedMLP(model.buffers["mean"], model.buffers["std"], layers)
