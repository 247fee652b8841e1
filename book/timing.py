"""The timing harness every chapter uses (explained in "Measuring honestly").

``bench`` is shaped like perfplot and measures like pyperf: kernels must agree
before anything is timed; the first call is timed apart (it includes numba's
compilation, reported separately as ``compile_s``); the loop count is
auto-ranged so one sample lasts well above the timer's resolution; kernels are
interleaved round by round so drift on a shared machine hits them alike; every
raw repeat is kept; the summary is the median and the median absolute
deviation (MAD).
"""

import gc
import time

import numpy as np

from book import quick
from book.checks import Incomparable, ShapeMismatch, ValueMismatch, assert_close
from book.data import BenchResult, summarize
from book.hardware import collect_metadata

__all__ = ["BenchError", "BenchResult", "KernelMismatch", "assert_same", "bench", "summarize"]


class BenchError(ValueError):
    """Bad input to :func:`bench`; the message says which kernel or size."""


class KernelMismatch(BenchError):
    """Two kernels returned different answers for the same input."""


def _as_kernels(kernels):
    if callable(kernels):
        kernels = [kernels]
    if isinstance(kernels, dict):
        items = list(kernels.items())
    else:
        items = [(getattr(kernel, "__name__", repr(kernel)), kernel) for kernel in kernels]
    if not items:
        raise BenchError("bench() needs at least one kernel; got none")
    names = [name for name, _ in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BenchError(f"kernel names must be unique; {repeated} appear more than once "
                         "(pass a dict to name them)")
    for name, kernel in items:
        if not callable(kernel):
            raise BenchError(f"kernel {name!r} is not callable (got {type(kernel).__name__})")
    return dict(items)


def _as_sizes(sizes):
    if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool):
        sizes = [sizes]
    try:
        sizes = list(sizes)
    except TypeError:
        raise BenchError(f"sizes must be a positive integer or a list of them, got {sizes!r}") from None
    if not sizes:
        raise BenchError("bench() needs at least one size; got an empty list")
    for i, n in enumerate(sizes):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise BenchError(f"size {n!r} (position {i}) is not a positive integer")
    return [int(n) for n in sizes]


def _bind(kernel, data):
    # A setup that returns a tuple supplies several positional arguments.
    args = data if isinstance(data, tuple) else (data,)
    return lambda: kernel(*args)


def _tolerance(*outputs):
    """Relative tolerance between kernel outputs: exact unless one is floating point (rounding
    differs with the order of operations), looser for float16/float32."""
    try:
        dtypes = [np.asarray(output).dtype for output in outputs]
    except (ValueError, TypeError):
        return 0.0  # not arrays: assert_close says so
    if not any(dtype.kind in "fc" for dtype in dtypes):
        return 0.0
    return 1e-4 if any(dtype in (np.float16, np.float32, np.complex64) for dtype in dtypes) else 1e-7


def assert_same(expected, actual, name, reference, n):
    """Raise :class:`KernelMismatch` unless ``actual`` matches ``expected``.

    The comparison is :func:`book.checks.assert_close`; the :class:`KernelMismatch`
    raised has its :class:`book.checks.Mismatch` (with the shapes, the worst
    element and its error) as ``__cause__``. Floating point results may differ
    by rounding (a sum in another order): relative tolerance 1e-7, or 1e-4 when
    either side is float16/float32; other results must be equal.
    """
    where = f"kernel {name!r} disagrees with {reference!r} at n={n}"
    rtol = _tolerance(expected, actual)
    try:
        assert_close(actual, expected, rtol=rtol, equal_nan=True, name=where)
    except Incomparable as mismatch:
        raise KernelMismatch(f"{where}: cannot compare the outputs as arrays ({mismatch.reason})") from mismatch
    except ShapeMismatch as mismatch:
        raise KernelMismatch(f"{where}: returned shape {mismatch.actual_shape}, expected "
                             f"{mismatch.expected_shape}") from mismatch
    except ValueMismatch as mismatch:
        if rtol == 0:
            raise KernelMismatch(f"{where}: first difference at index {mismatch.first_index}") from mismatch
        raise KernelMismatch(f"{where}: max abs error {mismatch.error:.3g} at index {mismatch.index} "
                             f"(rtol={rtol:g})") from mismatch


def _compile_seconds(events):
    """Wall time covered by top-level numba compilations (nested ones overlap)."""
    from numba.core.event import EventStatus

    total, depth, start = 0.0, 0, 0.0
    for timestamp, event in sorted(events, key=lambda pair: pair[0]):
        if event.status == EventStatus.START:
            if depth == 0:
                start = timestamp
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                total += timestamp - start
    return total


def _first_call(call, timer):
    """Time the first call and the numba compilation inside it."""
    from numba.core.event import install_recorder

    with install_recorder("numba:compile") as recorder:
        t0 = timer()
        output = call()
        t1 = timer()
    return output, (t1 - t0) * 1e-9, _compile_seconds(recorder.buffer)


