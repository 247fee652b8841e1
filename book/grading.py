"""Checks that the graded cells of a lab call (format: ``labs/README.md``; guide: "Teaching with this book").

Every check fails by raising a :class:`GradingError` with a message a student
can act on ("expected shape (1000,), got (1000, 1)"; "max abs error 3.0e-02 >
1.0e-06 at index (17,)"). Each kind of failure is its own subclass carrying
what was found (:class:`CallFailure`, :class:`WrongValue`, :class:`SpeedFailure`
with its :class:`SpeedReport`, ...), and its message is written from those
fields. Student code is only ever called through :func:`call` (or a check
that takes the function): the call runs in a forked copy of the kernel with a
time limit, so a submission that loops forever, raises, exits or crashes
costs that question and nothing else, and what it prints is discarded.

Tests start with ``g = importlib.reload(book.grading)``: re-executing this
file gives fresh helpers even if the notebook rebound them, and the reload
itself notices the rebinding (see the end of this file) and fails, as does
every check after it, with "the checking helpers were modified".
"""

import copy
import faulthandler
import json
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np

from book import checks, hardware, timing
from book.units import format_seconds

# On a reload this still holds the previous execution's names, which may have
# been rebound by the notebook; compared with the fresh ones at the end.
_PREVIOUS = dict(globals())

__all__ = ["CallFailure", "Compiled", "Disagreement", "GradingError", "InPlaceChange", "NoValue", "NotCompiled",
           "NotVectorized", "SpeedFailure", "SpeedReport", "Tampered", "WrongType", "WrongValue", "call",
           "check_array", "check_close", "check_compiled", "check_speedup", "check_type", "check_unchanged",
           "check_vectorized"]

DEFAULT_TIME_LIMIT_S = 10.0
"""Time limit of one call of student code unless the test sets one (a question's tests may make
several). The grader's ``--call-time-limit`` caps every limit, this one and the tests' own, through
the ``BOOK_GRADING_TIME_LIMIT_S`` environment variable."""

SPEED_TIME_LIMIT_S = 60.0
"""Time limit of a whole :func:`check_speedup` (both kernels, all repeats)."""

# check_speedup's statistics: fixed here, not by BOOK_QUICK, so a student's
# check and the grader's measure the same way. 9 interleaved repeats of
# samples of at least 5 ms: the median ratio moves by a few per cent between
# runs on a busy 2-core VM, far less than the 3x margins labs/README.md asks
# thresholds to keep (tests/test_grading.py measures the pass rates).
SPEED_REPEATS = 9
SPEED_MIN_SAMPLE_S = 0.005
SPEED_MAX_TIME_S = 2.0

_TIMED_OUT_ATTRIBUTE = "_book_grading_timed_out_s"
_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__)) + os.sep


# --- what a failure carries -----------------------------------------------------------------


class GradingError(AssertionError):
    """A check failed; the message says what was expected, what came, and where."""


class CallFailure(GradingError):
    """Student code did not run to an answer.

    Attributes
    ----------
    label : str
        The call as the student reads it (``"relu(x)"``).
    kind : str
        ``"undefined"``, ``"not callable"``, ``"raised"``, ``"timeout"``, ``"crashed"``,
        ``"unpicklable"`` (returned something that cannot be checked), ``"skipped"`` (it
        already timed out in an earlier check) or ``"failed while timed"``.
    exception : str or None
        The exception's type name (``"raised"``), the signal (``"crashed"``), the returned
        type (``"unpicklable"``), or what the function is (``"not callable"``).
    detail : str
        The exception's message, or what else there is to say.
    where : str
        ``"line 3 of <cell>"``: the student's line that raised, when known.
    time_limit_s : float or None
        The limit that applied (``"timeout"``, ``"skipped"``).
    """

    def __init__(self, label, kind, exception=None, detail="", where="", time_limit_s=None):
        self.label, self.kind, self.exception, self.detail = label, kind, exception, detail
        self.where, self.time_limit_s = where, time_limit_s
        super().__init__(self._message())

    def _message(self):
        base = self.label.split("(")[0].strip() or "the function"
        at = f" ({self.where})" if self.where else ""
        if self.kind == "undefined":
            return (f"{self.label}: {base} is not defined. Run the cell that defines it; if that cell raised "
                    "an error, fix it first")
        if self.kind == "not callable":
            return f"{self.label}: {base} should be a function, but it is {self.exception}"
        if self.kind == "raised":
            return f"{self.label} raised {self.exception}{at}" + (f": {self.detail}" if self.detail else "")
        if self.kind == "timeout":
            return (f"{self.label} did not return within {self.time_limit_s:g} s (the time limit): look for a "
                    "loop that never ends, or a much slower method than intended")
        if self.kind == "crashed":
            return (f"{self.label} crashed the Python process ({self.exception}); in numba code this is often "
                    "an index out of bounds")
        if self.kind == "unpicklable":
            return f"{self.label} returned a {self.exception}, which cannot be checked ({self.detail})"
        if self.kind == "skipped":
            return (f"{self.label} was not {self.detail}: it already exceeded the {self.time_limit_s:g} s time "
                    "limit in an earlier check; look for a loop that never ends")
        if self.kind == "failed while timed":
            return f"{self.label} failed while being timed: {self.detail}"
        raise ValueError(f"unknown kind of call failure {self.kind!r}")


