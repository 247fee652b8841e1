"""A systolic array (the matrix unit of a TPU), simulated cycle by cycle (chapter 3).

A systolic array is a grid of ``rows × cols`` processing elements (PEs). Each
PE does one multiply–accumulate (MAC) per cycle and passes its operands to
its neighbours, so a value read from memory once is used by a whole row or
column of PEs. Two dataflows are modelled:

``"weight"`` (weight-stationary, as in the first TPU)
    A ``kt × nt`` tile of ``b`` (``k`` along rows, ``n`` along columns) is
    loaded into the array, one row per cycle. Rows of ``a`` then enter from
    the left, skewed by one cycle per array row, and move right one PE per
    cycle; partial sums move down and leave the bottom row as finished dot
    products over the tile's ``kt`` terms.
``"output"`` (output-stationary)
    Each PE owns one element of an ``mt × nt`` tile of ``c``. Rows of ``a``
    enter from the left and columns of ``b`` from the top, both skewed; after
    ``k`` steps the tile is shifted out, one row per cycle.

Neither model overlaps one tile's loading or draining with the next tile's
compute (real designs double-buffer to hide part of it), so the cycle counts
are simple to derive by hand; the chapter derives them and the tests hold the
simulator to them.

Chapter 8 adds a structured-sparse mode to the weight-stationary dataflow
(``skip_zero_tiles=True``): a weight tile whose entries are all zero is
never loaded or streamed, as block-sparse accelerators skip empty blocks
from a per-block occupancy map, so its cycles vanish from the count.
"""

from dataclasses import dataclass

import numpy as np

DATAFLOWS = ("weight", "output")


@dataclass
class SystolicResult:
    """What :func:`matmul` returns.

    Attributes
    ----------
    c : ndarray
        The product ``a @ b`` (int64 for integer inputs, float64 otherwise).
    cycles : int
        Cycles from the first weight load (or first operand) to the last result out.
    utilization : float
        MACs performed (``m·k·n``, less the skipped tiles' in the sparse
        mode) divided by ``rows · cols · cycles``, in (0, 1]; 0 when every
        tile was skipped.
    trace : ndarray of bool or None
        ``trace[t, r, j]`` is True when PE (r, j) did a MAC in cycle ``t``
        (shape ``(cycles, rows, cols)``); ``None`` unless asked for.
    """

    c: np.ndarray
    cycles: int
    utilization: float
    trace: np.ndarray | None
    rows: int
    cols: int
    dataflow: str
    skipped_tiles: int = 0  # weight tiles skipped as all-zero (chapter 8's structured-sparse mode)


def _check(a, b, rows, cols, dataflow):
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"a and b must be 2-D matrices, got shapes {a.shape} and {b.shape}")
    if 0 in a.shape or 0 in b.shape:
        raise ValueError(f"every dimension must be at least 1, got a {a.shape} and b {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a is {a.shape[0]}×{a.shape[1]} and b is {b.shape[0]}×{b.shape[1]}: "
                         "the inner dimensions (k) differ")
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or not (
            np.issubdtype(b.dtype, np.number) or b.dtype == bool):
        raise TypeError(f"a and b must hold numbers, got {a.dtype} and {b.dtype}")
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        raise TypeError("complex matrices are not supported")
    # Integers accumulate exactly in int64 (as an integer MAC unit with a wide accumulator would).
    integer = all(np.issubdtype(x.dtype, np.integer) or x.dtype == bool for x in (a, b))
    dtype = np.int64 if integer else np.float64
    return a.astype(dtype), b.astype(dtype), int(rows), int(cols)