def _sample(call, loops, timer):
    """One sample: ``loops`` back-to-back calls, in nanoseconds, with gc paused (as timeit)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = timer()
        for _ in range(loops):
            call()
        return timer() - t0
    finally:
        if gc_was_enabled:
            gc.enable()


def _loop_counts():
    scale = 1
    while True:
        for step in (1, 2, 5):
            yield step * scale
        scale *= 10


def _autorange(call, min_sample_ns, timer):
    """Smallest loop count in 1, 2, 5, 10, 20, ... whose sample lasts ``min_sample_ns``."""
    for loops in _loop_counts():
        elapsed = _sample(call, loops, timer)
        if elapsed >= min_sample_ns or loops >= 10**7:
            return loops, elapsed


def bench(kernels, sizes, setup=None, check=True, repeats=None, min_sample_s=None,
          max_time_s=None, timer=time.perf_counter_ns, meta=None):
    """Time several kernels over several problem sizes, honestly.

    Parameters
    ----------
    kernels : callable, list of callables or dict of name -> callable
        The implementations to compare; a list is named by ``__name__``.
    sizes : int or list of int
        Problem sizes ``n`` (positive integers).
    setup : callable, optional
        ``setup(n)`` builds the input, once per size, shared by all kernels.
        A tuple is passed as several positional arguments. Without a setup
        each kernel is called with ``n``.
    check : bool or callable
        ``True`` (default) requires every kernel to return what the first one
        returns (see :func:`assert_same`); a callable ``check(expected,
        actual)`` replaces that test and should raise on disagreement;
        ``False`` skips it.
    repeats : int, optional
        Samples per kernel and size (default 15, 5 in quick mode). Fewer are
        taken (at least 3) when that would exceed ``max_time_s``.
    min_sample_s : float, optional
        Each sample lasts at least this long: the loop count is auto-ranged
        (default 5 ms, 1 ms in quick mode; the timer resolves 1 ns or so).
    max_time_s : float, optional
        Time budget per kernel and size (default 2 s, 0.3 s in quick mode).
    timer : callable
        Returns nanoseconds; ``time.perf_counter_ns`` (tests pass a fake).
    meta : dict, optional
        Hardware card to attach; collected with
        :func:`book.hardware.collect_metadata` when omitted.

    Returns
    -------
    BenchResult
        Every raw repeat (per-call seconds) plus ``first_call_s`` and
        ``compile_s`` for each kernel and size.

    Examples
    --------
    >>> import numpy as np
    >>> result = bench({"sum": sum, "np.sum": np.sum}, [1000], setup=np.arange)
    >>> result.speedup("sum")  # doctest: +SKIP
    """
    kernels = _as_kernels(kernels)
    sizes = _as_sizes(sizes)
    if setup is not None and not callable(setup):
        raise BenchError(f"setup must be a callable setup(n), got {type(setup).__name__}")
    if not (isinstance(check, bool) or callable(check)):
        raise BenchError(f"check must be True, False or a callable, got {type(check).__name__}")
    repeats = repeats or quick.pick(full=15, quick=5)
    min_sample_ns = (min_sample_s or quick.pick(full=5e-3, quick=1e-3)) * 1e9
    max_time_s = max_time_s or quick.pick(full=2.0, quick=0.3)
    if repeats < 1:
        raise BenchError(f"repeats must be at least 1, got {repeats}")

    records = []
    for n in sizes:
        data = setup(n) if setup is not None else n
        calls = {name: _bind(kernel, data) for name, kernel in kernels.items()}
        first = {}
        for name, call in calls.items():
            try:
                first[name] = _first_call(call, timer)
            except Exception as exc:
                raise BenchError(f"kernel {name!r} raised {type(exc).__name__} at n={n}: {exc}") from exc
        reference, *others = kernels
        for name in others:
            if check is True:
                assert_same(first[reference][0], first[name][0], name, reference, n)
            elif check:
                try:
                    check(first[reference][0], first[name][0])
                except Exception as exc:
                    raise KernelMismatch(f"kernel {name!r} disagrees with {reference!r} at n={n}: {exc}") from exc
        first_timings = {name: (first_s, compile_s) for name, (_, first_s, compile_s) in first.items()}
        del first  # outputs can be large; only their timings are kept
        plan = {}
        for name, call in calls.items():
            loops, elapsed = _autorange(call, min_sample_ns, timer)
            affordable = int(max_time_s * 1e9 / max(elapsed, 1))
            plan[name] = (loops, max(3, min(repeats, affordable)))
        times = {name: [] for name in kernels}
        # Interleave: round r times every kernel once, so a slow spell of the
        # machine lands on all kernels instead of on whichever ran then.
        for r in range(max(count for _, count in plan.values())):
            for name, call in calls.items():
                loops, count = plan[name]
                if r < count:
                    times[name].append(_sample(call, loops, timer) * 1e-9 / loops)
        records += [{"kernel": name, "n": n, "loops": plan[name][0], "times_s": times[name],
                     "first_call_s": first_timings[name][0], "compile_s": first_timings[name][1]}
                    for name in kernels]
    return BenchResult(records, meta if meta is not None else collect_metadata())