class NoValue(GradingError):
    """A value under test is ``None``: ``name``, and ``hint`` (what usually causes it)."""

    def __init__(self, name, hint, returned=False):
        self.name, self.hint, self.returned = name, hint, returned
        super().__init__(f"{name} {'returned' if returned else 'is'} None: {hint}")


class WrongType(GradingError):
    """A value of the wrong kind: ``expected`` and ``got`` describe both (``"a number"``,
    ``"str '5.2'"``), ``hint`` says how to fix it (may be empty)."""

    def __init__(self, name, expected, got, hint=""):
        self.name, self.expected, self.got, self.hint = name, expected, got, hint
        super().__init__(f"{name}: expected {expected}, got {got}" + (f" ({hint})" if hint else ""))


class WrongValue(GradingError):
    """A value not close enough to the expected one: ``mismatch`` is the
    :class:`book.checks.Mismatch` (shapes, worst element, its error, the tolerances)."""

    def __init__(self, mismatch):
        self.mismatch = mismatch
        super().__init__(str(mismatch))


class InPlaceChange(GradingError):
    """A function modified its argument number ``position`` (from 1); ``change`` says how."""

    def __init__(self, label, position, change):
        self.label, self.position, self.change = label, position, change
        super().__init__(f"{label} modified its argument {position} in place ({change}): return a new array "
                         "instead of writing into the input")


class Disagreement(GradingError):
    """A speed-check candidate that does not return what the baseline returns (``detail``: how)."""

    def __init__(self, name, detail):
        self.name, self.detail = name, detail
        super().__init__(f"{name} does not agree with the baseline, so its speed was not graded: {detail}")


class SpeedFailure(GradingError):
    """A correct candidate that is not fast enough: ``report`` is the :class:`SpeedReport`."""

    def __init__(self, report, hint=None):
        self.report, self.hint = report, hint
        super().__init__(str(report) + (f" {hint}" if hint else ""))


class NotCompiled(GradingError):
    """A function that should be a numba-compiled loop is not: ``name``, ``problem`` (one of
    ``"not compiled"``, ``"fastmath"``, ``"book kernel"``, ``"no loop"``) and ``found`` (what it is)."""

    _ADVICE = {
        "not compiled": "compile it with @numba.njit; the question is about what the compiler makes of your loop",
        "fastmath": "compile it with fastmath={wanted}, as the question says",
        "book kernel": "it is one of the book's own kernels: write your own",
        "no loop": "it has no loop of its own: write the loop over the elements yourself",
    }

    def __init__(self, name, problem, found, wanted=None):
        self.name, self.problem, self.found, self.wanted = name, problem, found, wanted
        advice = self._ADVICE[problem].format(wanted=wanted)
        super().__init__(f"{name} is {found}: {advice}")


class NotVectorized(GradingError):
    """A compiled loop without SIMD arithmetic: ``name``, ``bits`` (the widest packed register its
    hottest loop uses, 0 for none) and ``loop`` (the :class:`book.asm.Summary` of that loop, or
    None when the code has no loop)."""

    def __init__(self, name, bits, loop):
        self.name, self.bits, self.loop = name, bits, loop
        if loop is None:
            found = "no loop at all in its machine code"
        else:
            found = (f"its hottest loop does {loop.scalar_float} scalar and "
                     f"{sum(loop.packed_float.values())} packed floating-point operations")
        super().__init__(f"{name} is not vectorized: {found}. Packed instructions (such as vmulpd on "
                         "xmm/ymm/zmm registers) are what SIMD looks like; see what stops the compiler "
                         "(a reduction it may not reorder, a dependence between iterations)")


