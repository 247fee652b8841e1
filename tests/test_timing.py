"""book.timing: statistics on a virtual clock, warm-up, interleaving, errors."""

import time

import numba
import numpy as np
import pytest

from book.timing import BenchError, KernelMismatch, bench

META = {"cpu_model": "test CPU"}  # skips the hardware probes in unit tests


class VirtualClock:
    """A timer that only advances when a kernel says it spent time."""

    def __init__(self):
        self.now_ns = 0

    def __call__(self):
        return self.now_ns

    def spend(self, ns):
        self.now_ns += ns


def test_constant_kernel_on_virtual_clock():
    clock = VirtualClock()
    result = bench({"k": lambda n: clock.spend(1_000)}, [10], timer=clock,
                   repeats=7, min_sample_s=1e-3, meta=META)
    row = result.to_frame().iloc[0]
    # 1 µs per call needs 1000 loops to fill a 1 ms sample (1, 2, 5, ..., 1000).
    assert row.loops == 1000
    assert row.repeats == 7
    assert row.median_s == pytest.approx(1e-6)
    assert row.mad_s == 0


def test_median_and_mad_ignore_rare_spikes():
    clock = VirtualClock()
    calls = iter(range(10**6))

    def kernel(n):
        # every 7th call is 100x slower (an interrupt, another tenant)
        clock.spend(100_000 if next(calls) % 7 == 3 else 1_000)

    result = bench({"k": kernel}, [1], timer=clock, repeats=15, min_sample_s=1e-6, meta=META)
    row = result.to_frame().iloc[0]
    assert row.loops == 1
    assert row.median_s == pytest.approx(1e-6)
    assert row.mad_s == 0
    assert max(result.records[0]["times_s"]) == pytest.approx(1e-4)  # raw repeats are kept


def test_first_call_is_timed_apart():
    clock = VirtualClock()
    state = {"first": True}

    def kernel(n):
        clock.spend(50_000_000 if state["first"] else 2_000)
        state["first"] = False

    row = bench({"k": kernel}, [1], timer=clock, meta=META).to_frame().iloc[0]
    assert row.first_call_s == pytest.approx(0.05)
    assert row.median_s == pytest.approx(2e-6)


def test_numba_compile_time_is_reported_and_excluded():
    @numba.njit
    def total(values):
        s = 0.0
        for v in values:
            s += v
        return s

    result = bench({"numba": total, "numpy": np.sum}, [1000], setup=lambda n: np.ones(n), meta=META)
    frame = result.to_frame().set_index("kernel")
    assert frame.loc["numba", "compile_s"] > 0.01  # compiling takes tens of ms at least
    assert frame.loc["numba", "first_call_s"] >= frame.loc["numba", "compile_s"]
    assert frame.loc["numba", "median_s"] < frame.loc["numba", "compile_s"] / 100
    assert frame.loc["numpy", "compile_s"] == 0


def test_kernels_are_interleaved_round_by_round():
    clock = VirtualClock()
    order = []

    def make(name):
        return lambda n: (order.append(name), clock.spend(2_000_000))

    bench({"a": make("a"), "b": make("b")}, [1], timer=clock, repeats=4, min_sample_s=1e-3, meta=META)
    # first call and one auto-range sample each, then four interleaved rounds
    assert order == ["a", "b", "a", "b"] + ["a", "b"] * 4


def test_time_budget_limits_repeats_but_keeps_three():
    clock = VirtualClock()
    result = bench({"slow": lambda n: clock.spend(1_000_000_000)}, [1], timer=clock,
                   repeats=15, max_time_s=2.0, meta=META)
    assert result.to_frame().iloc[0].repeats == 3


def test_setup_tuple_is_splatted_and_shared():
    seen = []
    bench({"f": lambda a, b: seen.append((a, b)) or a + b}, [3], setup=lambda n: (n, 2 * n),
          repeats=1, min_sample_s=1e-9, meta=META)
    assert set(seen) == {(3, 6)}


def test_results_table_and_speedup():
    clock = VirtualClock()
    result = bench({"slow": lambda n: clock.spend(4_000 * n), "fast": lambda n: clock.spend(1_000 * n)},
                   [1, 10], timer=clock, repeats=3, min_sample_s=1e-4, check=False, meta=META)
    assert result.kernels == ["slow", "fast"]
    assert result.sizes == [1, 10]
    assert result.median("fast", 10) == pytest.approx(1e-5)
    speedup = result.speedup("slow")
    assert speedup.loc[10, "fast"] == pytest.approx(4.0)
    assert speedup.loc[1, "slow"] == pytest.approx(1.0)
    table = result.table()
    assert table.index.names == ["kernel", "n"]
    assert list(table.columns) == ["median", "± MAD", "first call", "compile", "repeats × loops"]
    assert len(result.raw_frame()) == 2 * 2 * 3
    with pytest.raises(KeyError, match="baseline 'nope'"):
        result.speedup("nope")
    with pytest.raises(KeyError, match="no measurement of kernel 'fast' at n=5"):
        result.median("fast", 5)


