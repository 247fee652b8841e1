"""book.hdl: three PyRTL multiply-accumulate circuits, simulated cycle by cycle (chapter 3)."""

import numpy as np
import pytest

from book import hdl


@pytest.fixture(scope="module")
def circuits():
    return {design: hdl.build(design) for design in hdl.DESIGNS}


@pytest.mark.parametrize("n", [1, 2, 7])
@pytest.mark.parametrize("design", hdl.DESIGNS)
def test_accumulates_the_dot_product(circuits, design, n):
    rng = np.random.default_rng(n)
    a, b = rng.integers(0, 256, n), rng.integers(0, 256, n)
    a[0], b[0] = 255, 255  # the widest product
    trace = hdl.simulate(circuits[design], a, b)
    assert int(trace["acc"][-1]) == int(a @ b)
    assert int(trace["valid"].sum()) == n


@pytest.mark.parametrize("design, ii, latency", [("combinational", 1, 1), ("pipelined", 1, 3), ("multicycle", 9, 9)])
def test_initiation_interval_and_latency(circuits, design, ii, latency):
    trace = hdl.simulate(circuits[design], [3] * 10, [5] * 10)
    assert hdl.initiation_interval(trace) == ii
    assert int(np.flatnonzero(trace["valid"])[0]) == latency  # first pair offered in cycle 0


def test_pipeline_shortens_the_critical_path_but_not_the_interval(circuits):
    t = {design: hdl.timing(circuit) for design, circuit in circuits.items()}
    assert t["pipelined"]["critical_path_ps"] < 0.75 * t["combinational"]["critical_path_ps"]
    assert t["multicycle"]["critical_path_ps"] < t["combinational"]["critical_path_ps"]
    assert t["pipelined"]["max_clock_mhz"] > t["combinational"]["max_clock_mhz"]


def test_other_widths_work():
    circuit = hdl.build("multicycle", width=4)
    trace = hdl.simulate(circuit, [15, 1], [15, 2])
    assert int(trace["acc"][-1]) == 227 and hdl.initiation_interval(trace) == 5


def test_verilog_names_the_module_and_ports(circuits):
    text = hdl.to_verilog(circuits["pipelined"])
    assert "module mac_pipelined" in text and "input[7:0] a;" in text and "endmodule" in text


def test_waveform_has_one_line_per_signal(circuits):
    trace = hdl.simulate(circuits["pipelined"], [1, 2, 3], [4, 5, 6])
    fig = hdl.waveform(trace, signals=("valid_in", "valid", "acc"))
    assert [t.name for t in fig.data] == ["valid_in", "valid", "acc"]
    assert list(fig.data[2].customdata)[-1] == 32


@pytest.mark.parametrize("call, match", [
    (lambda: hdl.build("systolic"), "design"),
    (lambda: hdl.build("pipelined", width=7), "width"),
    (lambda: hdl.simulate(hdl.build("combinational", width=2), [4], [1]), "unsigned"),
    (lambda: hdl.simulate(hdl.build("combinational", width=2), [1, 2], [1]), "length"),
    (lambda: hdl.initiation_interval({"valid": np.array([0, 1, 0])}), "fewer than two"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