class Tampered(GradingError):
    """The notebook changed the checking helpers: ``problems`` lists what it changed."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("the checking helpers were modified in this notebook (" + "; ".join(self.problems)
                         + "), so this question is graded zero. Remove the code that changes them, restart "
                         "the kernel and run all cells")


# --- running student code -------------------------------------------------------------------


def _describe(value):
    """``list of 3 items``, ``ndarray of shape (2, 3) and dtype int64``, ``str 'abc'``."""
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (list, tuple, dict, set)):
        return f"{type(value).__name__} of {len(value)} items"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _omp_layer_active():
    """GNU OpenMP (numba's 'omp' threading layer, once used) kills a forked child."""
    numba = sys.modules.get("numba")
    if numba is None:
        return False
    try:
        return numba.threading_layer() == "omp"
    except ValueError:  # no parallel function has run yet
        return False


def _can_fork():
    return (hasattr(os, "fork") and os.environ.get("BOOK_GRADING_ISOLATE", "1") != "0"
            and not _omp_layer_active())


class _Discard:
    """A text stream that swallows everything (student prints during a graded call)."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def _outcome(thunk):
    """Run ``thunk`` and describe how it ended, as a picklable tuple."""
    try:
        return ("returned", thunk())
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are answers too
        frames = traceback.extract_tb(exc.__traceback__)
        where = next((f"line {f.lineno} of {f.name}" for f in reversed(frames) if _is_user_code(f.filename)), "")
        return ("raised", type(exc).__name__, str(exc)[:500], where)


def _is_user_code(filename):
    """A notebook cell or the student's own module: not this package, not an installed library."""
    path = os.path.realpath(filename)
    libraries = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return not (path.startswith(_PACKAGE_DIR) or "site-packages" in path or "dist-packages" in path
                or any(path.startswith(os.path.join(lib, "lib")) for lib in libraries))


def _run_forked(thunk, time_limit_s):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, report through the pipe, never return into the kernel
        status = 0
        try:
            os.close(read_fd)
            faulthandler.disable()  # a crash of student code is reported, not dumped
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            sys.stdout = sys.stderr = _Discard()
            result = _outcome(thunk)
            try:
                payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001
                payload = pickle.dumps(("unpicklable", type(result[1]).__name__, str(exc)[:200]))
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks, deadline = [], time.monotonic() + time_limit_s
    try:
        while True:
            left = deadline - time.monotonic()
            ready = select.select([read_fd], [], [], left)[0] if left > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return ("timeout",)
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        if os.WIFSIGNALED(status):
            return ("crashed", signal.Signals(os.WTERMSIG(status)).name)
        return ("crashed", f"exit status {os.WEXITSTATUS(status)}")
    return pickle.loads(b"".join(chunks))


class _Alarm(BaseException):
    pass


def _run_in_process(thunk, time_limit_s):
    """Fallback without fork (Windows, or numba's OpenMP layer in use): a SIGALRM time limit
    where available, which stops Python loops but not compiled ones."""
    use_alarm = hasattr(signal, "setitimer") and _is_main_thread()
    if use_alarm:
        def on_alarm(signum, frame):
            raise _Alarm()
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, time_limit_s)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = _Discard()
    try:
        result = _outcome(thunk)
    finally:
        sys.stdout, sys.stderr = saved
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if result[0] == "raised" and result[1] == "_Alarm":
        return ("timeout",)
    return result


def _is_main_thread():
    return threading.current_thread() is threading.main_thread()


def _run_guarded(thunk, label, time_limit_s):
    """Run ``thunk`` isolated and time-limited; return its value or raise :class:`CallFailure`."""
    runner = _run_forked if _can_fork() else _run_in_process
    result = runner(thunk, time_limit_s)
    kind = result[0]
    if kind == "returned":
        return result[1]
    if kind == "raised":
        _, name, message, where = result
        raise CallFailure(label, "raised", exception=name, detail=message, where=where)
    if kind == "timeout":
        raise CallFailure(label, "timeout", time_limit_s=time_limit_s)
    if kind == "crashed":
        raise CallFailure(label, "crashed", exception=result[1])
    if kind == "unpicklable":
        raise CallFailure(label, "unpicklable", exception=result[1], detail=result[2])
    raise GradingError(f"{label}: unexpected outcome {result!r}")


