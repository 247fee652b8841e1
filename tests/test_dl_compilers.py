"""Chapter 5 (Deep-learning compilers): what its reference data must tell."""

import pytest

from book import data

LATENCY = data.path("ch05", "latency.json")


@pytest.mark.skipif(not LATENCY.exists(), reason="data/ch05/latency.json is written by make data")
def test_reference_latency_holds_every_runner_at_every_batch():
    result = data.load(LATENCY)
    assert set(result.kernels) == {"numpy eager", "book unfused", "book fused", "ORT off", "ORT all"}
    assert len(result.sizes) >= 3 and not result.meta.get("quick")
    for n in result.sizes:
        for kernel in result.kernels:
            assert result.median(kernel, n) > 0
