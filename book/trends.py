"""Hardware/model co-design, small architecture search, weight sharing and sparse storage (chapter 8).

Chapter 8 turns the five research directions of Dave et al.'s survey into
experiments. This module holds the parts its page, its lab and its tests
share:

- :func:`systolic_cycles`: the weight-stationary cycle count of chapter 3's
  systolic array, with the zero tiles that its structured-sparse mode skips;
- :func:`prune_tiles`: block pruning whose blocks are the array's tiles;
- :func:`mlp_cycles` and :func:`codesign`: choosing an array shape and a
  model together under a PE budget, against choosing each alone;
- :func:`kmeans_share`: weight sharing by k-means clustering (Deep Compression);
- :func:`storage_bytes`: bytes of a matrix in the dense, COO, CSR, CSC, BSR
  and N:M formats;
- :func:`pareto_mask`: the non-dominated points of a multi-objective search.
"""

import math

import numpy as np

FORMATS = ("dense", "coo", "csr", "csc", "bsr", "n:m")


def _positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _tiles(total, size):
    return [min(size, total - start) for start in range(0, total, size)]


def systolic_cycles(m, k, n, rows, cols, occupancy=None):
    """Cycles of ``(m × k) @ (k × n)`` on a ``rows × cols`` weight-stationary array (chapters 3 and 8).

    Each kept weight tile (``kt × nt``) costs ``2·kt + m + nt − 2`` cycles:
    ``kt`` to load it, ``m + kt + nt − 2`` to stream every row of ``a``
    through it. ``occupancy`` (from :func:`book.systolic.tile_occupancy`)
    marks the tiles kept; without it every tile runs. The formula is what
    :func:`book.systolic.matmul` simulates, cycle by cycle.
    """
    m, k, n = (_positive_int(name, v) for name, v in (("m", m), ("k", k), ("n", n)))
    rows, cols = _positive_int("rows", rows), _positive_int("cols", cols)
    k_tiles, n_tiles = _tiles(k, rows), _tiles(n, cols)
    if occupancy is None:
        occupancy = np.ones((len(k_tiles), len(n_tiles)), bool)
    occupancy = np.asarray(occupancy, bool)
    if occupancy.shape != (len(k_tiles), len(n_tiles)):
        raise ValueError(f"occupancy must have one entry per tile, shape {(len(k_tiles), len(n_tiles))}, "
                         f"got {occupancy.shape}")
    return int(sum(2 * kt + m + nt - 2 for i, kt in enumerate(k_tiles) for j, nt in enumerate(n_tiles)
                   if occupancy[i, j]))