def _call_limit(time_limit_s, default=DEFAULT_TIME_LIMIT_S):
    """The test's limit (or the default), capped by the grader's ``BOOK_GRADING_TIME_LIMIT_S``."""
    limit = float(time_limit_s or default)
    try:
        cap = float(os.environ.get("BOOK_GRADING_TIME_LIMIT_S") or "inf")
    except ValueError:
        cap = float("inf")
    return min(limit, cap)


def _label(fn, name):
    if name:
        return name
    return f"{getattr(fn, '__name__', 'the function')}(...)"


def _require_callable(fn, label):
    if fn is None:
        raise CallFailure(label, "undefined")
    if not callable(fn):
        raise CallFailure(label, "not callable", exception=_describe(fn))


def _refuse_if_timed_out(fn, label, verb):
    """A function that hit its time limit is not run again: the question's other tests would each
    wait for the limit."""
    earlier = getattr(fn, _TIMED_OUT_ATTRIBUTE, None)
    if earlier:
        raise CallFailure(label, "skipped", detail=verb, time_limit_s=earlier)


def _remember_timeout(fn, failure):
    if failure.kind == "timeout":
        try:
            setattr(fn, _TIMED_OUT_ATTRIBUTE, failure.time_limit_s)
        except (AttributeError, TypeError):  # a builtin, or a class with __slots__
            pass


def call(fn, *args, name=None, time_limit_s=None, **kwargs):
    """Call student code safely: ``fn(*args, **kwargs)`` in a forked copy, with a time limit.

    Parameters
    ----------
    fn : callable
        The student's function (``None`` when the notebook does not define it).
    *args, **kwargs
        Its arguments. The copy gets copies: an in-place change never reaches the test's data.
    name : str, optional
        The call as the student should read it, e.g. ``"relu(x)"``.
    time_limit_s : float, optional
        Seconds before the call is stopped (default :data:`DEFAULT_TIME_LIMIT_S`).

    Returns
    -------
    object
        What ``fn`` returned.

    Raises
    ------
    CallFailure
        When ``fn`` is undefined or not callable, raises (any exception, including
        ``SystemExit``), does not return in time, or crashes the process; its ``kind``
        says which.

    Examples
    --------
    >>> call(abs, -2, name="abs(-2)")
    2
    """
    _refuse_if_tampered()
    label = _label(fn, name)
    _require_callable(fn, label)
    _refuse_if_timed_out(fn, label, "run")
    try:
        return _run_guarded(lambda: fn(*args, **kwargs), label, _call_limit(time_limit_s))
    except CallFailure as failure:
        _remember_timeout(fn, failure)
        raise


# --- checking values ------------------------------------------------------------------------