def _weight_stationary_tile(a, w, c, n0, trace):
    """Run one weight tile ``w`` (kt × nt) against all rows of ``a`` (m × kt); add into ``c[:, n0:]``.

    Registers per PE: the ``a`` value passing right with its row index (-1:
    empty) and the partial sum passing down. Returns the cycles used.
    """
    m, (kt, nt) = a.shape[0], w.shape
    load = kt  # one weight row enters per cycle, shifted down from the top
    a_val = np.zeros((kt, nt), a.dtype)
    a_row = np.full((kt, nt), -1)
    psum = np.zeros((kt, nt), a.dtype)
    stream = m + kt + nt - 2  # last MAC: row m-1 at PE (kt-1, nt-1), skewed by kt-1 and moved nt-1
    lanes = np.arange(kt)
    for t in range(stream):
        # Operands move one PE to the right; array row r takes a[t - r, r] from the left edge.
        a_val[:, 1:], a_row[:, 1:] = a_val[:, :-1].copy(), a_row[:, :-1].copy()
        i = t - lanes
        fed = (i >= 0) & (i < m)
        a_row[:, 0] = np.where(fed, i, -1)
        a_val[:, 0] = np.where(fed, a[np.clip(i, 0, m - 1), lanes], 0)
        active = a_row >= 0
        # Partial sums move one PE down; row 0 starts from zero.
        above = np.vstack([np.zeros((1, nt), psum.dtype), psum[:-1]])
        psum = np.where(active, above + a_val * w, 0)
        done = active[-1]
        c[a_row[-1, done], n0 + np.flatnonzero(done)] += psum[-1, done]
        if trace is not None:
            trace.append((load + t, active))
    return load + stream


def _output_stationary_tile(a, b, trace):
    """Run one output tile: ``a`` (mt × k) from the left, ``b`` (k × nt) from the top.

    Returns the tile of ``c`` and the cycles used (compute, then shifting
    the results out one row per cycle).
    """
    (mt, k), nt = a.shape, b.shape[1]
    a_val, a_step = np.zeros((mt, nt), a.dtype), np.full((mt, nt), -1)
    b_val = np.zeros((mt, nt), a.dtype)
    acc = np.zeros((mt, nt), a.dtype)
    compute = k + mt + nt - 2
    r_lanes, c_lanes = np.arange(mt), np.arange(nt)
    for t in range(compute):
        a_val[:, 1:], a_step[:, 1:] = a_val[:, :-1].copy(), a_step[:, :-1].copy()
        b_val[1:, :] = b_val[:-1, :].copy()
        s_a, s_b = t - r_lanes, t - c_lanes
        a_step[:, 0] = np.where((s_a >= 0) & (s_a < k), s_a, -1)
        a_val[:, 0] = np.where(a_step[:, 0] >= 0, a[r_lanes, np.clip(s_a, 0, k - 1)], 0)
        b_val[0, :] = np.where((s_b >= 0) & (s_b < k), b[np.clip(s_b, 0, k - 1), c_lanes], 0)
        # The skew makes a[r, s] and b[s, j] meet at PE (r, j) in the same cycle.
        active = a_step >= 0
        acc += np.where(active, a_val * b_val, 0)
        if trace is not None:
            trace.append((t, active))
    return acc, compute + mt


