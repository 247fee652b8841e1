"""Chapter 5 (Deep-learning compilers): what its reference data must tell."""

import pytest

from book import data

from conftest import ROOT

LATENCY = data.path("ch05", "latency.json")


@pytest.mark.skipif(not LATENCY.exists(), reason="data/ch05/latency.json is written by make data")
def test_reference_latency_holds_every_runner_at_every_batch():
    result = data.load(LATENCY)
    assert set(result.kernels) == {"numpy eager", "book unfused", "book fused", "ORT off", "ORT all"}
    assert len(result.sizes) >= 3 and not result.meta.get("quick")
    for n in result.sizes:
        for kernel in result.kernels:
            assert result.median(kernel, n) > 0


def test_page_has_a_widget_that_reruns_the_latency_sweep_over_the_reference():
    page = (ROOT / "chapters" / "dl_compilers.md").read_text()
    widget = page[page.index("import ipywidgets"):]
    widget = widget[:widget.index("```")]
    assert "bench(" in widget and "runners(n)" in widget, "the widget must rerun the chapter's latency sweep"
    assert "reference=reference_run" in widget, "and draw it over the book's reference curve"
    assert "inert" in page[:page.index("import ipywidgets")], "the page says the widget needs a kernel"


@pytest.mark.build
def test_built_page_keeps_the_widget_state(site):
    html = (site.html / "chapters" / "dl_compilers.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in html


MEMORY = data.path("ch05", "memory.json")


@pytest.mark.skipif(not MEMORY.exists(), reason="data/ch05/memory.json is written by make data")
def test_reference_memory_plans_respect_the_lower_bound():
    result = data.load(MEMORY)
    assert not result.meta.get("quick")
    plans = {}
    for r in result.records:
        if r["record"] == "plan":
            plans.setdefault(r["graph"], {})[r["strategy"]] = r["peak_bytes"]
    assert {"mlp unfused", "mlp fused", "cnn unfused", "cnn fused"} <= set(plans)
    for graph, peaks in plans.items():
        bound = peaks["lower bound"]
        assert 0 < bound <= min(peaks["naive"], peaks["sliding-window"], peaks["greedy-by-size"]), graph
        assert peaks["sliding-window"] <= peaks["naive"], graph
    traced = [r for r in result.records if r["record"] == "tracemalloc"]
    assert traced and all(r["peak_bytes"] > 0 and r["predicted_bytes"] > 0 for r in traced)