def _is_number(value):
    return (isinstance(value, (int, float, complex, np.number)) and not isinstance(value, (bool, np.bool_))
            or isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iufc")


def _index(flat_index, shape):
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()


def check_close(actual, expected, *, rtol=0.0, atol=0.0, equal_nan=False, name="result"):
    """Require numbers close to ``expected``: ``|actual - expected| <= atol + rtol * |expected|``.

    ``expected`` may be a number or an array; ``actual`` must then be a number,
    or something NumPy reads as an array of the same shape. Both tolerances
    are explicit (default 0: exact). Use :func:`check_array` first to require
    an ``ndarray`` of a given dtype. The comparison is :func:`book.checks.assert_close`.

    Raises
    ------
    NoValue, WrongType
        When ``actual`` is ``None``, or not a number or an array of numbers.
    WrongValue
        When the shapes or the values differ; its ``mismatch`` holds the worst element, e.g.
        ``relu(x): max abs error 3.0e-02 > 1.0e-06 at index (17,) (expected 0.5, got 0.53; ...)``.

    Examples
    --------
    >>> check_close(0.1 + 0.2, 0.3, atol=1e-12, name="0.1 + 0.2")
    """
    _refuse_if_tampered()
    if actual is None:
        raise NoValue(name, "did the cell that sets it run, and does your function `return` its result "
                      "(not print it)?")
    want = np.asarray(expected)
    if want.ndim == 0 and not _is_number(actual):
        raise WrongType(name, "a number", _describe(actual))
    if want.ndim > 0 and (isinstance(actual, (str, bytes, dict, set)) or _is_number(actual)):
        raise WrongType(name, f"an array of shape {want.shape}", _describe(actual))
    try:
        kind = np.asarray(actual).dtype.kind
    except (ValueError, TypeError):
        kind = "b"  # ragged: assert_close says why it cannot be read
    if kind not in "biufc":
        raise WrongType(name, "numbers", f"an array of dtype {np.asarray(actual).dtype}")
    try:
        checks.assert_close(actual, want, rtol=rtol, atol=atol, equal_nan=equal_nan, name=name)
    except checks.Mismatch as mismatch:
        raise WrongValue(mismatch) from None


def check_array(actual, *, shape=None, dtype=None, name="result"):
    """Require a NumPy array, optionally of a given shape and dtype.

    ``dtype`` may be concrete (``np.float64``) or abstract (``np.floating``:
    any float). Raises :class:`WrongType` (``expected dtype float64, got
    int64``) or, for the shape, :class:`WrongValue` (``expected shape (1000,),
    got (1000, 1)``).
    """
    _refuse_if_tampered()
    if actual is None:
        raise NoValue(name, "does your function `return` the array (not print it)?")
    if not isinstance(actual, np.ndarray):
        raise WrongType(name, "a NumPy array", _describe(actual), hint="np.asarray converts a list")
    if shape is not None and tuple(actual.shape) != tuple(shape):
        raise WrongValue(checks.ShapeMismatch(name, tuple(shape), actual.shape))
    if dtype is not None:
        try:
            wanted = str(np.dtype(dtype))
            ok = actual.dtype == np.dtype(dtype)
        except TypeError:  # an abstract type such as np.floating: any float will do
            wanted = f"{dtype.__name__} (any)"
            ok = np.issubdtype(actual.dtype, dtype)
        if not ok:
            raise WrongType(name, f"dtype {wanted}", str(actual.dtype))


def check_type(actual, types, *, name="result"):
    """Require ``isinstance(actual, types)`` (``bool`` never counts as a number); raises :class:`WrongType`."""
    _refuse_if_tampered()
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(actual, bool) and bool not in types or not isinstance(actual, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise WrongType(name, wanted, _describe(actual))


def _changes(before, after):
    """Index of the first argument that changed, and how (``None`` if none did)."""
    for position, (old, new) in enumerate(zip(before, after), start=1):
        if isinstance(old, np.ndarray):
            if new.shape != old.shape or new.dtype != old.dtype:
                return position, f"its shape/dtype changed to {new.shape}/{new.dtype}"
            same = old == new
            if old.dtype.kind in "fc":
                same |= np.isnan(old) & np.isnan(new)
            differs = ~same
            if differs.any():
                flat = int(np.argmax(differs.ravel()))
                return position, (f"element {_index(flat, old.shape)} changed from {old.flat[flat].item()!r} "
                                  f"to {new.flat[flat].item()!r}")
        elif isinstance(old, (list, dict, set)) and old != new:
            return position, "its contents changed"
    return None


def check_unchanged(fn, *args, name=None, time_limit_s=None):
    """Call ``fn(*args)`` as :func:`call` does and require that it leaves its arguments (arrays,
    lists, dicts) as they were and returns something.

    Returns
    -------
    object
        What ``fn`` returned, for the test's further checks.

    Raises
    ------
    CallFailure, InPlaceChange, NoValue
    """
    _refuse_if_tampered()
    label = _label(fn, name)
    _require_callable(fn, label)
    _refuse_if_timed_out(fn, label, "run")

    def run():
        before = copy.deepcopy(args)
        result = fn(*args)
        return result, _changes(before, args)

    try:
        result, change = _run_guarded(run, label, _call_limit(time_limit_s))
    except CallFailure as failure:
        _remember_timeout(fn, failure)
        raise
    if change is not None:
        raise InPlaceChange(label, *change)
    if result is None:
        raise NoValue(label, "does your function `return` its result (not print it)?", returned=True)
    return result


# --- speed as a grade -----------------------------------------------------------------------


@dataclass
class SpeedReport:
    """What :func:`check_speedup` measured."""

    name: str
    ratio: float
    at_least: float
    passed: bool
    n: int
    candidate_s: float
    candidate_mad_s: float
    baseline_s: float
    baseline_mad_s: float
    repeats: int
    first_call_s: float
    compile_s: float
    card: str

    def __str__(self):
        fmt = format_seconds
        verdict = "fast enough" if self.passed else "too slow"
        compiled = f", of which {fmt(self.compile_s)} compiling" if self.compile_s > 0 else ""
        ratio = f"{self.ratio:,.0f}" if self.ratio >= 100 else f"{self.ratio:.3g}"
        return (f"{self.name}: {verdict}: speedup {ratio}x over the baseline (required: at "
                f"least {self.at_least:g}x) at n={self.n:,}. Median of {self.repeats} interleaved "
                f"repeats: {fmt(self.candidate_s)} ± {fmt(self.candidate_mad_s)} vs baseline "
                f"{fmt(self.baseline_s)} ± {fmt(self.baseline_mad_s)}; first call "
                f"{fmt(self.first_call_s)}{compiled}, excluded. Measured on: {self.card}")


def _log(record):
    """Append a JSON line for the batch grader (``BOOK_GRADING_LOG``), if it asked for one."""
    path = os.environ.get("BOOK_GRADING_LOG")
    if path:
        try:
            with open(path, "a") as log:
                log.write(json.dumps(record) + "\n")
        except OSError:
            pass


def check_speedup(candidate, baseline, *, setup=None, n=1, at_least, name=None, check=True,
                  time_limit_s=None, hint=None, meta=None):
    """Grade speed: require ``candidate`` to be ``at_least`` times faster than ``baseline``.

    Both run in the same (forked) process with :func:`book.timing.bench`: they
    must agree first (``check``, as in ``bench``), the first call (numba's
    compilation) is timed apart and excluded, loop counts are auto-ranged,
    repeats are interleaved, and the ratio of the medians is compared with
    ``at_least``. The measured ratio and the hardware card are printed when
    the check passes and are the error message when it fails.

    Parameters
    ----------
    candidate, baseline : callable
        The student's function and the lab's baseline (defined in the test).
    setup : callable, optional
        ``setup(n)`` builds the input (a tuple is several arguments), as in ``bench``.
    n : int
        Problem size passed to ``setup``.
    at_least : float
        Required speedup ``median(baseline) / median(candidate)``.
    name : str, optional
        The candidate's name in messages (default: its ``__name__``).
    check : bool or callable
        Agreement check before timing (see :func:`book.timing.bench`).
    time_limit_s : float, optional
        Limit for the whole measurement (default :data:`SPEED_TIME_LIMIT_S`).
    hint : str, optional
        A sentence added to the failure message (what a fast version looks like).
    meta : dict, optional
        Hardware card (collected when omitted).

    Returns
    -------
    SpeedReport
        When the check passes.

    Raises
    ------
    CallFailure
        When the candidate is missing, raises, or the measurement exceeds its time limit.
    Disagreement
        When the candidate does not return what the baseline returns.
    SpeedFailure
        When it is too slow; its ``report`` is the :class:`SpeedReport`.
    """
    _refuse_if_tampered()
    label = name or getattr(candidate, "__name__", "candidate")
    _require_callable(candidate, label)
    limit = _call_limit(time_limit_s, SPEED_TIME_LIMIT_S)
    _refuse_if_timed_out(candidate, label, "timed")

    def agree(expected, actual):
        if actual is None:
            raise timing.KernelMismatch(f"{label} returned None: does it `return` its result?")
        if check is True:
            try:
                timing.assert_same(expected, actual, label, "baseline", n)
            except timing.KernelMismatch as exc:  # bench names the kernels itself: keep what differs
                raise timing.KernelMismatch(exc.__cause__.describe()) from None
        elif callable(check):
            check(expected, actual)

    def measure():
        card_meta = dict(meta if meta is not None else hardware.collect_metadata())
        card_meta["quick"] = False  # the speed check never uses quick mode's sizes
        result = timing.bench({"baseline": baseline, label: candidate}, [n], setup=setup,
                              check=agree if check else False, repeats=SPEED_REPEATS,
                              min_sample_s=SPEED_MIN_SAMPLE_S, max_time_s=SPEED_MAX_TIME_S, meta=card_meta)
        rows = {r["kernel"]: r for r in result.records}
        summarize = timing.summarize
        (b_med, b_mad), (c_med, c_mad) = summarize(rows["baseline"]["times_s"]), summarize(rows[label]["times_s"])
        return dict(candidate_s=c_med, candidate_mad_s=c_mad, baseline_s=b_med, baseline_mad_s=b_mad,
                    repeats=min(len(rows["baseline"]["times_s"]), len(rows[label]["times_s"])),
                    first_call_s=rows[label]["first_call_s"], compile_s=rows[label]["compile_s"],
                    card=hardware.card(card_meta))

    try:
        measured = _run_guarded(measure, f"the speed check of {label}", limit)
    except CallFailure as failure:
        _log({"check": "speedup", "name": label, "ratio": None, "at_least": at_least, "passed": False})
        if failure.exception == "KernelMismatch":
            raise Disagreement(label, failure.detail) from None
        if failure.exception == "BenchError":  # bench's message names the kernel that raised
            raise CallFailure(label, "failed while timed", detail=failure.detail) from None
        raise
    ratio = measured["baseline_s"] / measured["candidate_s"] if measured["candidate_s"] > 0 else float("inf")
    report = SpeedReport(name=label, ratio=float(ratio), at_least=float(at_least), passed=bool(ratio >= at_least),
                         n=int(n), **measured)
    _log({"check": "speedup", "name": label, "ratio": report.ratio, "at_least": report.at_least,
          "passed": report.passed})
    if not report.passed:
        raise SpeedFailure(report, hint)
    print(f"✅ {report}")
    return report


# --- what the compiler made -----------------------------------------------------------------


@dataclass
class Compiled:
    """What :func:`check_compiled` found: the dispatcher's ``name``, its ``callees`` (names of the
    numba functions it calls, directly or not), whether it or a callee ``loops`` in its own
    bytecode, and its ``fastmath`` option."""

    name: str
    callees: list
    loops: bool
    fastmath: object


def _python_loops(function):
    """Whether a Python function's own bytecode loops (a backward jump: ``for`` or ``while``)."""
    import dis

    return any(i.opname in ("FOR_ITER", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
               for i in dis.get_instructions(function))


def _callees(dispatcher):
    """The numba functions that a dispatcher's Python source names (globals or closure variables),
    recursively."""
    from numba.core.registry import CPUDispatcher

    found, todo = {}, [dispatcher]
    while todo:
        function = todo.pop().py_func
        named = [function.__globals__.get(name) for name in function.__code__.co_names]
        for cell in function.__closure__ or ():
            try:
                named.append(cell.cell_contents)
            except ValueError:  # a closure variable not bound yet
                pass
        for value in named:
            if isinstance(value, CPUDispatcher) and value is not dispatcher and value.__name__ not in found:
                found[value.__name__] = value
                todo.append(value)
    return found


def check_compiled(fn, *, name=None, loop=False, fastmath=None):
    """Require a numba-compiled function (``@numba.njit``) written by the student.

    The dispatcher is inspected, never called: its type, its options, the numba functions its
    source calls, and whether the Python code it was compiled from loops.

    Parameters
    ----------
    fn : object
        The student's function.
    name : str, optional
        Its name in messages.
    loop : bool
        Also require a loop in its own code or in a numba function it calls (a compiled
        ``x * y`` or ``np.sum`` has none).
    fastmath : bool, optional
        Require this ``fastmath`` setting (``False``: off); None accepts any.

    Returns
    -------
    Compiled

    Raises
    ------
    CallFailure
        When ``fn`` is undefined or not callable.
    NotCompiled
        Not a numba ``CPUDispatcher`` (a plain function or a NumPy call), a kernel of the
        ``book`` package, the wrong ``fastmath``, or (with ``loop``) no loop; its ``problem``
        says which.
    """
    _refuse_if_tampered()
    from numba.core.registry import CPUDispatcher  # imported when needed: most checks never use numba

    label = name or getattr(fn, "__name__", "the function")
    _require_callable(fn, label)
    if not isinstance(fn, CPUDispatcher):
        raise NotCompiled(label, "not compiled", f"a {type(fn).__name__}, not compiled by numba")
    callees = _callees(fn)
    for function in [fn, *callees.values()]:  # a wrapper around the book's kernel is the book's kernel
        module = str(getattr(function.py_func, "__module__", "") or "")
        if module == "book" or module.startswith("book."):
            raise NotCompiled(label, "book kernel", f"{module}.{function.py_func.__name__}"
                              + ("" if function is fn else " (called by it)"))
    options = fn.targetoptions.get("fastmath", False)
    if fastmath is not None and bool(options) != bool(fastmath):
        raise NotCompiled(label, "fastmath", f"compiled with fastmath={options!r}", wanted=fastmath)
    loops = any(_python_loops(f.py_func) for f in [fn, *callees.values()])
    if loop and not loops:
        raise NotCompiled(label, "no loop", "compiled by numba without a loop of its own")
    return Compiled(name=label, callees=sorted(callees), loops=loops, fastmath=options)


def check_vectorized(fn, *args, name=None, kind="float", time_limit_s=None):
    """Require that numba compiles ``fn`` for these arguments' types into a SIMD loop.

    ``fn`` is compiled (in a forked copy, with a time limit) for the numba types of ``args``,
    never run; its assembly is read with :mod:`book.asm`: the hottest loop
    (:func:`book.asm.hottest_loop`) must do packed arithmetic. The width is read from the code,
    so the check holds on any CPU (xmm, ymm or zmm on x86, NEON on ARM).

    Parameters
    ----------
    fn : numba dispatcher
        The student's function (:func:`check_compiled` is applied first).
    *args
        Example arguments: only their types matter.
    name : str, optional
        Its name in messages.
    kind : {"float", "int", "any"}
        Which packed arithmetic counts (see :func:`book.asm.vector_bits`).
    time_limit_s : float, optional
        Limit for compiling (default :data:`DEFAULT_TIME_LIMIT_S`).

    Returns
    -------
    int
        The widest vector register, in bits, that the hottest loop's packed arithmetic uses.

    Raises
    ------
    NotCompiled, CallFailure
        When ``fn`` is not a numba function, or does not compile for these arguments.
    NotVectorized
        When the hottest loop has no packed arithmetic (its ``loop`` summary says what it has).
    """
    from book import asm

    _refuse_if_tampered()
    label = name or getattr(fn, "__name__", "the function")
    check_compiled(fn, name=label)

    def assembly():
        import numba

        signature = tuple(numba.typeof(a) for a in args)
        fn.compile(signature)
        return fn.inspect_asm(signature)

    text = _run_guarded(assembly, f"compiling {label}", _call_limit(time_limit_s))
    try:
        loop = asm.hottest_loop(text)
    except ValueError:
        raise NotVectorized(label, 0, None) from None
    bits = asm.vector_bits(loop, kind)
    if bits == 0:
        raise NotVectorized(label, 0, asm.summary(loop))
    return bits


# --- tampering ------------------------------------------------------------------------------


# The functions of other modules that the checks rely on; a notebook must not replace them.
_HARNESS = ((timing, "bench"), (timing, "assert_same"), (timing, "assert_close"), (timing, "summarize"),
            (checks, "assert_close"))


def _defined_in(obj, path):
    code = getattr(obj, "__code__", None)
    if code is not None:
        return os.path.realpath(code.co_filename) == os.path.realpath(path)
    return isinstance(obj, type) and obj.__module__ == __name__


def _is_original(function):
    """A function of the book package, as the file of the module it names defines it."""
    module = sys.modules.get(getattr(function, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    return (path is not None and os.path.realpath(path).startswith(_PACKAGE_DIR)
            and _defined_in(function, path) and getattr(function, "__code__", None) is not None)


def _find_tampering(previous):
    """What the notebook changed since the last load: names rebound or deleted in this module,
    or the harness functions it relies on. Sticky: once found, it stays until a kernel restart."""
    found = list(previous.get("TAMPERED", []))
    if "GradingError" in previous:  # a reload: compare with what the last load defined
        for name in __all__:
            if name not in previous:
                found.append(f"book.grading.{name} was deleted")
            elif not _defined_in(previous[name], __file__):
                found.append(f"book.grading.{name} was replaced")
    for module, name in _HARNESS:
        if not _is_original(getattr(module, name, None)):
            found.append(f"{module.__name__}.{name} was replaced")
    return sorted(set(found))


def _refuse_if_tampered():
    if TAMPERED:
        raise Tampered(TAMPERED)


TAMPERED = _find_tampering(_PREVIOUS)
del _PREVIOUS
# A test's first line re-imports this module: tampering fails the test there, even a test that
# then only uses `assert`.
_refuse_if_tampered()