@pytest.mark.parametrize("kernels, message", [
    ({}, "at least one kernel"),
    ([], "at least one kernel"),
    ({"k": 42}, "kernel 'k' is not callable"),
    ([len, len], "must be unique"),
])
def test_bad_kernels_are_named(kernels, message):
    with pytest.raises(BenchError, match=message):
        bench(kernels, [1], meta=META)


@pytest.mark.parametrize("sizes, message", [
    ([], "at least one size"),
    ([10, 0], r"size 0 \(position 1\) is not a positive integer"),
    ([-5], "size -5"),
    ([2.5], "size 2.5"),
    (["10"], "size '10'"),
    ([True], "size True"),
    (None, "sizes must be"),
])
def test_bad_sizes_are_named(sizes, message):
    with pytest.raises(BenchError, match=message):
        bench({"k": len}, sizes, meta=META)


def test_disagreeing_kernels_are_named_with_index_and_error():
    def off_by_one_at_17(n):
        out = np.zeros(n)
        out[17] = 3e-2
        return out

    with pytest.raises(KernelMismatch, match=r"kernel 'wrong' disagrees with 'right' at n=100: "
                                             r"max abs error 0.03 at index \(17,\)"):
        bench({"right": np.zeros, "wrong": off_by_one_at_17}, [100], meta=META)


def test_shape_and_integer_mismatches():
    with pytest.raises(KernelMismatch, match=r"returned shape \(10, 1\), expected \(10,\)"):
        bench({"a": np.zeros, "b": lambda n: np.zeros((n, 1))}, [10], meta=META)
    with pytest.raises(KernelMismatch, match=r"first difference at index \(3,\)"):
        bench({"a": np.arange, "b": lambda n: np.where(np.arange(n) == 3, -1, np.arange(n))}, [10], meta=META)


def test_float32_rounding_is_tolerated_but_not_float64_errors():
    values = np.random.default_rng(0).random(100_000).astype(np.float32)
    bench({"sum": lambda: values.sum(), "sorted sum": lambda: np.sort(values).sum()}, [1],
          setup=lambda n: (), meta=META, repeats=1)
    with pytest.raises(KernelMismatch):
        bench({"a": lambda n: 1.0, "b": lambda n: 1.0 + 1e-6}, [1], meta=META)


def test_custom_check_and_raising_kernel():
    def never(expected, actual):
        raise AssertionError("outputs differ in a way I care about")

    with pytest.raises(KernelMismatch, match="kernel 'b' disagrees with 'a' at n=1: outputs differ"):
        bench({"a": abs, "b": abs}, [1], check=never, meta=META)
    with pytest.raises(BenchError, match=r"kernel 'boom' raised ZeroDivisionError at n=3"):
        bench({"boom": lambda n: n / 0}, [3], meta=META)
    with pytest.raises(BenchError, match="setup must be a callable"):
        bench({"k": abs}, [1], setup=[1, 2], meta=META)


def test_default_meta_is_the_hardware_card():
    result = bench({"k": abs}, [1], repeats=1, min_sample_s=1e-6)
    assert "cpu_model" in result.meta and "numpy" in result.meta


def test_real_timer_resolves_short_kernels():
    """Auto-ranging makes a ~100 ns call measurable: samples last >= min_sample_s."""
    result = bench({"noop": lambda n: None}, [1], repeats=3, min_sample_s=2e-3, meta=META)
    row = result.to_frame().iloc[0]
    assert row.loops * row.median_s >= 1e-3
    assert row.median_s < 1e-5


def test_quick_mode_scales_defaults(monkeypatch):
    clock = VirtualClock()
    monkeypatch.setenv("BOOK_QUICK", "1")
    quick = bench({"k": lambda n: clock.spend(10)}, [1], timer=clock, meta=META).to_frame().iloc[0]
    monkeypatch.setenv("BOOK_QUICK", "0")
    full = bench({"k": lambda n: clock.spend(10)}, [1], timer=clock, meta=META).to_frame().iloc[0]
    assert (quick.repeats, full.repeats) == (5, 15)
    assert quick.loops < full.loops


def test_wall_clock_of_a_sleep_is_measured():
    row = bench({"sleep": lambda n: time.sleep(0.002)}, [1], repeats=3, meta=META).to_frame().iloc[0]
    assert 0.002 <= row.median_s < 0.02
