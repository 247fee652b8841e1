"""Affine integer quantization and its inverse (chapter 7, "Hardware-aware compression").

A real value ``x`` is stored as an integer ``q`` with ``x ≈ scale * (q - zero_point)``. The
``scale`` spreads the range of ``x`` over the ``2**bits`` integers; the integer ``zero_point`` is
the code of 0.0, so a zero (a ReLU's output, a pruned weight) is stored exactly.

- Symmetric: ``zero_point = 0`` and ``q`` in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``: the range
  ``[-max|x|, max|x|]``, one code (``-2**(bits-1)``) unused so the range is symmetric. Weights, whose
  values centre on zero, use it, and an integer kernel then needs no zero-point correction.
- Asymmetric: ``q`` in ``[-2**(bits-1), 2**(bits-1) - 1]`` covers ``[min(x, 0), max(x, 0)]``: all
  codes used, better for one-sided values such as activations after a ReLU.

Per-tensor uses one scale; per-channel (``axis`` = the channel axis kept, as in ONNX's
``QuantizeLinear``) one per index along ``axis``, so a channel of small weights is not rounded to
zero by its neighbour's large ones. Rounding is half to even (``np.rint``), as ONNX specifies.
"""

import numbers

import numpy as np

__all__ = ["dequantize", "qrange", "quantize"]


def _check_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}")
    return int(bits)


def qrange(bits, symmetric=True):
    """The integer codes ``(qmin, qmax)`` of a ``bits``-bit quantizer (symmetric or not)."""
    bits = _check_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    return (-qmax if symmetric else -qmax - 1), qmax


def _check_axis(axis, ndim):
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis!r} is out of range for an array of {ndim} dimensions")
    return int(axis) % ndim


def quantize(x, bits=8, *, axis=None, symmetric=True):
    """Quantize ``x`` to ``bits``-bit integers: ``(q, scale, zero_point)`` (chapter 7).

    Parameters
    ----------
    x : array_like of real finite numbers
    bits : int, 2 to 16
    axis : int or None
        The channel axis kept: one scale and zero point per index along it. ``None``: per tensor.
    symmetric : bool
        Symmetric range with zero point 0 (codes ``±(2**(bits-1) - 1)``), or asymmetric over
        ``[min(x, 0), max(x, 0)]`` with an integer zero point (codes ``-2**(bits-1)`` to
        ``2**(bits-1) - 1``).

    Returns
    -------
    q : ndarray
        ``x``'s shape; int8 for up to 8 bits, int16 above. ``q = clip(rint(x / scale) + zero_point)``.
    scale : numpy.float32 or float32 array of shape ``(x.shape[axis],)``
        Positive; 1 for a channel (or tensor) that is all zeros.
    zero_point : numpy.int32 or int32 array like ``scale``
        0 when symmetric.

    Raises
    ------
    ValueError
        bits outside 2–16, a bad axis, non-numeric or non-finite ``x``.

    Examples
    --------
    >>> q, s, z = quantize(np.array([-1.0, 0.0, 0.5, 1.0]), bits=8)
    >>> q, bool(s == np.float32(1 / 127)), int(z)
    (array([-127,    0,   64,  127], dtype=int8), True, 0)
    """
    bits = _check_bits(bits)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise ValueError(f"quantize needs real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("quantize needs finite values; x holds NaN or infinity")
    axis = _check_axis(axis, x.ndim)
    qmin, qmax = qrange(bits, symmetric)
    # Ranges per channel: reduce over every axis but the kept one (keepdims to broadcast back).
    reduce = tuple(i for i in range(x.ndim) if i != axis) if axis is not None else None
    empty = x.size == 0
    hi = np.zeros(x.shape[axis] if axis is not None else (), np.float64) if empty else None
    if symmetric:
        top = hi if empty else np.max(np.abs(x), axis=reduce)
        scale = top / qmax
    else:
        lo = hi if empty else np.minimum(np.min(x, axis=reduce), 0.0)
        top = hi if empty else np.maximum(np.max(x, axis=reduce), 0.0)
        scale = (top - lo) / (qmax - qmin)
    # The scale that is stored (float32) is the one the codes are computed with, so that
    # dequantize(quantize(x)) is within scale / 2 of x.
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(np.finfo(np.float32).tiny))  # a float32 underflow
    if symmetric:
        zero = np.zeros(scale.shape, np.int32)
    else:
        zero = np.clip(np.rint(qmin - lo / scale.astype(np.float64)), qmin, qmax).astype(np.int32)
    shape = [1] * x.ndim
    if axis is not None:
        shape[axis] = -1
    s, z = scale.astype(np.float64).reshape(shape), zero.reshape(shape)
    q = np.clip(np.rint(x / s) + z, qmin, qmax).astype(np.int8 if bits <= 8 else np.int16)
    if axis is None:
        return q, np.float32(scale), np.int32(zero)
    return q, scale, zero


def dequantize(q, scale, zero_point, *, axis=None):
    """The real values ``scale * (q - zero_point)`` as float32 (chapter 7).

    Parameters
    ----------
    q : array_like of integers
    scale, zero_point : scalars (``axis=None``) or 1-D arrays of length ``q.shape[axis]``
    axis : int or None
        The channel axis that ``scale`` and ``zero_point`` index, as given to :func:`quantize`.

    Returns
    -------
    ndarray of float32, ``q``'s shape.

    Raises
    ------
    ValueError
        Non-integer ``q``, a bad axis, scales or zero points of the wrong shape, a scale that is
        not positive and finite.
    """
    q = np.asarray(q)
    if q.dtype.kind not in "iu":
        raise ValueError(f"dequantize needs integer codes, got dtype {q.dtype}")
    axis = _check_axis(axis, q.ndim)
    scale, zero_point = np.asarray(scale, np.float64), np.asarray(zero_point)
    if zero_point.dtype.kind not in "iu":
        raise ValueError(f"zero_point must be integer, got dtype {zero_point.dtype}")
    want = () if axis is None else (q.shape[axis],)
    for name, value in (("scale", scale), ("zero_point", zero_point)):
        if value.shape != want:
            where = "per tensor (axis=None)" if axis is None else f"one per index of axis {axis}"
            raise ValueError(f"{name} must have shape {want} ({where}), got {value.shape}")
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError("scale must be positive and finite")
    shape = [1] * q.ndim
    if axis is not None:
        shape[axis] = -1
    centred = q.astype(np.int64) - zero_point.astype(np.int64).reshape(shape)
    return (centred * scale.reshape(shape)).astype(np.float32)
