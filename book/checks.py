"""One tolerance check for the whole book: are two arrays (or numbers) the same, up to rounding?

:func:`assert_close` is the comparison behind both ``book.timing.assert_same``
(kernels must agree before they are timed) and ``book.grading.check_close``
(a lab's answer is right). It fails with a :class:`Mismatch` that carries what
it found -- the shapes, the worst element, its error and the tolerance -- so
each caller can write its own message from the fields, and tests read the
fields instead of the message. This module imports nothing else from ``book``.
"""

import numpy as np

__all__ = ["Incomparable", "Mismatch", "ShapeMismatch", "ValueMismatch", "assert_close"]


class Mismatch(AssertionError):
    """``actual`` does not match ``expected``; ``name`` says what was compared."""

    def __init__(self, name):
        self.name = name
        super().__init__(self.describe())

    def describe(self):
        """The message, written from the fields (without the ``name:`` prefix)."""
        raise NotImplementedError

    def __str__(self):
        return f"{self.name}: {self.describe()}"


class Incomparable(Mismatch):
    """A side cannot be read as an array at all (a ragged list, say); ``reason`` says why."""

    def __init__(self, name, reason):
        self.reason = reason
        super().__init__(name)

    def describe(self):
        return f"cannot be read as an array ({self.reason})"


class ShapeMismatch(Mismatch):
    """The shapes differ: ``expected_shape`` and ``actual_shape`` (tuples)."""

    def __init__(self, name, expected_shape, actual_shape):
        self.expected_shape, self.actual_shape = tuple(expected_shape), tuple(actual_shape)
        super().__init__(name)

    def describe(self):
        return f"expected shape {self.expected_shape}, got {self.actual_shape}"


class ValueMismatch(Mismatch):
    """Some elements differ by more than the tolerance.

    Attributes
    ----------
    index : tuple
        The worst element (largest error; ``()`` for a scalar). For data
        without a numeric error (strings, objects) the first that differs.
    first_index : tuple
        The first element, in C order, that differs.
    expected_value, actual_value : object
        The two values at ``index``.
    error, allowed : float
        ``|actual - expected|`` at ``index`` and the tolerance there,
        ``atol + rtol * |expected|`` (nan for non-numeric data).
    n_bad, size : int
        How many elements differ, of how many.
    rtol, atol : float
        The tolerances asked for.
    """

    def __init__(self, name, *, index, first_index, expected_value, actual_value, error, allowed, n_bad, size,
                 rtol, atol):
        self.index, self.first_index = index, first_index
        self.expected_value, self.actual_value = expected_value, actual_value
        self.error, self.allowed = error, allowed
        self.n_bad, self.size, self.rtol, self.atol = n_bad, size, rtol, atol
        super().__init__(name)

    def describe(self):
        at = f" at index {self.index}" if self.index else ""
        count = f"; {self.n_bad} of {self.size} elements are off" if self.index else ""
        tolerance = f"atol={self.atol:g}, rtol={self.rtol:g}"
        e, a = self.expected_value, self.actual_value
        if _is_nan(a) and not _is_nan(e):
            return f"got nan{at} where {e:g} was expected{count} ({tolerance})"
        if not (np.isfinite(self.error) and np.isfinite(self.allowed)):  # not numbers, or nan/inf expected
            note = " (nan matches nan only with equal_nan=True)" if _is_nan(a) and _is_nan(e) else ""
            return f"expected {e!r}, got {a!r}{at}{count}{note}"
        return (f"max abs error {self.error:.1e} > {self.allowed:.1e}{at} (expected {_short(e)}, got "
                f"{_short(a)}{count}; {tolerance})")


def _short(value):
    return f"{value}" if isinstance(value, int) else f"{value:.6g}"


def _is_nan(value):
    return isinstance(value, (float, complex, np.inexact)) and bool(np.isnan(value))


def _numeric(array):
    return array.dtype.kind in "biufc"


def _index(flat_index, shape):
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()


def _python(value):
    """A NumPy scalar as the Python number it holds (messages then read ``0.5``, not ``np.float64(0.5)``)."""
    return value.item() if isinstance(value, np.generic) else value


def assert_close(actual, expected, *, rtol=0.0, atol=0.0, equal_nan=False, name="result"):
    """Require ``|actual - expected| <= atol + rtol * |expected|`` element-wise.

    Equal values always match (equal infinities too). Numeric data is compared
    with that formula; other data (strings, objects such as ``None``) must be
    equal. Both tolerances are explicit; the default 0 means exact.

    Parameters
    ----------
    actual, expected : array_like
        What came and what was expected; anything ``np.asarray`` reads.
    rtol, atol : float
        Relative and absolute tolerance (non-negative).
    equal_nan : bool
        Whether a NaN matches a NaN.
    name : str
        What is compared, for the message (``"relu(x)"``).

    Raises
    ------
    Incomparable
        When either side cannot be read as an array.
    ShapeMismatch
        When the shapes differ.
    ValueMismatch
        When elements differ; it names the worst one.

    Examples
    --------
    >>> assert_close([1.0, 2.0 + 1e-12], [1.0, 2.0], rtol=1e-9)
    >>> try:
    ...     assert_close([1.0, 2.5], [1.0, 2.0], atol=0.1, name="f(x)")
    ... except ValueMismatch as mismatch:
    ...     print(mismatch.index, mismatch.error, mismatch.allowed)
    (1,) 0.5 0.1
    """
    for label, tolerance in (("rtol", rtol), ("atol", atol)):
        if not tolerance >= 0:
            raise ValueError(f"{label} must be a non-negative number, got {tolerance!r}")
    try:
        got, want = np.asarray(actual), np.asarray(expected)
    except (ValueError, TypeError) as exc:  # ragged lists and such
        raise Incomparable(name, str(exc)) from None
    if got.shape != want.shape:
        raise ShapeMismatch(name, want.shape, got.shape)
    if _numeric(got) and _numeric(want):
        kind = complex if "c" in (got.dtype.kind, want.dtype.kind) else float
        got_v, want_v = got.astype(kind), want.astype(kind)
        with np.errstate(invalid="ignore", over="ignore"):
            error = np.abs(got_v - want_v)
            tolerance = atol + rtol * np.abs(want_v)
            # Where the tolerance is 0, equality in the original dtypes decides: it keeps integers
            # beyond 2**53 exact, and equal infinities (whose error is nan) match.
            good = (got == want) | ((error <= tolerance) & (tolerance > 0))
        if equal_nan:
            good |= np.isnan(got_v) & np.isnan(want_v)
        ranking = np.where(good, -1.0, np.nan_to_num(error, nan=np.inf, posinf=np.inf))
    else:
        good = np.broadcast_to(np.asarray(got == want, dtype=bool), got.shape)
        error = tolerance = np.full(got.shape, np.nan)
        ranking = np.where(good, -1.0, 0.0)
    if good.all():
        return
    bad = ~good
    worst, first = int(np.argmax(ranking)), int(np.argmax(bad.ravel()))
    raise ValueMismatch(name, index=_index(worst, got.shape), first_index=_index(first, got.shape),
                        expected_value=_python(want.flat[worst]), actual_value=_python(got.flat[worst]),
                        error=float(error.flat[worst]), allowed=float(tolerance.flat[worst]),
                        n_bad=int(bad.sum()), size=int(bad.size), rtol=float(rtol), atol=float(atol))
