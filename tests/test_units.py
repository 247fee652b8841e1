"""book.units: times, sizes and rates in the units readers expect."""

import numpy as np
import pytest

from book.units import format_bytes, format_rate, format_seconds


def test_format_seconds():
    assert [format_seconds(s) for s in (1.5, 0.0123, 4.5e-5, 2.39e-7)] == ["1.5 s", "12.3 ms", "45 µs", "239 ns"]
    assert format_seconds(np.float64(2e-3)) == "2 ms"


def test_format_bytes_uses_binary_units():
    assert [format_bytes(n) for n in (512, 32768, 1.5 * 2**20, np.int64(2**40))] == \
        ["512 B", "32 KiB", "1.5 MiB", "1 TiB"]


def test_format_rate_uses_decimal_prefixes():
    assert format_rate(3.2e10, "B") == "32 GB/s"
    assert format_rate(2.5e11, "FLOP") == "250 GFLOP/s"
    assert format_rate(12, "op") == "12 op/s"


@pytest.mark.parametrize("formatter", [format_seconds, format_bytes, lambda v: format_rate(v, "B")])
def test_non_numbers_are_refused_by_name(formatter):
    with pytest.raises(TypeError, match="must be a number, got str"):
        formatter("32K")
