"""Pruning: which weights become zero (chapter 7, "Hardware-aware compression").

Three rules, each returning a pruned copy whose mask is ``result != 0``:

- ``"magnitude"`` (unstructured): the smallest ``|w|`` anywhere, one by one. It keeps the most
  information for a given count of zeros, but the zeros fall anywhere, so a kernel must carry an
  index per kept weight (CSR) to skip them.
- ``"structured"``: whole slices (rows for ``axis=0``: the neurons a layer feeds, when ``w`` is
  ``(in, out)``) with the smallest L2 norms. The result is a smaller dense matrix, fast on any BLAS.
- ``"n:m"``: the ``n`` largest of every ``m`` consecutive weights along the last axis, the pattern
  sparse tensor cores execute for 2:4. The kept values compress to ``n/m`` of the row plus a small
  index per value.
- ``"block"``: whole ``R x C`` blocks (``block=(R, C)``) of a 2-D ``w`` with the smallest L2 norms,
  the format a block-sparse (BSR) kernel runs with dense inner loops; edge blocks may be partial.

Ties are broken by position, so the result is deterministic: among equal magnitudes (or norms) the
one that comes first in C order is pruned first (a stable sort).
"""

import numbers

import numpy as np

__all__ = ["KINDS", "prune"]

KINDS = ("magnitude", "structured", "n:m", "block")


def _check_sparsity(sparsity):
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ValueError(f"sparsity must be a number in [0, 1], got {sparsity!r}")
    if not 0.0 <= float(sparsity) <= 1.0:  # also rejects NaN
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    return float(sparsity)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def prune(w, sparsity, *, kind="magnitude", n=2, m=4, axis=0, block=(4, 8)):
    """A pruned copy of the weights ``w`` (chapter 7).

    Parameters
    ----------
    w : array_like of real numbers
        The weights, any shape (``"structured"`` and ``"n:m"`` need at least one axis).
    sparsity : float in [0, 1], or None for ``"n:m"``
        The fraction to remove: ``round(sparsity * w.size)`` weights for ``"magnitude"``,
        ``round(sparsity * w.shape[axis])`` slices for ``"structured"`` (Python's ``round``,
        half to even). For ``"n:m"`` it must be ``None`` or ``1 - n/m``.
    kind : {"magnitude", "structured", "n:m", "block"}
    n, m : int
        ``"n:m"`` keeps ``n`` of every ``m`` consecutive weights along the last axis, whose length
        must be a multiple of ``m``.
    axis : int
        ``"structured"`` removes slices ``w[..., i, ...]`` along this axis (rows for 0).
    block : (int, int)
        ``"block"`` removes ``round(sparsity * number of blocks)`` blocks of this many rows and
        columns of a 2-D ``w``, counted with the partial blocks at its edges.

    Returns
    -------
    ndarray
        A new array of ``w``'s shape and dtype; the pruned entries are 0. The smallest magnitudes
        (L2 norms for slices) go first; among equal ones, the first in C order goes first.

    Raises
    ------
    ValueError
        Sparsity outside [0, 1], an unknown kind, a bad axis, ``n``/``m`` or a last axis not a
        multiple of ``m``, non-numeric or non-finite weights.

    Examples
    --------
    >>> prune(np.array([3.0, -1.0, 2.0, 1.0]), 0.5)
    array([3., 0., 2., 0.])
    >>> prune(np.array([[1.0, -4.0, 3.0, 2.0]]), None, kind="n:m")
    array([[ 0., -4.,  3.,  0.]])
    """
    w = np.asarray(w)
    if w.dtype.kind not in "fiu" or w.dtype == np.bool_:
        raise ValueError(f"prune needs real numeric weights, got dtype {w.dtype}")
    if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
        raise ValueError("prune needs finite weights; w holds NaN or infinity")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    magnitude = np.abs(w.astype(np.float64))
    out = w.copy()
    if kind == "magnitude":
        count = round(_check_sparsity(sparsity) * w.size)
        order = np.argsort(magnitude, axis=None, kind="stable")
        out.reshape(-1)[order[:count]] = 0
        return out
    if w.ndim == 0:
        raise ValueError(f"{kind!r} pruning needs an array with at least one axis, got a scalar")
    if kind == "block":
        return _prune_blocks(out, magnitude, _check_sparsity(sparsity), block)
    if kind == "structured":
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -w.ndim <= axis < w.ndim:
            raise ValueError(f"axis {axis!r} is out of range for weights of {w.ndim} dimensions")
        count = round(_check_sparsity(sparsity) * w.shape[axis])
        moved = np.moveaxis(magnitude, axis, 0)
        norms = np.sqrt(np.sum(moved * moved, axis=tuple(range(1, w.ndim))))
        drop = np.argsort(norms, kind="stable")[:count]
        np.moveaxis(out, axis, 0)[drop] = 0
        return out
    n, m = _check_int("n", n, 0), _check_int("m", m, 1)
    if n > m:
        raise ValueError(f"n:m pruning keeps n of every m weights, so n <= m; got n={n}, m={m}")
    if sparsity is not None and not np.isclose(_check_sparsity(sparsity), 1 - n / m, rtol=0, atol=1e-9):
        raise ValueError(f"{n}:{m} pruning removes exactly {1 - n / m:g} of the weights; "
                         f"sparsity must be None or that, got {sparsity!r}")
    if w.shape[-1] % m:
        raise ValueError(f"n:m pruning needs the last axis ({w.shape[-1]}) to be a multiple of m={m}")
    groups = magnitude.reshape(-1, m)  # C order: m consecutive weights of one row per group
    drop = np.argsort(groups, axis=1, kind="stable")[:, :m - n]
    np.put_along_axis(out.reshape(-1, m), drop, 0, axis=1)
    return out


def _prune_blocks(out, magnitude, sparsity, block):
    """Zero the ``round(sparsity * blocks)`` ``R x C`` blocks of smallest L2 norm (ties: first in C order)."""
    if (not isinstance(block, tuple) or len(block) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in block)):
        raise ValueError(f"block must be a pair of positive ints (rows, columns), got {block!r}")
    if out.ndim != 2:
        raise ValueError(f"block pruning needs a 2-D array, got shape {out.shape}")
    r, c = block
    rows, cols = -(-out.shape[0] // r), -(-out.shape[1] // c)
    padded = np.zeros((rows * r, cols * c))
    padded[:out.shape[0], :out.shape[1]] = magnitude ** 2
    norms = np.sqrt(padded.reshape(rows, r, cols, c).sum(axis=(1, 3))).reshape(-1)
    for z in np.argsort(norms, kind="stable")[:round(sparsity * norms.size)]:
        i, j = divmod(int(z), cols)
        out[i * r:(i + 1) * r, j * c:(j + 1) * c] = 0
    return out