def prune_tiles(w, sparsity, rows, cols):
    """Zero the ``round(sparsity × tiles)`` ``rows × cols`` tiles of ``w`` with the smallest L2 norms.

    Block pruning whose block is the systolic array's tile (chapter 8): every
    zeroed tile is one the structured-sparse array skips. Ties go to the
    earlier tile in row-major order. Returns a pruned copy.
    """
    w = np.array(w, copy=True)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D matrix, got shape {w.shape}")
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity!r}")
    rows, cols = _positive_int("rows", rows), _positive_int("cols", cols)
    k, n = w.shape
    kt, nt = -(-k // rows), -(-n // cols)
    padded = np.zeros((kt * rows, nt * cols), np.float64)
    padded[:k, :n] = w
    norms = np.sqrt((padded.reshape(kt, rows, nt, cols) ** 2).sum(axis=(1, 3))).ravel()
    drop = np.argsort(norms, kind="stable")[:round(sparsity * norms.size)]
    for t in drop:
        i, j = divmod(int(t), nt)
        w[i * rows:(i + 1) * rows, j * cols:(j + 1) * cols] = 0
    return w


def mlp_cycles(widths, rows, cols, batch):
    """Cycles of one forward pass of an MLP with layer widths ``widths`` (input first) on the array.

    Each layer ``widths[i] → widths[i+1]`` is one weight-stationary matrix
    product of ``batch`` rows; layers run one after the other.
    """
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got {widths!r}")
    return sum(systolic_cycles(batch, k, n, rows, cols) for k, n in zip(widths[:-1], widths[1:]))


def array_shapes(pes):
    """Every ``(rows, cols)`` of powers of two with ``rows × cols == pes`` (a power of two)."""
    pes = _positive_int("pes", pes)
    if pes & (pes - 1):
        raise ValueError(f"pes must be a power of two, got {pes}")
    return [(2**i, pes // 2**i) for i in range(int(math.log2(pes)) + 1)]


def codesign(models, shapes, batch, reference_model, reference_shape, min_accuracy):
    """Choose an array shape and a model alone and together (chapter 8, trend 4).

    The goal is the fewest cycles per forward pass among models at least
    ``min_accuracy`` accurate.

    Parameters
    ----------
    models : list of dict
        Candidate models, each with ``"name"``, ``"widths"`` (input first)
        and a measured ``"accuracy"``.
    shapes : list of (rows, cols)
        Candidate arrays (e.g. :func:`array_shapes` of one PE budget).
    batch : int
        Rows streamed through each layer.
    reference_model, reference_shape
        The model the hardware is tuned for when it is chosen alone (a name
        from ``models``) and the array the model is chosen for alone.
    min_accuracy : float

    Returns
    -------
    dict
        ``"table"``: a record per (model, shape) with ``cycles``;
        ``"hardware_alone"``: the fastest shape for the reference model;
        ``"model_alone"``: the fastest accurate-enough model on the reference
        shape; ``"separate"``: those two combined; ``"joint"``: the fastest
        accurate-enough pair over everything. Each choice is a table record.
    """
    shapes = [tuple(s) for s in shapes]
    if tuple(reference_shape) not in shapes:
        raise ValueError(f"reference_shape {reference_shape} is not among the shapes {shapes}")
    names = [m["name"] for m in models]
    if reference_model not in names:
        raise ValueError(f"reference_model {reference_model!r} is not among the models {names}")
    table = [{"model": m["name"], "widths": list(m["widths"]), "accuracy": float(m["accuracy"]),
              "rows": r, "cols": c, "cycles": mlp_cycles(m["widths"], r, c, batch)}
             for m in models for r, c in shapes]
    accurate = [t for t in table if t["accuracy"] >= min_accuracy]
    if not accurate:
        raise ValueError(f"no model reaches min_accuracy {min_accuracy}")

    def fastest(rows):  # ties: the more accurate, then the first listed
        return min(rows, key=lambda t: (t["cycles"], -t["accuracy"]))

    hardware = fastest([t for t in table if t["model"] == reference_model])
    model = fastest([t for t in accurate if (t["rows"], t["cols"]) == tuple(reference_shape)])
    separate = next(t for t in table if t["model"] == model["model"]
                    and (t["rows"], t["cols"]) == (hardware["rows"], hardware["cols"]))
    return {"table": table, "hardware_alone": hardware, "model_alone": model, "separate": separate,
            "joint": fastest(accurate)}


def kmeans_share(w, bits, iters=30):
    """Weight sharing by k-means (Deep Compression, chapter 8): ``2**bits`` shared values.

    The nonzero weights are clustered in one dimension, the centroids
    initialised evenly between the smallest and largest weight (the
    "linear" initialisation Han et al. found best); zeros stay zero, so a
    pruned weight stays pruned. Returns ``(shared, centroids, labels)``:
    the shared copy of ``w`` (same dtype), the codebook, and each weight's
    index into it (``-1`` for a zero).
    """
    w = np.asarray(w)
    bits = _positive_int("bits", bits)
    if bits > 16:
        raise ValueError(f"bits must be at most 16, got {bits}")
    if not np.issubdtype(w.dtype, np.floating):
        raise ValueError(f"w must hold floating-point weights, got {w.dtype}")
    labels = np.full(w.shape, -1, np.int64)
    values = w[w != 0].astype(np.float64)
    if values.size == 0:
        return w.copy(), np.zeros(0, w.dtype), labels
    centroids = np.linspace(values.min(), values.max(), min(2**bits, values.size))
    for _ in range(iters):
        # 1-D nearest centroid: the boundaries are the midpoints of the sorted centroids.
        assign = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)
        sums = np.bincount(assign, values, len(centroids))
        counts = np.bincount(assign, minlength=len(centroids))
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.array_equal(moved, centroids):
            break
        centroids = np.sort(moved)
    assign = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)
    labels[w != 0] = assign
    shared = np.zeros_like(w)
    shared[w != 0] = centroids[assign].astype(w.dtype)
    return shared, centroids.astype(w.dtype), labels


def shared_nbytes(w, bits, value_bytes=4):
    """Bytes of a weight-shared dense matrix: a ``bits``-bit index per weight plus the codebook."""
    w = np.asarray(w)
    return math.ceil(w.size * bits / 8) + (2**bits) * value_bytes


def storage_bytes(w, fmt, *, block=(4, 4), n=2, m=4, value_bytes=4, index_bytes=4):
    """Bytes to store the 2-D matrix ``w`` in one sparse format (chapter 8, trend 5).

    ``"dense"``: every value. ``"coo"``: a value, a row and a column index per
    nonzero. ``"csr"`` / ``"csc"``: a value and a column (row) index per
    nonzero, plus ``rows + 1`` (``cols + 1``) pointers. ``"bsr"``: every
    ``block`` holding a nonzero stored whole, one column index per block and
    ``block rows + 1`` pointers (the shape must divide into blocks).
    ``"n:m"``: ``n`` values of every ``m`` along a row, each with a
    ``ceil(log2 m)``-bit position (2 bits for 2:4, as NVIDIA's sparse tensor
    cores store it); every group must hold at most ``n`` nonzeros and the
    row length must be a multiple of ``m``.
    """
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D matrix, got shape {w.shape}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    rows, cols = w.shape
    nnz = int(np.count_nonzero(w))
    if fmt == "dense":
        return w.size * value_bytes
    if fmt == "coo":
        return nnz * (value_bytes + 2 * index_bytes)
    if fmt == "csr":
        return nnz * (value_bytes + index_bytes) + (rows + 1) * index_bytes
    if fmt == "csc":
        return nnz * (value_bytes + index_bytes) + (cols + 1) * index_bytes
    if fmt == "bsr":
        br, bc = (_positive_int("block rows", block[0]), _positive_int("block cols", block[1]))
        if rows % br or cols % bc:
            raise ValueError(f"a {rows}×{cols} matrix does not divide into {br}×{bc} blocks")
        blocks = int((w.reshape(rows // br, br, cols // bc, bc) != 0).any(axis=(1, 3)).sum())
        return blocks * (br * bc * value_bytes + index_bytes) + (rows // br + 1) * index_bytes
    n, m = _positive_int("n", n), _positive_int("m", m)
    if n > m:
        raise ValueError(f"n:m needs n <= m, got {n}:{m}")
    if cols % m:
        raise ValueError(f"n:m needs a row length that is a multiple of m = {m}, got {cols}")
    per_group = np.count_nonzero(w.reshape(rows, cols // m, m), axis=2)
    if per_group.size and per_group.max() > n:
        raise ValueError(f"w is not {n}:{m} sparse: a group of {m} holds {int(per_group.max())} nonzeros")
    kept = rows * (cols // m) * n
    return kept * value_bytes + math.ceil(kept * max(1, math.ceil(math.log2(m))) / 8)


def pareto_mask(points, minimize):
    """Which rows of ``points`` (one objective per column) no other row dominates.

    ``minimize`` says, per column, whether smaller is better (latency, size)
    or larger (accuracy). A row is dominated when another is at least as
    good in every objective and better in one.
    """
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != len(minimize):
        raise ValueError(f"points must be 2-D with one column per objective ({len(minimize)}), got {p.shape}")
    signed = np.where(np.asarray(minimize, bool), p, -p)
    better_eq = (signed[:, None, :] <= signed[None, :, :]).all(axis=2)
    strictly = (signed[:, None, :] < signed[None, :, :]).any(axis=2)
    dominated = (better_eq & strictly).any(axis=0)
    return ~dominated

