"""book.plots.roofline: the reusable roofline chapters 2-7 place their kernels on."""

import math

import pytest

from book import plots

META = {"cpu_model": "CPU A", "usable_cpus": 2, "numpy": "2.4", "numba": "0.68"}
COMPUTE = {"float64 BLAS": 100.0, "float64, 1 thread": 50.0}
MEMORY = {"DRAM": 20.0, "L1": 200.0}
TRIAD = {"name": "triad", "intensity": 2 / 24, "gflops": 1.5, "gflops_mad": 0.1, "note": "n = 10⁷"}
MATMUL = {"name": "matmul", "intensity": 100.0, "gflops": 80.0}


def traces(fig, group):
    return [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("roofline") == group]


def card_text(fig):
    return [a.text for a in fig.layout.annotations if a.name == "card"][0]


def test_attainable_is_the_lower_of_the_two_roofs():
    assert plots.attainable_gflops(0.25, peak_gflops=100, bandwidth_gbs=20) == 5.0
    assert plots.attainable_gflops(1000, peak_gflops=100, bandwidth_gbs=20) == 100
    assert plots.ridge_intensity(100, 20) == 5.0
    ridge = plots.ridge_intensity(100, 20)
    assert math.isclose(plots.attainable_gflops(ridge, 100, 20), 100)


def test_roof_line_follows_min_of_peak_and_bandwidth():
    fig = plots.roofline(COMPUTE, MEMORY, meta=META)
    [roof] = traces(fig, "roof")
    assert roof.name == "roofline"
    assert "float64 BLAS: 100 GFLOP/s" in roof.hovertemplate and "DRAM: 20 GB/s" in roof.hovertemplate
    for x, y in zip(roof.x, roof.y):
        assert math.isclose(y, min(100.0, 20.0 * x))
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "FLOP/byte" in fig.layout.xaxis.title.text and "GFLOP/s" in fig.layout.yaxis.title.text
    assert "CPU A" in card_text(fig)


def test_extra_ceilings_are_dashed_and_capped_by_the_main_roof():
    fig = plots.roofline(COMPUTE, MEMORY)
    [one_thread] = traces(fig, "compute")
    assert one_thread.line.dash == "dash" and max(one_thread.y) == 50.0
    [l1] = traces(fig, "memory")
    assert l1.line.dash and max(l1.y) == 100.0  # L1 slope, capped at the top compute ceiling
    assert math.isclose(l1.y[0], 200.0 * l1.x[0])


def test_kernels_show_fraction_of_roof_and_bound():
    fig = plots.roofline(COMPUTE, MEMORY, kernels=[TRIAD, MATMUL])
    triad, matmul = traces(fig, "kernel")
    assert (triad.x[0], triad.y[0]) == (TRIAD["intensity"], 1.5)
    assert triad.error_y.array[0] == 0.1
    # triad: 1.5 GFLOP/s of an attainable 20 * 2/24 = 1.667 -> 90%, memory-bound, note shown
    assert "90% of the roof here (memory-bound)" in triad.hovertemplate
    assert "n = 10⁷" in triad.hovertemplate
    assert "80% of the roof here (compute-bound)" in matmul.hovertemplate
    assert matmul.error_y.array is None


def test_axis_range_covers_kernels_and_ridges():
    fig = plots.roofline(COMPUTE, MEMORY, kernels=[{"name": "tiny", "intensity": 1e-3, "gflops": 0.01},
                                                   {"name": "huge", "intensity": 1e4, "gflops": 90}])
    [roof] = traces(fig, "roof")
    assert min(roof.x) <= 1e-3 / 2 and max(roof.x) >= 1e4 * 4


def test_later_chapters_add_kernels_and_published_ceilings():
    others = [{"name": "Accelerator X, float64", "peak_gflops": 60_000, "bandwidth_gbs": 3_000,
               "source": "X data sheet (2024)"}]
    fig = plots.roofline(COMPUTE, MEMORY, kernels=[TRIAD], others=others, meta=META)
    [other] = traces(fig, "other")
    assert other.line.dash == "dot" and "source: X data sheet (2024)" in other.hovertemplate
    assert "Accelerator X, float64: X data sheet (2024)" in card_text(fig)  # cited under the plot
    plots.add_roofline_kernels(fig, [MATMUL], symbol="diamond", offset=3)
    added = traces(fig, "kernel")[-1]
    assert added.name == "matmul" and added.marker.symbol == "diamond" and added.marker.color == plots.color(3)


def test_published_ceilings_need_a_source():
    with pytest.raises(ValueError, match="need a source"):
        plots.roofline(COMPUTE, MEMORY, others=[{"name": "X", "peak_gflops": 1, "bandwidth_gbs": 1}])


@pytest.mark.parametrize("compute, memory", [({}, MEMORY), (COMPUTE, {}), ({"bad": -1.0}, MEMORY),
                                             (COMPUTE, {"nan": float("nan")})])
def test_ceilings_must_be_positive_numbers(compute, memory):
    with pytest.raises(ValueError, match="ceiling"):
        plots.roofline(compute, memory)


def test_kernels_need_positive_intensity_and_speed():
    with pytest.raises(ValueError, match="kernel 'zero'"):
        plots.roofline(COMPUTE, MEMORY, kernels=[{"name": "zero", "intensity": 0.0, "gflops": 1.0}])


def test_adding_kernels_needs_a_roofline_figure():
    with pytest.raises(ValueError, match="no roofline"):
        plots.add_roofline_kernels(plots.figure("not a roofline"), [TRIAD])


def test_roofline_inputs_round_trip_a_data_file():
    records = ([{"kind": "compute", "name": k, "gflops": v} for k, v in COMPUTE.items()]
               + [{"kind": "memory", "name": k, "gbs": v} for k, v in MEMORY.items()]
               + [dict(TRIAD, kind="kernel", flop=2, bytes=24)])
    parts = plots.roofline_inputs(records)
    assert parts["compute"] == COMPUTE and list(parts["memory"]) == ["DRAM", "L1"]
    assert parts["kernels"] == [TRIAD]  # only the keys the plot uses
    fig = plots.roofline(**parts, meta=META)
    assert "float64 BLAS" in traces(fig, "roof")[0].hovertemplate
    with pytest.raises(ValueError, match="unknown kind"):
        plots.roofline_inputs([{"kind": "gpu", "name": "?"}])


def test_notes_stack_under_the_card():
    fig = plots.figure("t")
    plots.add_card(fig, META)
    plots.add_note(fig, "Source: a citation")
    text = card_text(fig)
    assert text.index("Measured on: CPU A") < text.index("Source: a citation")