def tile_occupancy(b, rows, cols):
    """Which ``rows × cols`` weight tiles of ``b`` hold a nonzero (chapter 8).

    Returns a bool array of shape ``(ceil(k/rows), ceil(n/cols))``: entry
    ``[i, j]`` is False when ``b[i·rows:(i+1)·rows, j·cols:(j+1)·cols]`` is all
    zero, the tiles the structured-sparse mode of :func:`matmul` skips.
    """
    b = np.asarray(b)
    if b.ndim != 2:
        raise ValueError(f"b must be a 2-D matrix, got shape {b.shape}")
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    k, n = b.shape
    padded = np.zeros((-(-k // rows) * rows, -(-n // cols) * cols), bool)
    padded[:k, :n] = b != 0
    return padded.reshape(padded.shape[0] // rows, rows, padded.shape[1] // cols, cols).any(axis=(1, 3))


def matmul(a, b, *, rows, cols, dataflow="weight", trace=False, skip_zero_tiles=False):
    """Multiply ``a`` (m × k) by ``b`` (k × n) on a simulated ``rows × cols`` systolic array.

    Chapter 3 explains the two dataflows and derives the cycle counts;
    chapter 8 uses the trace. Matrices larger than the array are tiled:
    ``"weight"`` runs ``ceil(k/rows) · ceil(n/cols)`` weight tiles one after
    the other, ``"output"`` runs ``ceil(m/rows) · ceil(n/cols)`` output tiles.

    Parameters
    ----------
    a, b : array_like
        2-D, every dimension at least 1, ``a.shape[1] == b.shape[0]``.
        Integer (or bool) inputs accumulate in int64, exactly; others in float64.
    rows, cols : int
        The array's size, at least 1 each.
    dataflow : {"weight", "output"}
        Weight-stationary or output-stationary.
    trace : bool
        Also record which PEs do a MAC in each cycle (``.trace``).
    skip_zero_tiles : bool
        Chapter 8's structured-sparse mode (weight-stationary only): skip
        every weight tile of ``b`` that is all zero (see
        :func:`tile_occupancy`); ``.skipped_tiles`` counts them. A zero
        inside a kept tile still costs its PE a MAC, as on the hardware.

    Returns
    -------
    SystolicResult
        ``.c``, ``.cycles`` (including weight loading, filling and draining),
        ``.utilization`` and, with ``trace=True``, ``.trace``.

    Raises
    ------
    ValueError
        For a zero dimension, mismatched ``k``, non-positive ``rows`` or
        ``cols``, an unknown dataflow, or ``skip_zero_tiles`` with the
        output-stationary dataflow (its tiles are tiles of ``c``, not of weights).

    Examples
    --------
    >>> r = matmul([[1, 2], [3, 4]], [[5, 6], [7, 8]], rows=2, cols=2)
    >>> r.c.tolist(), r.cycles
    ([[19, 22], [43, 50]], 6)
    """
    a, b, rows, cols = _check(a, b, rows, cols, dataflow)
    if skip_zero_tiles and dataflow != "weight":
        raise ValueError("skip_zero_tiles needs the weight-stationary dataflow: only its tiles are weight tiles")
    (m, k), n = a.shape, b.shape[1]
    c = np.zeros((m, n), a.dtype)
    events, cycles, macs = ([] if trace else None), 0, m * k * n
    occupied = tile_occupancy(b, rows, cols) if skip_zero_tiles else None
    skipped = 0
    if dataflow == "weight":
        for k0 in range(0, k, rows):
            for n0 in range(0, n, cols):
                if occupied is not None and not occupied[k0 // rows, n0 // cols]:
                    skipped += 1
                    macs -= m * min(rows, k - k0) * min(cols, n - n0)
                    continue
                tile_events = [] if trace else None
                used = _weight_stationary_tile(a[:, k0:k0 + rows], b[k0:k0 + rows, n0:n0 + cols], c, n0,
                                               tile_events)
                if trace:
                    events += [(cycles + t, active) for t, active in tile_events]
                cycles += used
    else:
        for m0 in range(0, m, rows):
            for n0 in range(0, n, cols):
                tile_events = [] if trace else None
                tile, used = _output_stationary_tile(a[m0:m0 + rows], b[:, n0:n0 + cols], tile_events)
                c[m0:m0 + rows, n0:n0 + cols] = tile
                if trace:
                    events += [(cycles + t, active) for t, active in tile_events]
                cycles += used
    recorded = None
    if trace:
        recorded = np.zeros((cycles, rows, cols), bool)
        for t, active in events:
            recorded[t, :active.shape[0], :active.shape[1]] = active
    utilization = macs / (rows * cols * cycles) if cycles else 0.0
    return SystolicResult(c=c, cycles=cycles, utilization=utilization, trace=recorded, rows=rows, cols=cols,
                          dataflow=dataflow, skipped_tiles=skipped)
